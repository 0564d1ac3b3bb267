//! Byte-level editing of a JSON object's top-level fields.
//!
//! Passthrough traffic must reach the upstream as the client wrote it, except for the few
//! fields the gateway owns (the model name, `stream_options`). [`ObjectSpans`] parses an
//! object once and records where each top-level value sits in the source, so an [`Edit`] can
//! splice a replacement in without re-serialising — and so without reordering keys, changing
//! number formatting or dropping fields the gateway does not know.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// Why a body is not a JSON object we can edit.
#[derive(Debug, thiserror::Error)]
pub enum JsonEditError {
    /// The bytes are not valid JSON (or not UTF-8).
    #[error("malformed JSON: {0}")]
    Malformed(String),
    /// Valid JSON, but the top level is not an object.
    #[error("the request body must be a JSON object")]
    NotAnObject,
}

/// One top-level field of an object: its key and where its value sits in the source.
#[derive(Debug, Clone)]
pub struct Field<'a> {
    /// The key, unescaped.
    pub key: Cow<'a, str>,
    /// The raw value text.
    pub value: &'a RawValue,
    /// Byte offset of the value's first character in the source.
    pub start: usize,
    /// Byte offset just past the value's last character.
    pub end: usize,
}

/// The top-level fields of a JSON object, in source order, with their byte spans.
#[derive(Debug)]
pub struct ObjectSpans<'a> {
    src: &'a str,
    open: usize,
    fields: Vec<Field<'a>>,
}

impl<'a> ObjectSpans<'a> {
    /// Parses `src`, which must hold exactly one JSON object.
    pub fn parse(src: &'a str) -> Result<Self, JsonEditError> {
        let open = src
            .bytes()
            .position(|b| !b.is_ascii_whitespace())
            .ok_or_else(|| JsonEditError::Malformed("empty body".into()))?;
        if src.as_bytes()[open] != b'{' {
            // Distinguish "valid JSON but not an object" from garbage for a better message.
            return match serde_json::from_str::<de::IgnoredAny>(src) {
                Ok(_) => Err(JsonEditError::NotAnObject),
                Err(e) => Err(JsonEditError::Malformed(e.to_string())),
            };
        }
        let raw: RawFields<'a> =
            serde_json::from_str(src).map_err(|e| JsonEditError::Malformed(e.to_string()))?;
        let base = src.as_ptr() as usize;
        let fields = raw
            .0
            .into_iter()
            .map(|(key, value)| {
                // A borrowed RawValue is a sub-slice of `src`: its address gives its offset.
                let start = value.get().as_ptr() as usize - base;
                let end = start + value.get().len();
                Field {
                    key,
                    value,
                    start,
                    end,
                }
            })
            .collect();
        Ok(Self { src, open, fields })
    }

    /// Parses UTF-8 bytes; see [`ObjectSpans::parse`].
    pub fn parse_bytes(src: &'a [u8]) -> Result<Self, JsonEditError> {
        let text = std::str::from_utf8(src)
            .map_err(|e| JsonEditError::Malformed(format!("body is not UTF-8: {e}")))?;
        Self::parse(text)
    }

