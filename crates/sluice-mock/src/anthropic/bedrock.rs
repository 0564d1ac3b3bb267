//! AWS Bedrock's runtime for Anthropic models: `POST /model/{modelId}/invoke` and
//! `POST /model/{modelId}/invoke-with-response-stream`.
//!
//! - Authentication: SigV4 (`Authorization: AWS4-HMAC-SHA256 Credential=<key id>/<date>/
//!   <region>/bedrock/aws4_request, SignedHeaders=…;host;…;x-amz-date…, Signature=<64 hex>` with
//!   a matching `x-amz-date`), or a Bedrock API key as `Authorization: Bearer`. The header's
//!   shape is checked (the signature itself is not recomputed: the fake does not know secrets);
//!   with [`crate::MockConfig::api_keys`] set, the key id or API key must be one of them.
//! - Body: the Messages request without `model` (it is in the path) and without `stream`, with
//!   `anthropic_version: "bedrock-2023-05-31"`; anything else is a 400 `ValidationException`.
//! - Answers: the Messages response JSON; streams as `application/vnd.amazon.eventstream`
//!   frames, one per Anthropic event (no `ping`), each a `chunk` event whose JSON payload's
//!   `bytes` is the base64 of the event JSON, with `amazon-bedrock-invocationMetrics` on
//!   `message_stop`.
//! - Errors: `{"message": …}` with `x-amzn-ErrorType` (`ThrottlingException` for 429,
//!   `ValidationException`, `AccessDeniedException`, `ServiceUnavailableException`, …).

use std::sync::Arc;

use aws_smithy_types::event_stream::{Header, HeaderValue as FrameValue, Message};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use serde_json::{Value, json};

use super::request::{Endpoint, MessagesRequest};
use super::wire::Reply;
use crate::directives;
use crate::{AppState, assistant, ids, stream_body};

/// The only `anthropic_version` Bedrock takes.
pub(crate) const BEDROCK_VERSION: &str = "bedrock-2023-05-31";

/// The Bedrock runtime routes.
pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/model/{model_id}/invoke", post(invoke))
        .route(
            "/model/{model_id}/invoke-with-response-stream",
            post(invoke_stream),
        )
}

async fn invoke(
    State(state): State<Arc<AppState>>,
    Path(model): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(&state, &model, &headers, &body, false)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn invoke_stream(
    State(state): State<Arc<AppState>>,
    Path(model): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(&state, &model, &headers, &body, true)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn answer(
    state: &AppState,
    model: &str,
    headers: &HeaderMap,
    body: &[u8],
    stream: bool,
) -> Result<Response, BedrockError> {
    let directives = directives::arrive(&state.faults, headers, body).await;
    authorize(state, headers)?;
    if let Some(status) = directives.status {
        return Err(BedrockError::injected(status, directives.retry_after));
    }
    let mut json: Value = serde_json::from_slice(body)
        .map_err(|_| BedrockError::validation("Malformed input request: the body is not JSON"))?;
    if crate::embeddings::is_bedrock_embedding(model) && !stream {
        if !state.config.serves(model) {
            return Err(BedrockError::new(
                StatusCode::NOT_FOUND,
                "ResourceNotFoundException",
                "Could not resolve the foundation model from the provided model identifier.",
            ));
        }
        let answer = crate::embeddings::bedrock(model, &json).map_err(BedrockError::validation)?;
        let mut response = Json(answer).into_response();
        tag(&mut response);
        return Ok(response);
    }
    let Some(fields) = json.as_object_mut() else {
        return Err(BedrockError::validation(
            "Malformed input request: #: expected an object",
        ));
    };
    for extraneous in ["model", "stream"] {
        if fields.contains_key(extraneous) {
            return Err(BedrockError::validation(format!(
                "Malformed input request: #: extraneous key [{extraneous}] is not permitted, please reformat your input and try again."
            )));
        }
    }
    match fields.remove("anthropic_version") {
        Some(Value::String(v)) if v == BEDROCK_VERSION => {}
        Some(_) => {
            return Err(BedrockError::validation(
                "Invalid API version: anthropic_version must be bedrock-2023-05-31",
            ));
        }
        None => {
            return Err(BedrockError::validation(
                "Malformed input request: #: required key [anthropic_version] not found, please reformat your input and try again.",
            ));
        }
    }
    fields.remove("anthropic_beta");
    fields.insert("model".into(), Value::String(model.to_string()));
    let request = MessagesRequest::from_json(&json, Endpoint::Messages).map_err(|e| {
        let (_, message) = e.into_parts();
        BedrockError::validation(message)
    })?;
    if !state.config.serves(model) {
        return Err(BedrockError::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            "Could not resolve the foundation model from the provided model identifier.",
        ));
    }
    let (answer, usage) = assistant::answer(&request.conversation(), &directives);
    let reply = Reply::new(answer, usage, request.thinking);
    if !stream {
        let mut response = Json(reply.message(model)).into_response();
        tag(&mut response);
        return Ok(response);
    }
    let frames = frames(&reply, model).map_err(BedrockError::internal)?;
    let mut response =
        stream_body::body(frames, &directives, state.recorder.stream_guard()).into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.amazon.eventstream"),
    );
    tag(&mut response);
    Ok(response)
}

