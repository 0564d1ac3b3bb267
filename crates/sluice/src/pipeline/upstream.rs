//! Phase 5: the call. Sends a prepared request with the shared client, bounded by the
//! provider's time-to-first-byte timeout, and turns transport failures into errors that name
//! the provider but never a secret (reqwest errors are stripped of their URL).

use std::time::Duration;

use http::StatusCode;

use crate::error::GatewayError;
use crate::providers::UpstreamRequest;

/// Sends the request and waits for the response headers.
pub async fn send(
    client: &reqwest::Client,
    provider: &str,
    request: UpstreamRequest,
    first_byte: Duration,
) -> Result<reqwest::Response, GatewayError> {
    let call = client
        .post(request.url)
        .headers(request.headers)
        .body(request.body)
        .send();
    match tokio::time::timeout(first_byte, call).await {
        Err(_) => Err(GatewayError::upstream_timeout(provider, first_byte)),
        Ok(Err(e)) if e.is_connect() && e.is_timeout() => {
            let mut error = GatewayError::upstream_failed(provider, "connecting timed out");
            error.status = StatusCode::GATEWAY_TIMEOUT;
            error.body = error.body.with_code("upstream_connect_timeout");
            Err(error)
        }
        Ok(Err(e)) if e.is_timeout() => Err(GatewayError::upstream_timeout(provider, first_byte)),
        Ok(Err(e)) => Err(GatewayError::upstream_failed(provider, &describe(e))),
        Ok(Ok(response)) => Ok(response),
    }
}

/// Reads a whole (non-stream) body, allowing `idle` between chunks.
pub async fn read_body(
    provider: &str,
    mut response: reqwest::Response,
    idle: Duration,
) -> Result<bytes::Bytes, GatewayError> {
    let mut body = bytes::BytesMut::new();
    loop {
        match tokio::time::timeout(idle, response.chunk()).await {
            Err(_) => return Err(GatewayError::upstream_timeout(provider, idle)),
            Ok(Err(e)) => return Err(GatewayError::upstream_failed(provider, &describe(e))),
            Ok(Ok(None)) => return Ok(body.freeze()),
            Ok(Ok(Some(chunk))) => body.extend_from_slice(&chunk),
        }
    }
}

/// A non-success upstream answer as a client error, reading at most 64 KiB of its body.
pub async fn error_from_response(
    provider: &str,
    dialect: sluice_dialect::Dialect,
    response: reqwest::Response,
    idle: Duration,
) -> GatewayError {
    let status =
        StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let retry_after = response.headers().get(http::header::RETRY_AFTER).cloned();
    let body = match tokio::time::timeout(idle, response.bytes()).await {
        Ok(Ok(b)) => b.slice(..b.len().min(64 * 1024)),
        _ => bytes::Bytes::new(),
    };
    GatewayError::from_upstream(provider, dialect, status, retry_after, body)
}

/// A transport error in words: the error and its causes, without the URL.
pub fn describe(e: reqwest::Error) -> String {
    let kind = if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the response body broke off"
    } else {
        "the request failed"
    };
    let e = e.without_url();
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    causes.dedup();
    match causes.last() {
        Some(root) => format!("{kind} ({root})"),
        None => kind.to_string(),
    }
}
