//! Legacy completions (`POST /v1/completions`), served through chat: [`super::handle`] turns
//! the prompt into an OpenAI Chat request (`sluice_dialect::openai_completions`), which then
//! takes the chat path to any upstream dialect — keys, limits, routing, failover and the usage
//! record included — and [`reshape`] writes the chat answer back in the completions shape,
//! whole or event by event.

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use http::header;
use http_body_util::BodyExt;
use sluice_dialect::{SseParser, openai_completions};

/// A successful chat answer (JSON or SSE) as a completions answer; errors are already in
/// OpenAI's shape, which completions share, and pass unchanged.
pub async fn reshape(response: Response) -> Response {
    if !response.status().is_success() {
        return response;
    }
    let streaming = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let (mut parts, body) = response.into_parts();
    if streaming {
        let mut parser = SseParser::default();
        let events = body.into_data_stream().map(move |chunk| {
            let Ok(chunk) = chunk else {
                return chunk;
            };
            parser.push(&chunk);
            let mut out = Vec::new();
            while let Some(event) = parser.next_event() {
                out.extend_from_slice(&reshape_event(&event.data));
            }
            Ok(Bytes::from(out))
        });
        return Response::from_parts(parts, Body::from_stream(events));
    }
    let Ok(collected) = body.collect().await else {
        return Response::from_parts(parts, Body::empty());
    };
    let bytes = collected.to_bytes();
    let reshaped = serde_json::from_slice(&bytes)
        .map(|chat| Bytes::from(openai_completions::completion_response(&chat).to_string()))
        .unwrap_or(bytes);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(reshaped))
}

/// One chat SSE event's data as a completions event (nothing for a role-only chunk).
fn reshape_event(data: &[u8]) -> Vec<u8> {
    if data == b"[DONE]" {
        return b"data: [DONE]\n\n".to_vec();
    }
    let Ok(chunk) = serde_json::from_slice(data) else {
        return Vec::new();
    };
    match openai_completions::completion_chunk(&chunk) {
        Some(out) => format!("data: {out}\n\n").into_bytes(),
        None => Vec::new(),
    }
}