/// The Anthropic stream of `reply`, as Bedrock frames it.
fn frames(reply: &Reply, model: &str) -> Result<Vec<Bytes>, String> {
    let events = super::stream::events(reply, model).map_err(|e| e.to_string())?;
    let mut frames = Vec::with_capacity(events.len());
    for event in &events {
        let text = String::from_utf8_lossy(event);
        let Some(data) = text.lines().find_map(|l| l.strip_prefix("data: ")) else {
            continue;
        };
        let mut json: Value = serde_json::from_str(data).map_err(|e| e.to_string())?;
        match json["type"].as_str() {
            Some("ping") => continue,
            Some("message_stop") => {
                let input = reply_input_tokens(&events);
                json["amazon-bedrock-invocationMetrics"] = json!({
                    "inputTokenCount": input,
                    "outputTokenCount": reply.output_tokens(),
                    "invocationLatency": 25,
                    "firstByteLatency": 10,
                });
            }
            _ => {}
        }
        frames.push(chunk_frame(&json)?);
    }
    Ok(frames)
}

fn reply_input_tokens(events: &[Bytes]) -> u64 {
    events
        .first()
        .and_then(|e| {
            let text = String::from_utf8_lossy(e);
            let data = text
                .lines()
                .find_map(|l| l.strip_prefix("data: "))?
                .to_string();
            let json: Value = serde_json::from_str(&data).ok()?;
            json["message"]["usage"]["input_tokens"].as_u64()
        })
        .unwrap_or(0)
}

/// One `chunk` event frame: `{"bytes": base64(event JSON), "p": padding}`.
pub(crate) fn chunk_frame(event: &Value) -> Result<Bytes, String> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(event.to_string());
    // Bedrock pads payloads with a `p` field of letters so sizes do not leak content.
    let padding: String = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123"
        .chars()
        .take(encoded.len() % 23 + 1)
        .collect();
    let payload = json!({"bytes": encoded, "p": padding}).to_string();
    let message = Message::new(payload.into_bytes())
        .add_header(Header::new(
            ":event-type",
            FrameValue::String("chunk".into()),
        ))
        .add_header(Header::new(
            ":content-type",
            FrameValue::String("application/json".into()),
        ))
        .add_header(Header::new(
            ":message-type",
            FrameValue::String("event".into()),
        ));
    let mut out = Vec::new();
    aws_smithy_eventstream::frame::write_message_to(&message, &mut out)
        .map_err(|e| e.to_string())?;
    Ok(Bytes::from(out))
}

fn tag(response: &mut Response) {
    if let Ok(value) = HeaderValue::from_str(&ids::request_id()) {
        response.headers_mut().insert("x-amzn-requestid", value);
    }
}

/// SigV4's header shape, or a Bedrock API key; the key id (or API key) must be accepted.
fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), BedrockError> {
    let Some(auth) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return Err(BedrockError::new(
            StatusCode::FORBIDDEN,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ));
    };
    let key = if let Some(token) = auth.strip_prefix("Bearer ") {
        token.trim().to_string()
    } else {
        let date = headers
            .get("x-amz-date")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        sigv4_key_id(auth, date).map_err(|why| {
            BedrockError::new(StatusCode::FORBIDDEN, "InvalidSignatureException", why)
        })?
    };
    if state.config.requires_key() && !state.config.accepts_key(&key) {
        return Err(BedrockError::new(
            StatusCode::FORBIDDEN,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ));
    }
    Ok(())
}

