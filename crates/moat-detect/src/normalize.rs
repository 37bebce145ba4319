//! Text normalization before rules run, hidden-character accounting, and [`sanitize`].
//!
//! Every text rule sees the *normalized* text: ANSI/terminal escapes and invisible, format, bidi,
//! tag and control characters removed, NFKC applied, and Cyrillic/Greek look-alike letters that sit
//! inside a Latin word folded to Latin. An invisible character therefore cannot split a trigger
//! phrase, and a full-width or homoglyph spelling cannot dodge one. A byte map from the normalized
//! text back to the input keeps every finding's span in the caller's coordinates, so that the
//! gateway can redact the bytes it received.
//!
//! Plain ASCII text (the common case) takes a fast path: it is borrowed as is, with no map.

use std::borrow::Cow;
use std::ops::Range;

use unicode_normalization::UnicodeNormalization;

/// Longest CSI escape sequence we parse before treating `ESC` as a lone control byte.
const MAX_CSI_LEN: usize = 64;
/// Longest OSC sequence (hyperlinks, titles) we parse.
const MAX_OSC_LEN: usize = 4096;

/// What kind of hidden content was seen in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HiddenKind {
    /// Unicode tag characters (U+E0000–U+E007F): invisible ASCII.
    Tag,
    /// Zero-width and other invisible format characters.
    Invisible,
    /// Bidirectional controls that reorder what a person sees.
    Bidi,
    /// Private-use code points.
    PrivateUse,
    /// A terminal escape that only sets colours or styles (SGR).
    AnsiStyle,
    /// Any other terminal escape: cursor movement, erase, OSC titles and hyperlinks.
    AnsiControl,
    /// Raw C0/C1 control bytes other than tab and newlines.
    Control,
}

/// One run of hidden characters of one kind, in input coordinates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HiddenRun {
    pub kind: HiddenKind,
    pub span: Range<usize>,
    /// For tag characters: the ASCII they spell. For OSC hyperlinks: the target.
    pub decoded: String,
    /// How many characters (or escape sequences) the run holds.
    pub count: usize,
}

/// The normalized view of one input string.
#[derive(Debug)]
pub(crate) struct Normalized<'a> {
    pub text: Cow<'a, str>,
    /// Segments of `text`, in order, each mapping back to the input. `None` means the identity
    /// (fast path). Copied ASCII runs are one segment each, so mostly-ASCII text stays small.
    map: Option<Vec<Segment>>,
    pub hidden: Vec<HiddenRun>,
    input_len: usize,
}

/// A piece of the normalized text and the input bytes it came from.
#[derive(Debug, Clone, Copy)]
struct Segment {
    /// Start in the normalized text.
    norm: u32,
    /// Input range it came from. For a copied run `input_end - input == len`, byte for byte.
    input: u32,
    input_end: u32,
    copied: bool,
}

impl Normalized<'_> {
    /// Map a byte range of the normalized text to the input range it came from.
    pub fn input_span(&self, r: Range<usize>) -> Range<usize> {
        let Some(map) = &self.map else {
            return r;
        };
        let locate = |pos: usize| -> Option<&Segment> {
            let i = map.partition_point(|s| (s.norm as usize) <= pos);
            map.get(i.checked_sub(1)?)
        };
        let start = match locate(r.start) {
            Some(s) if s.copied => s.input as usize + (r.start - s.norm as usize),
            Some(s) => s.input as usize,
            None => self.input_len,
        };
        let end = if r.end <= r.start {
            start
        } else {
            match locate(r.end - 1) {
                Some(s) if s.copied => s.input as usize + (r.end - s.norm as usize),
                Some(s) => s.input_end as usize,
                None => self.input_len,
            }
        };
        start..end.max(start)
    }
}

fn is_plain(b: u8) -> bool {
    (0x20..0x7f).contains(&b) || b == b'\n' || b == b'\r' || b == b'\t'
}

/// True when `text` needs no normalization: printable ASCII, tabs and newlines only.
fn is_plain_ascii(text: &str) -> bool {
    text.bytes().all(is_plain)
}

