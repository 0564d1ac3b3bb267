//! OpenAI's audio-in and image endpoints, per their published formats and strictly (an
//! unknown field is the 400 OpenAI answers; so is a value a model does not take):
//!
//! - `POST /v1/audio/transcriptions` (multipart): `file` and `model` required; `language`,
//!   `prompt`, `response_format` (`json`, `text`, `srt`, `verbose_json`, `vtt`),
//!   `temperature`, `timestamp_granularities[]`, `include[]`, `chunking_strategy`, `stream`
//!   (the GPT-4o transcribe models only). `whisper-1` reports `usage` by the second
//!   (`{"type":"duration","seconds":…}`), the GPT-4o models in tokens; a stream is
//!   `transcript.text.delta` events and a `transcript.text.done` with the usage.
//! - `POST /v1/audio/translations` (multipart, `whisper-1` only): `file`, `model`, `prompt`,
//!   `response_format`, `temperature`.
//! - `POST /v1/images/generations` (JSON) and `POST /v1/images/edits` (multipart: `image`, or
//!   `image[]` for `gpt-image-1`, and `mask`): sizes, qualities, `n` and `response_format`
//!   allowed per model (`dall-e-2`, `dall-e-3` (generations only), `gpt-image-1`, which always
//!   answers `b64_json` with its `usage`, `quality` and `size`).
//! - Azure's `/openai/deployments/{d}/…` of each, the deployment standing for the model.
//!
//! Audio is "heard" deterministically: one second per 16 000 bytes of file (rounded up), the
//! text names the file. Files over 25 MB are refused with 413, as OpenAI does.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::errors::OpenAiError;
use crate::openai_gate::preflight;

/// OpenAI's upload limit for audio files.
const AUDIO_LIMIT: usize = 25 * 1024 * 1024;
/// Bytes of audio per second the fake hears.
const BYTES_PER_SECOND: usize = 16_000;
/// A 1×1 transparent PNG, the image every answer carries.
const PNG_B64: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/audio/transcriptions", post(transcriptions))
        .route("/v1/audio/translations", post(translations))
        .route("/v1/images/generations", post(generations))
        .route("/v1/images/edits", post(edits))
        .route(
            "/openai/deployments/{deployment}/audio/transcriptions",
            post(|s, p, q, h, b| azure(s, p, q, h, b, "audio/transcriptions")),
        )
        .route(
            "/openai/deployments/{deployment}/audio/translations",
            post(|s, p, q, h, b| azure(s, p, q, h, b, "audio/translations")),
        )
        .route(
            "/openai/deployments/{deployment}/images/generations",
            post(|s, p, q, h, b| azure(s, p, q, h, b, "images/generations")),
        )
        .route(
            "/openai/deployments/{deployment}/images/edits",
            post(|s, p, q, h, b| azure(s, p, q, h, b, "images/edits")),
        )
}

/// One part of a form.
struct Part {
    name: String,
    file: Option<String>,
    data: Bytes,
}

/// A multipart form, read strictly: a body that is no form is OpenAI's 400.
async fn form(headers: &HeaderMap, body: Bytes) -> Result<Vec<Part>, OpenAiError> {
    let boundary = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| multer::parse_boundary(ct).ok())
        .ok_or_else(|| {
            OpenAiError::invalid_value(
                "file",
                "Invalid Content-Type header: expected multipart/form-data with a boundary.",
            )
        })?;
    let stream = futures_util::stream::once(async move { Ok::<Bytes, Infallible>(body) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut parts = Vec::new();
    loop {
        match multipart.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or_default().to_string();
                let file = field.file_name().map(str::to_string);
                let data = field.bytes().await.map_err(|e| {
                    OpenAiError::invalid_value(
                        "file",
                        &format!("Could not parse multipart form: {e}"),
                    )
                })?;
                parts.push(Part { name, file, data });
            }
            Ok(None) => return Ok(parts),
            Err(e) => {
                return Err(OpenAiError::invalid_value(
                    "file",
                    &format!("Could not parse multipart form: {e}"),
                ));
            }
        }
    }
}

