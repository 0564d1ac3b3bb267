//! `GenerateContentResponse` bodies ↔ canonical [`Response`]s; usage, finish reasons,
//! `:countTokens` answers and the models list.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::parts::{CallLedger, PartEncoding, decode_parts, encode_part};
use super::{field, field_str, google_error};
use crate::canonical::{Part, Response, StopReason, mint_tool_id};
use crate::capability::{Capabilities, Capability};
use crate::error::{ErrorBody, ErrorKind};
use crate::usage::TokenUsage;

/// Upstream side: a complete `generateContent` response body → canonical. An `{"error":…}` body
/// becomes `Err`.
pub fn decode_response(body: &[u8]) -> Result<Response, ErrorBody> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ErrorBody::new(
            ErrorKind::Upstream,
            format!("Gemini sent a response that is not JSON: {e}"),
        )
    })?;
    let Some(obj) = value.as_object() else {
        return Err(ErrorBody::new(
            ErrorKind::Upstream,
            "Gemini sent a response that is not a JSON object.",
        ));
    };
    if let Some(err) = field(obj, "error") {
        return Err(google_error(err));
    }
    let id = response_id(obj, body);
    let mut parts = Vec::new();
    let mut stop_reason = None;
    if let Some(candidate) = first_candidate(obj) {
        if let Some(raw) = candidate
            .get("content")
            .and_then(Value::as_object)
            .and_then(|c| field(c, "parts"))
            .and_then(Value::as_array)
        {
            let mut ledger = CallLedger::new(id.clone());
            parts = decode_parts(raw, "candidates[0].content.parts", &mut ledger, true).map_err(
                |mut e| {
                    e.kind = ErrorKind::Upstream;
                    e.message = format!("Gemini sent an invalid response: {}", e.message);
                    e
                },
            )?;
        }
        let has_calls = parts.iter().any(|p| matches!(p, Part::ToolCall { .. }));
        stop_reason = field_str(candidate, "finishReason").map(|r| stop_reason_from(r, has_calls));
    } else if prompt_blocked(obj) {
        stop_reason = Some(StopReason::ContentFilter);
    }
    Ok(Response {
        id,
        model: field_str(obj, "modelVersion")
            .unwrap_or_default()
            .to_string(),
        parts,
        stop_reason,
        usage: field(obj, "usageMetadata")
            .map(usage_from)
            .unwrap_or_default(),
        created: 0,
    })
}

/// The response's `responseId`, else one derived from the body (deterministic, so minted tool
/// ids are too).
pub(super) fn response_id(obj: &Map<String, Value>, raw: &[u8]) -> String {
    match field_str(obj, "responseId") {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => mint_tool_id(&String::from_utf8_lossy(raw), 0).replacen("call_", "resp_", 1),
    }
}

/// The candidate Sluice reads: the one with index 0 (absent means 0).
pub(super) fn first_candidate(obj: &Map<String, Value>) -> Option<&Map<String, Value>> {
    field(obj, "candidates")?
        .as_array()?
        .iter()
        .filter_map(Value::as_object)
        .find(|c| field(c, "index").and_then(Value::as_u64).unwrap_or(0) == 0)
}

/// `promptFeedback.blockReason` is set: the prompt was refused and there are no candidates.
pub(super) fn prompt_blocked(obj: &Map<String, Value>) -> bool {
    field(obj, "promptFeedback")
        .and_then(Value::as_object)
        .and_then(|f| field_str(f, "blockReason"))
        .is_some_and(|r| r != "BLOCK_REASON_UNSPECIFIED")
}

/// A Gemini `finishReason`; `STOP` with function calls in the candidate means tool use.
pub(super) fn stop_reason_from(reason: &str, has_calls: bool) -> StopReason {
    match reason {
        "STOP" if has_calls => StopReason::ToolUse,
        "STOP" => StopReason::EndTurn,
        "MAX_TOKENS" => StopReason::MaxTokens,
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" => {
            StopReason::ContentFilter
        }
        r if r.starts_with("IMAGE_") => StopReason::ContentFilter,
        other => StopReason::Other(other.to_string()),
    }
}

pub(super) fn finish_reason_for(reason: &StopReason) -> String {
    match reason {
        StopReason::EndTurn | StopReason::StopSequence | StopReason::ToolUse => "STOP".into(),
        StopReason::MaxTokens => "MAX_TOKENS".into(),
        StopReason::ContentFilter => "SAFETY".into(),
        // Gemini's own reasons (MALFORMED_FUNCTION_CALL, …) go back as they came.
        StopReason::Other(name)
            if !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') =>
        {
            name.clone()
        }
        StopReason::Other(_) => "OTHER".into(),
    }
}

/// `usageMetadata` → canonical usage: output counts candidates and thoughts.
pub(super) fn usage_from(meta: &Value) -> TokenUsage {
    let Some(meta) = meta.as_object() else {
        return TokenUsage::default();
    };
    let count = |key: &str| field(meta, key).and_then(Value::as_u64).unwrap_or(0);
    let thoughts = count("thoughtsTokenCount");
    TokenUsage {
        input_tokens: count("promptTokenCount"),
        output_tokens: count("candidatesTokenCount") + thoughts,
        cache_read_tokens: count("cachedContentTokenCount"),
        cache_write_tokens: 0,
        reasoning_tokens: thoughts,
    }
}