/// Normalize `text` for rule matching; see the module docs.
pub(crate) fn normalize(text: &str) -> Normalized<'_> {
    if is_plain_ascii(text) {
        return Normalized { text: Cow::Borrowed(text), map: None, hidden: Vec::new(), input_len: text.len() };
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut map: Vec<Segment> = Vec::new();
    let mut hidden: Vec<HiddenRun> = Vec::new();
    let mut nfkc_buf = String::new();
    let mut i = 0;
    while i < text.len() {
        // A run of plain ASCII is copied as one segment.
        let run_end = bytes.get(i..).map_or(i, |rest| i + rest.iter().take_while(|b| is_plain(**b)).count());
        if run_end > i {
            if let Some(run) = text.get(i..run_end) {
                map.push(Segment { norm: out.len() as u32, input: i as u32, input_end: run_end as u32, copied: true });
                out.push_str(run);
            }
            i = run_end;
            continue;
        }
        let Some(c) = text.get(i..).and_then(|t| t.chars().next()) else { break };
        let clen = c.len_utf8();
        // Terminal escapes: ESC or the C1 CSI/OSC introducers.
        if c == '\u{1b}' || c == '\u{9b}' || c == '\u{9d}' {
            let (end, kind, decoded) = parse_escape(text, i);
            if end > i + clen || c != '\u{1b}' {
                push_hidden(&mut hidden, kind, i..end.max(i + clen), &decoded);
                i = ceil_boundary(text, end.max(i + clen));
                continue;
            }
            push_hidden(&mut hidden, HiddenKind::Control, i..i + clen, "");
            i += clen;
            continue;
        }
        if let Some(kind) = hidden_kind(c, text, i) {
            let decoded = if kind == HiddenKind::Tag { tag_ascii(c) } else { None };
            let mut buf = [0u8; 4];
            push_hidden(&mut hidden, kind, i..i + clen, decoded.map(|d| &*d.encode_utf8(&mut buf)).unwrap_or(""));
            i += clen;
            continue;
        }
        if matches!(c, '\u{200d}' | '\u{fe0e}' | '\u{fe0f}') {
            // Emoji joiners and presentation selectors: harmless, but not part of any word.
            i += clen;
            continue;
        }
        let prev_ascii_alpha = out.as_bytes().last().is_some_and(|b| b.is_ascii_alphabetic());
        let next_ascii_alpha = bytes.get(i + clen).is_some_and(|b| b.is_ascii_alphabetic());
        nfkc_buf.clear();
        match confusable_latin(c) {
            Some(latin) if prev_ascii_alpha || next_ascii_alpha => nfkc_buf.push(latin),
            _ => nfkc_buf.extend(std::iter::once(c).nfkc()),
        }
        map.push(Segment { norm: out.len() as u32, input: i as u32, input_end: (i + clen) as u32, copied: false });
        out.push_str(&nfkc_buf);
        i += clen;
    }
    Normalized { text: Cow::Owned(out), map: Some(map), hidden, input_len: text.len() }
}

fn ceil_boundary(s: &str, mut i: usize) -> usize {
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i.min(s.len())
}

fn push_hidden(hidden: &mut Vec<HiddenRun>, kind: HiddenKind, span: Range<usize>, decoded: &str) {
    if let Some(last) = hidden.last_mut() {
        if last.kind == kind && last.span.end == span.start {
            last.span.end = span.end;
            last.count += 1;
            if last.decoded.len() < 4096 {
                last.decoded.push_str(decoded);
            }
            return;
        }
    }
    hidden.push(HiddenRun { kind, span, decoded: decoded.to_owned(), count: 1 });
}

/// Parse a terminal escape starting at `start` (an `ESC`, or a C1 CSI/OSC). Returns the end of the
/// sequence, its kind, and for OSC 8 hyperlinks the link target.
fn parse_escape(text: &str, start: usize) -> (usize, HiddenKind, String) {
    let bytes = text.as_bytes();
    let first = bytes.get(start).copied().unwrap_or(0);
    // C1 introducers are two bytes in UTF-8 (0xC2 0x9B / 0xC2 0x9D).
    let (intro, body) = if first == 0x1b {
        (bytes.get(start + 1).copied().unwrap_or(0), start + 2)
    } else {
        match bytes.get(start + 1).copied() {
            Some(0x9b) => (b'[', start + 2),
            Some(0x9d) => (b']', start + 2),
            _ => (0, start + 2),
        }
    };
    match intro {
        b'[' => {
            let limit = (body + MAX_CSI_LEN).min(bytes.len());
            let mut j = body;
            while j < limit {
                let b = bytes.get(j).copied().unwrap_or(0);
                if (0x40..=0x7e).contains(&b) {
                    let kind = if b == b'm' { HiddenKind::AnsiStyle } else { HiddenKind::AnsiControl };
                    return (j + 1, kind, String::new());
                }
                if !(0x20..=0x3f).contains(&b) {
                    break;
                }
                j += 1;
            }
            (j.min(bytes.len()), HiddenKind::AnsiControl, String::new())
        }
        b']' => {
            let limit = (body + MAX_OSC_LEN).min(bytes.len());
            let mut j = body;
            while j < limit {
                match bytes.get(j).copied().unwrap_or(0) {
                    0x07 => break,
                    0x1b if bytes.get(j + 1) == Some(&b'\\') => break,
                    _ => j += 1,
                }
            }
            let payload = text.get(body..j).unwrap_or("");
            let decoded = payload
                .strip_prefix("8;")
                .and_then(|p| p.split_once(';'))
                .map(|(_, url)| url.to_owned())
                .unwrap_or_default();
            let end = match bytes.get(j).copied() {
                Some(0x07) => j + 1,
                Some(0x1b) => j + 2,
                _ => j,
            };
            (end.min(bytes.len()), HiddenKind::AnsiControl, decoded)
        }
        0x40..=0x7e if first == 0x1b => (start + 2, HiddenKind::AnsiControl, String::new()),
        _ => (start + 1, HiddenKind::Control, String::new()),
    }
}

