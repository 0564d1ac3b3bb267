//! OpenAI's legacy Completions, strictly per the published format: `POST /v1/completions`
//! (and Azure OpenAI's `/openai/deployments/{deployment}/completions?api-version=…`).
//!
//! - Request: `model` and `prompt` required (a string, strings, a list of token ids, or lists
//!   of token ids); `best_of`, `echo`, `frequency_penalty`, `logit_bias`, `logprobs` (0–5),
//!   `max_tokens` (default 16), `n` (1–128), `presence_penalty`, `seed`, `stop` (up to 4),
//!   `stream`, `stream_options` (only with `stream`), `suffix`, `temperature`, `top_p`,
//!   `user`; any other field is the 400 OpenAI answers. Only completions models are served
//!   (`gpt-*-instruct`, `davinci-002`, `babbage-002`, `text-davinci-*`): a chat model is
//!   OpenAI's 404 "This is a chat model…".
//! - Answer: `{id: "cmpl-…", object: "text_completion", created, model, choices: [{text,
//!   index, logprobs, finish_reason}], usage}`, one choice per prompt and `n` (index = prompt
//!   × n + j); the text is the fake assistant's reply to the prompt (after the prompt itself
//!   with `echo`), cut at `max_tokens` words (`length`) or at a `stop` sequence.
//! - Stream: `data:` chunks of the same object, one per word, then each choice's last chunk
//!   with its `finish_reason`; with `stream_options.include_usage` every chunk carries
//!   `usage: null` and a last chunk with no choices carries the usage; then `data: [DONE]`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use crate::assistant::{self, Answer, Conversation, Speaker, Turn};
use crate::directives::Directives;
use crate::errors::{OpenAiError, json_type};
use crate::openai_gate::preflight;
use crate::sse::word_pieces;
use crate::{AppState, ids, stream_body};

/// Every field the endpoint takes.
const FIELDS: [&str; 18] = [
    "model",
    "prompt",
    "best_of",
    "echo",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "max_tokens",
    "n",
    "presence_penalty",
    "seed",
    "stop",
    "stream",
    "stream_options",
    "suffix",
    "temperature",
    "top_p",
    "user",
];

/// `max_tokens` when the request leaves it out.
const DEFAULT_MAX_TOKENS: u64 = 16;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/completions", post(completions))
        .route(
            "/openai/deployments/{deployment}/completions",
            post(azure_completions),
        )
}

/// Whether OpenAI serves `model` on `/v1/completions` rather than on chat.
pub(crate) fn is_completion_model(model: &str) -> bool {
    let model = model.to_ascii_lowercase();
    (model.starts_with("gpt-") && model.contains("-instruct"))
        || ["davinci-002", "babbage-002", "text-davinci-"]
            .iter()
            .any(|p| model.starts_with(p))
}