/// Canonical usage → `usageMetadata` (`candidatesTokenCount` excludes thoughts).
pub(super) fn usage_metadata(usage: &TokenUsage) -> Value {
    let mut meta = json!({
        "promptTokenCount": usage.input_tokens,
        "candidatesTokenCount": usage.output_tokens.saturating_sub(usage.reasoning_tokens),
        "totalTokenCount": usage.total(),
    });
    if usage.reasoning_tokens > 0 {
        meta["thoughtsTokenCount"] = json!(usage.reasoning_tokens);
    }
    if usage.cache_read_tokens > 0 {
        meta["cachedContentTokenCount"] = json!(usage.cache_read_tokens);
    }
    meta
}

/// Client side: canonical → the `generateContent` response body a Gemini client expects.
pub fn encode_response(resp: &Response) -> Value {
    let names = HashMap::new();
    let how = PartEncoding {
        ids: true,
        thinking: true,
        names: &names,
    };
    let mut parts = Vec::with_capacity(resp.parts.len());
    for p in &resp.parts {
        encode_part(p, &how, &mut parts);
    }
    let mut candidate = json!({
        "content": { "role": "model", "parts": parts },
        "index": 0,
    });
    if let Some(reason) = &resp.stop_reason {
        candidate["finishReason"] = json!(finish_reason_for(reason));
    }
    json!({
        "candidates": [candidate],
        "usageMetadata": usage_metadata(&resp.usage),
        "modelVersion": model_version(&resp.model),
        "responseId": resp.id,
    })
}

/// A model name as Gemini writes `modelVersion`: without the `models/` prefix.
pub(super) fn model_version(model: &str) -> &str {
    model.strip_prefix("models/").unwrap_or(model)
}

/// Client side: the `:countTokens` answer.
pub fn count_tokens_response(total: u64) -> Value {
    json!({ "totalTokens": total })
}

/// Client side: the `GET /v1beta/models` body for (model id, display name, capabilities).
pub fn models_list(models: &[(String, String, Capabilities)]) -> Value {
    let models: Vec<Value> = models
        .iter()
        .map(|(id, display_name, capabilities)| model_info(id, display_name, *capabilities))
        .collect();
    json!({ "models": models })
}

/// One entry of Gemini's model list; `models.get` answers with one. Sluice does not know each
/// upstream's limits; the token limits shown are Gemini 2.5's. `supportedGenerationMethods`
/// follows what the model can do (`generateContent` for chat, `embedContent` for embedding).
pub fn model_info(id: &str, display_name: &str, capabilities: Capabilities) -> Value {
    let id = id.strip_prefix("models/").unwrap_or(id);
    json!({
        "name": format!("models/{id}"),
        "baseModelId": id,
        "version": "001",
        "displayName": display_name,
        "inputTokenLimit": 1_048_576,
        "outputTokenLimit": 65_536,
        "supportedGenerationMethods": generation_methods(capabilities),
    })
}

/// The Gemini methods a model with these capabilities answers.
pub fn generation_methods(capabilities: Capabilities) -> Vec<&'static str> {
    let mut methods = Vec::new();
    if capabilities.has(Capability::Chat) {
        methods.extend(["generateContent", "streamGenerateContent"]);
    }
    if capabilities.has(Capability::Embedding) {
        methods.extend(["embedContent", "batchEmbedContents"]);
    }
    if capabilities.has(Capability::Chat) || capabilities.has(Capability::Embedding) {
        methods.push("countTokens");
    }
    methods
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn finish_reasons_map_both_ways() {
        assert_eq!(stop_reason_from("STOP", false), StopReason::EndTurn);
        assert_eq!(stop_reason_from("STOP", true), StopReason::ToolUse);
        assert_eq!(stop_reason_from("MAX_TOKENS", true), StopReason::MaxTokens);
        assert_eq!(
            stop_reason_from("IMAGE_SAFETY", false),
            StopReason::ContentFilter
        );
        assert_eq!(stop_reason_from("SPII", false), StopReason::ContentFilter);
        assert_eq!(
            stop_reason_from("MALFORMED_FUNCTION_CALL", false),
            StopReason::Other("MALFORMED_FUNCTION_CALL".into())
        );
        assert_eq!(
            finish_reason_for(&StopReason::Other("MALFORMED_FUNCTION_CALL".into())),
            "MALFORMED_FUNCTION_CALL"
        );
        assert_eq!(
            finish_reason_for(&StopReason::Other("pause_turn".into())),
            "OTHER"
        );
        assert_eq!(finish_reason_for(&StopReason::ToolUse), "STOP");
    }

    #[test]
    fn usage_counts_thoughts_as_output() {
        let meta = json!({"promptTokenCount": 10, "candidatesTokenCount": 5, "thoughtsTokenCount": 7, "cachedContentTokenCount": 4, "totalTokenCount": 22});
        let usage = usage_from(&meta);
        assert_eq!(
            usage,
            TokenUsage {
                input_tokens: 10,
                output_tokens: 12,
                cache_read_tokens: 4,
                cache_write_tokens: 0,
                reasoning_tokens: 7,
            }
        );
        assert_eq!(usage_metadata(&usage), meta);
    }

    #[test]
    fn models_list_names_models_like_gemini() {
        let v = models_list(&[(
            "models/gemini-x".into(),
            "Gemini X".into(),
            Capabilities::only(Capability::Chat),
        )]);
        assert_eq!(v["models"][0]["name"], "models/gemini-x");
        assert_eq!(v["models"][0]["displayName"], "Gemini X");
        assert_eq!(
            v["models"][0]["supportedGenerationMethods"],
            json!(["generateContent", "streamGenerateContent", "countTokens"])
        );
        let v = model_info(
            "gemini-embedding-001",
            "x",
            Capabilities::only(Capability::Embedding),
        );
        assert_eq!(
            v["supportedGenerationMethods"],
            json!(["embedContent", "batchEmbedContents", "countTokens"])
        );
    }
}