    /// The source text.
    pub fn source(&self) -> &'a str {
        self.src
    }

    /// All fields in source order.
    pub fn fields(&self) -> &[Field<'a>] {
        &self.fields
    }

    /// The last field with this key (JSON parsers conventionally let the last duplicate win).
    pub fn get(&self, key: &str) -> Option<&Field<'a>> {
        self.fields.iter().rev().find(|f| f.key == key)
    }

    /// The raw text of a field's value.
    pub fn raw(&self, key: &str) -> Option<&'a str> {
        self.get(key).map(|f| f.value.get())
    }

    /// Applies edits and returns the new document. Edits must not overlap.
    pub fn apply(&self, edits: &[Edit]) -> String {
        let mut splices: Vec<(usize, usize, String)> = Vec::with_capacity(edits.len());
        for edit in edits {
            match edit {
                Edit::Replace { key, json } => {
                    if let Some(field) = self.get(key) {
                        splices.push((field.start, field.end, json.clone()));
                    } else {
                        splices.push(self.insertion(key, json));
                    }
                }
                Edit::Insert { key, json } => splices.push(self.insertion(key, json)),
                Edit::Remove { key } => {
                    for (start, end) in self.removals(key) {
                        splices.push((start, end, String::new()));
                    }
                }
            }
        }
        splices.sort_by_key(|s| s.0);
        let extra: usize = splices.iter().map(|s| s.2.len()).sum();
        let mut out = String::with_capacity(self.src.len() + extra);
        let mut at = 0;
        for (start, end, text) in splices {
            if start < at {
                continue; // overlapping edit: the first one wins
            }
            out.push_str(&self.src[at..start]);
            out.push_str(&text);
            at = end;
        }
        out.push_str(&self.src[at..]);
        out
    }

    /// A new field goes first, right after `{`, so no other span moves relative to its neighbours.
    fn insertion(&self, key: &str, json: &str) -> (usize, usize, String) {
        let key = serde_json::Value::String(key.to_owned());
        let sep = if self.fields.is_empty() { "" } else { "," };
        (self.open + 1, self.open + 1, format!("{key}:{json}{sep}"))
    }

    /// The spans that remove every field with this key (a duplicate left behind would become
    /// the value a parser sees), each run of adjacent removed fields together with one
    /// neighbouring comma. Runs are separated by kept fields, so the spans never overlap.
    fn removals(&self, key: &str) -> Vec<(usize, usize)> {
        let removed: Vec<bool> = self.fields.iter().map(|f| f.key == key).collect();
        let mut spans = Vec::new();
        let mut i = 0;
        while i < removed.len() {
            if !removed[i] {
                i += 1;
                continue;
            }
            let first = i;
            while i + 1 < removed.len() && removed[i + 1] {
                i += 1;
            }
            let last = i;
            i += 1;
            if first > 0 {
                // From the end of the previous value: covers `, "key": value` (and its repeats).
                spans.push((self.fields[first - 1].end, self.fields[last].end));
            } else if let Some(next) = self.fields.get(last + 1) {
                // Leading run: from just after `{` up to the next kept key's opening quote.
                let between = &self.src[self.fields[last].end..next.start];
                let Some(comma) = between.find(',').map(|c| c + self.fields[last].end) else {
                    continue;
                };
                let next_key = self.src[comma + 1..]
                    .find('"')
                    .map(|q| comma + 1 + q)
                    .unwrap_or(comma + 1);
                spans.push((self.open + 1, next_key));
            } else if let Some(close) = self.src[self.fields[last].end..].find('}') {
                spans.push((self.open + 1, self.fields[last].end + close));
            }
        }
        spans
    }
}

/// A change to one top-level field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Replace the field's value with `json`, inserting the field if absent.
    Replace { key: String, json: String },
    /// Insert the field (the caller knows it is absent).
    Insert { key: String, json: String },
    /// Remove the field if present (every duplicate of it).
    Remove { key: String },
}

impl Edit {
    /// Replace `key`'s value with a JSON string literal.
    pub fn set_string(key: &str, value: &str) -> Self {
        Edit::Replace {
            key: key.to_owned(),
            json: serde_json::Value::String(value.to_owned()).to_string(),
        }
    }
}

struct RawFields<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for RawFields<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;
        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = RawFields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(key) = map.next_key::<BorrowedKey<'de>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    fields.push((key.0, value));
                }
                Ok(RawFields(fields))
            }
        }
        deserializer.deserialize_map(FieldsVisitor)
    }
}

