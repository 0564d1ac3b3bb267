//! What went wrong, in words every dialect can render.
//!
//! This module decides error *bodies*; which HTTP status carries them is the server's call.

use serde::Serialize;

/// The class of an error, independent of any dialect's spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// An error as a client will see it.
#[derive(Debug, Clone, PartialEq, Eq)]
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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
