//! Google Gemini `generateContent` (generativelanguage v1beta): requests, responses, SSE streams,
//! `:countTokens` and the models list, translated to and from the canonical form.
//!
//! The model and the stream flag live in the URL (`models/{model}:generateContent`,
//! `:streamGenerateContent?alt=sse`), so [`decode_request`] leaves `model` empty and `stream` false
//! and [`encode_request`] never writes them; the gateway owns the URL.
//!
//! Decoders read both spellings Google's JSON parser accepts (`systemInstruction` and
//! `system_instruction`), treat `null` as absent and skip part kinds they do not know.
//!
//! Tool-call ids: Gemini function calls usually have none. Decoders mint them with
//! [`mint_tool_id`](crate::canonical::mint_tool_id) (response id, or `"contents"` for request
//! history, plus the call's position) and pair a `functionResponse` without an id with the first
//! unanswered call of the same name.
//!
//! Thought signatures: a call's `thought_signature` (or one carried inside its id by
//! [`embed_thought_signature`](crate::canonical::embed_thought_signature)) goes back as the
//! part's `thoughtSignature`. Toward Gemini 3+, a model turn whose calls have no signature at all
//! (they came from another model) gets Google's documented `skip_thought_signature_validator` on
//! its first call, which Gemini 3 requires.
//!
//! # Not carried
//! Toward Gemini (encoders):
//! - `functionCall.id` / `functionResponse.id` in upstream requests: some Gemini endpoints reject
//!   the field (`Unknown name "id"`); Gemini pairs results with calls by name and order.
//! - `Thinking` and `RedactedThinking` parts in request history: their signatures come from other
//!   dialects (Anthropic) and Gemini cannot validate them; Gemini also ignores thought text in
//!   history. Gemini's own signatures travel on function-call and text parts, which are kept.
//! - `cache_control` on system blocks and text parts; image `detail`.
//! - `parallel_tool_calls`, `Tool::strict`, `user`.
//! - The `name` and `strict` of a JSON-schema response format (Gemini has a bare schema).
//! - Images inside tool results become `inlineData`/`fileData` parts right after the
//!   `functionResponse` (not multimodal function responses); several text parts of one result
//!   are joined with newlines into `response.result` (or `response.error`).
//! - A `fileData` part's MIME type is guessed from the URL's extension (default `image/jpeg`).
//! - `Effort::Xhigh` becomes `thinkingLevel: HIGH` and `Effort::None` becomes `MINIMAL` for
//!   Gemini 3+ models (which take levels and cannot switch thinking off); other models get
//!   `thinkingBudget` from the effort table.
//! - Stop reasons: `EndTurn`, `StopSequence` and `ToolUse` are all `STOP`; `ContentFilter` is
//!   `SAFETY`; an `Other` name that is not an upper-case Gemini reason is `OTHER`.
//! - Usage: `cache_write_tokens` (Gemini has no field for it).
//! - In-stream errors say `"code": 500` (the real status line went out with the first chunk);
//!   the error kind survives in `status`.
//!
//! From Gemini (decoders):
//! - Tools other than `functionDeclarations` (`googleSearch`, `codeExecution`, `urlContext`, …),
//!   `safetySettings`, `cachedContent`, `labels`, `candidateCount` (only the first candidate is
//!   read), `presencePenalty`, `frequencyPenalty`, `responseLogprobs`, `responseModalities`,
//!   `speechConfig`, `mediaResolution`.
//! - `allowedFunctionNames` with mode `ANY` and more than one name (becomes `Required`); mode
//!   `VALIDATED` becomes `Auto`.
//! - `responseMimeType` other than `application/json` / `text/plain` (e.g. `text/x.enum`).
//! - OpenAPI-only schema keys: `responseSchema` and `parameters` are converted to JSON Schema
//!   (lower-case `type`, `nullable` → `"null"` in `type`), and `propertyOrdering` is dropped.
//! - Parts `executableCode`, `codeExecutionResult`, `videoMetadata`; `inlineData` of any MIME type
//!   becomes an image part with that media type; the declared MIME type of `fileData`.
//! - Response metadata: `safetyRatings`, `citationMetadata`, `groundingMetadata`, `avgLogprobs`,
//!   `promptFeedback` (except `blockReason`, which becomes `ContentFilter`);
//!   `toolUsePromptTokenCount`. Gemini has no creation time: `created` is 0.
//! - Streams: image parts (the canonical stream has no image blocks).