/// A file of a form: its field, file name and size.
struct Upload {
    field: String,
    name: String,
    size: usize,
}

/// A form's text fields (first of each name) after checking every name is `allowed`, and its
/// files.
fn fields(
    parts: &[Part],
    allowed: &[&str],
) -> Result<(Map<String, Value>, Vec<Upload>), OpenAiError> {
    let mut text = Map::new();
    let mut files = Vec::new();
    for part in parts {
        if !allowed.contains(&part.name.as_str()) {
            return Err(OpenAiError::unrecognized_argument(&part.name));
        }
        match &part.file {
            Some(file) => files.push(Upload {
                field: part.name.clone(),
                name: file.clone(),
                size: part.data.len(),
            }),
            None => {
                let value = String::from_utf8_lossy(&part.data).into_owned();
                text.entry(part.name.clone())
                    .or_insert(Value::String(value));
            }
        }
    }
    Ok((text, files))
}

fn text<'a>(fields: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    fields.get(name).and_then(Value::as_str)
}

fn served(state: &AppState, model: &str) -> Result<(), OpenAiError> {
    if state.config.serves(model) {
        Ok(())
    } else {
        Err(OpenAiError::model_not_found(model))
    }
}

const AUDIO_FORMATS: [&str; 9] = [
    "flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav",
];

/// The audio file of a form: present, of a known format, at most 25 MB.
fn audio_file(files: &[Upload]) -> Result<(String, usize), OpenAiError> {
    let Some(Upload { name, size, .. }) = files.iter().find(|f| f.field == "file") else {
        return Err(OpenAiError::missing_parameter("file"));
    };
    if *size > AUDIO_LIMIT {
        return Err(OpenAiError::too_large(AUDIO_LIMIT, *size));
    }
    let known = name.rsplit_once('.').is_some_and(|(_, ext)| {
        AUDIO_FORMATS.contains(&ext.to_ascii_lowercase().as_str()) || ext == "webm"
    });
    if !known {
        return Err(OpenAiError::invalid_value(
            "file",
            "Invalid file format. Supported formats: ['flac', 'm4a', 'mp3', 'mp4', 'mpeg', 'mpga', 'oga', 'ogg', 'wav', 'webm']",
        ));
    }
    Ok((name.clone(), *size))
}