async fn completions(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    complete(&state, &headers, &body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Azure OpenAI's completions: the deployment stands for the model when the body names none.
async fn azure_completions(
    State(state): State<Arc<AppState>>,
    Path(deployment): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request =
        crate::openai_chat::azure_json(&state, deployment, query.as_deref(), headers, body);
    let (headers, body) = match request {
        Ok(request) => request,
        Err(refused) => return *refused,
    };
    completions(State(state), headers, body).await
}

/// A validated request.
struct Request<'a> {
    model: &'a str,
    prompts: Vec<String>,
    n: u64,
    echo: bool,
    logprobs: Option<u64>,
    max_tokens: u64,
    stop: Vec<&'a str>,
    stream: bool,
    include_usage: bool,
}

async fn complete(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, OpenAiError> {
    let directives = preflight(state, headers, body).await?;
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return Err(OpenAiError::invalid_json());
    };
    let request = validate(&fields)?;
    if !state.config.serves(request.model) {
        return Err(OpenAiError::model_not_found(request.model));
    }
    if !is_completion_model(request.model) {
        return Err(OpenAiError::chat_model_on_completions());
    }
    let choices = choices(&request, &directives);
    let prompt_tokens: u64 = request
        .prompts
        .iter()
        .map(|p| assistant::prompt_tokens(&conversation(p), &directives))
        .sum();
    let completion_tokens: u64 = choices.iter().map(|c| c.tokens).sum();
    let usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    });
    let usage = (!directives.omit_usage).then_some(usage);
    let id = ids::text_completion_id();
    let created = ids::unix_now();
    let object = |choices: Vec<Value>, usage: Option<Value>| {
        let mut out = Map::new();
        out.insert("id".into(), json!(id));
        out.insert("object".into(), json!("text_completion"));
        out.insert("created".into(), json!(created));
        out.insert("model".into(), json!(request.model));
        out.insert("choices".into(), Value::Array(choices));
        if let Some(usage) = usage {
            out.insert("usage".into(), usage);
        }
        Value::Object(out)
    };
    if !request.stream {
        let whole = choices.iter().map(|c| c.whole(&request)).collect();
        return Ok(Json(object(whole, usage)).into_response());
    }
    let include_usage = request.include_usage && usage.is_some();
    let per_chunk = include_usage.then_some(Value::Null);
    let mut events = Vec::new();
    for choice in &choices {
        for piece in word_pieces(&choice.text) {
            events.push(object(vec![choice.chunk(piece, None)], per_chunk.clone()));
        }
        events.push(object(
            vec![choice.chunk("", Some(choice.finish_reason))],
            per_chunk.clone(),
        ));
    }
    if include_usage {
        events.push(object(Vec::new(), usage));
    }
    let events = events
        .iter()
        .map(|event| crate::sse::data(event, "\n\n"))
        .chain(std::iter::once(Ok(Bytes::from_static(b"data: [DONE]\n\n"))))
        .collect::<Result<Vec<_>, _>>()
        .and_then(|events| {
            stream_body::fail_after(events, &directives, |_| {
                let error = json!({"error": {
                    "message": stream_body::failure_message(&directives),
                    "type": "server_error", "param": null, "code": null,
                }});
                crate::sse::data(&error, "\n\n")
            })
        })
        .map_err(OpenAiError::internal)?;
    let mut response =
        stream_body::body(events, &directives, state.recorder.stream_guard()).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// Checks every field as OpenAI does, naming the first that is wrong.
