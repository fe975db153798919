//! Where a key is written in a TOML text: the line numbers that errors about configs and
//! specs carry, so that a user is sent to the line at fault.
//!
//! A dotted path (`loss.omega`) finds the key however it is written: nested tables
//! (`[loss]` then `omega = ...`), dotted keys (`loss.omega = ...`) or one quoted key holding the
//! dots (`"loss.omega" = ...`, as in a spec's `[grid]`).

use std::ops::Range;

use toml_edit::{ImDocument, Item, TableLike};

/// The line (1-based) of byte `offset` in `source`.
pub fn line_at(source: &str, offset: usize) -> usize {
    source[..offset.min(source.len())].matches('\n').count() + 1
}

/// The line where `dotted` (or its deepest existing parent) is written in `source`.
pub fn line_of(source: &str, dotted: &str) -> Option<usize> {
    let doc = ImDocument::parse(source).ok()?;
    let (span, _) = find(doc.as_table(), dotted)?;
    Some(line_at(source, span.start))
}

/// The line of the `index`-th value (0-based) of the list at `dotted`, or of the key when the
/// value is not a list or has no such entry.
pub fn line_of_entry(source: &str, dotted: &str, index: usize) -> Option<usize> {
    let doc = ImDocument::parse(source).ok()?;
    let (key_span, item) = find(doc.as_table(), dotted)?;
    let entry = item.and_then(|item| match item {
        Item::Value(value) => value.as_array()?.get(index)?.span(),
        Item::ArrayOfTables(tables) => tables.get(index)?.span(),
        _ => None,
    });
    Some(line_at(source, entry.unwrap_or(key_span).start))
}

/// The span of `dotted`'s key in `table` and its item, or the span of its deepest written
/// parent (and no item). At each level the longest written key wins, so `"loss.omega"` is
/// found before `loss` then `omega`.
fn find<'a>(table: &'a dyn TableLike, dotted: &str) -> Option<(Range<usize>, Option<&'a Item>)> {
    if let Some((key, item)) = table.get_key_value(dotted) {
        return Some((key.span().or_else(|| item.span())?, Some(item)));
    }
    let splits = dotted.match_indices('.').map(|(i, _)| i).collect::<Vec<_>>();
    for &at in splits.iter().rev() {
        let (head, rest) = (&dotted[..at], &dotted[at + 1..]);
        let Some((key, item)) = table.get_key_value(head) else { continue };
        let here = key.span().or_else(|| item.span());
        let deeper = item.as_table_like().and_then(|inner| find(inner, rest));
        return deeper.or_else(|| Some((here?, None)));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r#"name = "lines"

[loss]
kind = "all"
omega = 10

[grid]
"loss.omega" = [6, 8]
loss = [
  {kind = "dice"},
  {kind = "all", gamma = 0.2},
]

[grid.model]
width = [8, 16]
"#;

    #[test]
    fn keys_are_found_however_they_are_written() {
        assert_eq!(line_of(SPEC, "name"), Some(1));
        assert_eq!(line_of(SPEC, "loss.omega"), Some(5), "nested");
        assert_eq!(line_of(SPEC, "grid.loss.omega"), Some(8), "one quoted key holding the dots");
        assert_eq!(line_of(SPEC, "grid.loss"), Some(9));
        assert_eq!(line_of(SPEC, "grid.model.width"), Some(15), "a nested grid table");
        assert_eq!(line_of(SPEC, "loss.gamma"), Some(3), "a missing key: its table's line");
        assert_eq!(line_of(SPEC, "train.epochs"), None, "nothing of it written");
        assert_eq!(line_of("name = \n", "name"), None, "no line from text that does not parse");
    }

    #[test]
    fn list_entries_have_their_own_lines() {
        assert_eq!(line_of_entry(SPEC, "grid.loss", 0), Some(10));
        assert_eq!(line_of_entry(SPEC, "grid.loss", 1), Some(11));
        assert_eq!(line_of_entry(SPEC, "grid.loss.omega", 1), Some(8));
        assert_eq!(line_of_entry(SPEC, "grid.loss", 5), Some(9), "no such entry: the key's line");
        assert_eq!(line_of_entry(SPEC, "loss.kind", 0), Some(4), "not a list: the key's line");
    }

    #[test]
    fn offsets_count_lines_from_one() {
        assert_eq!(line_at("a\nb\nc", 0), 1);
        assert_eq!(line_at("a\nb\nc", 2), 2);
        assert_eq!(line_at("a\nb\nc", 99), 3, "past the end: the last line");
    }
}