/// A key that borrows from the source unless it contains escapes.
struct BorrowedKey<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for BorrowedKey<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = BorrowedKey<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(BorrowedKey(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(BorrowedKey(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spans_point_at_values() {
        let src = r#" { "model" : "gpt-4o", "n":1, "messages":[{"a":"}"}] } "#;
        let spans = ObjectSpans::parse(src).unwrap();
        assert_eq!(spans.raw("model"), Some(r#""gpt-4o""#));
        assert_eq!(spans.raw("messages"), Some(r#"[{"a":"}"}]"#));
        let f = spans.get("n").unwrap();
        assert_eq!(&src[f.start..f.end], "1");
    }

    #[test]
    fn replace_keeps_everything_else_byte_for_byte() {
        let src = r#"{"model":"alias","temperature":0.70,"x":{"deep":[1,2]}}"#;
        let spans = ObjectSpans::parse(src).unwrap();
        let out = spans.apply(&[Edit::set_string("model", "real-model")]);
        assert_eq!(
            out,
            r#"{"model":"real-model","temperature":0.70,"x":{"deep":[1,2]}}"#
        );
    }

    #[test]
    fn insert_goes_first() {
        let spans = ObjectSpans::parse(r#"{"a":1}"#).unwrap();
        let out = spans.apply(&[Edit::Insert {
            key: "b".into(),
            json: "true".into(),
        }]);
        assert_eq!(out, r#"{"b":true,"a":1}"#);
        let empty = ObjectSpans::parse("{}").unwrap();
        let out = empty.apply(&[Edit::Insert {
            key: "b".into(),
            json: "2".into(),
        }]);
        assert_eq!(out, r#"{"b":2}"#);
    }

    #[test]
    fn remove_first_middle_last_and_only() {
        let src = r#"{"a":1, "b":2 ,"c":3}"#;
        let spans = ObjectSpans::parse(src).unwrap();
        for (key, want) in [
            ("a", r#"{"b":2 ,"c":3}"#),
            ("b", r#"{"a":1 ,"c":3}"#),
            ("c", r#"{"a":1, "b":2}"#),
        ] {
            let out = spans.apply(&[Edit::Remove { key: key.into() }]);
            assert_eq!(out, want, "removing {key}");
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert!(v.get(key).is_none());
        }
        let only = ObjectSpans::parse(r#"{ "usage" : null }"#).unwrap();
        assert_eq!(
            only.apply(&[Edit::Remove {
                key: "usage".into()
            }]),
            "{}"
        );
    }

    /// Found by fuzzing (`fuzz/` target `stream_openai_chat`): removing `usage` from a chunk
    /// that repeats the key left the first copy behind, so the client still saw a `usage`.
    #[test]
    fn remove_takes_every_duplicate() {
        for (src, want) in [
            (r#"{"usage":1,"a":2,"usage":3}"#, r#"{"a":2}"#),
            (r#"{"a":1,"usage":2,"usage":3}"#, r#"{"a":1}"#),
            (r#"{"usage":1, "usage":2 ,"b":3}"#, r#"{"b":3}"#),
            (r#"{"usage":1,"usage":2}"#, "{}"),
            (
                r#"{"a":1,"usage":2,"b":3,"usage":4,"c":5}"#,
                r#"{"a":1,"b":3,"c":5}"#,
            ),
        ] {
            let spans = ObjectSpans::parse(src).unwrap();
            let out = spans.apply(&[Edit::Remove {
                key: "usage".into(),
            }]);
            assert_eq!(out, want, "removing usage from {src}");
        }
    }

    #[test]
    fn escaped_keys_are_unescaped() {
        let spans = ObjectSpans::parse(r#"{"mo\u0064el":"x"}"#).unwrap();
        assert_eq!(spans.raw("model"), Some(r#""x""#));
    }

    #[test]
    fn errors_distinguish_garbage_from_non_objects() {
        assert!(matches!(
            ObjectSpans::parse("[1]"),
            Err(JsonEditError::NotAnObject)
        ));
        assert!(matches!(
            ObjectSpans::parse("{\"a\":"),
            Err(JsonEditError::Malformed(_))
        ));
        assert!(matches!(
            ObjectSpans::parse("   "),
            Err(JsonEditError::Malformed(_))
        ));
        assert!(matches!(
            ObjectSpans::parse_bytes(b"{\"a\":\"\xff\"}"),
            Err(JsonEditError::Malformed(_))
        ));
    }

    fn arb_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<i64>().prop_map(|n| serde_json::json!(n)),
            "[a-z\"\\\\{},:\\u{e9}]{0,8}".prop_map(serde_json::Value::String),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
                prop::collection::btree_map("[a-z]{1,4}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Any edit yields valid JSON equal to the same edit done on a parsed value.
        #[test]
        fn edits_agree_with_value_semantics(
            obj in prop::collection::btree_map("[a-z]{1,3}", arb_value(), 0..6),
            key in "[a-z]{1,3}",
            replacement in arb_value(),
            remove in any::<bool>(),
        ) {
            let src = serde_json::Value::Object(obj.clone().into_iter().collect()).to_string();
            let spans = ObjectSpans::parse(&src).unwrap();
            let edit = if remove {
                Edit::Remove { key: key.clone() }
            } else {
                Edit::Replace { key: key.clone(), json: replacement.to_string() }
            };
            let out: serde_json::Value = serde_json::from_str(&spans.apply(&[edit])).unwrap();
            let mut want = obj;
            if remove { want.remove(&key); } else { want.insert(key, replacement); }
            prop_assert_eq!(out, serde_json::Value::Object(want.into_iter().collect()));
        }
    }
}