fn validate(fields: &Map<String, Value>) -> Result<Request<'_>, OpenAiError> {
    if let Some(key) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(OpenAiError::unrecognized_argument(key));
    }
    let model = match fields.get("model") {
        None | Some(Value::Null) => return Err(OpenAiError::missing_parameter("model")),
        Some(Value::String(model)) => model.as_str(),
        Some(other) => {
            return Err(OpenAiError::invalid_type(
                "model",
                "a string",
                json_type(other),
            ));
        }
    };
    let prompts = prompts(fields.get("prompt"))?;
    let int = |key: &'static str, min: u64, max: u64, default: u64| match fields.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| {
                OpenAiError::invalid_value(
                    key,
                    &format!("Invalid value for '{key}': expected an integer from {min} to {max}."),
                )
            }),
    };
    let n = int("n", 1, 128, 1)?;
    // Unset, `best_of` is `n`: one candidate per choice.
    let best_of = int("best_of", 1, 20, n)?;
    if best_of < n {
        return Err(OpenAiError::invalid_value(
            "best_of",
            "best_of must be greater than or equal to n.",
        ));
    }
    let logprobs = match fields.get("logprobs") {
        None | Some(Value::Null) => None,
        Some(_) => Some(int("logprobs", 0, 5, 0)?),
    };
    let max_tokens = int("max_tokens", 0, u64::from(u32::MAX), DEFAULT_MAX_TOKENS)?;
    let flag = |key: &'static str| match fields.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(OpenAiError::invalid_type(
            key,
            "a boolean",
            json_type(other),
        )),
    };
    let echo = flag("echo")?;
    let stream = flag("stream")?;
    if stream && best_of > n {
        return Err(OpenAiError::invalid_value(
            "best_of",
            "Cannot stream results with best_of greater than n.",
        ));
    }
    let stream_options = fields.get("stream_options").filter(|v| !v.is_null());
    if stream_options.is_some() && !stream {
        return Err(OpenAiError::invalid_value(
            "stream_options",
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
        ));
    }
    let stop = match fields.get("stop") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) if items.len() <= 4 && items.iter().all(Value::is_string) => {
            items.iter().filter_map(Value::as_str).collect()
        }
        Some(_) => {
            return Err(OpenAiError::invalid_value(
                "stop",
                "Invalid value for 'stop': expected a string or up to 4 strings.",
            ));
        }
    };
    Ok(Request {
        model,
        prompts,
        n,
        echo,
        logprobs,
        max_tokens,
        stop,
        stream,
        include_usage: stream_options
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

/// The prompts of `prompt`: a string, strings, token ids (one prompt, the ids as words), or
/// lists of token ids.
fn prompts(prompt: Option<&Value>) -> Result<Vec<String>, OpenAiError> {
    let ids = |items: &[Value]| {
        items
            .iter()
            .map(|i| i.as_u64().map(|id| id.to_string()))
            .collect::<Option<Vec<_>>>()
            .map(|ids| ids.join(" "))
    };
    let invalid = || {
        OpenAiError::invalid_value(
            "prompt",
            "Invalid value for 'prompt': expected a string, an array of strings, an array of tokens, or an array of token arrays.",
        )
    };
    match prompt {
        None | Some(Value::Null) => Err(OpenAiError::missing_parameter("prompt")),
        Some(Value::String(text)) => Ok(vec![text.clone()]),
        Some(Value::Array(items)) if items.is_empty() => Err(invalid()),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => Ok(items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()),
        Some(Value::Array(items)) if items.iter().all(Value::is_number) => {
            ids(items).map(|p| vec![p]).ok_or_else(invalid)
        }
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_array().and_then(|ids_of| ids(ids_of)))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(invalid),
        Some(other) => Err(OpenAiError::invalid_type(
            "prompt",
            "a string or an array",
            json_type(other),
        )),
    }
}

/// A prompt as the fake assistant hears it.
fn conversation(prompt: &str) -> Conversation<'_> {
    Conversation {
        turns: vec![Turn::new(Speaker::User, [prompt])],
        ..Conversation::default()
    }
}

/// One choice of the answer.
struct Choice {
    index: u64,
    /// What the client reads: the prompt first with `echo`, then the generated text.
    text: String,
    finish_reason: &'static str,
    /// Tokens generated (the echoed prompt not included).
    tokens: u64,
}

/// Every choice: `n` per prompt, in prompt order.
fn choices(request: &Request<'_>, directives: &Directives) -> Vec<Choice> {
    let mut out = Vec::new();
    for (p, prompt) in (0u64..).zip(&request.prompts) {
        let (answer, _) = assistant::answer(&conversation(prompt), directives);
        let reply = match answer {
            Answer::Text(text) => text,
            Answer::Call(call) => call.arguments_json(),
        };
        let (generated, finish_reason) = limited(&reply, request);
        let tokens = assistant::tokens(&generated);
        let text = if request.echo {
            format!("{prompt}{generated}")
        } else {
            generated
        };
        for j in 0..request.n {
            out.push(Choice {
                index: p * request.n + j,
                text: text.clone(),
                finish_reason,
                tokens,
            });
        }
    }
    out
}

/// The reply cut at the first stop sequence (`stop`) or after `max_tokens` words (`length`).
fn limited(reply: &str, request: &Request<'_>) -> (String, &'static str) {
    let stopped = request
        .stop
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| reply.find(s))
        .min();
    let reply = stopped.map_or(reply, |at| &reply[..at]);
    let pieces = word_pieces(reply);
    let max = usize::try_from(request.max_tokens).unwrap_or(usize::MAX);
    if pieces.len() > max {
        (pieces[..max].concat(), "length")
    } else {
        (reply.to_owned(), "stop")
    }
}

impl Choice {
    fn whole(&self, request: &Request<'_>) -> Value {
        json!({
            "text": self.text,
            "index": self.index,
            "logprobs": request.logprobs.map(|top| logprobs(&self.text, top)),
            "finish_reason": self.finish_reason,
        })
    }

