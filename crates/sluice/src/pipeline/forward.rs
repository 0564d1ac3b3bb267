//! Forward with accounting: OpenAI endpoints whose answers Sluice does not translate
//! (`/v1/moderations`, `/v1/audio/speech`, `/v1/rerank`, `/v1/images/generations`, legacy
//! `/v1/completions` for models that have the endpoint upstream (see [`super::completions`]),
//! and the multipart `/v1/audio/transcriptions`, `/v1/audio/translations`, `/v1/images/edits`,
//! read by [`super::multipart`] and forwarded as they came). The key is checked, limits and
//! quotas apply, the route picks a provider whose model has the endpoint's capability and that
//! has the API (OpenAI-compatible, Azure deployments), failover runs before the first byte,
//! and the upstream's answer is streamed back unchanged — status, content type and bytes —
//! until it ends, breaks, stalls past the provider's idle timeout or the gateway stops (an SSE
//! answer then ends with OpenAI's error chunk, any other as a broken body). The
//! usage record takes what the upstream reports (`usage` in a JSON answer or the last SSE
//! event that carries one — a completions stream's final chunk when the client asked for
//! `stream_options.include_usage` —, a transcription's seconds, the images made and their
//! tier, rerank's search units) and the units the request itself names (characters spoken,
//! documents ranked), else tokens counted locally — the request's text in, the answer's
//! `choices[].text` out — and marked estimated. A completion's quota reservation is priced
//! from its `max_tokens` (OpenAI's default 16) per choice. Image requests wait for their
//! answer as long as the provider's `timeouts.image`.

use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, header};
use serde_json::Value;
use sluice_dialect::Dialect;
use sluice_dialect::canonical::StreamEvent;
use sluice_dialect::registry::EncodeOptions;
use sluice_dialect::{ErrorBody, ErrorKind, SseParser, TokenUsage};
use tokio::sync::watch;

use crate::store::UsageUnits;

use super::account::Ledger;
use super::authenticate::Caller;
use super::{Endpoint, Handled, Routing, admit, admit_and_route, respond};
use crate::error::GatewayError;
use crate::gateway::{AppState, Runtime};
use crate::providers::Operation;
use crate::routing::{self, failover::Answer};

/// The most of a JSON answer kept to read its `usage`, and of an answer's text kept to count
/// it locally.
const USAGE_WINDOW: usize = 1 << 20;
/// Image answers carry their images inline (`b64_json`): the count and the tier they were
/// priced at are read from the whole answer, up to this size.
const IMAGE_WINDOW: usize = 48 << 20;

/// An upstream answer to relay as it is.
pub(super) struct Forwarded {
    response: reqwest::Response,
    provider: String,
    /// The model the record is priced at, for counting tokens locally.
    model: String,
    asked: Asked,
    admitted: admit::Admitted,
    /// The provider's idle timeout: the longest the answer may stall.
    idle: Duration,
    shutdown: watch::Receiver<bool>,
    /// Counts a break or a stall against the credential (as the chat relay does).
    on_upstream_fault: Option<Box<dyn FnOnce() + Send>>,
}

/// What a forwarded request asked for, as far as accounting goes.
#[derive(Debug, Default)]
struct Asked {
    /// The request's text, counted when the upstream reports no usage.
    text: String,
    /// Units known from the request itself (characters spoken, documents ranked).
    units: UsageUnits,
    /// Image endpoints: the images asked for (`n`) and their tier (`quality size`).
    images: Option<(i64, String)>,
}

/// OpenAI's `max_tokens` when a completions request leaves it out.
const COMPLETION_DEFAULT_MAX_TOKENS: u64 = 16;

/// The most a legacy completion can write: `max_tokens` for each of the `best_of` (or `n`)
/// choices of each prompt.
fn completion_output_cap(fields: &Value) -> u64 {
    let number = |key: &str| fields.get(key).and_then(Value::as_u64);
    let per_choice = number("max_tokens").unwrap_or(COMPLETION_DEFAULT_MAX_TOKENS);
    let choices = number("best_of").max(number("n")).unwrap_or(1).max(1);
    // A list of prompts (texts or token lists); one list of token ids is one prompt.
    let prompts = match fields.get("prompt") {
        Some(Value::Array(items)) if items.first().is_some_and(|i| !i.is_number()) => {
            u64::try_from(items.len()).unwrap_or(u64::MAX)
        }
        _ => 1,
    };
    per_choice.saturating_mul(choices).saturating_mul(prompts)
}

