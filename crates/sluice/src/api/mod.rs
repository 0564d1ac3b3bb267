//! The `/api` surface: sign-in, seed 004's API keys, users (admins) and usage.
//!
//! Every answer is seed 004's envelope: `{"code": 0, "message": "success", "data": …}` on
//! success, `{"code": <HTTP status>, "message": …}` with that HTTP status on failure. Callers
//! authenticate with `Authorization: Bearer <session token>` from `POST /api/auth/login`.

pub mod keys;
pub mod session;
pub mod usage;
pub mod users;

use std::sync::Arc;

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use bytes::Bytes;
use chrono::SecondsFormat;
use serde_json::{Map, Value, json};

use crate::error::{ApiError, GatewayError};
use crate::gateway::AppState;
use crate::store::StoreError;

/// What every handler returns.
pub type ApiResult = Result<Response, ApiError>;

/// The `/api` routes.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/auth/login", post(session::login))
        .route("/api/auth/me", get(session::me))
        .route("/api/api-keys", get(keys::list).post(keys::create))
        .route(
            "/api/api-keys/{id}",
            get(keys::get_one).put(keys::update).delete(keys::delete),
        )
        .route("/api/api-keys/{id}/toggle", put(keys::toggle))
        .route("/api/api-keys/{id}/usage", get(usage::key_usage))
        .route("/api/users", get(users::list).post(users::create))
        .route("/api/users/{id}", put(users::update))
        .route("/api/users/{id}/api-keys", get(users::keys_of))
        .route("/api/usage/summary", get(usage::summary))
        .route("/api/usage/daily", get(usage::daily))
        .route("/api/usage/models", get(usage::models))
}

/// `{"code": 0, "message": <message>, "data": <data>}` (no `data` when `None`).
pub fn success(message: &str, data: Option<Value>) -> Response {
    let mut body = json!({"code": 0, "message": message});
    if let Some(data) = data {
        body["data"] = data;
    }
    axum::Json(body).into_response()
}

/// The request body as a JSON object, or a 400 saying what is wrong.
pub fn json_object(body: &Bytes) -> Result<Map<String, Value>, GatewayError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(GatewayError::invalid(
            "the request body must be a JSON object",
        ));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(GatewayError::invalid(
            "the request body must be a JSON object",
        )),
        Err(e) => Err(GatewayError::invalid(format!(
            "the request body is not valid JSON: {e}"
        ))),
    }
}

/// A numeric id from the path; anything else finds nothing.
pub fn parse_id(raw: &str, what: &str) -> Result<i64, GatewayError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| GatewayError::not_found(format!("{what} {raw} not found")))
}

/// RFC 3339 in UTC with seconds, like `2025-12-09T10:30:00Z`.
pub fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A store failure as the caller sees it; database faults are logged, not shown.
pub fn store_error(e: StoreError, what: &str) -> GatewayError {
    match e {
        StoreError::NotFound => GatewayError::not_found(format!("{what} not found")),
        StoreError::Conflict(message) => GatewayError::conflict(message),
        other => {
            tracing::error!(error = %other, "store failure on the /api surface; check the data directory and disk");
            GatewayError::internal("the gateway's store failed; the operator should check its logs")
        }
    }
}
