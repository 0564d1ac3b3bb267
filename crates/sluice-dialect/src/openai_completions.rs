//! OpenAI's legacy Completions (`POST /v1/completions`), served through chat: the prompt
//! becomes one user message of an OpenAI Chat request (which any upstream dialect can then
//! serve), and the chat answer — whole or chunk by chunk — is written back in the completions
//! shape (`text_completion`, `choices[].text`).

use serde_json::{Map, Value, json};

use crate::error::{ErrorBody, ErrorKind};

/// Completions fields passed to chat unchanged.
const CARRIED: [&str; 11] = [
    "model",
    "max_tokens",
    "stop",
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "user",
];

/// The OpenAI Chat request for a completions request. Refused (400, naming the field):
/// several prompts, `n` or `best_of` other than 1, `echo`, `suffix`, `logprobs`.
pub fn chat_request(body: &[u8]) -> Result<Vec<u8>, ErrorBody> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ErrorBody::new(
            ErrorKind::InvalidRequest,
            format!("We could not parse the JSON body of your request: {e}"),
        )
    })?;
    let Value::Object(fields) = value else {
        return Err(invalid("The request body must be a JSON object.", ""));
    };
    let prompt = match fields.get("prompt") {
        Some(Value::String(p)) => p.clone(),
        Some(Value::Array(items)) => match items.as_slice() {
            [Value::String(p)] => p.clone(),
            [] => return Err(invalid("`prompt` must not be empty.", "prompt")),
            [_] => {
                return Err(invalid(
                    "`prompt` must be text: token-id prompts are not served through chat.",
                    "prompt",
                ));
            }
            _ => {
                return Err(invalid(
                    "Only one prompt per request is served (send each prompt as its own request).",
                    "prompt",
                ));
            }
        },
        None | Some(Value::Null) => return Err(invalid("`prompt` is required.", "prompt")),
        Some(_) => return Err(invalid("`prompt` must be a string.", "prompt")),
    };
    let one = |key: &str| {
        fields
            .get(key)
            .is_none_or(|v| v.is_null() || v.as_u64() == Some(1))
    };
    if !one("n") {
        return Err(invalid("Only `n: 1` is served.", "n"));
    }
    if !one("best_of") {
        return Err(invalid("Only `best_of: 1` is served.", "best_of"));
    }
    if fields.get("echo").and_then(Value::as_bool) == Some(true) {
        return Err(invalid(
            "`echo: true` is not served: the prompt is answered through a chat model, which cannot return it with its log probabilities. Prepend the prompt yourself.",
            "echo",
        ));
    }
    if fields.get("suffix").is_some_and(|v| !v.is_null()) {
        return Err(invalid(
            "`suffix` (insertion) is not served through chat.",
            "suffix",
        ));
    }
    if fields.get("logprobs").is_some_and(|v| !v.is_null()) {
        return Err(invalid(
            "`logprobs` is not served through chat.",
            "logprobs",
        ));
    }
    let mut chat = Map::new();
    for key in CARRIED {
        if let Some(v) = fields.get(key) {
            chat.insert(key.into(), v.clone());
        }
    }
    chat.insert(
        "messages".into(),
        json!([{"role": "user", "content": prompt}]),
    );
    Ok(Value::Object(chat).to_string().into_bytes())
}

