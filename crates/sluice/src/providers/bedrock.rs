//! AWS Bedrock's runtime for Anthropic models (platform `bedrock`).
//!
//! `POST {base-url}/model/{model id}/invoke` and `/invoke-with-response-stream`, where the base
//! defaults to `https://bedrock-runtime.{region}.amazonaws.com`. The body is the Anthropic
//! Messages request without `model` (it is in the path) and `stream`, with
//! `anthropic_version: "bedrock-2023-05-31"` and the client's `anthropic-beta` as
//! `anthropic_beta`. Credentials are AWS access keys (SigV4 with `aws-sigv4`, service
//! `bedrock`) or Bedrock API keys (`Authorization: Bearer`).
//!
//! Streams come back as `application/vnd.amazon.eventstream` frames (decoded with
//! `aws-smithy-eventstream`): each `chunk` event carries base64 Anthropic stream JSON, which
//! [`event_stream_to_sse`] turns back into Anthropic's SSE for the relay; exceptions become
//! Anthropic `error` events.

use std::sync::Arc;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::Message;
use base64::Engine;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, header};
use serde_json::Value;

use super::{
    BuildContext, Credential, Operation, Origin, ProviderCommon, UpstreamCall, UpstreamRequest,
};
use crate::config::ProviderConfig;
use crate::pipeline::respond::UpstreamBody;
use crate::transport::ProxySetting;

/// The `anthropic_version` Bedrock takes.
const BEDROCK_VERSION: &str = "bedrock-2023-05-31";
/// SigV4 service name.
const SERVICE: &str = "bedrock";

#[derive(Debug)]
pub struct Bedrock {
    pub common: ProviderCommon,
    region: String,
}

impl Bedrock {
    pub fn new(config: &ProviderConfig, ctx: &BuildContext<'_>) -> Result<Self, String> {
        let mut common = ProviderCommon::from_config(config, ctx, header::AUTHORIZATION, |k| {
            format!("Bearer {k}")
        })?;
        let connect = common.timeouts.connect;
        let mut signed = Vec::new();
        for (c, entry) in config.credentials.iter().enumerate() {
            let (Some(id), Some(secret)) = (&entry.access_key_id, &entry.secret_access_key) else {
                continue;
            };
            let proxy = ProxySetting::resolve(
                entry.proxy_url.as_deref(),
                config.proxy_url.as_deref(),
                ctx.proxy_url,
            );
            signed.push(Arc::new(Credential {
                id: format!("{}#{}", config.name, config.api_keys.len() + c).into(),
                auth: None,
                http: ctx
                    .clients
                    .get(&proxy, connect)
                    .map_err(|e| format!("provider `{}`: {e}", config.name))?,
                base_url: None,
                origin: Origin::Config,
                sigv4: Some(Arc::new(Credentials::new(
                    id.clone(),
                    secret.clone(),
                    entry.session_token.clone(),
                    None,
                    "sluice-config",
                ))),
            }));
        }
        common.add_credentials(signed);
        if common.credentials().is_empty() {
            return Err(format!(
                "provider `{}`: a bedrock provider needs api-keys (Bedrock API keys) or credentials with access-key-id and secret-access-key",
                config.name
            ));
        }
        common.url("/model")?;
        Ok(Self {
            common,
            region: config.region.clone().unwrap_or_default(),
        })
    }

