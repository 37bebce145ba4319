//! Editing one member of a JSON object while keeping the others' bytes.

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// The members of a JSON object, in order, each as raw JSON; `None` when `raw` is not an object.
pub fn object_entries(raw: &RawValue) -> Option<Vec<(String, Box<RawValue>)>> {
    struct Entries(Vec<(String, Box<RawValue>)>);
    impl<'de> Deserialize<'de> for Entries {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Entries;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                    let mut v = Vec::new();
                    while let Some((k, val)) = map.next_entry::<String, Box<RawValue>>()? {
                        v.push((k, val));
                    }
                    Ok(Entries(v))
                }
            }
            d.deserialize_map(V)
        }
    }
    let mut de = serde_json::Deserializer::from_str(raw.get());
    de.disable_recursion_limit();
    Entries::deserialize(&mut de).ok().map(|e| e.0)
}

/// An object built from raw members, in order.
pub fn object_from_entries(entries: &[(String, Box<RawValue>)]) -> Box<RawValue> {
    let cap = entries.iter().map(|(k, v)| k.len() + v.get().len() + 4).sum::<usize>() + 2;
    let mut out = String::with_capacity(cap);
    out.push('{');
    for (i, (k, v)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(k).unwrap_or_else(|_| "\"\"".into()));
        out.push(':');
        out.push_str(v.get());
    }
    out.push('}');
    RawValue::from_string(out).unwrap_or_else(|_| Box::<RawValue>::default())
}

/// `raw` with member `key` replaced by (or set to) `value`.
pub fn with_member(raw: &RawValue, key: &str, value: Box<RawValue>) -> Option<Box<RawValue>> {
    let mut entries = object_entries(raw)?;
    match entries.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value,
        None => entries.push((key.to_string(), value)),
    }
    Some(object_from_entries(&entries))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn replaces_one_member_and_keeps_the_rest_verbatim() {
        let raw = RawValue::from_string(r#"{"name":"a__echo","arguments":{"text":"x  y"},"_meta":{}}"#.into()).unwrap();
        let out = with_member(&raw, "name", RawValue::from_string("\"echo\"".into()).unwrap()).unwrap();
        assert_eq!(out.get(), r#"{"name":"echo","arguments":{"text":"x  y"},"_meta":{}}"#);
        assert!(object_entries(&RawValue::from_string("[1]".into()).unwrap()).is_none());
    }
}