/// Checks a SigV4 `Authorization` value against `x-amz-date`; the access key id.
pub(crate) fn sigv4_key_id(auth: &str, amz_date: &str) -> Result<String, String> {
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or("Authorization must use AWS4-HMAC-SHA256")?;
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',').map(str::trim) {
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let (credential, signed, signature) = match (credential, signed, signature) {
        (Some(c), Some(h), Some(s)) => (c, h, s),
        _ => {
            return Err(
                "Authorization header requires Credential, SignedHeaders and Signature".into(),
            );
        }
    };
    let scope: Vec<&str> = credential.split('/').collect();
    let [key_id, date, region, service, "aws4_request"] = scope.as_slice() else {
        return Err("Credential should be scoped to <date>/<region>/<service>/aws4_request".into());
    };
    if *service != "bedrock" {
        return Err(format!(
            "Credential should be scoped to correct service: 'bedrock', not '{service}'"
        ));
    }
    if region.is_empty() || key_id.is_empty() {
        return Err("Credential should name a key id and a region".into());
    }
    let valid_date = amz_date.len() == 16
        && amz_date.as_bytes()[8] == b'T'
        && amz_date.ends_with('Z')
        && amz_date.starts_with(date);
    if !valid_date {
        return Err(
            "x-amz-date must be YYYYMMDD'T'HHMMSS'Z' and match the credential scope".into(),
        );
    }
    let headers: Vec<&str> = signed.split(';').collect();
    if !headers.contains(&"host") || !headers.contains(&"x-amz-date") {
        return Err("SignedHeaders must include host and x-amz-date".into());
    }
    if signature.len() != 64
        || !signature
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return Err("Signature must be 64 lowercase hex digits".into());
    }
    Ok((*key_id).to_string())
}

/// A Bedrock error: `{"message": …}` and `x-amzn-ErrorType`.
#[derive(Debug)]
struct BedrockError {
    status: StatusCode,
    kind: &'static str,
    message: String,
    retry_after: Option<String>,
}

impl BedrockError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            retry_after: None,
        }
    }

    fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "ValidationException", message)
    }

    fn internal(detail: String) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerException",
            format!("sluice-mock failed to build its response: {detail}"),
        )
    }

    fn injected(status: StatusCode, retry_after: Option<String>) -> Self {
        let kind = match status.as_u16() {
            400 => "ValidationException",
            403 => "AccessDeniedException",
            404 => "ResourceNotFoundException",
            408 => "ModelTimeoutException",
            424 => "ModelErrorException",
            429 => "ThrottlingException",
            503 => "ServiceUnavailableException",
            _ => "InternalServerException",
        };
        let mut error = Self::new(
            status,
            kind,
            format!(
                "{kind} (injected by sluice-mock: mock:status={})",
                status.as_u16()
            ),
        );
        error.retry_after = retry_after;
        error
    }
}

impl IntoResponse for BedrockError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({"message": self.message}))).into_response();
        let headers = response.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&format!(
            "{}:http://internal.amazon.com/coral/com.amazon.bedrock/",
            self.kind
        )) {
            headers.insert("x-amzn-errortype", v);
        }
        if let Some(v) = self
            .retry_after
            .as_deref()
            .and_then(|s| HeaderValue::from_str(s).ok())
        {
            headers.insert(RETRY_AFTER, v);
        }
        tag(&mut response);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigv4_shapes() {
        let good = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
        assert_eq!(
            sigv4_key_id(good, "20150830T123600Z").as_deref(),
            Ok("AKIDEXAMPLE")
        );
        assert!(sigv4_key_id(good, "20150831T123600Z").is_err());
        assert!(sigv4_key_id(&good.replace("bedrock", "s3"), "20150830T123600Z").is_err());
        assert!(sigv4_key_id(&good.replace("host;", ""), "20150830T123600Z").is_err());
        assert!(sigv4_key_id(&good.replace("5fa0", "5FA0"), "20150830T123600Z").is_err());
        assert!(sigv4_key_id("Basic abc", "20150830T123600Z").is_err());
    }
}