/// Classify a character that a person cannot see. `None` for visible characters.
fn hidden_kind(c: char, text: &str, i: usize) -> Option<HiddenKind> {
    let cp = c as u32;
    match cp {
        0xE0000..=0xE007F => Some(HiddenKind::Tag),
        0x202A..=0x202E | 0x2066..=0x2069 | 0x200E | 0x200F | 0x061C => Some(HiddenKind::Bidi),
        0x200B
        | 0x200C
        | 0x2060..=0x2064
        | 0x180E
        | 0x034F
        | 0x115F
        | 0x1160
        | 0x3164
        | 0xFFA0
        | 0x17B4
        | 0x17B5
        | 0xE0100..=0xE01EF
        | 0xFE00..=0xFE0D => Some(HiddenKind::Invisible),
        // A byte-order mark at the very start is an encoding artifact, elsewhere it hides a split.
        0xFEFF => (i != 0).then_some(HiddenKind::Invisible),
        // Soft hyphens are common in web text; they only count when they split a word.
        0x00AD => soft_hyphen_splits(text, i).then_some(HiddenKind::Invisible),
        0xE000..=0xF8FF | 0xF0000..=0xFFFFD | 0x100000..=0x10FFFD => Some(HiddenKind::PrivateUse),
        0x00..=0x08 | 0x0B | 0x0C | 0x0E..=0x1F | 0x7F | 0x80..=0x9F => Some(HiddenKind::Control),
        _ => None,
    }
}

fn soft_hyphen_splits(text: &str, i: usize) -> bool {
    let before = text.get(..i).and_then(|s| s.chars().next_back());
    let after = text.get(i + 2..).and_then(|s| s.chars().next());
    matches!((before, after), (Some(b), Some(a)) if b.is_ascii_alphabetic() && a.is_ascii_alphabetic())
}

fn tag_ascii(c: char) -> Option<char> {
    let cp = c as u32;
    (0xE0020..=0xE007E).contains(&cp).then(|| char::from_u32(cp - 0xE0000)).flatten()
}

/// Latin look-alike for a Cyrillic or Greek letter.
pub(crate) fn confusable_latin(c: char) -> Option<char> {
    Some(match c {
        'а' | 'α' => 'a',
        'е' | 'ε' => 'e',
        'о' | 'ο' | 'σ' => 'o',
        'р' | 'ρ' => 'p',
        'с' | 'ϲ' => 'c',
        'у' | 'γ' => 'y',
        'х' | 'χ' => 'x',
        'і' | 'ι' => 'i',
        'ј' => 'j',
        'ѕ' => 's',
        'ԁ' => 'd',
        'ԛ' => 'q',
        'ԝ' | 'ω' => 'w',
        'һ' => 'h',
        'ӏ' => 'l',
        'ν' => 'v',
        'κ' | 'к' => 'k',
        'т' | 'τ' => 't',
        'п' => 'n',
        'ɡ' => 'g',
        'А' | 'Α' => 'A',
        'В' | 'Β' => 'B',
        'Е' | 'Ε' => 'E',
        'К' | 'Κ' => 'K',
        'М' | 'Μ' => 'M',
        'Н' | 'Η' => 'H',
        'О' | 'Ο' => 'O',
        'Р' | 'Ρ' => 'P',
        'С' | 'Ϲ' => 'C',
        'Т' | 'Τ' => 'T',
        'Х' | 'Χ' => 'X',
        'Ү' | 'Υ' => 'Y',
        'І' | 'Ι' => 'I',
        'Ј' => 'J',
        'Ѕ' => 'S',
        'Ζ' => 'Z',
        'Ν' => 'N',
        _ => return None,
    })
}

