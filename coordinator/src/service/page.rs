//! Pages of long replies. A sweep's trials, the sweeps and the workers grow without a bound
//! the coordinator sets, so list replies come in pages that each fit a message: `page_size`
//! items from the position `page_token` names. The token is the position as a decimal
//! number: checked like any input, never trusted to be in range.

use tonic::Status;

/// The most items one page may hold.
pub const MAX_PAGE_SIZE: u32 = 10_000;
/// The page size of a list call that names none.
pub const DEFAULT_PAGE_SIZE: u32 = 1_000;

/// Where a page starts and how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    start: usize,
    size: Option<usize>,
}

impl Page {
    /// A page of `size` items (0: `default`, where `None` means all) from `token`.
    pub fn parse(size: u32, token: &str, default: Option<u32>) -> Result<Self, Status> {
        if size > MAX_PAGE_SIZE {
            return Err(Status::invalid_argument(format!("page_size: at most {MAX_PAGE_SIZE}, got {size}")));
        }
        let start = if token.is_empty() {
            0
        } else {
            let valid = token.len() <= 12 && token.bytes().all(|b| b.is_ascii_digit());
            let start = valid.then(|| token.parse::<usize>().ok()).flatten();
            start.ok_or_else(|| Status::invalid_argument("page_token: not a token this coordinator gave"))?
        };
        let size = if size == 0 { default } else { Some(size) };
        Ok(Self { start, size: size.map(|s| s as usize) })
    }

    /// This page of `items`, and the token of the next page (empty on the last).
    pub fn take<T>(self, items: Vec<T>) -> (Vec<T>, String) {
        let total = items.len();
        let end = self.size.map_or(total, |s| self.start.saturating_add(s).min(total));
        let next = if end < total { end.to_string() } else { String::new() };
        let page = items.into_iter().skip(self.start).take(end.saturating_sub(self.start)).collect();
        (page, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cover_the_list_once_and_the_last_has_no_next_token() {
        let items: Vec<u32> = (0..25).collect();
        let mut seen = Vec::new();
        let mut token = String::new();
        loop {
            let (page, next) = Page::parse(10, &token, None).expect("a valid page").take(items.clone());
            assert!(page.len() <= 10);
            seen.extend(page);
            if next.is_empty() {
                break;
            }
            token = next;
        }
        assert_eq!(seen, items);
        assert_eq!(Page::parse(0, "", None).unwrap().take(items.clone()), (items.clone(), String::new()));
        assert_eq!(Page::parse(0, "", Some(20)).unwrap().take(items.clone()).1, "20");
        assert_eq!(Page::parse(5, "100", None).unwrap().take(items).0, Vec::<u32>::new(), "past the end: empty");
    }

    #[test]
    fn bad_tokens_and_sizes_name_the_field() {
        for token in ["-1", "abc", "99999999999999999999", "1 "] {
            let error = Page::parse(10, token, None).expect_err(token);
            assert!(error.message().starts_with("page_token: "), "{}", error.message());
        }
        assert!(Page::parse(MAX_PAGE_SIZE + 1, "", None).expect_err("too big").message().starts_with("page_size: "));
    }
}