/// Serves a transcription (`translate`: a translation) of a parsed form.
fn hear(
    state: &AppState,
    fields: &Map<String, Value>,
    files: &[Upload],
    translate: bool,
) -> Result<Response, OpenAiError> {
    let Some(model) = text(fields, "model") else {
        return Err(OpenAiError::missing_parameter("model"));
    };
    served(state, model)?;
    let gpt = matches!(model, "gpt-4o-transcribe" | "gpt-4o-mini-transcribe");
    if !(model == "whisper-1" || gpt && !translate) {
        return Err(OpenAiError::invalid_value(
            "model",
            &format!(
                "Invalid model '{model}': this endpoint takes {}.",
                if translate {
                    "whisper-1"
                } else {
                    "whisper-1, gpt-4o-transcribe or gpt-4o-mini-transcribe"
                }
            ),
        ));
    }
    let (file, size) = audio_file(files)?;
    let seconds = size.div_ceil(BYTES_PER_SECOND).max(1);
    let format = text(fields, "response_format").unwrap_or("json");
    if !["json", "text", "srt", "verbose_json", "vtt"].contains(&format) {
        return Err(OpenAiError::invalid_value(
            "response_format",
            "Invalid value for 'response_format'.",
        ));
    }
    if gpt && format != "json" && format != "text" {
        return Err(OpenAiError::invalid_value(
            "response_format",
            &format!(
                "response_format '{format}' is not compatible with model '{model}'. Use 'json' or 'text'."
            ),
        ));
    }
    let prompt = text(fields, "prompt")
        .map(|p| format!(" Prompt: {p}"))
        .unwrap_or_default();
    let said = format!("sluice-mock heard {seconds} s of {file}.{prompt}");
    let stream = text(fields, "stream") == Some("true");
    if stream && !gpt {
        return Err(OpenAiError::invalid_value(
            "stream",
            "Streaming is not supported for the whisper-1 model.",
        ));
    }
    let words = said.split(' ').count() as u64;
    let usage = if gpt {
        let audio_tokens = seconds as u64 * 10;
        json!({"type": "tokens", "input_tokens": audio_tokens, "input_token_details": {"text_tokens": 0, "audio_tokens": audio_tokens}, "output_tokens": words, "total_tokens": audio_tokens + words})
    } else {
        json!({"type": "duration", "seconds": seconds})
    };
    if stream {
        let mut events = String::new();
        for (i, word) in said.split(' ').enumerate() {
            let delta = if i == 0 {
                word.to_string()
            } else {
                format!(" {word}")
            };
            events.push_str(&format!(
                "data: {}\n\n",
                json!({"type": "transcript.text.delta", "delta": delta, "logprobs": null})
            ));
        }
        events.push_str(&format!(
            "data: {}\n\n",
            json!({"type": "transcript.text.done", "text": said, "logprobs": null, "usage": usage})
        ));
        return Ok(([(CONTENT_TYPE, "text/event-stream")], events).into_response());
    }
    Ok(match format {
        "text" => ([(CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{said}\n")).into_response(),
        "srt" => ([(CONTENT_TYPE, "text/plain; charset=utf-8")], format!("1\n00:00:00,000 --> 00:00:{seconds:02},000\n{said}\n\n")).into_response(),
        "vtt" => ([(CONTENT_TYPE, "text/plain; charset=utf-8")], format!("WEBVTT\n\n00:00:00.000 --> 00:00:{seconds:02}.000\n{said}\n\n")).into_response(),
        "verbose_json" => Json(json!({
            "task": if translate { "translate" } else { "transcribe" },
            "language": "english",
            "duration": seconds as f64,
            "text": said,
            "segments": [{"id": 0, "seek": 0, "start": 0.0, "end": seconds as f64, "text": said, "tokens": [], "temperature": 0.0, "avg_logprob": -0.1, "compression_ratio": 1.0, "no_speech_prob": 0.0}],
            "usage": usage,
        }))
        .into_response(),
        _ if translate => Json(json!({"text": said})).into_response(),
        _ => Json(json!({"text": said, "usage": usage})).into_response(),
    })
}

/// The form fields `/audio/transcriptions` takes.
const TRANSCRIPTION_FIELDS: [&str; 10] = [
    "file",
    "model",
    "language",
    "prompt",
    "response_format",
    "temperature",
    "timestamp_granularities[]",
    "include[]",
    "chunking_strategy",
    "stream",
];

/// The form fields `/audio/translations` takes.
const TRANSLATION_FIELDS: [&str; 5] = ["file", "model", "prompt", "response_format", "temperature"];

async fn transcriptions(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    audio(&state, &headers, body, false, None).await
}

async fn translations(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    audio(&state, &headers, body, true, None).await
}

/// A transcription, or with `translate` a translation into English.
async fn audio(
    state: &AppState,
    headers: &HeaderMap,
    body: Bytes,
    translate: bool,
    deployment: Option<String>,
) -> Response {
    let allowed: &[&str] = if translate {
        &TRANSLATION_FIELDS
    } else {
        &TRANSCRIPTION_FIELDS
    };
    let result = async {
        preflight(state, headers, &body).await?;
        let parts = form(headers, body).await?;
        let (mut fields, files) = fields(&parts, allowed)?;
        if let Some(deployment) = deployment {
            fields.insert("model".into(), Value::String(deployment));
        }
        hear(state, &fields, &files, translate)
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// What each image model takes.
struct ImageModel {
    sizes: &'static [&'static str],
    qualities: &'static [&'static str],
    max_n: u64,
    /// Answers only `b64_json` (and refuses `response_format`).
    b64_only: bool,
    edits: bool,
}

fn image_model(model: &str) -> Option<ImageModel> {
    Some(match model {
        "dall-e-2" => ImageModel {
            sizes: &["256x256", "512x512", "1024x1024"],
            qualities: &["standard"],
            max_n: 10,
            b64_only: false,
            edits: true,
        },
        "dall-e-3" => ImageModel {
            sizes: &["1024x1024", "1792x1024", "1024x1792"],
            qualities: &["standard", "hd"],
            max_n: 1,
            b64_only: false,
            edits: false,
        },
        "gpt-image-1" => ImageModel {
            sizes: &["1024x1024", "1536x1024", "1024x1536", "auto"],
            qualities: &["low", "medium", "high", "auto"],
            max_n: 10,
            b64_only: true,
            edits: true,
        },
        _ => return None,
    })
}

/// Serves an image request whose fields are read (numbers may come as form text).
fn draw(
    state: &AppState,
    fields: &Map<String, Value>,
    edit: bool,
) -> Result<Response, OpenAiError> {
    let model = text(fields, "model").unwrap_or("dall-e-2");
    served(state, model)?;
    let Some(spec) = image_model(model).filter(|m| m.edits || !edit) else {
        return Err(OpenAiError::invalid_value(
            "model",
            &format!(
                "Invalid value: '{model}'. Supported values are: {}.",
                if edit {
                    "'dall-e-2' and 'gpt-image-1'"
                } else {
                    "'dall-e-2', 'dall-e-3' and 'gpt-image-1'"
                }
            ),
        ));
    };
    let Some(prompt) = text(fields, "prompt").filter(|p| !p.is_empty()) else {
        return Err(OpenAiError::missing_parameter("prompt"));
    };
    let n = match fields.get("n") {
        None => 1,
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        Some(_) => 0,
    };
    if n < 1 || n > spec.max_n {
        return Err(OpenAiError::invalid_value(
            "n",
            &format!(
                "Invalid 'n': {model} makes 1 to {} images per request.",
                spec.max_n
            ),
        ));
    }
    let size = text(fields, "size").unwrap_or(if spec.b64_only { "auto" } else { "1024x1024" });
    if !spec.sizes.contains(&size) {
        return Err(OpenAiError::invalid_value(
            "size",
            &format!(
                "Invalid value: '{size}'. Supported values are: {}.",
                spec.sizes.join(", ")
            ),
        ));
    }
    let quality =
        text(fields, "quality").unwrap_or(if spec.b64_only { "auto" } else { "standard" });
    if !spec.qualities.contains(&quality) {
        return Err(OpenAiError::invalid_value(
            "quality",
            &format!(
                "Invalid value: '{quality}'. Supported values are: {}.",
                spec.qualities.join(", ")
            ),
        ));
    }
    let format = match text(fields, "response_format") {
        Some(_) if spec.b64_only => {
            return Err(OpenAiError::unrecognized_argument("response_format"));
        }
        Some(f @ ("url" | "b64_json")) => f,
        Some(_) => {
            return Err(OpenAiError::invalid_value(
                "response_format",
                "Invalid value for 'response_format': must be 'url' or 'b64_json'.",
            ));
        }
        None if spec.b64_only => "b64_json",
        None => "url",
    };
    let data: Vec<Value> = (0..n)
        .map(|i| {
            let mut image = if format == "url" {
                json!({"url": format!("https://images.sluice-mock.test/{}-{i}.png", crate::ids::request_id())})
            } else {
                json!({"b64_json": PNG_B64})
            };
            if model == "dall-e-3" {
                image["revised_prompt"] = Value::String(format!("A picture of {prompt}"));
            }
            image
        })
        .collect();
    let mut answer = json!({"created": 1_700_000_000u64, "data": data});
    if spec.b64_only {
        // gpt-image-1 says what it made and what it cost in tokens; `auto` is decided here.
        let size = if size == "auto" { "1024x1024" } else { size };
        let quality = if quality == "auto" { "medium" } else { quality };
        let input = prompt.split_whitespace().count() as u64;
        let output = n * 272;
        answer["background"] = json!("opaque");
        answer["output_format"] = json!("png");
        answer["quality"] = json!(quality);
        answer["size"] = json!(size);
        answer["usage"] = json!({"input_tokens": input, "input_tokens_details": {"text_tokens": input, "image_tokens": 0}, "output_tokens": output, "total_tokens": input + output});
    }
    Ok(Json(answer).into_response())
}

const GENERATION_FIELDS: [&str; 14] = [
    "prompt",
    "model",
    "n",
    "quality",
    "response_format",
    "size",
    "style",
    "user",
    "background",
    "moderation",
    "output_compression",
    "output_format",
    "partial_images",
    "stream",
];
const EDIT_FIELDS: [&str; 13] = [
    "image",
    "image[]",
    "mask",
    "prompt",
    "model",
    "n",
    "quality",
    "response_format",
    "size",
    "user",
    "background",
    "output_format",
    "input_fidelity",
];

async fn generations(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    generate(&state, &headers, body, None).await
}

async fn generate(
    state: &AppState,
    headers: &HeaderMap,
    body: Bytes,
    deployment: Option<String>,
) -> Response {
    let result = async {
        preflight(state, headers, &body).await?;
        let Ok(Value::Object(mut fields)) = serde_json::from_slice::<Value>(&body) else {
            return Err(OpenAiError::invalid_json());
        };
        if let Some(key) = fields
            .keys()
            .find(|k| !GENERATION_FIELDS.contains(&k.as_str()))
        {
            return Err(OpenAiError::unrecognized_argument(key));
        }
        if let Some(deployment) = deployment {
            fields.insert("model".into(), Value::String(deployment));
        }
        draw(state, &fields, false)
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn edits(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    edit(&state, &headers, body, None).await
}

async fn edit(
    state: &AppState,
    headers: &HeaderMap,
    body: Bytes,
    deployment: Option<String>,
) -> Response {
    let result = async {
        preflight(state, headers, &body).await?;
        let parts = form(headers, body).await?;
        let (mut fields, files) = fields(&parts, &EDIT_FIELDS)?;
        if let Some(deployment) = deployment {
            fields.insert("model".into(), Value::String(deployment));
        }
        let model = text(&fields, "model").unwrap_or("dall-e-2");
        let images: Vec<&Upload> = files
            .iter()
            .filter(|f| f.field == "image" || f.field == "image[]")
            .collect();
        if images.is_empty() {
            return Err(OpenAiError::missing_parameter("image"));
        }
        let many = if model == "gpt-image-1" { 16 } else { 1 };
        if images.len() > many {
            return Err(OpenAiError::invalid_value(
                "image",
                &format!("{model} takes at most {many} image(s)."),
            ));
        }
        let png_only = model != "gpt-image-1";
        for Upload { name, size, .. } in images.iter().copied() {
            let ext = name
                .rsplit_once('.')
                .map(|(_, e)| e.to_ascii_lowercase())
                .unwrap_or_default();
            let ok = if png_only {
                ext == "png"
            } else {
                ["png", "webp", "jpg", "jpeg"].contains(&ext.as_str())
            };
            if !ok {
                return Err(OpenAiError::invalid_value(
                    "image",
                    &format!("Invalid file '{name}': unsupported image format for {model}."),
                ));
            }
            if *size > if png_only { 4 << 20 } else { 50 << 20 } {
                return Err(OpenAiError::invalid_value(
                    "image",
                    &format!("Invalid file '{name}': too large for {model}."),
                ));
            }
        }
        draw(state, &fields, true)
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Azure OpenAI's deployments of these endpoints (`api-key`, `api-version`).
async fn azure(
    State(state): State<Arc<AppState>>,
    Path(deployment): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
    action: &'static str,
) -> Response {
    let headers = match crate::openai_chat::azure_gate(&state, query.as_deref(), headers) {
        Ok(headers) => headers,
        Err(refused) => return *refused,
    };
    match action {
        "audio/transcriptions" => audio(&state, &headers, body, false, Some(deployment)).await,
        "audio/translations" => audio(&state, &headers, body, true, Some(deployment)).await,
        "images/generations" => generate(&state, &headers, body, Some(deployment)).await,
        "images/edits" => edit(&state, &headers, body, Some(deployment)).await,
        _ => OpenAiError::invalid_url(
            &axum::http::Method::POST,
            &format!("/openai/deployments/{deployment}/{action}"),
        )
        .into_response(),
    }
}
