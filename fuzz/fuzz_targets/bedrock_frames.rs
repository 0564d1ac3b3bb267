//! Bedrock's binary event stream (`sluice::providers::bedrock::FrameDecoder`): the same SSE
//! however the bytes are chunked, nothing after the end, and SSE the Anthropic stream decoder
//! and every client encoder take.
//!
//! Input: a first byte with its low bit clear = the rest is raw bytes (the committed seeds are
//! recorded streams); otherwise structured frames (valid prelude and CRCs, so the fuzzer
//! reaches the payload handling), optionally with one byte flipped and junk appended.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use sluice::providers::bedrock::FrameDecoder;
use sluice_dialect::Dialect;
use sluice_fuzz::{assert_client_sse, chunks, relay_everywhere, sse_events};

#[derive(Arbitrary, Debug)]
enum Kind {
    Chunk,
    Event(String),
    Exception(Option<String>),
    Error(Option<String>),
    Untyped,
}

#[derive(Arbitrary, Debug)]
enum Payload {
    /// `{"bytes": base64(Anthropic event JSON)}`, as Bedrock sends.
    Anthropic {
        event_type: String,
        text: String,
    },
    /// `{"bytes": <this>}`: any string, base64 or not.
    Bytes(String),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Frame {
    kind: Kind,
    payload: Payload,
    extra_header: Option<(String, i64)>,
}

#[derive(Arbitrary, Debug)]
struct Frames {
    frames: Vec<Frame>,
    flip: Option<(u16, u8)>,
    tail: Vec<u8>,
}

fn string(value: &str) -> HeaderValue {
    HeaderValue::String(value.to_string().into())
}

fn encode(frames: &Frames) -> Vec<u8> {
    let mut out = Vec::new();
    for frame in &frames.frames {
        let mut headers = Vec::new();
        match &frame.kind {
            Kind::Chunk => {
                headers.push(Header::new(":message-type", string("event")));
                headers.push(Header::new(":event-type", string("chunk")));
            }
            Kind::Event(name) => {
                headers.push(Header::new(":message-type", string("event")));
                headers.push(Header::new(":event-type", string(name)));
            }
            Kind::Exception(kind) | Kind::Error(kind) => {
                let error = matches!(frame.kind, Kind::Error(_));
                headers.push(Header::new(
                    ":message-type",
                    string(if error { "error" } else { "exception" }),
                ));
                if let Some(kind) = kind {
                    let name = if error {
                        ":error-code"
                    } else {
                        ":exception-type"
                    };
                    headers.push(Header::new(name, string(kind)));
                }
            }
            Kind::Untyped => {}
        }
        if let Some((name, value)) = &frame.extra_header {
            if !name.is_empty() && name.len() < 256 {
                headers.push(Header::new(name.clone(), HeaderValue::Int64(*value)));
            }
        }
        let payload = match &frame.payload {
            Payload::Anthropic { event_type, text } => {
                let event = serde_json::json!({"type": event_type, "delta": {"type": "text_delta", "text": text}});
                let bytes = base64::engine::general_purpose::STANDARD.encode(event.to_string());
                serde_json::json!({ "bytes": bytes })
                    .to_string()
                    .into_bytes()
            }
            Payload::Bytes(bytes) => serde_json::json!({ "bytes": bytes })
                .to_string()
                .into_bytes(),
            Payload::Raw(raw) => raw.clone(),
        };
        let message = Message::new_from_parts(headers, payload);
        if write_message_to(&message, &mut out).is_err() {
            continue; // too large for a frame
        }
    }
    if let Some((at, xor)) = frames.flip {
        if !out.is_empty() {
            let at = usize::from(at) % out.len();
            out[at] ^= xor;
        }
    }
    out.extend_from_slice(&frames.tail);
    out
}

fn decode<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> (Vec<u8>, bool) {
    let mut decoder = FrameDecoder::default();
    let mut out = Vec::new();
    let mut ended = false;
    for piece in pieces {
        let was_ended = ended;
        let before = out.len();
        ended = decoder.push(piece, &mut out);
        assert!(
            !was_ended || (ended && out.len() == before),
            "nothing after the end"
        );
    }
    (out, ended)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let stream = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        match Frames::arbitrary_take_rest(Unstructured::new(rest)) {
            Ok(frames) => encode(&frames),
            Err(_) => return,
        }
    };
    let (sse, ended) = decode([stream.as_slice()]);
    assert_eq!(
        (sse.clone(), ended),
        decode(chunks(&stream, 5)),
        "chunking changed the output"
    );
    assert_client_sse(&sse, "Bedrock event stream as SSE");
    // What the relay does with it: Anthropic's stream decoder, then every client dialect.
    let mut decoder = Dialect::Anthropic.stream_decoder();
    let mut events = Vec::new();
    for event in sse_events([sse.as_slice()]) {
        events.extend(decoder.push(&event));
    }
    events.extend(decoder.finish());
    relay_everywhere(&events);
});
