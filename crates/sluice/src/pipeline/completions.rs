//! Legacy completions (`POST /v1/completions`) take one of two paths, chosen by [`forwards`]
//! from the model's providers:
//!
//! - **Forwarded as-is** when the model has the endpoint upstream (the `completion`
//!   capability — `gpt-3.5-turbo-instruct`, `davinci-002`, `babbage-002` by default — under an
//!   OpenAI-compatible or Azure provider): [`super::forward`] sends the client's body to the
//!   upstream's `/completions` and relays its answer unchanged, so everything the real
//!   endpoint accepts works, `echo`, `n`, `best_of`, `logprobs`, `suffix` and token-id
//!   prompts included (the upstream refuses what its model cannot do, in OpenAI's words).
//! - **Through chat** otherwise: [`super::handle`] turns the prompt into an OpenAI Chat request
//!   (`sluice_dialect::openai_completions`, which refuses what chat cannot do: `echo`, `n` > 1,
//!   several prompts…), which then takes the chat path to any upstream dialect — keys, limits,
//!   routing, failover and the usage record included — and [`reshape`] writes the chat answer
//!   back in the completions shape, whole or event by event.

use std::borrow::Cow;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use http::header;
use http_body_util::BodyExt;
use serde::Deserialize;
use sluice_dialect::{Capability, SseParser, openai_completions};

use crate::gateway::Runtime;
use crate::routing::catalog::serves_platform;

/// Whether a completions request is forwarded as-is: its model has the endpoint at one of its
/// providers, or cannot be served through chat at all (a `completion`-only model), so the
/// forward path's routing refuses it naming the missing API rather than sending it to a chat
/// upstream that would refuse it. A model that is not known takes the chat path, whose
/// routing answers 404.
pub(super) fn forwards(runtime: &Runtime, body: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Named<'a> {
        #[serde(borrow)]
        model: Option<Cow<'a, str>>,
    }
    let Ok(Named { model: Some(model) }) = serde_json::from_slice(body) else {
        return false;
    };
    let Ok(resolved) = runtime.catalog().resolve(&model, None) else {
        return false;
    };
    let operation = super::OPENAI_COMPLETIONS_FORWARDED.operation;
    let (mut native, mut chat, mut completion) = (false, false, false);
    for target in resolved
        .entry
        .targets
        .iter()
        .filter(|t| serves_platform(t, resolved.platform))
    {
        let can = target.capabilities;
        chat |= can.has(Capability::Chat);
        completion |= can.has(Capability::Completion);
        native |= can.has(Capability::Completion) && target.provider.supports(operation);
    }
    native || (completion && !chat)
}

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
