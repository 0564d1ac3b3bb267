//! The management API's errors and the one place they become responses: seed 003's
//! `{"error": "…"}` bodies, with an optional `message` saying more.

use axum::response::{IntoResponse, Response};
use http::StatusCode;

/// A management request that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagementError {
    pub status: StatusCode,
    /// Seed 003's fixed error string.
    pub error: String,
    /// Details for a person, when there are any.
    pub message: Option<String>,
}

impl ManagementError {
    fn new(status: StatusCode, error: impl Into<String>) -> Self {
        Self {
            status,
            error: error.into(),
            message: None,
        }
    }

    /// Adds details.
    pub fn because(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// 400 `invalid body`.
    pub fn invalid_body() -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid body")
    }

    /// 400 for a missing or malformed query parameter.
    pub fn bad_query(error: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error)
    }

    /// 401 `missing management key`.
    pub fn missing_key() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "missing management key")
    }

    /// 401 `invalid management key`.
    pub fn invalid_key() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid management key")
    }

    /// 403 `remote management disabled`.
    pub fn remote_disabled() -> Self {
        Self::new(StatusCode::FORBIDDEN, "remote management disabled")
    }

    /// 403: no management key configured, so nobody may manage.
    pub fn no_key_configured() -> Self {
        Self::new(StatusCode::FORBIDDEN, "management key not configured").because(
            "set remote-management-key in the config file (it is bcrypt-hashed at start) and restart or save the file",
        )
    }

    /// 403 for a banned source.
    pub fn banned(remaining: std::time::Duration) -> Self {
        let remaining = std::time::Duration::from_secs(remaining.as_secs().max(1));
        Self::new(
            StatusCode::FORBIDDEN,
            format!(
                "IP banned due to too many failed attempts. Try again in {}",
                humantime::format_duration(remaining)
            ),
        )
    }

    /// 404 `item not found`.
    pub fn item_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "item not found")
    }

    /// 404 `file not found`.
    pub fn file_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "file not found")
    }

    /// 404 for an unknown management path.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not found")
    }

    /// 405 for a known path with another method.
    pub fn method_not_allowed() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
    }

    /// 413 for an upload over the size limit.
    pub fn too_large(limit: usize) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "file too large")
            .because(format!("token files are at most {limit} bytes"))
    }

    /// 500 `failed to save config: …`.
    pub fn save_failed(detail: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to save config: {detail}"),
        )
    }

    /// 500 with these words.
    pub fn internal(what: &str) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, what)
    }

    /// 500 for a file operation in `auth-dir` that failed.
    pub fn io(what: &str, e: &std::io::Error) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{what}: {e}"))
    }
}

impl IntoResponse for ManagementError {
    fn into_response(self) -> Response {
        let body = match self.message {
            Some(message) => serde_json::json!({"error": self.error, "message": message}),
            None => serde_json::json!({"error": self.error}),
        };
        (self.status, axum::Json(body)).into_response()
    }
}

/// Seed 003's success body, `{"status":"ok"}`.
pub fn ok() -> Response {
    axum::Json(serde_json::json!({"status": "ok"})).into_response()
}
