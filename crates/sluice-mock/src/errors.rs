//! OpenAI-shape error responses: `{"error":{"message","type","param","code"}}`, all four keys
//! always present.

use axum::Json;
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

/// An error the fake OpenAI upstream answers with.
#[derive(Debug)]
pub(crate) struct OpenAiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
    param: Option<&'static str>,
    code: Option<&'static str>,
    retry_after: Option<String>,
}

const INVALID_REQUEST: &str = "invalid_request_error";

/// Qwen's words for an OAuth token after the free tier ended (QwenLM/qwen-code#3296).
pub const QWEN_FREE_TIER_ENDED: &str = "Qwen OAuth free tier quota exceeded: the Qwen OAuth free tier has been discontinued. Please switch to an Alibaba Cloud Coding Plan or a ModelStudio API key.";

impl OpenAiError {
    fn new(status: StatusCode, kind: &'static str, message: String) -> Self {
        Self {
            status,
            kind,
            message,
            param: None,
            code: None,
            retry_after: None,
        }
    }

    fn invalid_request(status: StatusCode, message: String) -> Self {
        Self::new(status, INVALID_REQUEST, message)
    }

    fn with_param(mut self, param: &'static str) -> Self {
        self.param = Some(param);
        self
    }

    fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// 401: no bearer token although keys are configured.
    pub(crate) fn missing_api_key() -> Self {
        Self::invalid_request(
            StatusCode::UNAUTHORIZED,
            "You didn't provide an API key. You need to provide your API key in an Authorization \
             header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
                .to_owned(),
        )
    }

