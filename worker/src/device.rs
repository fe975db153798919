//! Which libtorch device to run on, from its name: the `--device` of every command, and the
//! `ALLSWEEP_TEST_DEVICE` of the trainer's tests, so that the same tests run on a GPU machine
//! (scripts/gpu-check.sh) as here.

use tch::Device;

/// Parses `auto` (CUDA when present), `cpu`, `cuda` or `cuda:N`.
pub fn parse(text: &str) -> Result<Device, String> {
    match text {
        "auto" => Ok(Device::cuda_if_available()),
        "cpu" => Ok(Device::Cpu),
        "cuda" => Ok(Device::Cuda(0)),
        other => other
            .strip_prefix("cuda:")
            .and_then(|n| n.parse::<usize>().ok())
            .map(Device::Cuda)
            .ok_or_else(|| format!("unknown device {other:?}; expected auto, cpu, cuda or cuda:N")),
    }
}

/// The device the trainer's tests run on: `ALLSWEEP_TEST_DEVICE` (`cpu`, `cuda`, `cuda:N`),
/// the CPU when it is not set. A name that does not parse, or a CUDA device on a machine
/// without one, stops the test with the reason rather than testing the CPU in its place.
pub fn for_tests() -> Device {
    let Ok(name) = std::env::var("ALLSWEEP_TEST_DEVICE") else { return Device::Cpu };
    let device = parse(name.trim()).unwrap_or_else(|e| panic!("ALLSWEEP_TEST_DEVICE: {e}"));
    if device.is_cuda() && !tch::Cuda::is_available() {
        panic!("ALLSWEEP_TEST_DEVICE={name}, but libtorch sees no CUDA device here");
    }
    device
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_parse_and_bad_ones_say_what_is_accepted() {
        assert_eq!(parse("cpu"), Ok(Device::Cpu));
        assert_eq!(parse("cuda"), Ok(Device::Cuda(0)));
        assert_eq!(parse("cuda:2"), Ok(Device::Cuda(2)));
        assert!(parse("gpu").unwrap_err().contains("expected auto, cpu, cuda or cuda:N"));
        assert!(parse("cuda:x").is_err());
    }
}
