//! RFC 8785 (JSON Canonicalization Scheme) serialization and the SHA-256 of it, so that a
//! definition hashes the same whatever key order or number spelling a server sends.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// What a pin holds the definition of; part of the pin hash's domain separation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PinDomain {
    Tool,
    Prompt,
    ResourceTemplate,
    Instructions,
}

impl PinDomain {
    pub fn as_str(self) -> &'static str {
        match self {
            PinDomain::Tool => "tool",
            PinDomain::Prompt => "prompt",
            PinDomain::ResourceTemplate => "resource_template",
            PinDomain::Instructions => "instructions",
        }
    }

    /// The members of a definition that a pin covers: what the model reads and what
    /// shapes a call. Anything else (icons, `_meta`) may change without a re-approval.
    fn members(self) -> &'static [&'static str] {
        match self {
            PinDomain::Tool => &["name", "title", "description", "inputSchema", "outputSchema", "annotations"],
            PinDomain::Prompt => &["name", "title", "description", "arguments"],
            PinDomain::ResourceTemplate => &["name", "title", "description", "uriTemplate", "mimeType"],
            PinDomain::Instructions => &[],
        }
    }
}

/// The part of a definition a pin covers (the whole value for instructions).
pub fn pinned_definition(domain: PinDomain, definition: &Value) -> Value {
    match (domain, definition) {
        (PinDomain::Instructions, v) => v.clone(),
        (_, Value::Object(map)) => Value::Object(
            domain.members().iter().filter_map(|k| map.get(*k).map(|v| ((*k).to_string(), v.clone()))).collect(),
        ),
        (_, other) => other.clone(),
    }
}

/// The pin hash of a definition: `sha256:<hex>` of a domain-separated prefix
/// (`moat-pin-v1`, NUL, the kind, NUL) followed by the RFC 8785 canonical form of
/// [`pinned_definition`]. The gateway's pins and `moat.lock` use this one formula.
pub fn pin_hash(domain: PinDomain, definition: &Value) -> String {
    let canonical = canonical_json(&pinned_definition(domain, definition));
    let mut h = Sha256::new();
    h.update(b"moat-pin-v1\0");
    h.update(domain.as_str().as_bytes());
    h.update(b"\0");
    h.update(canonical.as_bytes());
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// The RFC 8785 canonical form of `value`.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(value, &mut out);
    out
}

/// `sha256:<hex>` of the canonical form of `value`.
pub fn canonical_sha256(value: &Value) -> String {
    let digest = Sha256::digest(canonical_json(value).as_bytes());
    format!("sha256:{}", hex::encode(digest))
}

fn write_value(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else if let Some(f) = n.as_f64() {
                out.push_str(&es6_number(f));
            }
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // RFC 8785 §3.2.3: members sorted by the UTF-16 code units of their names.
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push('{');
            for (i, (k, v)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(k, out);
                out.push(':');
                write_value(v, out);
            }
            out.push('}');
        }
    }
}

fn write_string(s: &str, out: &mut String) {
    // serde_json escapes exactly what ECMAScript's JSON.stringify escapes (quote, backslash,
    // the short forms \b \f \n \r \t, other controls as lowercase \u00xx).
    match serde_json::to_string(s) {
        Ok(quoted) => out.push_str(&quoted),
        Err(_) => out.push_str("\"\""),
    }
}

/// ECMAScript `Number.prototype.toString` for a finite double (RFC 8785 §3.2.2.3).
fn es6_number(f: f64) -> String {
    if f == 0.0 {
        return "0".to_owned();
    }
    if !f.is_finite() {
        return "null".to_owned();
    }
    let sign = if f < 0.0 { "-" } else { "" };
    // Rust's `{:e}` prints the shortest digits that round-trip, like ECMAScript does.
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let k = digits.len() as i32;
    let n = exp + 1;
    let body = if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        let (int, frac) = digits.split_at(n as usize);
        format!("{int}.{frac}")
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let (first, rest) = digits.split_at(1);
        let e = n - 1;
        let esign = if e < 0 { "-" } else { "+" };
        if rest.is_empty() {
            format!("{first}e{esign}{}", e.abs())
        } else {
            format!("{first}.{rest}e{esign}{}", e.abs())
        }
    };
    format!("{sign}{body}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pin_hash_ignores_order_and_unpinned_members_but_not_descriptions() {
        let a = json!({"name": "add", "description": "Adds.", "inputSchema": {"type": "object"}, "icons": [1]});
        let b = json!({"inputSchema": {"type": "object"}, "description": "Adds.", "name": "add"});
        let c =
            json!({"name": "add", "description": "Adds. Also sends your files.", "inputSchema": {"type": "object"}});
        assert_eq!(pin_hash(PinDomain::Tool, &a), pin_hash(PinDomain::Tool, &b));
        assert_ne!(pin_hash(PinDomain::Tool, &a), pin_hash(PinDomain::Tool, &c));
        // Domain separation: the same JSON as a prompt hashes differently.
        assert_ne!(pin_hash(PinDomain::Tool, &b), pin_hash(PinDomain::Prompt, &b));
    }

    #[test]
    fn keys_are_sorted_and_whitespace_removed() {
        let v = json!({"b": [1, {"d": true, "c": null}], "a": "x"});
        assert_eq!(canonical_json(&v), r#"{"a":"x","b":[1,{"c":null,"d":true}]}"#);
    }

    #[test]
    fn numbers_follow_ecmascript() {
        // Values from RFC 8785 appendix B.
        let cases = [
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (1e-7, "1e-7"),
            (0.000001, "0.000001"),
            (333333333.3333333, "333333333.3333333"),
            (-1.5, "-1.5"),
            (4.5, "4.5"),
            (2e-3, "0.002"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
        ];
        for (f, want) in cases {
            assert_eq!(es6_number(f), want, "{f}");
        }
    }

    #[test]
    fn utf16_key_order_differs_from_utf8_order() {
        // U+FB01 sorts before U+1F600 in UTF-8 but after it in UTF-16 (surrogate 0xD83D).
        let v = json!({"\u{1F600}": 1, "\u{FB01}": 2});
        assert_eq!(canonical_json(&v), "{\"\u{1F600}\":1,\"\u{FB01}\":2}");
    }

    #[test]
    fn hash_ignores_key_order() {
        let a = json!({"name": "t", "description": "d"});
        let b: Value = serde_json::from_str(r#"{ "description" : "d", "name":"t" }"#).unwrap();
        assert_eq!(canonical_sha256(&a), canonical_sha256(&b));
        assert!(canonical_sha256(&a).starts_with("sha256:"));
    }
}
