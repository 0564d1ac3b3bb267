//! OpenAI Chat Completions: what the gateway reads from requests, responses and stream chunks
//! on the passthrough path, and the edits it makes to them.

use std::sync::LazyLock;

use memchr::memmem::Finder;
use serde::Deserialize;

use crate::error::{ErrorBody, ErrorKind};
use crate::json_edit::{Edit, JsonEditError, ObjectSpans};
use crate::openai_common::{invalid, missing};
use crate::usage::TokenUsage;

/// A request read just far enough to route it: one parse, spans kept for byte-level edits.
#[derive(Debug)]
pub struct ChatRequest<'a> {
    spans: ObjectSpans<'a>,
    /// The `model` field as the client wrote it.
    pub model: String,
    /// `stream: true`.
    pub stream: bool,
    /// `stream_options.include_usage: true`.
    pub include_usage: bool,
}

impl<'a> ChatRequest<'a> {
    /// Reads and validates the fields the gateway relies on; everything else is left as bytes.
    pub fn parse(body: &'a [u8]) -> Result<Self, ErrorBody> {
        let spans = ObjectSpans::parse_bytes(body).map_err(|e| match e {
            JsonEditError::Malformed(detail) => ErrorBody::new(
                ErrorKind::InvalidRequest,
                format!("We could not parse the JSON body of your request: {detail}"),
            ),
            JsonEditError::NotAnObject => ErrorBody::new(
                ErrorKind::InvalidRequest,
                "The request body must be a JSON object.",
            ),
        })?;
        let model = match spans.get("model").map(|f| f.value.get()) {
            None | Some("null") => return Err(missing("model")),
            Some(raw) => match serde_json::from_str::<String>(raw) {
                Ok(m) if !m.trim().is_empty() => m,
                Ok(_) => return Err(invalid("model", "a non-empty string")),
                Err(_) => return Err(invalid("model", "a string")),
            },
        };
        match spans.get("messages").map(|f| f.value.get()) {
            None | Some("null") => return Err(missing("messages")),
            Some(raw) => match serde_json::from_str::<Vec<&serde_json::value::RawValue>>(raw) {
                Ok(items) if !items.is_empty() => {}
                Ok(_) => return Err(invalid("messages", "a non-empty array")),
                Err(_) => return Err(invalid("messages", "an array of messages")),
            },
        }
        let stream = match spans.raw("stream") {
            None | Some("null") => false,
            Some(raw) => {
                serde_json::from_str::<bool>(raw).map_err(|_| invalid("stream", "a boolean"))?
            }
        };
        let include_usage = match spans.raw("stream_options") {
            None | Some("null") => false,
            Some(raw) => serde_json::from_str::<StreamOptions>(raw)
                .map_err(|_| invalid("stream_options", "an object like {\"include_usage\": true}"))?
                .include_usage
                .unwrap_or(false),
        };
        Ok(Self {
            spans,
            model,
            stream,
            include_usage,
        })
    }

