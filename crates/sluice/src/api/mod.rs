//! The `/api` surface: sign-in, seed 004's API keys, users (admins) and usage.
//!
//! Every answer is seed 004's envelope: `{"code": 0, "message": "success", "data": …}` on
//! success, `{"code": <HTTP status>, "message": …}` with that HTTP status on failure. Callers
//! authenticate with `Authorization: Bearer <session token>` from `POST /api/auth/login`.

pub mod doc;
pub mod keys;
pub mod session;
pub mod usage;
pub mod users;

use std::sync::Arc;

use axum::Router;
use axum::handler::Handler;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use utoipa::openapi::path::HttpMethod;

use self::doc::{Access, ApiOp};
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
    Surface::all().into_router()
}

/// The `/api` routes and their OpenAPI description, registered together: every route is
/// added with the [`ApiOp`] that documents it.
pub struct Surface {
    routes: Vec<(&'static str, MethodRouter<Arc<AppState>>)>,
    pub ops: Vec<ApiOp>,
}

impl Surface {
    /// Every `/api` operation.
    pub fn all() -> Surface {
        use Access::{Admin, Public, ServiceKey, User};
        Surface {
            routes: Vec::new(),
            ops: Vec::new(),
        }
        .op(
            ApiOp::post(
                "/api/auth/login",
                Public,
                "Sign in: a session token for `Authorization: Bearer`",
            )
            .body(doc::login_body())
            .reply(doc::login_reply())
            .error(401)
            .error(403),
            session::login,
        )
        .op(
            ApiOp::get("/api/auth/me", User, "The signed-in user").reply(doc::user()),
            session::me,
        )
        .op(
            ApiOp::get("/api/api-keys", User, "The caller's API keys").reply(doc::keys()),
            keys::list,
        )
        .op(
            ApiOp::post(
                "/api/api-keys",
                User,
                "Create an API key; the secret `key` is shown only in this answer",
            )
            .body(doc::key_create_body())
            .reply(doc::key_created()),
            keys::create,
        )
        .op(
            ApiOp::get("/api/api-keys/{id}", User, "One API key")
                .id("the API key's id")
                .reply(doc::key()),
            keys::get_one,
        )
        .op(
            ApiOp::put(
                "/api/api-keys/{id}",
                User,
                "Change an API key; answers with its id and the fields set",
            )
            .id("the API key's id")
            .body(doc::key_update_body())
            .reply(doc::key_updated()),
            keys::update,
        )
        .op(
            ApiOp::delete(
                "/api/api-keys/{id}",
                User,
                "Delete an API key; it stops working at once",
            )
            .id("the API key's id"),
            keys::delete,
        )
        .op(
            ApiOp::put(
                "/api/api-keys/{id}/toggle",
                User,
                "Switch an API key between active and disabled",
            )
            .id("the API key's id")
            .reply(doc::key_toggled()),
            keys::toggle,
        )
        .op(
            ApiOp::get(
                "/api/api-keys/{id}/usage",
                User,
                "One API key's usage: totals, per day, per model, latest records",
            )
            .id("the API key's id")
            .usage_filter(false)
            .query("limit", "latest records to list (default 20)", doc::limit())
            .reply(doc::key_usage()),
            usage::key_usage,
        )
        .op(
            ApiOp::get("/api/users", Admin, "Every user").reply(doc::users()),
            users::list,
        )
        .op(
            ApiOp::post("/api/users", Admin, "Create a user")
                .body(doc::user_create_body())
                .reply(doc::user())
                .error(409),
            users::create,
        )
        .op(
            ApiOp::put(
                "/api/users/{id}",
                Admin,
                "Change a user's status, role or password",
            )
            .id("the user's id")
            .body(doc::user_update_body())
            .reply(doc::user()),
            users::update,
        )
        .op(
            ApiOp::get("/api/users/{id}/api-keys", Admin, "A user's API keys")
                .id("the user's id")
                .reply(doc::keys()),
            users::keys_of,
        )
        .op(
            ApiOp::get(
                "/api/usage/summary",
                User,
                "Usage totals over a range (admins: everyone's)",
            )
            .usage_filter(true)
            .reply(doc::summary()),
            usage::summary,
        )
        .op(
            ApiOp::get("/api/usage/daily", User, "Usage per day")
                .usage_filter(true)
                .reply(doc::per_day()),
            usage::daily,
        )
        .op(
            ApiOp::get("/api/usage/models", User, "Usage per model (as served)")
                .usage_filter(true)
                .reply(doc::per_model()),
            usage::models,
        )
        .op(
            ApiOp::post(
                "/api/upload-token",
                ServiceKey,
                "Seed 000: add tokens to the token pool",
            )
            .body(doc::upload_body())
            .reply(doc::uploaded())
            .error(413),
            crate::token_pool::api::upload_token,
        )
        .op(
            ApiOp::get(
                "/api/token-status",
                ServiceKey,
                "Seed 000: the token pool, tokens masked",
            )
            .reply(doc::token_status()),
            crate::token_pool::api::token_status,
        )
    }

    /// Adds `handler` for `op`'s method and path, and `op` to the description.
    fn op<H, T>(mut self, op: ApiOp, handler: H) -> Self
    where
        H: Handler<T, Arc<AppState>>,
        T: 'static,
    {
        let filter = match op.method {
            HttpMethod::Get => MethodFilter::GET,
            HttpMethod::Post => MethodFilter::POST,
            HttpMethod::Put => MethodFilter::PUT,
            HttpMethod::Delete => MethodFilter::DELETE,
            HttpMethod::Patch => MethodFilter::PATCH,
            HttpMethod::Head => MethodFilter::HEAD,
            HttpMethod::Options => MethodFilter::OPTIONS,
            HttpMethod::Trace => MethodFilter::TRACE,
        };
        match self.routes.iter_mut().find(|(path, _)| *path == op.path) {
            Some((_, methods)) => *methods = std::mem::take(methods).on(filter, handler),
            None => self.routes.push((op.path, on(filter, handler))),
        }
        self.ops.push(op);
        self
    }

    fn into_router(self) -> Router<Arc<AppState>> {
        self.routes
            .into_iter()
            .fold(Router::new(), |router, (path, methods)| {
                router.route(path, methods)
            })
    }
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
