//! What went wrong, in words every dialect can render.
//!
//! This module decides error *bodies*; which HTTP status carries them is the server's call.

use serde::{Deserialize, Serialize};

/// The class of an error, independent of any dialect's spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request is malformed or asks for something invalid.
    InvalidRequest,
    /// No credentials, or wrong ones.
    Authentication,
    /// Valid credentials that may not do this.
    PermissionDenied,
    /// The thing asked for (usually a model) does not exist here.
    NotFound,
    /// The request body is larger than allowed.
    RequestTooLarge,
    /// A rate limit or quota was hit.
    RateLimited,
    /// The gateway or upstream is overloaded.
    Overloaded,
    /// The upstream failed or could not be reached.
    Upstream,
    /// The upstream did not answer in time.
    Timeout,
    /// A fault inside the gateway.
    Internal,
}

impl ErrorKind {
    /// OpenAI's `error.type` spelling.
    pub fn openai_type(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest
            | ErrorKind::Authentication
            | ErrorKind::NotFound
            | ErrorKind::RequestTooLarge => "invalid_request_error",
            ErrorKind::PermissionDenied => "permission_error",
            ErrorKind::RateLimited => "rate_limit_exceeded",
            ErrorKind::Overloaded => "overloaded_error",
            ErrorKind::Upstream => "upstream_error",
            ErrorKind::Timeout => "timeout_error",
            ErrorKind::Internal => "server_error",
        }
    }
}

impl ErrorKind {
    /// Anthropic's `error.type` spelling.
    pub fn anthropic_type(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "invalid_request_error",
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::PermissionDenied => "permission_error",
            ErrorKind::NotFound => "not_found_error",
            ErrorKind::RequestTooLarge => "request_too_large",
            ErrorKind::RateLimited => "rate_limit_error",
            ErrorKind::Overloaded => "overloaded_error",
            ErrorKind::Timeout => "timeout_error",
            ErrorKind::Upstream | ErrorKind::Internal => "api_error",
        }
    }

    /// Gemini's (Google RPC) `error.status` spelling.
    pub fn gemini_status(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest | ErrorKind::RequestTooLarge => "INVALID_ARGUMENT",
            ErrorKind::Authentication => "UNAUTHENTICATED",
            ErrorKind::PermissionDenied => "PERMISSION_DENIED",
            ErrorKind::NotFound => "NOT_FOUND",
            ErrorKind::RateLimited => "RESOURCE_EXHAUSTED",
            ErrorKind::Overloaded | ErrorKind::Upstream => "UNAVAILABLE",
            ErrorKind::Timeout => "DEADLINE_EXCEEDED",
            ErrorKind::Internal => "INTERNAL",
        }
    }

    /// The HTTP status Google sends with this kind's `error.status` name (for errors whose
    /// status was never sent, such as an error event inside a stream).
    pub fn gemini_http_status(self) -> u16 {
        match self {
            ErrorKind::InvalidRequest | ErrorKind::RequestTooLarge => 400,
            ErrorKind::Authentication => 401,
            ErrorKind::PermissionDenied => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::RateLimited => 429,
            ErrorKind::Overloaded | ErrorKind::Upstream => 503,
            ErrorKind::Timeout => 504,
            ErrorKind::Internal => 500,
        }
    }

    /// The kind an upstream HTTP status implies, when its body says nothing better.
    pub fn from_status(status: u16) -> ErrorKind {
        match status {
            401 => ErrorKind::Authentication,
            403 => ErrorKind::PermissionDenied,
            404 => ErrorKind::NotFound,
            413 => ErrorKind::RequestTooLarge,
            429 => ErrorKind::RateLimited,
            504 => ErrorKind::Timeout,
            503 | 529 => ErrorKind::Overloaded,
            400..=499 => ErrorKind::InvalidRequest,
            _ => ErrorKind::Upstream,
        }
    }
}

/// An error as a client will see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub kind: ErrorKind,
    pub message: String,
    /// The request field at fault, if one is.
    pub param: Option<String>,
    /// A stable machine-readable code, if there is one.
    pub code: Option<String>,
}

impl ErrorBody {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            param: None,
            code: None,
        }
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// `{"error":{"message","type","param","code"}}`, all four keys present.
    pub fn to_openai_json(&self) -> String {
        #[derive(Serialize)]
        struct Inner<'a> {
            message: &'a str,
            #[serde(rename = "type")]
            kind: &'a str,
            param: Option<&'a str>,
            code: Option<&'a str>,
        }
        #[derive(Serialize)]
        struct Outer<'a> {
            error: Inner<'a>,
        }
        let body = Outer {
            error: Inner {
                message: &self.message,
                kind: self.kind.openai_type(),
                param: self.param.as_deref(),
                code: self.code.as_deref(),
            },
        };
        serde_json::to_string(&body).unwrap_or_else(|_| String::from(r#"{"error":{"message":"internal error","type":"server_error","param":null,"code":null}}"#))
    }
}

impl ErrorBody {
    /// Anthropic: `{"type":"error","error":{"type","message"}}`.
    pub fn to_anthropic_json(&self) -> String {
        serde_json::json!({
            "type": "error",
            "error": {"type": self.kind.anthropic_type(), "message": self.message},
        })
        .to_string()
    }