    /// The body to send upstream: the client's bytes with the model renamed (when it is an
    /// alias) and, for streams, `stream_options.include_usage` forced on so the gateway can
    /// account the request. `None` means the original bytes go out unchanged.
    pub fn upstream_body(&self, upstream_model: &str) -> Option<String> {
        let mut edits = Vec::with_capacity(2);
        if upstream_model != self.model {
            edits.push(Edit::set_string("model", upstream_model));
        }
        if self.stream && !self.include_usage {
            let json = match self.spans.raw("stream_options") {
                Some(raw) if raw != "null" => {
                    let mut opts: serde_json::Map<String, serde_json::Value> =
                        serde_json::from_str(raw).unwrap_or_default();
                    opts.insert("include_usage".into(), serde_json::Value::Bool(true));
                    serde_json::Value::Object(opts).to_string()
                }
                _ => String::from(r#"{"include_usage":true}"#),
            };
            edits.push(Edit::Replace {
                key: "stream_options".into(),
                json,
            });
        }
        if edits.is_empty() {
            None
        } else {
            Some(self.spans.apply(&edits))
        }
    }
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

/// OpenAI's usage object.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    pub completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct PromptDetails {
    #[serde(default)]
    pub cached_tokens: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct CompletionDetails {
    #[serde(default)]
    pub reasoning_tokens: Option<u64>,
}

impl From<Usage> for TokenUsage {
    fn from(u: Usage) -> Self {
        TokenUsage {
            input_tokens: u.prompt_tokens,
            output_tokens: u.completion_tokens,
            cache_read_tokens: u
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
            cache_write_tokens: 0,
            reasoning_tokens: u
                .completion_tokens_details
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
        }
    }
}

/// Reads `usage` from a complete (non-stream) response body without building the rest.
pub fn response_usage(body: &[u8]) -> Option<TokenUsage> {
    #[derive(Deserialize)]
    struct UsageOnly {
        usage: Option<Usage>,
    }
    serde_json::from_slice::<UsageOnly>(body)
        .ok()?
        .usage
        .map(TokenUsage::from)
}

/// What to do with one stream chunk on the passthrough path.
#[derive(Debug, PartialEq, Eq)]
pub enum ChunkAction {
    /// Forward the event unchanged.
    Forward,
    /// Forward this rewritten JSON instead.
    Rewrite(String),
    /// Do not forward (the usage-only chunk the client did not ask for).
    Drop,
}

/// The outcome of looking at one `data:` payload.
#[derive(Debug, PartialEq, Eq)]
pub struct ChunkInspection {
    pub action: ChunkAction,
    /// Usage carried by this chunk, if any.
    pub usage: Option<TokenUsage>,
    /// The chunk is an in-stream error object.
    pub is_error: bool,
}

/// Inspects a chunk's JSON. `strip_usage` is set when the gateway, not the client, asked for
/// usage: then usage fields are removed and a usage-only chunk is dropped. Chunks that do not
/// mention usage are not parsed at all.
pub fn inspect_chunk(data: &[u8], strip_usage: bool) -> ChunkInspection {
    static USAGE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"usage\""));
    static ERROR: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"error\""));
    const NULL_USAGE_TAIL: &[u8] = b",\"usage\":null}";

    let is_error = ERROR.find(data).is_some() && is_error_chunk(data);
    let Some(first_usage) = USAGE.find(data) else {
        return ChunkInspection {
            action: ChunkAction::Forward,
            usage: None,
            is_error,
        };
    };
    // Fast path for the common case: the chunk ends with the `"usage":null` the gateway caused.
    // Inside a JSON string a quote is escaped, so this byte sequence can only be a real key.
    if strip_usage
        && data.ends_with(NULL_USAGE_TAIL)
        && first_usage == data.len() - NULL_USAGE_TAIL.len() + 1
    {
        let kept = &data[..data.len() - NULL_USAGE_TAIL.len()];
        let mut json = String::with_capacity(kept.len() + 1);
        // Checked first: `from_utf8_lossy` walks valid text far slower than `from_utf8`.
        match std::str::from_utf8(kept) {
            Ok(text) => json.push_str(text),
            Err(_) => json.push_str(&String::from_utf8_lossy(kept)),
        }
        json.push('}');
        return ChunkInspection {
            action: ChunkAction::Rewrite(json),
            usage: None,
            is_error,
        };
    }
    let Ok(spans) = ObjectSpans::parse_bytes(data) else {
        return ChunkInspection {
            action: ChunkAction::Forward,
            usage: None,
            is_error,
        };
    };
    let usage = spans
        .raw("usage")
        .filter(|raw| *raw != "null")
        .and_then(|raw| serde_json::from_str::<Usage>(raw).ok())
        .map(TokenUsage::from);
    let action = if !strip_usage || spans.get("usage").is_none() {
        ChunkAction::Forward
    } else if usage.is_some() && spans.raw("choices").is_some_and(is_empty_array) {
        ChunkAction::Drop
    } else {
        ChunkAction::Rewrite(spans.apply(&[Edit::Remove {
            key: "usage".into(),
        }]))
    };
    ChunkInspection {
        action,
        usage,
        is_error,
    }
}

fn is_empty_array(raw: &str) -> bool {
    let inner = raw.trim();
    inner.starts_with('[') && inner.ends_with(']') && inner[1..inner.len() - 1].trim().is_empty()
}

fn is_error_chunk(data: &[u8]) -> bool {
    ObjectSpans::parse_bytes(data).is_ok_and(|s| s.raw("error").is_some_and(|e| e != "null"))
}