/// The request's body as the gateway read it.
enum Shape {
    Json(Value),
    Form(super::multipart::Form),
}

/// A forwarded request, read.
struct Read {
    model: String,
    stream: bool,
    shape: Shape,
    /// What accounting prices and counts: the JSON body, or a form's text fields as JSON.
    accounting: Bytes,
    asked: Asked,
    /// The output the quota reservation is priced for (completions), in tokens.
    output_cap: u64,
}

/// Reads what routing and accounting need of a forwarded request of `path`.
async fn read(path: &str, content_type: Option<&str>, body: &Bytes) -> Result<Read, GatewayError> {
    let shape = if is_multipart(path) {
        Shape::Form(super::multipart::Form::parse(content_type, body.clone()).await?)
    } else {
        Shape::Json(serde_json::from_slice(body).map_err(|e| {
            GatewayError::bad_request(ErrorBody::new(
                ErrorKind::InvalidRequest,
                format!("We could not parse the JSON body of your request: {e}"),
            ))
        })?)
    };
    let (fields, accounting) = match &shape {
        Shape::Json(value) => (value.clone(), body.clone()),
        Shape::Form(form) => {
            let fields = form.text_fields();
            let accounting = Bytes::from(fields.to_string());
            (fields, accounting)
        }
    };
    let text_of = |key: &str| fields.get(key).and_then(Value::as_str);
    // OpenAI's defaults where the model may be left out.
    let default_model = match path {
        "/moderations" => Some("omni-moderation-latest"),
        "/images/generations" | "/images/edits" => Some("dall-e-2"),
        _ => None,
    };
    let model = match (fields.get("model"), default_model) {
        (Some(Value::String(m)), _) if !m.trim().is_empty() => m.trim().to_string(),
        (None, Some(default)) => default.to_string(),
        _ => {
            return Err(GatewayError::bad_request(
                ErrorBody::new(ErrorKind::InvalidRequest, "`model` is required.")
                    .with_param("model"),
            ));
        }
    };
    if let Shape::Form(form) = &shape {
        let files: &[&str] = if path == "/images/edits" {
            &["image", "image[]"]
        } else {
            &["file"]
        };
        if !form.has_file(files) {
            return Err(GatewayError::bad_request(
                ErrorBody::new(
                    ErrorKind::InvalidRequest,
                    format!("A file is required in the form field `{}`.", files[0]),
                )
                .with_param(files[0]),
            ));
        }
    }
    let stream = match fields.get("stream") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => text_of("stream_format") == Some("sse"),
    };
    let mut asked = Asked {
        text: request_text(&fields),
        ..Asked::default()
    };
    let mut output_cap = 0;
    match path {
        "/completions" => output_cap = completion_output_cap(&fields),
        "/audio/speech" => {
            let spoken = text_of("input").map_or(0, |t| t.chars().count());
            asked.units.characters = i64::try_from(spoken).unwrap_or(i64::MAX);
        }
        "/rerank" => {
            let documents = fields.get("documents").and_then(Value::as_array);
            asked.units.documents = documents.map_or(0, |d| i64::try_from(d.len()).unwrap_or(0));
        }
        "/images/generations" | "/images/edits" => {
            let n = match fields.get("n") {
                Some(Value::Number(n)) => n.as_i64(),
                Some(Value::String(s)) => s.trim().parse().ok(),
                _ => None,
            };
            let tier = image_tier(&model, text_of("quality"), text_of("size"));
            asked.images = Some((n.unwrap_or(1).max(1), tier));
        }
        _ => {}
    }
    Ok(Read {
        model,
        stream,
        shape,
        accounting,
        asked,
        output_cap,
    })
}

/// The price-table tier of an image request: `quality size`, with OpenAI's defaults for what
/// it leaves out (`auto` for the GPT image models, `standard 1024x1024` for DALL·E).
fn image_tier(model: &str, quality: Option<&str>, size: Option<&str>) -> String {
    let gpt = model.starts_with("gpt-image");
    let quality = quality.unwrap_or(if gpt { "auto" } else { "standard" });
    let size = size.unwrap_or(if gpt { "auto" } else { "1024x1024" });
    format!("{quality} {size}")
}

/// Endpoints whose body is a multipart form.
pub(super) fn is_multipart(path: &str) -> bool {
    matches!(
        path,
        "/audio/transcriptions" | "/audio/translations" | "/images/edits"
    )
}