mod parts;
mod request;
mod response;
mod stream;

use serde_json::{Map, Value};

use crate::error::{ErrorBody, ErrorKind};

pub use request::{count_tokens_request, decode_request, encode_request};
pub use response::{
    count_tokens_response, decode_response, encode_response, generation_methods, model_info,
    models_list,
};
pub use stream::{StreamDecoder, StreamEncoder};

/// What the client-side encoders need beyond the canonical values.
#[derive(Debug, Clone, Default)]
pub struct EncodeOptions {
    /// The model name to show the client as `modelVersion` (the one it asked for); the
    /// canonical model is used when empty.
    pub model: String,
}

/// A field by its camelCase name, or by the snake_case spelling Google's JSON parser also
/// accepts; `null` counts as absent.
fn field<'a>(obj: &'a Map<String, Value>, camel: &str) -> Option<&'a Value> {
    let found = obj.get(camel).or_else(|| {
        if camel.bytes().any(|b| b.is_ascii_uppercase()) {
            obj.get(&snake_case(camel))
        } else {
            None
        }
    });
    found.filter(|v| !v.is_null())
}

fn snake_case(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn field_str<'a>(obj: &'a Map<String, Value>, camel: &str) -> Option<&'a str> {
    field(obj, camel).and_then(Value::as_str)
}

/// A client's request is at fault.
fn invalid(param: &str, message: impl Into<String>) -> ErrorBody {
    ErrorBody::new(ErrorKind::InvalidRequest, message).with_param(param)
}

/// A Google RPC error object (`{"code","message","status"}`) as an [`ErrorBody`].
fn google_error(err: &Value) -> ErrorBody {
    let message = err
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("Gemini reported an error without a message");
    let status = err.get("status").and_then(Value::as_str);
    let kind = status
        .and_then(kind_from_google_status)
        .or_else(|| {
            err.get("code")
                .and_then(Value::as_u64)
                .and_then(|c| u16::try_from(c).ok())
                .map(ErrorKind::from_status)
        })
        .unwrap_or(ErrorKind::Upstream);
    let mut body = ErrorBody::new(kind, message);
    body.code = status.map(String::from);
    body
}

fn kind_from_google_status(status: &str) -> Option<ErrorKind> {
    Some(match status {
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => ErrorKind::InvalidRequest,
        "UNAUTHENTICATED" => ErrorKind::Authentication,
        "PERMISSION_DENIED" => ErrorKind::PermissionDenied,
        "NOT_FOUND" => ErrorKind::NotFound,
        "RESOURCE_EXHAUSTED" => ErrorKind::RateLimited,
        "UNAVAILABLE" => ErrorKind::Overloaded,
        "DEADLINE_EXCEEDED" => ErrorKind::Timeout,
        "INTERNAL" | "UNKNOWN" => ErrorKind::Upstream,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_are_found_in_either_spelling() {
        let v = json!({"system_instruction": 1, "generationConfig": 2, "tools": null});
        let obj = v.as_object().unwrap();
        assert_eq!(field(obj, "systemInstruction"), Some(&json!(1)));
        assert_eq!(field(obj, "generationConfig"), Some(&json!(2)));
        assert_eq!(field(obj, "tools"), None);
        assert_eq!(snake_case("maxOutputTokens"), "max_output_tokens");
    }

    #[test]
    fn google_errors_keep_their_kind() {
        let e =
            google_error(&json!({"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}));
        assert_eq!(e.kind, ErrorKind::RateLimited);
        assert_eq!(e.code.as_deref(), Some("RESOURCE_EXHAUSTED"));
        let e = google_error(&json!({"code": 404, "message": "no such model"}));
        assert_eq!(e.kind, ErrorKind::NotFound);
    }
}
