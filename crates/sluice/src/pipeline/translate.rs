//! Phase 4: the body the upstream will receive.
//!
//! Same dialect on both sides: byte passthrough — the client's bytes with only the fields the
//! gateway owns rewritten (the model name; `stream_options.include_usage` for OpenAI Chat
//! streams). Different dialects: decode into the canonical form, encode for the upstream.

use bytes::Bytes;
use sluice_dialect::Dialect;
use sluice_dialect::canonical::{Part, Request};
use sluice_dialect::registry::{Probe, estimate_input_tokens};

use crate::error::GatewayError;

/// The upstream body for a generation request.
pub fn upstream_body(
    client: Dialect,
    upstream: Dialect,
    original: &Bytes,
    probe: &Probe<'_>,
    upstream_model: &str,
) -> Result<Bytes, GatewayError> {
    if client == upstream {
        return Ok(passthrough(original, probe, upstream_model));
    }
    let request = canonical(
        client.decode_request(original),
        upstream_model,
        probe.stream,
    )?;
    Ok(Bytes::from(upstream.encode_request(&request).to_string()))
}

/// The client's bytes, with only the gateway-owned fields rewritten.
fn passthrough(original: &Bytes, probe: &Probe<'_>, upstream_model: &str) -> Bytes {
    match probe.passthrough_body(upstream_model) {
        None => original.clone(),
        Some(edited) => Bytes::from(edited),
    }
}

/// A decoded client request, readied for another dialect's upstream.
fn canonical(
    decoded: Result<Request, sluice_dialect::ErrorBody>,
    upstream_model: &str,
    stream: bool,
) -> Result<Request, GatewayError> {
    let mut request = decoded.map_err(GatewayError::bad_request)?;
    request.model = upstream_model.to_string();
    request.stream = stream;
    drop_foreign_reasoning(&mut request);
    Ok(request)
}

/// Reasoning signatures are only valid for the provider that issued them, and the canonical
/// form does not record which one that was: across dialects, Anthropic's `signature` would
/// reach OpenAI as `encrypted_content` (and the reverse), which the upstream rejects. So a
/// translated request keeps the reasoning text but not its signatures, and drops redacted
/// reasoning. (Gemini thought signatures ride on tool calls and text parts, and are kept.)
fn drop_foreign_reasoning(request: &mut Request) {
    for message in &mut request.messages {
        message
            .parts
            .retain(|p| !matches!(p, Part::RedactedThinking { .. }));
        for part in &mut message.parts {
            if let Part::Thinking { signature, .. } = part {
                *signature = None;
            }
        }
    }
}

/// A token count the gateway answers itself, for upstreams that cannot count: a documented
/// estimate (about four characters a token).
pub fn local_token_count(client: Dialect, original: &Bytes) -> Result<u64, GatewayError> {
    let request = client
        .decode_count_tokens(original)
        .map_err(GatewayError::bad_request)?;
    Ok(estimate_input_tokens(&request))
}

/// The upstream body for a token count by an upstream that counts itself.
pub fn count_tokens_body(
    client: Dialect,
    upstream: Dialect,
    original: &Bytes,
    probe: &Probe<'_>,
    upstream_model: &str,
) -> Result<Bytes, GatewayError> {
    if client == upstream {
        return Ok(passthrough(original, probe, upstream_model));
    }
    let request = canonical(client.decode_count_tokens(original), upstream_model, false)?;
    let mut body = upstream.encode_request(&request);
    if let Some(obj) = body.as_object_mut() {
        match upstream {
            // count_tokens takes the messages request without generation settings.
            Dialect::Anthropic => {
                obj.remove("max_tokens");
                obj.remove("stream");
                obj.remove("temperature");
                obj.remove("top_p");
                obj.remove("top_k");
                obj.remove("stop_sequences");
                obj.remove("metadata");
            }
            Dialect::Gemini => {
                obj.remove("generationConfig");
            }
            _ => {}
        }
    }
    Ok(Bytes::from(body.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use sluice_dialect::canonical::{Message, Role};

    #[test]
    fn translated_requests_lose_reasoning_signatures_only() {
        let call = Part::ToolCall {
            id: "c".into(),
            name: "f".into(),
            arguments: "{}".into(),
            thought_signature: Some("gemini".into()),
        };
        let mut request = Request {
            messages: vec![Message {
                role: Role::Assistant,
                parts: vec![
                    Part::Thinking {
                        text: "hmm".into(),
                        signature: Some("anthropic-sig".into()),
                    },
                    Part::RedactedThinking {
                        data: "opaque".into(),
                    },
                    call.clone(),
                ],
            }],
            ..Default::default()
        };
        drop_foreign_reasoning(&mut request);
        assert_eq!(
            request.messages[0].parts,
            vec![
                Part::Thinking {
                    text: "hmm".into(),
                    signature: None
                },
                call
            ]
        );
    }
}
