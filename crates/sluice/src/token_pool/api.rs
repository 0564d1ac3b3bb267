//! Seed 000's admin endpoints, guarded by `Authorization: Bearer <service key>`:
//!
//! - `POST /api/upload-token` adds tokens (see [`super::upload`] for the body forms) →
//!   `{"status":"ok","added":N,"updated":N,"total":N,"tokens":[{"id","token"(masked)}]}`.
//! - `GET /api/token-status` → `{"total":N,"available":N,"tokens":[{id, token (masked), type,
//!   resource_url, expires_at, expired, status, disabled, cooldown_remaining_ms, requests,
//!   failures, last_used, last_error, refreshes, added_at}]}`.
//!
//! Errors are OpenAI-shaped (`{"error":{message,type,param,code}}`), as the rest of seed 000's
//! API: 401 `missing_service_key` / `invalid_service_key`, 400 `invalid_tokens`, 404 when no
//! pool is configured, 500 `token_pool_write_failed`.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http_body_util::BodyExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sluice_dialect::{Dialect, ErrorBody, ErrorKind};
use subtle::ConstantTimeEq;

use super::{TokenPool, mask};
use crate::error::{Fault, GatewayError};
use crate::gateway::{AppState, Runtime};

/// `POST /api/upload-token`.
pub async fn upload_token(State(app): State<Arc<AppState>>, request: Request) -> Response {
    let runtime = app.runtime.load();
    let (parts, body) = request.into_parts();
    let pool = match guard(&runtime, &parts.headers) {
        Ok(pool) => pool,
        Err(e) => return e.render(Dialect::OpenAiChat),
    };
    let limit = usize::try_from(app.limits.max_body_size).unwrap_or(usize::MAX);
    let bytes = match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return GatewayError::too_large(app.limits.max_body_size).render(Dialect::OpenAiChat);
        }
    };
    let uploads = match super::upload::parse(&bytes, &pool.settings().resource_url_hosts) {
        Ok(uploads) => uploads,
        Err(reason) => {
            return error(StatusCode::BAD_REQUEST, &reason, "invalid_tokens").into_response();
        }
    };
    let added = match pool.add(uploads) {
        Ok(added) => added,
        Err(reason) => {
            tracing::error!(%reason, "could not save the token pool; check the data directory's permissions and free space");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The token pool could not be saved; see the gateway's log.",
                "token_pool_write_failed",
            )
            .into_response();
        }
    };
    let stored = pool.tokens();
    let tokens: Vec<serde_json::Value> = added
        .ids
        .iter()
        .filter_map(|id| stored.iter().find(|(t, _)| &t.id == id))
        .map(|(t, _)| serde_json::json!({"id": t.id, "token": mask(&t.access_token)}))
        .collect();
    tracing::info!(
        added = added.added,
        updated = added.updated,
        total = stored.len(),
        "tokens uploaded to the pool"
    );
    axum::Json(serde_json::json!({
        "status": "ok",
        "added": added.added,
        "updated": added.updated,
        "total": stored.len(),
        "tokens": tokens,
    }))
    .into_response()
}

/// One token in `/api/token-status`.
#[derive(Debug, Serialize)]
pub struct TokenStatus {
    pub id: String,
    /// Masked: the first and last four characters.
    pub token: String,
    /// `oauth` (has a refresh token) or `bearer`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub resource_url: Option<String>,
    /// RFC 3339, when the token carries an expiry.
    pub expires_at: Option<String>,
    pub expired: bool,
    /// `active`, `cooling`, `disabled` or `expired`.
    pub status: &'static str,
    pub disabled: Option<String>,
    /// Longest cooldown left over its models.
    pub cooldown_remaining_ms: Option<u64>,
    pub requests: u64,
    pub failures: u64,
    pub last_used: Option<String>,
    pub last_error: Option<String>,
    pub refreshes: u64,
    pub added_at: String,
}

/// `GET /api/token-status`.
pub async fn token_status(State(app): State<Arc<AppState>>, request: Request<Body>) -> Response {
    let runtime = app.runtime.load();
    let pool = match guard(&runtime, request.headers()) {
        Ok(pool) => pool,
        Err(e) => return e.render(Dialect::OpenAiChat),
    };
    let router = &runtime.router;
    let now = router.clock.now();
    let now_ms = super::unix_millis();
    let tokens: Vec<TokenStatus> = pool
        .tokens()
        .into_iter()
        .map(|(token, refreshes)| {
            let health = pool
                .credential_id(&token.id)
                .map(|id| router.health.report_for(&id, now))
                .unwrap_or_default();
            let expired = token.expiry_date.is_some_and(|exp| exp <= now_ms);
            let status = match health.status() {
                _ if token.disabled.is_some() => "disabled",
                "active" if expired && token.refresh_token.is_none() => "expired",
                other => other,
            };
            TokenStatus {
                id: token.id.clone(),
                token: mask(&token.access_token),
                kind: if token.refresh_token.is_some() {
                    "oauth"
                } else {
                    "bearer"
                },
                resource_url: token.resource_url.clone(),
                expires_at: token
                    .expiry_date
                    .map(|ms| rfc3339(UNIX_EPOCH + Duration::from_millis(ms))),
                expired,
                status,
                disabled: token.disabled.clone().or_else(|| health.disabled.clone()),
                cooldown_remaining_ms: health.models.iter().filter_map(|m| m.remaining_ms).max(),
                requests: health.requests,
                failures: health.failures,
                last_used: health.last_used.clone(),
                last_error: health.last_error.clone(),
                refreshes,
                added_at: rfc3339(UNIX_EPOCH + Duration::from_secs(token.added_at)),
            }
        })
        .collect();
    let available = tokens.iter().filter(|t| t.status == "active").count();
    axum::Json(serde_json::json!({
        "total": tokens.len(),
        "available": available,
        "tokens": tokens,
    }))
    .into_response()
}

fn rfc3339(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The pool, if the request carries the service key.
fn guard<'r>(
    runtime: &'r Runtime,
    headers: &http::HeaderMap,
) -> Result<&'r TokenPool, GatewayError> {
    let Some(pool) = runtime.token_pool.as_deref() else {
        return Err(error(
            StatusCode::NOT_FOUND,
            "No token pool is configured on this gateway (`token-pool` in the config).",
            "token_pool_not_configured",
        ));
    };
    let presented = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|k| !k.is_empty());
    let Some(presented) = presented else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "Missing service key: send `Authorization: Bearer sk-…`.",
            "missing_service_key",
        ));
    };
    let want: [u8; 32] = Sha256::digest(pool.settings().service_key.as_bytes()).into();
    let got: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    if bool::from(want.ct_eq(&got)) {
        Ok(pool)
    } else {
        Err(error(
            StatusCode::UNAUTHORIZED,
            "Invalid service key.",
            "invalid_service_key",
        ))
    }
}

fn error(status: StatusCode, message: &str, code: &str) -> GatewayError {
    let kind = match status {
        StatusCode::UNAUTHORIZED => ErrorKind::Authentication,
        StatusCode::NOT_FOUND => ErrorKind::NotFound,
        StatusCode::BAD_REQUEST => ErrorKind::InvalidRequest,
        _ => ErrorKind::Internal,
    };
    let fault = if status.is_server_error() {
        Fault::Gateway
    } else {
        Fault::Client
    };
    GatewayError::new(
        status,
        fault,
        ErrorBody::new(kind, message.to_string()).with_code(code),
    )
}
