//! Helpers the fuzz targets share: chunkings of an input, SSE feeding, and the invariants every
//! translated stream and body must keep (valid SSE whose payloads are JSON).

use sluice_dialect::canonical::{Accumulator, Response, StreamEvent};
use sluice_dialect::registry::EncodeOptions;
use sluice_dialect::{Dialect, SseEvent, SseParser};

/// Every dialect, client or upstream side.
pub const DIALECTS: [Dialect; 4] = [
    Dialect::OpenAiChat,
    Dialect::OpenAiResponses,
    Dialect::Anthropic,
    Dialect::Gemini,
];

/// Splits `data` into chunks at pseudo-random points derived from its own bytes (so a crash
/// reproduces from the input alone). `salt` picks a different splitting of the same input.
pub fn chunks(data: &[u8], salt: u64) -> Vec<&[u8]> {
    // FNV-1a of the input, then xorshift for the cut lengths (1..=16 bytes, or the rest).
    let mut state = 0xcbf2_9ce4_8422_2325_u64 ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in data {
        state = (state ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
    }
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let len = ((state % 17) as usize).max(1);
        let end = (at + len).min(data.len());
        out.push(&data[at..end]);
        at = end;
    }
    out
}

/// All events an `SseParser` yields for `pieces` fed in order, then its `finish` tail.
pub fn sse_events<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> Vec<SseEvent> {
    let mut parser = SseParser::default();
    let mut events = Vec::new();
    for piece in pieces {
        parser.push(piece);
        while let Some(event) = parser.next_event() {
            events.push(event);
        }
    }
    events.extend(parser.finish());
    assert_eq!(parser.pending(), 0, "finish leaves nothing behind");
    events
}

/// Asserts `bytes` is well-formed SSE as a client receives it: complete events only, each
/// `data:` payload JSON (or OpenAI's `[DONE]`).
pub fn assert_client_sse(bytes: &[u8], what: &str) {
    let mut parser = SseParser::default();
    parser.push(bytes);
    while let Some(event) = parser.next_event() {
        if !event.has_data() || &event.data[..] == b"[DONE]" {
            continue;
        }
        if let Err(e) = serde_json::from_slice::<serde_json::Value>(&event.data) {
            panic!(
                "{what}: an event's data is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&event.raw)
            );
        }
    }
    assert_eq!(
        parser.pending(),
        0,
        "{what}: the output ends inside an event: {:?}",
        String::from_utf8_lossy(bytes)
    );
}

/// Encoder options as the gateway passes them.
pub fn encode_options() -> EncodeOptions {
    EncodeOptions {
        model: "fuzz-model".into(),
        include_usage: true,
        created: 1_700_000_000,
    }
}

/// Relays canonical `events` to a client of every dialect and checks what each receives;
/// also folds them into a response and renders that in every dialect.
pub fn relay_everywhere(events: &[StreamEvent]) -> Response {
    let options = encode_options();
    for client in DIALECTS {
        let mut encoder = client.stream_encoder(&options);
        let mut out = Vec::new();
        for event in events {
            encoder.push(event, &mut out);
        }
        assert_client_sse(&out, &format!("{client:?} stream encoder"));
    }
    let mut accumulator = Accumulator::default();
    for event in events {
        accumulator.push(event);
    }
    let response = accumulator.response(options.created);
    render_everywhere(&response);
    response
}

/// Renders a complete response in every dialect; each must serialise to JSON text.
pub fn render_everywhere(response: &Response) {
    for client in DIALECTS {
        let value = client.encode_response(response);
        let text = value.to_string();
        assert!(
            serde_json::from_str::<serde_json::Value>(&text).is_ok(),
            "{client:?} response encoder"
        );
    }
}

/// A client request in `dialect`: probe, every decoder the gateway runs on it, the
/// passthrough edit, and translation to every upstream dialect.
pub fn request_target(dialect: Dialect, data: &[u8]) {
    use serde_json::Value;
    use sluice_dialect::registry::estimate_input_tokens;

    for count_tokens in [false, true] {
        let Ok(probe) = dialect.probe(data, Some("fuzz-model"), true, count_tokens) else {
            continue;
        };
        assert!(!probe.model.trim().is_empty(), "a probe reads a model");
        // The same-dialect body: still JSON, with the upstream's model name.
        if let Some(body) = probe.passthrough_body("upstream-model") {
            let value: Value = match serde_json::from_str(&body) {
                Ok(v) => v,
                Err(e) => panic!("passthrough body is not JSON ({e}): {body:?}"),
            };
            assert_eq!(
                value["model"], "upstream-model",
                "passthrough body: {body:?}"
            );
        }
    }
    let _ = dialect.output_cap(data);
    if let Ok(request) = dialect.decode_count_tokens(data) {
        estimate_input_tokens(&request);
    }
    let Ok(request) = dialect.decode_request(data) else {
        return;
    };
    estimate_input_tokens(&request);
    for upstream in DIALECTS {
        let body = upstream.encode_request(&request).to_string();
        let _ = upstream.output_cap(body.as_bytes());
    }
    // Decode → encode → decode is stable once normalised: a first round may still change
    // what the decoder tolerates and the encoder writes in one canonical way (an unknown stop
    // reason, a sanitised tool id that now carries a signature mark, turns left empty).
    let encoded = dialect.encode_request(&request).to_string();
    let Ok(again) = dialect.decode_request(encoded.as_bytes()) else {
        // Only a request whose every turn was dropped (unknown roles, empty contents, a turn
        // of nothing but unknown blocks that the encoder leaves out) encodes to something its
        // own decoder refuses.
        assert!(
            request.messages.is_empty() || encodes_no_turns(&encoded),
            "{dialect:?} refuses its own encoding: {encoded}"
        );
        return;
    };
    let normalised = dialect.encode_request(&again).to_string();
    let third = match dialect.decode_request(normalised.as_bytes()) {
        Ok(r) => r,
        Err(e) => panic!("{dialect:?} refuses its own encoding ({e:?}): {normalised}"),
    };
    let stable = dialect.encode_request(&third).to_string();
    assert_eq!(
        normalised, stable,
        "{dialect:?} request encoding is not stable"
    );
}