/// The completions answer for an OpenAI Chat answer.
pub fn completion_response(chat: &Value) -> Value {
    let choices: Vec<Value> = chat
        .get("choices")
        .and_then(Value::as_array)
        .map(|choices| {
            choices
                .iter()
                .map(|c| {
                    json!({
                        "text": c.pointer("/message/content").and_then(Value::as_str).unwrap_or(""),
                        "index": c.get("index").cloned().unwrap_or(json!(0)),
                        "logprobs": null,
                        "finish_reason": c.get("finish_reason").cloned().unwrap_or(Value::Null),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let mut out = Map::new();
    out.insert("id".into(), completion_id(chat));
    out.insert("object".into(), json!("text_completion"));
    out.insert(
        "created".into(),
        chat.get("created").cloned().unwrap_or(json!(0)),
    );
    out.insert(
        "model".into(),
        chat.get("model").cloned().unwrap_or(json!("")),
    );
    out.insert("choices".into(), Value::Array(choices));
    if let Some(usage) = chat.get("usage").filter(|u| !u.is_null()) {
        out.insert("usage".into(), usage_of(usage));
    }
    Value::Object(out)
}

/// The completions chunk for an OpenAI Chat stream chunk; `None` for a chunk that carries
/// nothing a completions client reads (the role-only first delta). Error chunks pass as
/// they are.
pub fn completion_chunk(chunk: &Value) -> Option<Value> {
    if chunk.get("error").is_some() {
        return Some(chunk.clone());
    }
    let choices: Vec<Value> = chunk
        .get("choices")
        .and_then(Value::as_array)
        .map(|choices| {
            choices
                .iter()
                .filter_map(|c| {
                    let text = c.pointer("/delta/content").and_then(Value::as_str);
                    let finish = c.get("finish_reason").filter(|f| !f.is_null());
                    if text.is_none_or(str::is_empty) && finish.is_none() {
                        return None;
                    }
                    Some(json!({
                        "text": text.unwrap_or(""),
                        "index": c.get("index").cloned().unwrap_or(json!(0)),
                        "logprobs": null,
                        "finish_reason": finish.cloned().unwrap_or(Value::Null),
                    }))
                })
                .collect()
        })
        .unwrap_or_default();
    let usage = chunk.get("usage").filter(|u| !u.is_null());
    if choices.is_empty() && usage.is_none() {
        return None;
    }
    let mut out = Map::new();
    out.insert("id".into(), completion_id(chunk));
    out.insert("object".into(), json!("text_completion"));
    out.insert(
        "created".into(),
        chunk.get("created").cloned().unwrap_or(json!(0)),
    );
    out.insert(
        "model".into(),
        chunk.get("model").cloned().unwrap_or(json!("")),
    );
    out.insert("choices".into(), Value::Array(choices));
    if let Some(usage) = usage {
        out.insert("usage".into(), usage_of(usage));
    }
    Some(Value::Object(out))
}

/// `cmpl-…` from the chat answer's `chatcmpl-…` id.
fn completion_id(chat: &Value) -> Value {
    let id = chat.get("id").and_then(Value::as_str).unwrap_or("");
    json!(format!(
        "cmpl-{}",
        id.strip_prefix("chatcmpl-").unwrap_or(id)
    ))
}

fn usage_of(usage: &Value) -> Value {
    let n = |k: &str| usage.get(k).and_then(Value::as_u64).unwrap_or(0);
    json!({
        "prompt_tokens": n("prompt_tokens"),
        "completion_tokens": n("completion_tokens"),
        "total_tokens": n("total_tokens"),
    })
}

fn invalid(message: &str, param: &str) -> ErrorBody {
    let body = ErrorBody::new(ErrorKind::InvalidRequest, message);
    if param.is_empty() {
        body
    } else {
        body.with_param(param)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn chat(body: Value) -> Result<Value, ErrorBody> {
        chat_request(body.to_string().as_bytes()).map(|b| serde_json::from_slice(&b).unwrap())
    }

    #[test]
    fn the_prompt_becomes_one_user_message() {
        let c = chat(json!({"model": "m", "prompt": "Say hi", "max_tokens": 5, "stop": ["\n"], "stream": true, "n": 1, "echo": false})).unwrap();
        assert_eq!(
            c,
            json!({"model": "m", "max_tokens": 5, "stop": ["\n"], "stream": true, "messages": [{"role": "user", "content": "Say hi"}]})
        );
        assert!(chat(json!({"model": "m", "prompt": ["one"]})).is_ok());
    }

    #[test]
    fn what_chat_cannot_do_is_refused_by_name() {
        for (body, param) in [
            (json!({"model": "m", "prompt": "x", "echo": true}), "echo"),
            (json!({"model": "m", "prompt": "x", "n": 2}), "n"),
            (
                json!({"model": "m", "prompt": "x", "best_of": 3}),
                "best_of",
            ),
            (json!({"model": "m", "prompt": ["a", "b"]}), "prompt"),
            (json!({"model": "m", "prompt": [1, 2]}), "prompt"),
            (json!({"model": "m"}), "prompt"),
            (
                json!({"model": "m", "prompt": "x", "suffix": "y"}),
                "suffix",
            ),
        ] {
            let err = chat(body).unwrap_err();
            assert_eq!(err.param.as_deref(), Some(param));
        }
    }

    #[test]
    fn answers_and_chunks_take_the_completions_shape() {
        let answer = json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 5, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}});
        assert_eq!(
            completion_response(&answer),
            json!({"id": "cmpl-1", "object": "text_completion", "created": 5, "model": "m",
                "choices": [{"text": "Hi", "index": 0, "logprobs": null, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}})
        );
        let role = json!({"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]});
        assert_eq!(completion_chunk(&role), None);
        let text = json!({"id": "chatcmpl-1", "created": 5, "model": "m", "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": null}]});
        assert_eq!(completion_chunk(&text).unwrap()["choices"][0]["text"], "Hi");
        let usage = json!({"id": "chatcmpl-1", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}});
        assert_eq!(
            completion_chunk(&usage).unwrap()["usage"]["total_tokens"],
            2
        );
    }
}
