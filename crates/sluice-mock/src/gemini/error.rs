//! Gemini-shape (Google RPC) error responses: `{"error":{"code","message","status"}}`, with
//! `details` where the real API adds them.

use axum::Json;
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

/// An error the fake Gemini upstream answers with.
#[derive(Debug)]
pub(crate) struct GeminiError {
    status: StatusCode,
    message: String,
    details: Vec<Value>,
    retry_after: Option<String>,
}

const INVALID_API_KEY: &str = "API key not valid. Please pass a valid API key.";

impl GeminiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            details: Vec::new(),
            retry_after: None,
        }
    }

    /// 400 `INVALID_ARGUMENT`.
    pub(crate) fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 401 `UNAUTHENTICATED`: an OAuth access token that is expired or revoked.
    pub(crate) fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
        )
    }

    /// 400 `INVALID_ARGUMENT`: a key that is not one of the configured ones (Google answers a
    /// bad key with 400, not 401).
    pub(crate) fn invalid_api_key() -> Self {
        let mut error = Self::invalid_argument(INVALID_API_KEY);
        error.details = vec![
            json!({
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"}
            }),
            json!({
                "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                "locale": "en-US",
                "message": INVALID_API_KEY
            }),
        ];
        error
    }

    /// 403 `PERMISSION_DENIED`: no key at all although keys are configured.
    pub(crate) fn missing_api_key() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "Method doesn't allow unregistered callers (callers without established identity). \
             Please use API Key or other form of API consumer identity to call this API.",
        )
    }

    /// 403 `PERMISSION_DENIED`.
    pub(crate) fn permission_denied(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// 404 `NOT_FOUND`.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 500: the mock itself failed (a bug in the mock, not an injected fault).
    pub(crate) fn internal(detail: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("sluice-mock failed to build its response: {detail}"),
        )
    }

    /// The error asked for by a `mock:status=NNN` directive, worded as Google words it. A
    /// `retry_after` also becomes a `RetryInfo` detail, where Google clients look for it.
    pub(crate) fn injected(status: StatusCode, retry_after: Option<String>) -> Self {
        let what = match status.as_u16() {
            400 => "Request contains an invalid argument.",
            401 => "Request had invalid authentication credentials.",
            403 => "The caller does not have permission.",
            404 => "Requested entity was not found.",
            429 => "You exceeded your current quota, please check your plan and billing details.",
            500 => "An internal error has occurred.",
            503 => "The model is overloaded. Please try again later.",
            504 => "Deadline expired before operation could complete.",
            _ => "The request failed.",
        };
        let mut error = Self::new(
            status,
            format!(
                "{what} (injected by sluice-mock: mock:status={})",
                status.as_u16()
            ),
        );
        if let Some(seconds) = &retry_after {
            error.details.push(json!({
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": format!("{seconds}s")
            }));
        }
        error.retry_after = retry_after;
        error
    }
}

/// Google RPC's status name for an HTTP status.
fn status_name(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ if status.is_client_error() => "FAILED_PRECONDITION",
        _ => "INTERNAL",
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: u16,
    message: &'a str,
    status: &'static str,
    #[serde(skip_serializing_if = "<[Value]>::is_empty")]
    details: &'a [Value],
}

impl IntoResponse for GeminiError {
    fn into_response(self) -> Response {
        let body = Envelope {
            error: Body {
                code: self.status.as_u16(),
                message: &self.message,
                status: status_name(self.status),
                details: &self.details,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(value) = self
            .retry_after
            .as_deref()
            .and_then(|s| HeaderValue::from_str(s).ok())
        {
            response.headers_mut().insert(RETRY_AFTER, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_have_google_names() {
        for (code, name) in [
            (400, "INVALID_ARGUMENT"),
            (401, "UNAUTHENTICATED"),
            (403, "PERMISSION_DENIED"),
            (404, "NOT_FOUND"),
            (429, "RESOURCE_EXHAUSTED"),
            (500, "INTERNAL"),
            (503, "UNAVAILABLE"),
            (504, "DEADLINE_EXCEEDED"),
        ] {
            let status = StatusCode::from_u16(code).unwrap_or_default();
            assert_eq!(status_name(status), name);
        }
    }
}
