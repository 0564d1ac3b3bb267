//! Qwen's OAuth token endpoint, `POST /api/v1/oauth2/token` (as on `chat.qwen.ai`), for the
//! `refresh_token` grant: a form with `grant_type`, `refresh_token` and `client_id`, answered
//! with `{access_token, token_type, expires_in}` (no new refresh token unless the old one
//! contains `rotate`, so clients must keep the old one), or an OAuth error
//! `{error, error_description}` with 400 (a refresh token starting with `revoked` is refused).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::Form;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;

use crate::AppState;

/// Lifetime of an issued access token, seconds.
const EXPIRES_IN: u64 = 21_600;

static ISSUED: AtomicU64 = AtomicU64::new(0);

/// The token route.
pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/v1/oauth2/token", post(token))
}

async fn token(Form(form): Form<HashMap<String, String>>) -> Response {
    let field = |name: &str| form.get(name).map(String::as_str).filter(|v| !v.is_empty());
    let (Some(grant), Some(client_id)) = (field("grant_type"), field("client_id")) else {
        return oauth_error("invalid_request", "grant_type and client_id are required");
    };
    if grant != "refresh_token" {
        return oauth_error(
            "unsupported_grant_type",
            &format!("grant type {grant} is not supported here"),
        );
    }
    let Some(refresh) = field("refresh_token") else {
        return oauth_error("invalid_request", "refresh_token is required");
    };
    if refresh.starts_with("revoked") {
        return oauth_error("invalid_grant", "the refresh token is invalid or expired");
    }
    let n = ISSUED.fetch_add(1, Ordering::Relaxed);
    let mut body = json!({
        "access_token": format!("qwen-access-{client_id}-{n}"),
        "token_type": "Bearer",
        "expires_in": EXPIRES_IN,
        "scope": "openid profile email model.completion",
    });
    if refresh.contains("rotate") {
        body["refresh_token"] = json!(format!("rotated-refresh-{n}"));
    }
    Json(body).into_response()
}

fn oauth_error(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}