/// The SSE payload that tells an OpenAI client its stream failed (the SDK raises `APIError`).
pub fn stream_error_event(error: &ErrorBody) -> String {
    format!("data: {}\n\n", error.to_openai_json())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse_err(body: &str) -> ErrorBody {
        ChatRequest::parse(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn validation_names_the_field() {
        assert_eq!(
            parse_err(r#"{"messages":[{}]}"#).param.as_deref(),
            Some("model")
        );
        assert_eq!(
            parse_err(r#"{"model":"m"}"#).param.as_deref(),
            Some("messages")
        );
        assert_eq!(
            parse_err(r#"{"model":"m","messages":[]}"#).param.as_deref(),
            Some("messages")
        );
        assert_eq!(
            parse_err(r#"{"model":5,"messages":[{}]}"#).param.as_deref(),
            Some("model")
        );
        assert_eq!(
            parse_err(r#"{"model":"m","messages":[{}],"stream":"yes"}"#)
                .param
                .as_deref(),
            Some("stream")
        );
        assert!(parse_err("{nope").message.contains("parse the JSON"));
        assert!(parse_err("[]").message.contains("JSON object"));
    }

    #[test]
    fn passthrough_without_alias_or_stream_is_untouched() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
        let req = ChatRequest::parse(body).unwrap();
        assert!(!req.stream);
        assert_eq!(req.upstream_body("m"), None);
    }

    #[test]
    fn alias_rewrites_only_the_model() {
        let body = br#"{"model":"alias", "messages":[{"role":"user","content":"hi"}], "temperature":0.50}"#;
        let req = ChatRequest::parse(body).unwrap();
        assert_eq!(
            req.upstream_body("real").unwrap(),
            r#"{"model":"real", "messages":[{"role":"user","content":"hi"}], "temperature":0.50}"#
        );
    }

    #[test]
    fn streams_always_ask_upstream_for_usage() {
        let req = ChatRequest::parse(br#"{"model":"m","messages":[1],"stream":true}"#).unwrap();
        assert!(!req.include_usage);
        let out: serde_json::Value =
            serde_json::from_str(&req.upstream_body("m").unwrap()).unwrap();
        assert_eq!(out["stream_options"]["include_usage"], true);

        let req = ChatRequest::parse(
            br#"{"model":"m","messages":[1],"stream":true,"stream_options":{"include_usage":false,"x":1}}"#,
        )
        .unwrap();
        let out: serde_json::Value =
            serde_json::from_str(&req.upstream_body("m").unwrap()).unwrap();
        assert_eq!(
            out["stream_options"],
            serde_json::json!({"include_usage":true,"x":1})
        );

        let req = ChatRequest::parse(
            br#"{"model":"m","messages":[1],"stream":true,"stream_options":{"include_usage":true}}"#,
        )
        .unwrap();
        assert!(req.include_usage);
        assert_eq!(req.upstream_body("m"), None);
    }

    #[test]
    fn chunk_inspection() {
        let content = br#"{"id":"c","choices":[{"index":0,"delta":{"content":"hi"}}]}"#;
        let i = inspect_chunk(content, true);
        assert_eq!((i.action, i.usage), (ChunkAction::Forward, None));

        let with_null =
            br#"{"id":"c","choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}"#;
        assert_eq!(inspect_chunk(with_null, false).action, ChunkAction::Forward);
        assert_eq!(
            inspect_chunk(with_null, true).action,
            ChunkAction::Rewrite(
                r#"{"id":"c","choices":[{"index":0,"delta":{"content":"hi"}}]}"#.into()
            )
        );

        let usage_chunk = br#"{"id":"c","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12,"prompt_tokens_details":{"cached_tokens":2}}}"#;
        let want = TokenUsage {
            input_tokens: 5,
            output_tokens: 7,
            cache_read_tokens: 2,
            ..Default::default()
        };
        let kept = inspect_chunk(usage_chunk, false);
        assert_eq!(
            (kept.action, kept.usage),
            (ChunkAction::Forward, Some(want))
        );
        let dropped = inspect_chunk(usage_chunk, true);
        assert_eq!(
            (dropped.action, dropped.usage),
            (ChunkAction::Drop, Some(want))
        );

        let err = br#"{"error":{"message":"boom","type":"server_error"}}"#;
        assert!(inspect_chunk(err, true).is_error);
        assert!(
            !inspect_chunk(br#"{"choices":[{"delta":{"content":"\"error\""}}]}"#, true).is_error
        );
    }

    #[test]
    fn response_usage_reads_cached_and_reasoning() {
        let body = br#"{"id":"x","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":20,"total_tokens":30,"completion_tokens_details":{"reasoning_tokens":4}}}"#;
        let u = response_usage(body).unwrap();
        assert_eq!(
            (u.input_tokens, u.output_tokens, u.reasoning_tokens),
            (10, 20, 4)
        );
        assert_eq!(response_usage(b"{}"), None);
    }
}
