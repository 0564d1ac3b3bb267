//! `SseParser`: the same events however the bytes are chunked, and no byte lost or invented.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_dialect::{SseEvent, SseParser};
use sluice_fuzz::{chunks, sse_events};

fuzz_target!(|data: &[u8]| {
    let whole = sse_events([data]);
    // Every event's raw bytes, in order, are the input (a whitespace-only tail is dropped).
    let raw: Vec<u8> = whole.iter().flat_map(|e| e.raw.to_vec()).collect();
    assert!(data.starts_with(&raw), "raw bytes are the input's prefix");
    assert!(
        data[raw.len()..].iter().all(u8::is_ascii_whitespace),
        "only a blank tail is dropped"
    );
    if data.len() <= 2048 {
        assert_eq!(whole, sse_events(data.chunks(1)), "byte by byte");
    }
    assert_eq!(whole, sse_events(chunks(data, 1)), "random chunks");
    assert_eq!(whole, sse_events(chunks(data, 2)), "other random chunks");

    // An event the gateway encodes parses back to what it encoded (names and data without CR;
    // the name on one line).
    if let Ok(text) = std::str::from_utf8(data) {
        let (name, payload) = text.split_once('\u{0}').unwrap_or(("", text));
        if !payload.contains('\r') && !name.contains(['\r', '\n']) {
            let name = (!name.is_empty()).then_some(name);
            let encoded = SseEvent::encode(name, payload);
            let mut parser = SseParser::default();
            parser.push(&encoded);
            let event = parser.next_event().expect("an encoded event is complete");
            assert_eq!(event.raw, encoded);
            assert_eq!(&event.data[..], payload.as_bytes());
            assert_eq!(event.event.as_deref(), name);
            assert!(parser.next_event().is_none() && parser.pending() == 0);
        }
    }
});