    pub fn request(
        &self,
        call: &UpstreamCall<'_>,
        credential: &Credential,
        body: Bytes,
    ) -> Result<UpstreamRequest, String> {
        if call.operation == Operation::CountTokens {
            return Err("Bedrock does not count tokens through this gateway".into());
        }
        // Embedding bodies are already in the model's own invoke shape (Titan, Cohere).
        let body = match call.operation {
            Operation::Embed { .. } => body,
            Operation::Forward { path } => {
                return Err(format!("Bedrock has no OpenAI `{path}` endpoint"));
            }
            _ => bedrock_body(&body, call.forwarded)?,
        };
        let action = if call.stream {
            "invoke-with-response-stream"
        } else {
            "invoke"
        };
        let url = self
            .common
            .url(&format!("/model/{}/{action}", encode_segment(call.model)))?;
        let mut headers = self.common.base_headers(credential, call.stream);
        if call.stream {
            headers.insert(
                header::ACCEPT,
                HeaderValue::from_static("application/vnd.amazon.eventstream"),
            );
        }
        if let Some(keys) = &credential.sigv4 {
            let signed = sign_request(
                keys,
                &self.region,
                SERVICE,
                "POST",
                url.as_str(),
                &[("content-type", "application/json")],
                &body,
                SystemTime::now(),
            )?;
            for (name, value) in signed {
                headers.insert(name, value);
            }
        }
        Ok(UpstreamRequest {
            url,
            headers,
            body,
            first_byte: None,
        })
    }
}

/// The Anthropic request as Bedrock takes it.
fn bedrock_body(body: &[u8], forwarded: &HeaderMap) -> Result<Bytes, String> {
    let mut json: Value =
        serde_json::from_slice(body).map_err(|e| format!("the request is not JSON: {e}"))?;
    let object = json
        .as_object_mut()
        .ok_or("the request is not a JSON object")?;
    object.remove("model");
    object.remove("stream");
    object.insert(
        "anthropic_version".into(),
        Value::String(BEDROCK_VERSION.into()),
    );
    if let Some(beta) = forwarded
        .get("anthropic-beta")
        .and_then(|v| v.to_str().ok())
    {
        let betas: Vec<Value> = beta
            .split(',')
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .map(|b| Value::String(b.into()))
            .collect();
        if !betas.is_empty() {
            object.insert("anthropic_beta".into(), Value::Array(betas));
        }
    }
    serde_json::to_vec(&json)
        .map(Bytes::from)
        .map_err(|e| e.to_string())
}

/// A model id as one path segment: everything but unreserved characters percent-encoded
/// (`anthropic.claude-3-5-sonnet-20241022-v2:0` → `…-v2%3A0`), as the AWS SDKs send it.
fn encode_segment(model: &str) -> String {
    let mut out = String::with_capacity(model.len());
    for b in model.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// SigV4-signs a request; the headers to add (`authorization`, `x-amz-date`, and
/// `x-amz-security-token` with temporary credentials), the secret ones marked sensitive.
/// `url` must already be percent-encoded.
#[allow(clippy::too_many_arguments)]
pub fn sign_request(
    keys: &Credentials,
    region: &str,
    service: &str,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    time: SystemTime,
) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let identity = keys.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("cannot sign the request: {e}"))?
        .into();
    let signable = SignableRequest::new(
        method,
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| format!("cannot sign the request: {e}"))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| format!("cannot sign the request: {e}"))?
        .into_parts();
    let (signed, _query) = instructions.into_parts();
    signed
        .into_iter()
        .map(|h| {
            let name = HeaderName::from_bytes(h.name().as_bytes())
                .map_err(|_| "the signer produced an invalid header name".to_string())?;
            let mut value = HeaderValue::from_str(h.value())
                .map_err(|_| "the signer produced an invalid header value".to_string())?;
            value.set_sensitive(h.sensitive() || name == header::AUTHORIZATION);
            Ok((name, value))
        })
        .collect()
}

/// Turns Bedrock's binary event stream into Anthropic's SSE text, chunk by chunk.
pub fn event_stream_to_sse(response: reqwest::Response) -> UpstreamBody {
    decode_stream(Box::pin(response.bytes_stream()))
}

/// [`event_stream_to_sse`] over any byte stream.
pub fn decode_stream(upstream: UpstreamBody) -> UpstreamBody {
    let state = (upstream, FrameDecoder::default(), false);
    Box::pin(futures_util::stream::unfold(
        state,
        |(mut upstream, mut decoder, mut ended)| async move {
            loop {
                if ended {
                    return None;
                }
                match upstream.next().await {
                    Some(Ok(chunk)) => {
                        let mut out = Vec::new();
                        ended = decoder.push(&chunk, &mut out);
                        if !out.is_empty() {
                            return Some((Ok(Bytes::from(out)), (upstream, decoder, ended)));
                        }
                    }
                    Some(Err(e)) => return Some((Err(e), (upstream, decoder, true))),
                    None => return None,
                }
            }
        },
    ))
}