/// The comparison form of a tool name: NFKC, look-alikes folded to Latin, lower case, and the
/// separators `_ - . ` removed. Two names with the same skeleton look the same to a person.
pub fn skeleton(name: &str) -> String {
    name.nfkc()
        .filter(|c| hidden_kind(*c, "", 1).is_none() && !matches!(c, '_' | '-' | '.' | ' ' | '\u{200d}'))
        .map(|c| confusable_latin(c).unwrap_or(c))
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            '0' => 'o',
            '1' => 'l',
            c => c,
        })
        .collect()
}

/// Remove terminal escapes (CSI, OSC including hyperlinks, two-byte escapes), raw control bytes
/// (tab and newlines stay), and invisible, format, bidi, tag and private-use characters.
/// Visible text is kept byte for byte; plain ASCII input is returned borrowed.
pub fn sanitize(text: &str) -> Cow<'_, str> {
    if is_plain_ascii(text) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\u{1b}' || c == '\u{9b}' || c == '\u{9d}' {
            let (end, _, _) = parse_escape(text, i);
            while chars.peek().is_some_and(|(j, _)| *j < end) {
                chars.next();
            }
            continue;
        }
        if hidden_kind(c, text, i).is_some() {
            continue;
        }
        out.push(c);
    }
    if out.len() == text.len() {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn ascii_is_borrowed() {
        let n = normalize("hello world");
        assert!(matches!(n.text, Cow::Borrowed(_)));
        assert_eq!(n.input_span(0..5), 0..5);
    }

    #[test]
    fn invisible_characters_cannot_split_words() {
        let n = normalize("ig\u{200b}nore previous");
        assert_eq!(n.text, "ignore previous");
        assert_eq!(n.hidden.len(), 1);
        assert_eq!(n.hidden[0].kind, HiddenKind::Invisible);
        // "nore" starts after the zero-width space (3 bytes).
        assert_eq!(n.input_span(2..6), 5..9);
    }

    #[test]
    fn fullwidth_and_homoglyphs_fold() {
        assert_eq!(normalize("ｉｇｎｏｒｅ").text, "ignore");
        assert_eq!(normalize("іgnore").text, "ignore");
        // An all-Cyrillic word stays Cyrillic.
        assert_eq!(normalize("привет").text, "привет");
    }

    #[test]
    fn tags_are_decoded() {
        let hidden: String = "hi AI".chars().map(|c| char::from_u32(c as u32 + 0xE0000).unwrap()).collect();
        let input = format!("ok{hidden}");
        let n = normalize(&input);
        assert_eq!(n.text, "ok");
        assert_eq!(n.hidden[0].kind, HiddenKind::Tag);
        assert_eq!(n.hidden[0].decoded, "hi AI");
    }

    #[test]
    fn escapes_are_classified_and_removed() {
        let n = normalize("\u{1b}[31mred\u{1b}[0m \u{1b}[2J\u{1b}]8;;http://x.test\u{7}link\u{1b}]8;;\u{7}");
        assert_eq!(n.text, "red link");
        let kinds: Vec<_> = n.hidden.iter().map(|h| h.kind).collect();
        assert!(kinds.contains(&HiddenKind::AnsiStyle));
        assert!(kinds.contains(&HiddenKind::AnsiControl));
        assert!(n.hidden.iter().any(|h| h.decoded == "http://x.test"));
    }

    #[test]
    fn sanitize_strips_and_keeps_visible_text() {
        assert_eq!(sanitize("a\u{1b}[1mb\u{200b}c\u{202e}d\u{e0041}"), "abcd");
        assert_eq!(sanitize("日本語 ok"), "日本語 ok");
        assert_eq!(sanitize("tab\tnew\nline"), "tab\tnew\nline");
    }

    #[test]
    fn skeletons_compare_lookalikes() {
        assert_eq!(skeleton("send_email"), skeleton("sеnd-email"));
        assert_eq!(skeleton("read_file"), skeleton("READ.FILE"));
        assert_ne!(skeleton("read_file"), skeleton("write_file"));
    }
}