    fn chunk(&self, text: &str, finish_reason: Option<&str>) -> Value {
        json!({
            "text": text,
            "index": self.index,
            "logprobs": null,
            "finish_reason": finish_reason,
        })
    }
}

/// Deterministic log probabilities: every word a token at -0.25, with `top` alternatives.
fn logprobs(text: &str, top: u64) -> Value {
    let tokens = word_pieces(text);
    let mut offset = 0;
    let offsets: Vec<usize> = tokens
        .iter()
        .map(|t| {
            let at = offset;
            offset += t.len();
            at
        })
        .collect();
    let top_logprobs: Option<Vec<Value>> =
        (top > 0).then(|| tokens.iter().map(|t| json!({ (*t): -0.25 })).collect());
    json!({
        "tokens": tokens,
        "token_logprobs": vec![-0.25; tokens.len()],
        "top_logprobs": top_logprobs,
        "text_offset": offsets,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn validated(body: Value) -> Result<(), String> {
        let Value::Object(fields) = body else {
            return Err("not an object".into());
        };
        validate(&fields).map(|_| ()).map_err(|e| format!("{e:?}"))
    }

    #[test]
    fn what_openai_refuses_is_refused_by_name() {
        for (body, words) in [
            (json!({"prompt": "x"}), "'model'"),
            (json!({"model": "gpt-3.5-turbo-instruct"}), "'prompt'"),
            (
                json!({"model": "m", "prompt": "x", "messages": []}),
                "messages",
            ),
            (json!({"model": "m", "prompt": "x", "n": 0}), "'n'"),
            (
                json!({"model": "m", "prompt": "x", "n": 3, "best_of": 2}),
                "best_of",
            ),
            (
                json!({"model": "m", "prompt": "x", "logprobs": 6}),
                "logprobs",
            ),
            (
                json!({"model": "m", "prompt": "x", "stream_options": {"include_usage": true}}),
                "stream_options",
            ),
            (
                json!({"model": "m", "prompt": "x", "stream": true, "best_of": 2}),
                "best_of",
            ),
            (
                json!({"model": "m", "prompt": "x", "stream": "yes"}),
                "'stream'",
            ),
            (json!({"model": "m", "prompt": [1, "a"]}), "prompt"),
            (
                json!({"model": "m", "prompt": "x", "stop": ["a", "b", "c", "d", "e"]}),
                "stop",
            ),
        ] {
            let error = validated(body.clone()).unwrap_err();
            assert!(error.contains(words), "{body}: {error}");
        }
        for body in [
            json!({"model": "m", "prompt": ["a", "b"], "n": 2, "echo": true, "logprobs": 2, "suffix": "!"}),
            json!({"model": "m", "prompt": [1, 2, 3]}),
            json!({"model": "m", "prompt": [[1, 2], [3]], "stop": "\n"}),
        ] {
            assert!(validated(body.clone()).is_ok(), "{body}");
        }
    }

    #[test]
    fn completion_models_are_known_by_name() {
        for model in [
            "gpt-3.5-turbo-instruct",
            "gpt-3.5-turbo-instruct-0914",
            "davinci-002",
            "babbage-002",
        ] {
            assert!(is_completion_model(model), "{model}");
        }
        for model in ["gpt-4o-mini", "gpt-3.5-turbo", "mock-model"] {
            assert!(!is_completion_model(model), "{model}");
        }
    }

    #[test]
    fn replies_stop_at_stop_sequences_and_max_tokens() {
        let fields = json!({"model": "m", "prompt": "x", "max_tokens": 2});
        let request = validate(fields.as_object().unwrap()).unwrap();
        assert_eq!(
            limited("one two three", &request),
            ("one two ".into(), "length")
        );
        let fields = json!({"model": "m", "prompt": "x", "stop": [" two"]});
        let request = validate(fields.as_object().unwrap()).unwrap();
        assert_eq!(limited("one two three", &request), ("one".into(), "stop"));
    }
}