/// Bedrock's binary event-stream frames → Anthropic SSE, incrementally: bytes in as they
/// arrive, SSE out for every complete frame.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buffer: BytesMut,
    frames: MessageFrameDecoder,
    ended: bool,
}

impl FrameDecoder {
    /// Adds `chunk` and appends the SSE of every frame now complete to `out`. `true` once the
    /// stream has ended (an exception frame, or bytes that are no frame, became an error event);
    /// nothing is decoded after that.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> bool {
        if self.ended {
            return true;
        }
        self.buffer.extend_from_slice(chunk);
        loop {
            match self.frames.decode_frame(&mut self.buffer) {
                Ok(DecodedFrame::Incomplete) => return false,
                Ok(DecodedFrame::Complete(message)) => match frame_to_sse(&message) {
                    Ok(sse) => out.extend_from_slice(&sse),
                    Err(error_event) => {
                        out.extend_from_slice(&error_event);
                        self.ended = true;
                        return true;
                    }
                },
                Err(e) => {
                    out.extend_from_slice(&error_event(
                        "api_error",
                        &format!("the Bedrock event stream could not be decoded ({e})"),
                    ));
                    self.ended = true;
                    return true;
                }
            }
        }
    }
}

/// One decoded frame as Anthropic SSE: `Ok` for a chunk, `Err` with an error event that ends
/// the stream.
pub fn frame_to_sse(message: &Message) -> Result<Vec<u8>, Vec<u8>> {
    let header = |name: &str| {
        message
            .headers()
            .iter()
            .find(|h| h.name().as_str() == name)
            .and_then(|h| h.value().as_string().ok())
            .map(|s| s.as_str().to_string())
    };
    let payload = message.payload();
    match header(":message-type").as_deref() {
        Some("event") => {
            if header(":event-type").as_deref() != Some("chunk") {
                return Ok(Vec::new());
            }
            let chunk: Value = serde_json::from_slice(payload)
                .map_err(|_| error_event("api_error", "a Bedrock chunk is not JSON"))?;
            let bytes = chunk["bytes"]
                .as_str()
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                .ok_or_else(|| error_event("api_error", "a Bedrock chunk has no base64 bytes"))?;
            let event: Value = serde_json::from_slice(&bytes).map_err(|_| {
                error_event("api_error", "a Bedrock chunk does not carry Anthropic JSON")
            })?;
            let name = event["type"].as_str().unwrap_or("message");
            let mut sse = format!("event: {name}\ndata: ").into_bytes();
            sse.extend_from_slice(&bytes);
            sse.extend_from_slice(b"\n\n");
            Ok(sse)
        }
        Some("exception") | Some("error") => {
            let kind = header(":exception-type")
                .or_else(|| header(":error-code"))
                .unwrap_or_else(|| "InternalServerException".into());
            let message = serde_json::from_slice::<Value>(payload)
                .ok()
                .and_then(|v| v["message"].as_str().map(String::from))
                .or_else(|| header(":error-message"))
                .unwrap_or_else(|| kind.clone());
            let anthropic_type = match kind.as_str() {
                "throttlingException" | "ThrottlingException" => "rate_limit_error",
                "serviceUnavailableException" | "ServiceUnavailableException" => "overloaded_error",
                "validationException" | "ValidationException" => "invalid_request_error",
                "modelTimeoutException" | "ModelTimeoutException" => "timeout_error",
                _ => "api_error",
            };
            Err(error_event(
                anthropic_type,
                &format!("Bedrock: {kind}: {message}"),
            ))
        }
        _ => Ok(Vec::new()),
    }
}

fn error_event(kind: &str, message: &str) -> Vec<u8> {
    let data = serde_json::json!({"type": "error", "error": {"type": kind, "message": message}});
    format!("event: error\ndata: {data}\n\n").into_bytes()
}

#[cfg(test)]
mod tests;