/// Serves one forwarded request after authentication.
#[allow(clippy::too_many_arguments)]
pub(super) async fn handle(
    app: &AppState,
    runtime: &Runtime,
    endpoint: Endpoint,
    caller: &Caller,
    own_token: Option<String>,
    content_type: Option<&str>,
    body: Bytes,
    ledger: &mut Ledger,
) -> Result<Handled, GatewayError> {
    let Operation::Forward { path } = endpoint.operation else {
        return Err(GatewayError::internal("not a forwarded endpoint"));
    };
    let request = read(path, content_type, &body).await?;
    let model = request.model.clone();
    ledger.with(|r| {
        r.model_requested = Some(model.clone());
        r.stream = request.stream;
    });
    let routed = admit_and_route(
        app,
        runtime,
        endpoint,
        Routing {
            caller,
            own_token,
            body: &request.accounting,
            model: &model,
            session: None,
        },
        ledger,
        |_| Some(request.output_cap),
    )
    .await?;
    let (router, mut plan, admitted) = (&runtime.router, routed.plan, routed.admitted);
    let request_id = ledger.request_id().to_string();
    let form_type = content_type
        .filter(|_| matches!(request.shape, Shape::Form(_)))
        .and_then(|ct| http::HeaderValue::from_str(ct).ok());
    let served = routing::failover::run(router, &mut plan, ledger, true, |pick| {
        let provider = &pick.target.provider;
        let upstream_model = &pick.target.upstream_model;
        let upstream_body = if **upstream_model == *model {
            body.clone()
        } else {
            match &request.shape {
                Shape::Json(value) => {
                    let mut renamed = value.clone();
                    renamed["model"] = Value::String(upstream_model.to_string());
                    Bytes::from(renamed.to_string())
                }
                Shape::Form(form) => form.with_model(upstream_model),
            }
        };
        let mut prepared = super::prepare_plain(endpoint, pick, upstream_body, &request_id)?;
        prepared.headers.remove(header::ACCEPT);
        if let Some(form_type) = &form_type {
            prepared
                .headers
                .insert(header::CONTENT_TYPE, form_type.clone());
        }
        if path.starts_with("/images/") {
            prepared.first_byte = Some(provider.common().timeouts.image);
        }
        Ok(prepared)
    })
    .await?;
    let provider = served.pick.target.provider.name().to_string();
    let priced = served.pick.target.upstream_model.to_string();
    match served.answer {
        Answer::Stream { response, .. } => Ok(Handled::Forwarded(Box::new(Forwarded {
            response,
            provider,
            model: priced,
            asked: request.asked,
            admitted,
            idle: served.pick.target.provider.common().timeouts.idle,
            shutdown: app.hard_stop.subscribe(),
            on_upstream_fault: routing::failover::stream_fault_reporter(
                app.runtime.load_full(),
                &served.pick,
            ),
        }))),
        Answer::Complete(bytes) => Ok(Handled::Complete(respond::json_response(
            http::StatusCode::OK,
            bytes,
            &provider,
        ))),
    }
}

/// The upstream's answer, relayed unchanged; the record closes when the body ends (or is
/// dropped by a client that went away).
pub(super) fn respond(forwarded: Forwarded, mut ledger: Ledger) -> Response {
    ledger.first_byte();
    let Forwarded {
        response,
        provider,
        model,
        asked,
        admitted,
        idle,
        shutdown,
        on_upstream_fault,
    } = forwarded;
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map_or(&b""[..], http::HeaderValue::as_bytes);
    let meter = if content_type.starts_with(b"text/event-stream") {
        Meter::Sse(SseParser::default(), Reported::default())
    } else if content_type.starts_with(b"application/json") {
        let cap = if asked.images.is_some() {
            IMAGE_WINDOW
        } else {
            USAGE_WINDOW
        };
        Meter::Json(BytesMut::new(), cap)
    } else {
        Meter::Blind
    };
    let mut headers = HeaderMap::new();
    for name in [header::CONTENT_TYPE, header::CONTENT_LENGTH] {
        if let Some(v) = response.headers().get(&name) {
            headers.insert(name, v.clone());
        }
    }
    let relay = Relay {
        upstream: respond::Upstream::new(Box::pin(response.bytes_stream()), idle, shutdown),
        provider: provider.clone(),
        meter,
        close: Some(Close {
            ledger,
            status: status.as_u16(),
            model,
            asked,
            _admitted: admitted,
        }),
        on_upstream_fault,
    };
    let body = futures_util::stream::unfold(relay, |mut relay| async move {
        relay.next().await.map(|item| (item, relay))
    });
    let mut out = Response::new(Body::from_stream(body));
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    respond::insert_provider(&mut out, &provider);
    out
}

