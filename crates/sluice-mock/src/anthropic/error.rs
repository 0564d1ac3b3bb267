//! Anthropic-shape error responses: `{"type":"error","error":{"type","message"},"request_id"}`,
//! the same id in the `request-id` header.

use axum::Json;
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::ids;

/// Header carrying the request id on every Anthropic response.
pub(crate) const REQUEST_ID_HEADER: &str = "request-id";

const INVALID_REQUEST: &str = "invalid_request_error";

/// An error the fake Anthropic upstream answers with.
#[derive(Debug)]
pub(crate) struct AnthropicError {
    status: StatusCode,
    kind: &'static str,
    message: String,
    retry_after: Option<String>,
}

impl AnthropicError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The status and message (Bedrock words the same problems its own way).
    pub(crate) fn into_parts(self) -> (StatusCode, String) {
        (self.status, self.message)
    }

    /// 400 `invalid_request_error` with the API's wording (`<field path>: <problem>`).
    pub(crate) fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, INVALID_REQUEST, message)
    }

    /// 401: no `x-api-key` (nor bearer token) although keys are configured.
    pub(crate) fn missing_api_key() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "x-api-key header is required",
        )
    }

    /// 401: an `x-api-key` that is not one of the configured keys.
    pub(crate) fn invalid_api_key() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid x-api-key",
        )
    }

    /// 401: a bearer token that is not one of the configured keys.
    pub(crate) fn invalid_bearer_token() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "Invalid bearer token",
        )
    }

    /// 404 `not_found_error`, e.g. `model: <name>` for a model that is not served.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found_error", message)
    }

    /// 500: the mock itself failed (a bug in the mock, not an injected fault).
    pub(crate) fn internal(detail: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            format!("sluice-mock failed to build its response: {detail}"),
        )
    }

    /// The error asked for by a `mock:status=NNN` directive, typed as Anthropic types that
    /// status.
    pub(crate) fn injected(status: StatusCode, retry_after: Option<String>) -> Self {
        let (kind, what) = match status.as_u16() {
            401 => ("authentication_error", "invalid x-api-key"),
            402 => (
                "billing_error",
                "Your credit balance is too low to access the Anthropic API",
            ),
            403 => (
                "permission_error",
                "Your API key does not have permission to use the specified resource",
            ),
            404 => (
                "not_found_error",
                "The requested resource could not be found",
            ),
            413 => (
                "request_too_large",
                "Request exceeds the maximum allowed number of bytes",
            ),
            429 => (
                "rate_limit_error",
                "This request would exceed your organization's rate limit",
            ),
            504 => ("timeout_error", "Request timed out"),
            529 => ("overloaded_error", "Overloaded"),
            500..=599 => ("api_error", "Internal server error"),
            _ => (INVALID_REQUEST, "The request was rejected"),
        };
        let mut error = Self::new(
            status,
            kind,
            format!(
                "{what} (injected by sluice-mock: mock:status={}).",
                status.as_u16()
            ),
        );
        error.retry_after = retry_after;
        error
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: Body<'a>,
    request_id: &'a str,
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
}

impl IntoResponse for AnthropicError {
    fn into_response(self) -> Response {
        let request_id = ids::anthropic_request_id();
        let body = Envelope {
            kind: "error",
            error: Body {
                kind: self.kind,
                message: &self.message,
            },
            request_id: &request_id,
        };
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            headers.insert(REQUEST_ID_HEADER, value);
        }
        if let Some(value) = self
            .retry_after
            .as_deref()
            .and_then(|s| HeaderValue::from_str(s).ok())
        {
            headers.insert(RETRY_AFTER, value);
        }
        response
    }
}
