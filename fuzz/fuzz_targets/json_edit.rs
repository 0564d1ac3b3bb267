//! `json_edit::ObjectSpans`: spans point at the values, and every edit agrees with editing the
//! parsed value (where the last of duplicate keys wins, as in serde_json).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use sluice_dialect::{Edit, ObjectSpans};

fuzz_target!(|data: &[u8]| {
    let parsed = serde_json::from_slice::<Value>(data);
    let Ok(spans) = ObjectSpans::parse_bytes(data) else {
        // What serde_json reads as an object, ObjectSpans must read too.
        assert!(
            !matches!(parsed, Ok(Value::Object(_))),
            "ObjectSpans refused an object serde_json reads"
        );
        return;
    };
    let src = spans.source();
    for field in spans.fields() {
        assert_eq!(&src[field.start..field.end], field.value.get());
    }
    // serde_json can refuse what ObjectSpans (which never converts numbers) accepts, such as
    // `1e999`; the comparisons below need the parsed value.
    let Ok(Value::Object(object)) = parsed else {
        return;
    };
    for field in spans.fields() {
        let value: Value =
            serde_json::from_str(field.value.get()).expect("a field's raw value is JSON");
        if spans
            .get(&field.key)
            .is_some_and(|last| last.start == field.start)
        {
            assert_eq!(
                object.get(field.key.as_ref()),
                Some(&value),
                "the last duplicate wins"
            );
        }
    }

    // Edits: replace, remove and insert the first few keys, and one absent key.
    let mut keys: Vec<String> = spans
        .fields()
        .iter()
        .take(4)
        .map(|f| f.key.to_string())
        .collect();
    keys.push("\u{0}fuzz \"absent\" key".into());
    for key in &keys {
        let edits = [
            Edit::set_string(key, "new \"value\"\n"),
            Edit::Replace {
                key: key.clone(),
                json: "[1,{\"x\":null}]".into(),
            },
            Edit::Remove { key: key.clone() },
        ];
        for edit in edits {
            let out = spans.apply(std::slice::from_ref(&edit));
            let edited: Value = match serde_json::from_str(&out) {
                Ok(v) => v,
                Err(e) => panic!("{edit:?} made invalid JSON ({e}): {out:?}"),
            };
            let mut want: Map<String, Value> = object.clone();
            match &edit {
                Edit::Replace { key, json } | Edit::Insert { key, json } => {
                    want.insert(key.clone(), serde_json::from_str(json).expect("edit JSON"));
                }
                Edit::Remove { key } => {
                    want.remove(key);
                }
            }
            assert_eq!(
                edited,
                Value::Object(want),
                "{edit:?} on {src:?} gave {out:?}"
            );
        }
    }
    if let Some(absent) = keys.last() {
        if !object.contains_key(absent) {
            let out = spans.apply(&[Edit::Insert {
                key: absent.clone(),
                json: "true".into(),
            }]);
            let edited: Value = serde_json::from_str(&out).expect("insert keeps JSON valid");
            assert_eq!(edited.get(absent.as_str()), Some(&Value::Bool(true)));
        }
    }
});
