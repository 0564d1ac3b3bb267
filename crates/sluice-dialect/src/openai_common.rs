//! What the two OpenAI dialects (Chat Completions and Responses) share: how request
//! validation errors read, and how a tool-call id shown to a client carries a Gemini thought
//! signature.

use crate::canonical::embed_thought_signature;
use crate::error::{ErrorBody, ErrorKind};

/// A required request field is absent (OpenAI's wording and code).
pub(crate) fn missing(param: &str) -> ErrorBody {
    ErrorBody::new(
        ErrorKind::InvalidRequest,
        format!("Missing required parameter: '{param}'."),
    )
    .with_param(param)
    .with_code("missing_required_parameter")
}

/// A request field has the wrong type (OpenAI's wording and code).
pub(crate) fn invalid(param: &str, expected: &str) -> ErrorBody {
    ErrorBody::new(
        ErrorKind::InvalidRequest,
        format!("Invalid type for '{param}': expected {expected}."),
    )
    .with_param(param)
    .with_code("invalid_type")
}

/// The tool-call id a client sees: Gemini's thought signature rides inside it.
pub(crate) fn client_tool_id(id: &str, thought_signature: Option<&str>) -> String {
    match thought_signature {
        Some(sig) => embed_thought_signature(id, sig),
        None => id.to_string(),
    }
}
