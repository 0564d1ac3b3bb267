//! The gateway's error type, and the one place errors become HTTP responses.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use sluice_dialect::{Dialect, ErrorBody, ErrorKind};

/// Whose fault an error is; decides whether another attempt could help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The caller sent something wrong; retrying the same request cannot help.
    Client,
    /// The upstream failed; another credential or provider might not.
    Upstream,
    /// Sluice itself (overload, shutdown, a bug).
    Gateway,
}

/// An error on its way to the client.
#[derive(Debug, Clone)]
pub struct GatewayError {
    pub status: StatusCode,
    pub fault: Fault,
    pub body: ErrorBody,
    /// Rarely present details, boxed to keep `Result<_, GatewayError>` small.
    pub extra: Option<Box<ErrorExtra>>,
}

/// What some errors carry besides their body.
#[derive(Debug, Clone, Default)]
pub struct ErrorExtra {
    /// Forwarded `Retry-After`, when the upstream or a limit supplied one.
    pub retry_after: Option<HeaderValue>,
    /// The upstream's own error body and the dialect it is in; passed through unchanged to a
    /// client of the same dialect.
    pub upstream_body: Option<(Dialect, Bytes)>,
}

impl GatewayError {
    pub fn new(status: StatusCode, fault: Fault, body: ErrorBody) -> Self {
        Self {
            status,
            fault,
            body,
            extra: None,
        }
    }

    /// The `Retry-After` to send, if any.
    pub fn retry_after(&self) -> Option<&HeaderValue> {
        self.extra.as_ref().and_then(|e| e.retry_after.as_ref())
    }

    /// 400 for a request the dialect parser rejected.
    pub fn bad_request(body: ErrorBody) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Fault::Client, body)
    }

    /// 401 without a key.
    pub fn missing_key() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            Fault::Client,
            ErrorBody::new(
                ErrorKind::Authentication,
                "Missing API key: send it as `Authorization: Bearer <key>` or `X-API-Key: <key>`.",
            )
            .with_code("missing_api_key"),
        )
    }

    /// 401 with a key that matches none.
    pub fn invalid_key() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            Fault::Client,
            ErrorBody::new(ErrorKind::Authentication, "Invalid API key.")
                .with_code("invalid_api_key"),
        )
    }

    /// 401 because the operator configured no client keys and did not allow anonymous use.
    pub fn no_keys_configured() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            Fault::Client,
            ErrorBody::new(
                ErrorKind::Authentication,
                "This gateway has no client API keys configured, so it refuses all requests. \
                 The operator must add `api-keys` to the config (or set `allow-anonymous: true`).",
            )
            .with_code("no_api_keys_configured"),
        )
    }

    /// 404 for a model no provider serves.
    pub fn model_not_found(model: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            Fault::Client,
            ErrorBody::new(
                ErrorKind::NotFound,
                format!("The model `{model}` does not exist or is not served by this gateway."),
            )
            .with_param("model")
            .with_code("model_not_found"),
        )
    }

    /// 413 for a body over the limit.
    pub fn too_large(limit: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Fault::Client,
            ErrorBody::new(
                ErrorKind::RequestTooLarge,
                format!("Request body is larger than the gateway's limit of {limit} bytes."),
            )
            .with_code("request_too_large"),
        )
    }

    /// 429 when the gateway is at its concurrency limit.
    pub fn overloaded(limit: usize) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            Fault::Gateway,
            ErrorBody::new(
                ErrorKind::RateLimited,
                format!("The gateway is handling its maximum of {limit} concurrent requests; retry shortly."),
            )
            .with_code("gateway_overloaded"),
        );
        e.extra = Some(Box::new(ErrorExtra {
            retry_after: Some(HeaderValue::from_static("1")),
            upstream_body: None,
        }));
        e
    }

    /// 502 when the upstream cannot be reached or the exchange failed.
    pub fn upstream_failed(provider: &str, detail: &str) -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            Fault::Upstream,
            ErrorBody::new(
                ErrorKind::Upstream,
                format!("Provider `{provider}` failed: {detail}."),
            )
            .with_code("upstream_unavailable"),
        )
    }

    /// 504 when the upstream did not answer in time.
    pub fn upstream_timeout(provider: &str, waited: std::time::Duration) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            Fault::Upstream,
            ErrorBody::new(
                ErrorKind::Timeout,
                format!(
                    "Provider `{provider}` did not respond within {}.",
                    humantime::format_duration(waited)
                ),
            )
            .with_code("upstream_timeout"),
        )
    }

    /// 503 while shutting down.
    pub fn shutting_down() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Fault::Gateway,
            ErrorBody::new(
                ErrorKind::Overloaded,
                "The gateway is shutting down; retry on another instance.",
            )
            .with_code("shutting_down"),
        )
    }

    /// 404 for a path the gateway does not serve.
    pub fn unknown_route(method: &http::Method, path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            Fault::Client,
            ErrorBody::new(
                ErrorKind::NotFound,
                format!("Unknown request URL: {method} {path}."),
            )
            .with_code("unknown_url"),
        )
    }

    /// 405 for a known path with the wrong method.
    pub fn method_not_allowed(method: &http::Method, path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            Fault::Client,
            ErrorBody::new(
                ErrorKind::InvalidRequest,
                format!("Method {method} is not allowed on {path}."),
            )
            .with_code("method_not_allowed"),
        )
    }

    /// An upstream's non-success answer. Its status is kept; its body is kept for clients of
    /// the same dialect, and its message for everyone else.
    pub fn from_upstream(
        provider: &str,
        dialect: Dialect,
        status: StatusCode,
        retry_after: Option<HeaderValue>,
        body: Bytes,
    ) -> Self {
        let fault = if status.is_client_error()
            && status != StatusCode::TOO_MANY_REQUESTS
            && status != StatusCode::REQUEST_TIMEOUT
        {
            Fault::Client
        } else {
            Fault::Upstream
        };
        let parsed = ErrorBody::parse_any(status.as_u16(), &body);
        let error_body = match &parsed {
            Some(parsed) => parsed.clone(),
            None => {
                let text = String::from_utf8_lossy(&body);
                let snippet: String = text.chars().take(200).collect();
                ErrorBody::new(
                    ErrorKind::from_status(status.as_u16()),
                    format!(
                        "Provider `{provider}` returned HTTP {}: {}",
                        status.as_u16(),
                        snippet.trim()
                    ),
                )
            }
        };
        let mut e = Self::new(status, fault, error_body);
        let upstream_body = parsed.is_some().then_some((dialect, body));
        if retry_after.is_some() || upstream_body.is_some() {
            e.extra = Some(Box::new(ErrorExtra {
                retry_after,
                upstream_body,
            }));
        }
        e
    }

    /// The response a client of `dialect` receives.
    pub fn render(self, dialect: Dialect) -> Response {
        let ErrorExtra {
            retry_after,
            upstream_body,
        } = self.extra.map(|e| *e).unwrap_or_default();
        let body = match upstream_body {
            Some((from, body)) if from == dialect => body,
            _ => Bytes::from(dialect.error_json(&self.body, self.status.as_u16())),
        };
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(retry_after) = retry_after {
            headers.insert(header::RETRY_AFTER, retry_after);
        }
        response
    }
}

impl IntoResponse for GatewayError {
    /// OpenAI's shape, for routes that belong to no dialect (unknown URLs).
    fn into_response(self) -> Response {
        self.render(Dialect::OpenAiChat)
    }
}
