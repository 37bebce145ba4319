//! Finding where a key is in the source text, so that errors about meaning point at a line.

use toml_edit::{ImDocument, Item, TableLike};

/// 1-based line and column of a byte offset.
pub(crate) fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let before = source.get(..offset.min(source.len())).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The dotted key whose line holds `offset`: `table.key` for `key = value` under `[table]`.
pub(crate) fn key_at(source: &str, offset: usize) -> Option<String> {
    let (line_no, _) = line_col(source, offset);
    let lines: Vec<&str> = source.lines().collect();
    let this = lines.get(line_no.checked_sub(1)?)?;
    let mut table = None;
    for l in lines.iter().take(line_no).rev() {
        let t = l.trim();
        if t.starts_with('[') {
            table = Some(t.trim_matches(|c| c == '[' || c == ']').trim().to_string());
            break;
        }
    }
    let key = this.split_once('=').map(|(k, _)| k.trim().trim_matches('"').to_string());
    match (table, key) {
        (Some(t), Some(k)) if !k.is_empty() => Some(format!("{t}.{k}")),
        (None, Some(k)) if !k.is_empty() => Some(k),
        (Some(t), _) => Some(t),
        _ => None,
    }
}

/// Line and column of a key path such as `upstream[1].env.TOKEN`.
pub(crate) fn find_key(source: &str, path: &str) -> Option<(usize, usize)> {
    let doc = ImDocument::parse(source).ok()?;
    let mut table: &dyn TableLike = doc.as_table();
    let mut span = None;
    let segments: Vec<&str> = path.split('.').collect();
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.iter().enumerate() {
        let (name, index) = match seg.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (*seg, None),
        };
        let (key, item) = table.get_key_value(name)?;
        span = key.span().or_else(|| item.span());
        let item: &Item = match index {
            Some(idx) => {
                if let Some(arr) = item.as_array_of_tables() {
                    let t = arr.get(idx)?;
                    span = t.span().or(span);
                    if i == last {
                        break;
                    }
                    table = t;
                    continue;
                }
                return span.map(|s| line_col(source, s.start));
            }
            None => item,
        };
        if i == last {
            break;
        }
        table = item.as_table_like()?;
    }
    span.map(|s| line_col(source, s.start))
}

/// The candidate closest to `word` by edit distance, when close enough to be a likely typo.
pub(crate) fn nearest<'a>(word: &str, candidates: &'a [String]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.as_str())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev.get(j).copied().unwrap_or(0) + usize::from(ca != *cb);
            let del = prev.get(j + 1).copied().unwrap_or(0) + 1;
            let ins = cur.get(j).copied().unwrap_or(0) + 1;
            cur.push(sub.min(del).min(ins));
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    const SRC: &str = "[gateway]\nlisten = \"x\"\n\n[[upstream]]\nname = \"a\"\n\n[[upstream]]\nname = \"b\"\nenv = { TOKEN = \"v\" }\n";

    #[test]
    fn finds_nested_keys() {
        assert_eq!(find_key(SRC, "gateway.listen"), Some((2, 1)));
        assert_eq!(find_key(SRC, "upstream[1].name"), Some((8, 1)));
        assert_eq!(find_key(SRC, "upstream[1].env.TOKEN"), Some((9, 9)));
        assert_eq!(find_key(SRC, "nope"), None);
    }

    #[test]
    fn suggests_near_keys() {
        let c = vec!["listen".to_string(), "path".to_string()];
        assert_eq!(nearest("lisen", &c), Some("listen"));
        assert_eq!(nearest("zzzzzz", &c), None);
    }
}