    /// 429: Qwen's answer to an OAuth token since the free tier was discontinued.
    pub(crate) fn qwen_free_tier_ended() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "insufficient_quota",
            QWEN_FREE_TIER_ENDED.to_owned(),
        )
        .with_code("insufficient_quota")
    }

    /// 401: a bearer token that is not one of the configured keys.
    pub(crate) fn invalid_api_key(key: &str) -> Self {
        Self::invalid_request(
            StatusCode::UNAUTHORIZED,
            format!(
                "Incorrect API key provided: {}. You can find your API key at \
                 https://platform.openai.com/account/api-keys.",
                mask_key(key)
            ),
        )
        .with_code("invalid_api_key")
    }

    /// 400: the body is not JSON.
    pub(crate) fn invalid_json() -> Self {
        Self::invalid_request(
            StatusCode::BAD_REQUEST,
            "We could not parse the JSON body of your request. (HINT: This likely means you \
             aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, \
             but what was sent was not valid JSON.)"
                .to_owned(),
        )
    }

    /// 400: a required top-level parameter is absent.
    pub(crate) fn missing_parameter(param: &'static str) -> Self {
        Self::invalid_request(
            StatusCode::BAD_REQUEST,
            format!("Missing required parameter: '{param}'."),
        )
        .with_param(param)
        .with_code("missing_required_parameter")
    }

    /// 400: a parameter has the wrong JSON type.
    pub(crate) fn invalid_type(param: &'static str, expected: &str, got: &str) -> Self {
        Self::invalid_request(
            StatusCode::BAD_REQUEST,
            format!("Invalid type for '{param}': expected {expected}, but got {got} instead."),
        )
        .with_param(param)
        .with_code("invalid_type")
    }

    /// 400: a top-level field the endpoint does not take.
    pub(crate) fn unrecognized_argument(name: &str) -> Self {
        Self::invalid_request(
            StatusCode::BAD_REQUEST,
            format!("Unrecognized request argument supplied: {name}"),
        )
    }

    /// 400: a parameter with a value the endpoint does not accept.
    pub(crate) fn invalid_value(param: &'static str, message: &str) -> Self {
        Self::invalid_request(StatusCode::BAD_REQUEST, message.to_owned())
            .with_param(param)
            .with_code("invalid_value")
    }

    /// 413: an upload over the endpoint's size limit.
    pub(crate) fn too_large(limit: usize, got: usize) -> Self {
        Self::invalid_request(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Maximum content size limit ({limit}) exceeded ({got} bytes read)"),
        )
    }

    /// 400: `messages` is an empty array.
    pub(crate) fn empty_messages() -> Self {
        Self::invalid_request(
            StatusCode::BAD_REQUEST,
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got \
             an empty array instead."
                .to_owned(),
        )
        .with_param("messages")
        .with_code("empty_array")
    }

    /// 400 (Responses): `previous_response_id` names a response the mock never stored (it
    /// stores none).
    pub(crate) fn previous_response_not_found(id: &str) -> Self {
        Self::invalid_request(
            StatusCode::BAD_REQUEST,
            format!("Previous response with id '{id}' not found."),
        )
        .with_param("previous_response_id")
        .with_code("previous_response_not_found")
    }

    /// 400 (Responses): a `function_call_output` item whose `call_id` matches no
    /// `function_call` item of the input.
    pub(crate) fn orphan_function_call_output(call_id: &str) -> Self {
        Self::invalid_request(
            StatusCode::BAD_REQUEST,
            format!("No tool call found for function call output with call_id {call_id}."),
        )
        .with_param("input")
    }

    /// 400: an inline image whose data is not standard base64.
    pub(crate) fn invalid_image(path: &str) -> Self {
        Self::invalid_request(
            StatusCode::BAD_REQUEST,
            format!("Invalid '{path}': the image data is not valid base64."),
        )
        .with_code("invalid_image_url")
    }

    /// 404: the model is not among the configured ones.
    pub(crate) fn model_not_found(model: &str) -> Self {
        Self::invalid_request(
            StatusCode::NOT_FOUND,
            format!("The model `{model}` does not exist or you do not have access to it."),
        )
        .with_code("model_not_found")
    }

    /// 404 (`/v1/completions`): a chat model, which only `/v1/chat/completions` serves.
    pub(crate) fn chat_model_on_completions() -> Self {
        Self::invalid_request(
            StatusCode::NOT_FOUND,
            "This is a chat model and not supported in the v1/completions endpoint. Did you mean \
             to use v1/chat/completions?"
                .to_owned(),
        )
        .with_param("model")
    }

    /// 404 (`/v1/chat/completions`): a completions model (`gpt-3.5-turbo-instruct`), which
    /// only `/v1/completions` serves.
    pub(crate) fn completion_model_on_chat() -> Self {
        Self::invalid_request(
            StatusCode::NOT_FOUND,
            "This is not a chat model and thus not supported in the v1/chat/completions \
             endpoint. Did you mean to use v1/completions?"
                .to_owned(),
        )
        .with_param("model")
    }

    /// 404: no such endpoint.
    pub(crate) fn invalid_url(method: &Method, path: &str) -> Self {
        Self::invalid_request(
            StatusCode::NOT_FOUND,
            format!("Invalid URL ({method} {path})"),
        )
    }

    /// 405: the endpoint exists but not for this method.
    pub(crate) fn invalid_method(method: &Method, path: &str) -> Self {
        Self::invalid_request(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("Invalid method for URL ({method} {path})"),
        )
    }

    /// 500: the mock itself failed (a bug in the mock, not an injected fault).
    pub(crate) fn internal(detail: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            format!("sluice-mock failed to build its response: {detail}"),
        )
    }

    /// The error asked for by a `mock:status=NNN` directive, typed as OpenAI types that status.
    pub(crate) fn injected(status: StatusCode, retry_after: Option<String>) -> Self {
        let (kind, code, what) = match status.as_u16() {
            401 => (
                INVALID_REQUEST,
                Some("invalid_api_key"),
                "Incorrect API key provided",
            ),
            403 => (
                INVALID_REQUEST,
                None,
                "You have insufficient permissions for this operation",
            ),
            404 => (
                INVALID_REQUEST,
                None,
                "The requested resource was not found",
            ),
            // OpenAI types rate-limit errors by the exhausted limit: "requests" or "tokens".
            429 => (
                "requests",
                Some("rate_limit_exceeded"),
                "Rate limit reached for requests",
            ),
            503 => (
                "server_error",
                None,
                "The server is overloaded or not ready yet",
            ),
            500..=599 => (
                "server_error",
                None,
                "The server had an error while processing your request",
            ),
            _ => (INVALID_REQUEST, None, "The request was rejected"),
        };
        let mut error = Self::new(
            status,
            kind,
            format!(
                "{what} (injected by sluice-mock: mock:status={}).",
                status.as_u16()
            ),
        );
        error.code = code;
        error.retry_after = retry_after;
        error
    }
}

/// How OpenAI names a JSON value's type in `invalid_type` messages.
pub(crate) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Shows at most the first 3 and last 4 characters, and nothing of a short key.
pub(crate) fn mask_key(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() < 12 {
        return "***".to_owned();
    }
    let head: String = chars.iter().take(3).collect();
    let tail: String = chars.iter().skip(chars.len() - 4).collect();
    format!("{head}...{tail}")
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let body = Envelope {
            error: Body {
                message: &self.message,
                kind: self.kind,
                param: self.param,
                code: self.code,
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
    fn masking_never_reveals_the_whole_key() {
        assert_eq!(mask_key("sk-wrong-key-1234"), "sk-...1234");
        assert_eq!(mask_key("short-key"), "***");
        assert_eq!(mask_key(""), "***");
    }
}
