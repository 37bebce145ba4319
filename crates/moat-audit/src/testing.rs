//! Helpers for tests that prove no secret reaches an audit record or a log line.
//!
//! Used by this crate's tests and by the gateway's end-to-end tests: collect every record
//! and log line, then ask for the tokens and keys the test used.

use std::path::Path;

/// One place a secret was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Which secret (its index in the list given, so the report does not repeat it).
    pub secret_index: usize,
    /// The line (from 1) it was on.
    pub line: usize,
}

/// Every occurrence of any of `secrets` in `text`, by line. Empty secrets are ignored.
pub fn find_strings(text: &str, secrets: &[&str]) -> Vec<Found> {
    let mut found = Vec::new();
    for (line_index, line) in text.lines().enumerate() {
        for (secret_index, secret) in secrets.iter().enumerate() {
            if !secret.is_empty() && line.contains(secret) {
                found.push(Found { secret_index, line: line_index + 1 });
            }
        }
    }
    found
}

/// [`find_strings`] over a file (an audit JSON-lines file, a captured log).
///
/// # Errors
/// When the file cannot be read.
pub fn find_strings_in_file(path: &Path, secrets: &[&str]) -> std::io::Result<Vec<Found>> {
    let bytes = std::fs::read(path)?;
    Ok(find_strings(&String::from_utf8_lossy(&bytes), secrets))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_secret_by_line() {
        let text = "a\nBearer eyJtoken\nnothing\nkey=mk_123 and eyJtoken\n";
        assert_eq!(
            find_strings(text, &["eyJtoken", "mk_123", ""]),
            vec![
                Found { secret_index: 0, line: 2 },
                Found { secret_index: 0, line: 4 },
                Found { secret_index: 1, line: 4 }
            ]
        );
        assert!(find_strings(text, &["absent"]).is_empty());
    }
}
