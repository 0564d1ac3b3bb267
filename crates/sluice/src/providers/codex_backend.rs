//! The ChatGPT Codex backend (`https://chatgpt.com/backend-api/codex`, `oauth.codex.base-url`):
//! OpenAI Responses as the Codex CLI speaks it with a ChatGPT account's OAuth token (token files
//! of type `codex`, `sluice login codex`). Research `oauth.md` §3.5.
//!
//! - Headers: `chatgpt-account-id` (the id_token's `chatgpt_account_id` claim, put among the
//!   provider's headers by `auth_files`), `originator: codex_cli_rs`, Codex's `User-Agent`, a
//!   `session_id` (the request's `prompt_cache_key` when it has one, so the backend's prompt
//!   cache follows the conversation), `Accept: text/event-stream`.
//! - Body: `stream: true` and `store: false` always, `instructions` (`""` when absent), `include`
//!   with `reasoning.encrypted_content`, a string `input` as one user message, `system` input
//!   messages as `developer` ones; the parameters the backend refuses are dropped
//!   ([`UNSUPPORTED`]). Everything else passes as the client (or the translation) wrote it.
//! - It only streams: a client that asked for one answer gets the stream folded into it
//!   (`Provider::forces_stream`, `routing/failover.rs`).

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use serde_json::Value;
use sluice_dialect::json_edit::{Edit, ObjectSpans};

/// Fields the backend refuses with `400 Unsupported parameter` (or, for the stateless backend,
/// cannot honour).
const UNSUPPORTED: &[&str] = &[
    "max_output_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "truncation",
    "user",
    "previous_response_id",
    "safety_identifier",
    "prompt_cache_retention",
    "stream_options",
];

const ENCRYPTED_REASONING: &str = "reasoning.encrypted_content";
const ORIGINATOR: &str = "codex_cli_rs";
const USER_AGENT: &str = "codex_cli_rs/0.63.0 (Linux; x86_64) sluice";

/// The body the backend accepts, from a Responses request body.
pub fn body(body: &[u8]) -> Result<Bytes, String> {
    let spans = ObjectSpans::parse_bytes(body).map_err(|e| e.to_string())?;
    let mut edits = vec![
        Edit::Replace {
            key: "stream".into(),
            json: "true".into(),
        },
        Edit::Replace {
            key: "store".into(),
            json: "false".into(),
        },
    ];
    let raw = |key: &str| {
        spans
            .raw(key)
            .and_then(|raw| serde_json::from_str::<Value>(raw).ok())
    };
    if !raw("instructions").is_some_and(|v| v.is_string()) {
        edits.push(Edit::set_string("instructions", ""));
    }
    let mut include: Vec<Value> = match raw("include") {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    };
    if !include.iter().any(|i| i == ENCRYPTED_REASONING) {
        include.push(Value::from(ENCRYPTED_REASONING));
        edits.push(Edit::Replace {
            key: "include".into(),
            json: Value::Array(include).to_string(),
        });
    }
    match raw("input") {
        Some(Value::String(text)) => edits.push(Edit::Replace {
            key: "input".into(),
            json: serde_json::json!([{"type": "message", "role": "user",
                "content": [{"type": "input_text", "text": text}]}])
            .to_string(),
        }),
        Some(Value::Array(mut items)) => {
            let mut changed = false;
            for item in &mut items {
                if item.get("role").and_then(Value::as_str) == Some("system") {
                    item["role"] = Value::from("developer");
                    changed = true;
                }
            }
            if changed {
                edits.push(Edit::Replace {
                    key: "input".into(),
                    json: Value::Array(items).to_string(),
                });
            }
        }
        _ => {}
    }
    for key in UNSUPPORTED {
        if spans.get(key).is_some() {
            edits.push(Edit::Remove { key: (*key).into() });
        }
    }
    if spans
        .raw("service_tier")
        .is_some_and(|t| t != "\"priority\"")
    {
        edits.push(Edit::Remove {
            key: "service_tier".into(),
        });
    }
    Ok(Bytes::from(spans.apply(&edits)))
}

/// The headers the backend expects besides the credential and the account id.
pub fn headers(headers: &mut HeaderMap, body: &[u8]) {
    headers.insert(
        http::header::ACCEPT,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert("originator", HeaderValue::from_static(ORIGINATOR));
    headers.insert(
        http::header::USER_AGENT,
        HeaderValue::from_static(USER_AGENT),
    );
    let session = ObjectSpans::parse_bytes(body)
        .ok()
        .and_then(|spans| spans.raw("prompt_cache_key").map(String::from))
        .and_then(|raw| serde_json::from_str::<String>(&raw).ok())
        .and_then(|key| HeaderValue::from_str(&key).ok())
        .unwrap_or_else(|| {
            HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
                .unwrap_or(HeaderValue::from_static("sluice"))
        });
    headers.insert("session_id", session);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn edited(input: &str) -> Value {
        serde_json::from_slice(&body(input.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn the_backend_gets_the_fields_it_requires_and_none_it_refuses() {
        let out = edited(
            r#"{"model":"gpt-5-codex","input":"hi","stream":false,"store":true,"max_output_tokens":9,"temperature":1,"metadata":{"a":1}}"#,
        );
        assert_eq!(out["stream"], true);
        assert_eq!(out["store"], false);
        assert_eq!(out["instructions"], "");
        assert_eq!(out["include"], serde_json::json!([ENCRYPTED_REASONING]));
        assert_eq!(out["input"][0]["content"][0]["text"], "hi");
        assert!(out.get("max_output_tokens").is_none());
        assert!(out.get("temperature").is_none());
        assert_eq!(out["metadata"]["a"], 1, "other fields pass");
    }

    #[test]
    fn instructions_and_includes_of_the_client_are_kept_and_system_becomes_developer() {
        let out = edited(
            r#"{"model":"m","instructions":"be brief","include":["x"],"input":[{"role":"system","content":"s"},{"role":"user","content":"u"}]}"#,
        );
        assert_eq!(out["instructions"], "be brief");
        assert_eq!(
            out["include"],
            serde_json::json!(["x", ENCRYPTED_REASONING])
        );
        assert_eq!(out["input"][0]["role"], "developer");
        assert_eq!(out["input"][1]["role"], "user");
    }
}