struct Close {
    ledger: Ledger,
    status: u16,
    model: String,
    asked: Asked,
    _admitted: admit::Admitted,
}

impl Close {
    /// `reported`: what the answer read so far reports; `cut`: why it ended early, if it did.
    fn finish(self, reported: Reported, cut: Option<&str>) {
        let Close {
            mut ledger,
            status,
            model,
            asked,
            ..
        } = self;
        let mut units = asked.units;
        if let Some(seconds) = reported.audio_seconds {
            units.audio_seconds = seconds;
        }
        if let Some(search_units) = reported.search_units {
            units.search_units = search_units;
        }
        let mut tier = None;
        if let Some((n, asked_tier)) = asked.images {
            units.images = reported.images.unwrap_or(if cut.is_some() { 0 } else { n });
            tier = Some(reported.tier.unwrap_or(asked_tier));
        }
        ledger.with(|r| {
            r.units = units;
            r.image_tier = tier;
            match reported.usage {
                Some(usage) => r.usage = usage,
                // Billed by unit: no tokens to make up.
                None if !units.is_empty() => {}
                None => {
                    let count = |text: &str| crate::pricing::estimate::count_tokens(&model, text);
                    r.usage.input_tokens = count(&asked.text);
                    r.usage.output_tokens = count(&reported.text);
                    r.estimated = true;
                }
            }
        });
        match cut {
            Some(code) => ledger.finish(502, Some(code.to_string())),
            None => ledger.finish(status, None),
        }
    }
}

/// The upstream body, passed through as it arrives, read on the way for what it reports. A
/// break, a stall past the provider's idle timeout or the gateway's hard stop ends it: an SSE
/// answer with OpenAI's error chunk (which the SDKs raise), any other as a broken body.
struct Relay {
    upstream: respond::Upstream,
    provider: String,
    meter: Meter,
    /// `None` once the record is closed (the answer ended).
    close: Option<Close>,
    on_upstream_fault: Option<Box<dyn FnOnce() + Send>>,
}

impl Relay {
    async fn next(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        self.close.as_ref()?;
        let next = self.upstream.pull(&self.provider).await;
        match next {
            respond::Pulled::Chunk(chunk) => {
                self.meter.push(&chunk);
                Some(Ok(chunk))
            }
            respond::Pulled::End => {
                if let Some(close) = self.close.take() {
                    close.finish(self.meter.reported(), None);
                }
                None
            }
            respond::Pulled::Fault { message, code } => self.fail(message, code),
        }
    }

    /// Ends the answer early: the record closed with `code`, then the client told.
    fn fail(&mut self, message: String, code: &str) -> Option<Result<Bytes, std::io::Error>> {
        tracing::warn!(provider = %self.provider, code, "{message}");
        if code != "shutdown"
            && let Some(report) = self.on_upstream_fault.take()
        {
            report();
        }
        let sse = matches!(self.meter, Meter::Sse(..));
        if let Some(close) = self.close.take() {
            close.finish(self.meter.reported(), Some(code));
        }
        if !sse {
            return Some(Err(std::io::Error::other(message)));
        }
        let error = StreamEvent::Error {
            error: ErrorBody::new(ErrorKind::Upstream, message).with_code(code),
        };
        let options = EncodeOptions {
            model: String::new(),
            include_usage: false,
            created: 0,
        };
        let mut out = Vec::new();
        Dialect::OpenAiChat
            .stream_encoder(&options)
            .push(&error, &mut out);
        Some(Ok(Bytes::from(out)))
    }
}

/// What the relay reads of an answer as it passes.
enum Meter {
    /// A JSON answer so far (read whole at the end), up to the cap.
    Json(BytesMut, usize),
    /// An SSE answer, read event by event: its last usage report and its text so far.
    Sse(SseParser, Reported),
    /// Neither, or a JSON answer that outgrew its window.
    Blind,
}

impl Meter {
    fn push(&mut self, chunk: &[u8]) {
        match self {
            Meter::Json(window, cap) if window.len() + chunk.len() <= *cap => {
                window.extend_from_slice(chunk);
            }
            Meter::Json(..) => *self = Meter::Blind,
            Meter::Sse(parser, found) => {
                parser.push(chunk);
                while let Some(event) = parser.next_event() {
                    found.event(&event.data);
                }
            }
            Meter::Blind => {}
        }
    }

