//! Checks on the ids and strings a caller sends, made at the edge before they touch a file,
//! the database or a loop. Ids are the coordinator's own keys (`[A-Za-z0-9-]`), so a caller
//! string can never name a path; free text is capped, so one request cannot make every later
//! reply too large to send. Each refusal is INVALID_ARGUMENT naming the field.

use tonic::Status;

/// The longest id the coordinator makes or accepts.
pub const MAX_ID_BYTES: usize = 128;

/// The longest host, device or version string a worker may register.
pub const MAX_LABEL_BYTES: usize = 256;

/// The most slots one worker may register: more trials than any machine trains at once.
pub const MAX_SLOTS: u32 = 1024;

/// Refuses an id that is empty, too long or holds anything but ASCII letters, digits and `-`.
pub fn id(field: &str, value: &str) -> Result<(), Status> {
    if value.is_empty() {
        return Err(Status::invalid_argument(format!("{field}: must not be empty")));
    }
    if value.len() > MAX_ID_BYTES {
        return Err(Status::invalid_argument(format!("{field}: at most {MAX_ID_BYTES} bytes, got {}", value.len())));
    }
    if let Some(bad) = value.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-')) {
        return Err(Status::invalid_argument(format!(
            "{field}: only letters, digits and '-' are allowed, got {bad:?} in {:?}",
            shorten(value)
        )));
    }
    Ok(())
}

/// Refuses free text longer than `max` bytes or holding control characters.
pub fn text(field: &str, value: &str, max: usize) -> Result<(), Status> {
    if value.len() > max {
        return Err(Status::invalid_argument(format!("{field}: at most {max} bytes, got {}", value.len())));
    }
    if value.chars().any(char::is_control) {
        return Err(Status::invalid_argument(format!("{field}: control characters are not allowed")));
    }
    Ok(())
}

/// A registered slot count: at least 1, at most [`MAX_SLOTS`].
pub fn slots(value: u32) -> Result<(), Status> {
    if !(1..=MAX_SLOTS).contains(&value) {
        return Err(Status::invalid_argument(format!("slots: must be 1 to {MAX_SLOTS}, got {value}")));
    }
    Ok(())
}

/// The start of a long value, for an error message.
fn shorten(value: &str) -> String {
    value.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_the_coordinator_s_own_keys_and_nothing_that_names_a_path() {
        id("trial_id", "drive-demo-a1b2c3d4e5-0123456789abcdef").expect("a trial id");
        for bad in ["", "../x", "/etc/passwd", "a/b", "a.b", "a b", "é"] {
            let error = id("trial_id", bad).expect_err(bad);
            assert_eq!(error.code(), tonic::Code::InvalidArgument);
            assert!(error.message().starts_with("trial_id: "), "{}", error.message());
        }
        let long = "a".repeat(MAX_ID_BYTES + 1);
        assert!(id("worker_id", &long).expect_err("too long").message().contains("at most 128 bytes"));
    }

    #[test]
    fn text_is_capped_and_slots_are_bounded() {
        text("host", "gpu-01", MAX_LABEL_BYTES).expect("a host");
        assert!(text("host", &"h".repeat(3 << 20), MAX_LABEL_BYTES).is_err());
        assert!(text("host", "a\nb", MAX_LABEL_BYTES).is_err());
        slots(1).expect("one slot");
        assert!(slots(0).is_err());
        assert!(slots(u32::MAX).expect_err("-1 as u32").message().contains("4294967295"));
    }
}