/// A complete upstream answer in `dialect`: error bodies, the usage reader, the decoder, and
/// rendering the decoded answer to every client dialect.
pub fn response_target(dialect: Dialect, data: &[u8]) {
    use sluice_dialect::ErrorBody;

    for status in [400, 401, 429, 500, 503] {
        if let Some(error) = ErrorBody::parse_any(status, data) {
            for text in [
                error.to_openai_json(),
                error.to_anthropic_json(),
                error.to_gemini_json(status),
            ] {
                assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok());
            }
        }
    }
    if dialect == Dialect::OpenAiChat
        && let Some(usage) = sluice_dialect::openai_chat::response_usage(data)
    {
        let _ = usage.total();
    }
    let Ok(response) = dialect.decode_response(data) else {
        return;
    };
    let _ = response.usage.total();
    render_everywhere(&response);
    // Decode → encode → decode is stable once normalised (see `request_target`).
    let mut encoded = dialect.encode_response(&response).to_string();
    let mut previous = None;
    for _ in 0..2 {
        let again = match dialect.decode_response(encoded.as_bytes()) {
            Ok(r) => r,
            Err(e) => panic!("{dialect:?} refuses its own encoding ({e:?}): {encoded}"),
        };
        previous = Some(std::mem::replace(
            &mut encoded,
            dialect.encode_response(&again).to_string(),
        ));
    }
    assert_eq!(
        previous.as_deref(),
        Some(encoded.as_str()),
        "{dialect:?} response encoding is not stable"
    );
}

/// An upstream stream in `dialect`: SSE parsing, the dialect's stream decoder (the same
/// events whatever the chunking), relaying to every client dialect, and what the passthrough
/// relays do (OpenAI chunk inspection, the appending encoder's error event).
pub fn stream_target(dialect: Dialect, data: &[u8]) {
    use sluice_dialect::{ErrorBody, ErrorKind};

    let decode = |pieces: Vec<&[u8]>| {
        let mut decoder = dialect.stream_decoder();
        let mut events = Vec::new();
        for event in sse_events(pieces) {
            events.extend(decoder.push(&event));
        }
        events.extend(decoder.finish());
        (decoder, events)
    };
    let (decoder, events) = decode(vec![data]);
    let (_, chunked) = decode(chunks(data, 3));
    assert_eq!(events, chunked, "chunking changed the decoded events");
    for event in &events {
        if let StreamEvent::MessageStart { usage: Some(u), .. }
        | StreamEvent::MessageDelta { usage: Some(u), .. }
        | StreamEvent::Usage { usage: u } = event
        {
            let _ = u.total();
        }
    }
    let response = relay_everywhere(&events);
    let _ = response.usage.total();

    // A cut relayed stream gets an error event that continues it.
    let mut out = Vec::new();
    let error = StreamEvent::Error {
        error: ErrorBody::new(ErrorKind::Upstream, "cut"),
    };
    decoder
        .appending_encoder(dialect, &encode_options())
        .push(&error, &mut out);
    assert_client_sse(&out, "appending encoder");

    if dialect == Dialect::OpenAiChat {
        use sluice_dialect::openai_chat::{ChunkAction, inspect_chunk};
        for event in sse_events([data]) {
            for strip_usage in [false, true] {
                let inspection = inspect_chunk(&event.data, strip_usage);
                if let Some(u) = inspection.usage {
                    let _ = u.total();
                }
                let ChunkAction::Rewrite(json) = inspection.action else {
                    continue;
                };
                assert!(strip_usage, "only stripping rewrites");
                let Ok(serde_json::Value::Object(before)) =
                    serde_json::from_slice::<serde_json::Value>(&event.data)
                else {
                    continue;
                };
                let after: serde_json::Value = match serde_json::from_str(&json) {
                    Ok(v) => v,
                    Err(e) => panic!("rewritten chunk is not JSON ({e}): {json:?}"),
                };
                let mut want = before;
                want.remove("usage");
                assert_eq!(
                    after,
                    serde_json::Value::Object(want),
                    "rewrite of {:?}",
                    event.data
                );
            }
        }
    }
}

/// Whether an encoded request carries no conversation turn (system text aside): its
/// `messages` / `contents` / `input` list is absent or holds only system or developer entries.
fn encodes_no_turns(encoded: &str) -> bool {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(encoded) else {
        return false;
    };
    let turns = ["messages", "contents", "input"]
        .iter()
        .find_map(|key| value.get(*key));
    match turns {
        None => true,
        Some(serde_json::Value::Array(items)) => items.iter().all(|item| {
            matches!(
                item.get("role").and_then(|r| r.as_str()),
                Some("system" | "developer")
            )
        }),
        Some(_) => false,
    }
}