    /// What the answer read so far reports.
    fn reported(&mut self) -> Reported {
        match std::mem::replace(self, Meter::Blind) {
            Meter::Json(window, _) => serde_json::from_slice::<Value>(&window)
                .map(|value| Reported::of(&value))
                .unwrap_or_default(),
            Meter::Sse(_, found) => found,
            Meter::Blind => Reported::default(),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // The server stops polling once a sized body is out (or the client went away): the
        // answer read so far still says what the upstream reported.
        if let Some(close) = self.close.take() {
            close.finish(self.meter.reported(), None);
        }
    }
}

/// What an upstream's answer says it used.
#[derive(Debug, Default, PartialEq)]
struct Reported {
    usage: Option<TokenUsage>,
    audio_seconds: Option<f64>,
    images: Option<i64>,
    /// The tier the images were made at (`quality size`), when the answer says.
    tier: Option<String>,
    search_units: Option<i64>,
    /// The text generated (completions' `choices[].text`), up to [`USAGE_WINDOW`] bytes, for
    /// counting output when no usage is reported.
    text: String,
}

impl Reported {
    /// One SSE event: its text is added to the answer's; an event that reports usage
    /// (`transcript.text.done`, a completions stream's usage chunk) is what the answer
    /// reports, the last one winning.
    fn event(&mut self, data: &[u8]) {
        let Ok(value) = serde_json::from_slice::<Value>(data) else {
            return; // `[DONE]`
        };
        let event = Self::of(&value);
        if self.text.len() < USAGE_WINDOW {
            self.text.push_str(&event.text);
        }
        if value.get("usage").is_some_and(|u| !u.is_null()) {
            let text = std::mem::take(&mut self.text);
            *self = Self { text, ..event };
        }
    }

    fn of(value: &Value) -> Self {
        let usage = value.get("usage");
        let n = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| usage?.get(*k).and_then(Value::as_u64))
                .unwrap_or(0)
        };
        // `usage` in tokens: OpenAI-style names, or rerank's `total_tokens`. Transcriptions
        // by the second say `"type": "duration"`.
        let by_duration =
            usage.and_then(|u| u.get("type")).and_then(Value::as_str) == Some("duration");
        let input = n(&["prompt_tokens", "input_tokens", "total_tokens"]);
        let output = n(&["completion_tokens", "output_tokens"]);
        let tokens = (!by_duration && input + output > 0).then(|| TokenUsage {
            input_tokens: input,
            output_tokens: output,
            ..Default::default()
        });
        let seconds = usage
            .filter(|_| by_duration)
            .and_then(|u| u.get("seconds"))
            .or_else(|| value.get("duration"))
            .and_then(Value::as_f64);
        let images = value
            .get("data")
            .and_then(Value::as_array)
            .filter(|_| value.get("created").is_some())
            .map(|d| i64::try_from(d.len()).unwrap_or(i64::MAX));
        let tier = match (
            value.get("quality").and_then(Value::as_str),
            value.get("size").and_then(Value::as_str),
        ) {
            (Some(q), Some(s)) => Some(format!("{q} {s}")),
            _ => None,
        };
        // Cohere's `meta.billed_units.search_units`, or a `usage.search_units`.
        let search_units = value
            .pointer("/meta/billed_units/search_units")
            .or_else(|| usage.and_then(|u| u.get("search_units")))
            .and_then(Value::as_i64);
        let text = value
            .get("choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("text").and_then(Value::as_str))
            .collect();
        Self {
            usage: tokens,
            audio_seconds: seconds,
            images,
            tier,
            search_units,
            text,
        }
    }
}

/// The text a request asks about (`input`, `prompt`, `query` and `documents`), for counting.
fn request_text(request: &Value) -> String {
    let mut text = String::new();
    let mut push = |v: &Value| match v {
        Value::String(s) => {
            text.push_str(s);
            text.push('\n');
        }
        Value::Array(items) => {
            for item in items {
                if let Some(s) = item.as_str().or_else(|| item.get("text")?.as_str()) {
                    text.push_str(s);
                    text.push('\n');
                }
            }
        }
        _ => {}
    };
    for key in ["input", "prompt", "query", "documents"] {
        if let Some(v) = request.get(key) {
            push(v);
        }
    }
    text
}

/// Whether an operation is forwarded.
pub(super) fn is_forward(operation: Operation) -> bool {
    matches!(operation, Operation::Forward { .. })
}