    /// Gemini: `{"error":{"code","message","status"}}`, `code` being the HTTP status and
    /// `status` Google's name for it (`500` → `INTERNAL`, `503` → `UNAVAILABLE`, `429` →
    /// `RESOURCE_EXHAUSTED`…); statuses Google never sends (`413`, `502`, `529`) are named by the
    /// error's kind.
    pub fn to_gemini_json(&self, http_status: u16) -> String {
        serde_json::json!({
            "error": {"code": http_status, "message": self.message, "status": google_status(http_status, self.kind)},
        })
        .to_string()
    }

    /// Reads any of the three shapes (OpenAI, Anthropic, Gemini) from an upstream error body.
    pub fn parse_any(status: u16, body: &[u8]) -> Option<ErrorBody> {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        let err = v.get("error")?;
        let message = err.get("message")?.as_str()?.to_string();
        let kind = err
            .get("type")
            .and_then(|t| t.as_str())
            .and_then(kind_from_type)
            .unwrap_or_else(|| ErrorKind::from_status(status));
        let mut body = ErrorBody::new(kind, message);
        body.param = err.get("param").and_then(|p| p.as_str()).map(String::from);
        body.code = match err.get("code") {
            Some(serde_json::Value::String(c)) => Some(c.clone()),
            _ => err.get("status").and_then(|s| s.as_str()).map(String::from),
        };
        Some(body)
    }
}

/// Google's RPC status name for an HTTP status (google.rpc.Code's HTTP mapping).
fn google_status(http_status: u16, kind: ErrorKind) -> &'static str {
    match http_status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        500 => "INTERNAL",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => kind.gemini_status(),
    }
}

fn kind_from_type(t: &str) -> Option<ErrorKind> {
    Some(match t {
        "invalid_request_error" => return None, // OpenAI uses it for 401/404 too: trust the status
        "authentication_error" => ErrorKind::Authentication,
        "permission_error" => ErrorKind::PermissionDenied,
        "not_found_error" => ErrorKind::NotFound,
        "request_too_large" => ErrorKind::RequestTooLarge,
        "rate_limit_error" | "rate_limit_exceeded" | "requests" | "tokens" => {
            ErrorKind::RateLimited
        }
        "overloaded_error" => ErrorKind::Overloaded,
        "timeout_error" => ErrorKind::Timeout,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn three_shapes_and_back() {
        let body = ErrorBody::new(ErrorKind::Overloaded, "busy");
        let a: serde_json::Value = serde_json::from_str(&body.to_anthropic_json()).unwrap();
        assert_eq!(
            a,
            serde_json::json!({"type":"error","error":{"type":"overloaded_error","message":"busy"}})
        );
        let g: serde_json::Value = serde_json::from_str(&body.to_gemini_json(503)).unwrap();
        assert_eq!(
            g,
            serde_json::json!({"error":{"code":503,"message":"busy","status":"UNAVAILABLE"}})
        );
        for json in [
            body.to_anthropic_json(),
            body.to_gemini_json(503),
            body.to_openai_json(),
        ] {
            let back = ErrorBody::parse_any(529, json.as_bytes()).unwrap();
            assert_eq!(
                (back.kind, back.message.as_str()),
                (ErrorKind::Overloaded, "busy"),
                "{json}"
            );
        }
        let openai_401 = br#"{"error":{"message":"bad key","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
        let back = ErrorBody::parse_any(401, openai_401).unwrap();
        assert_eq!(
            (back.kind, back.code.as_deref()),
            (ErrorKind::Authentication, Some("invalid_api_key"))
        );
        assert!(ErrorBody::parse_any(500, b"<html>").is_none());
    }

    #[test]
    fn gemini_status_names_follow_the_http_status() {
        let status = |kind, code| {
            let v: serde_json::Value =
                serde_json::from_str(&ErrorBody::new(kind, "x").to_gemini_json(code)).unwrap();
            assert_eq!(v["error"]["code"], code);
            v["error"]["status"].as_str().unwrap().to_string()
        };
        assert_eq!(status(ErrorKind::Upstream, 500), "INTERNAL");
        assert_eq!(status(ErrorKind::Upstream, 503), "UNAVAILABLE");
        assert_eq!(status(ErrorKind::InvalidRequest, 429), "RESOURCE_EXHAUSTED");
        assert_eq!(status(ErrorKind::Internal, 503), "UNAVAILABLE");
        assert_eq!(status(ErrorKind::Upstream, 504), "DEADLINE_EXCEEDED");
        assert_eq!(status(ErrorKind::Overloaded, 529), "UNAVAILABLE");
        assert_eq!(status(ErrorKind::RequestTooLarge, 413), "INVALID_ARGUMENT");
        for kind in [
            ErrorKind::InvalidRequest,
            ErrorKind::Authentication,
            ErrorKind::PermissionDenied,
            ErrorKind::NotFound,
            ErrorKind::RateLimited,
            ErrorKind::Overloaded,
            ErrorKind::Timeout,
            ErrorKind::Internal,
        ] {
            assert_eq!(
                status(kind, kind.gemini_http_status()),
                kind.gemini_status(),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn openai_shape_has_all_four_keys() {
        let body =
            ErrorBody::new(ErrorKind::InvalidRequest, "missing field `model`").with_param("model");
        let v: serde_json::Value = serde_json::from_str(&body.to_openai_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error":{"message":"missing field `model`","type":"invalid_request_error","param":"model","code":null}})
        );
    }
}
