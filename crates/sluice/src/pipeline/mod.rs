//! A proxied request, phase by phase:
//!
//! ```text
//! authenticate → admit → route → translate → upstream → respond → account
//! ```
//!
//! Each phase is a module with a narrow input and output; [`proxy`] strings them together so
//! one request reads top to bottom, whatever the client's dialect.

pub mod account;
pub mod admit;
pub mod authenticate;
pub mod charge;
mod completions;
mod embed;
mod forward;
pub mod models;
mod multipart;
pub mod respond;
pub mod translate;
pub mod upstream;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;
use sluice_dialect::registry::EncodeOptions;
use sluice_dialect::{Capabilities, Capability, Dialect, ErrorBody, ErrorKind, openai_chat};

use crate::error::{GatewayError, Lang};
use crate::gateway::AppState;
use crate::otel;
use crate::providers::{Credential, Operation, Provider, UpstreamCall, UpstreamRequest};
use crate::routing::{self, failover::Answer};
use account::Ledger;
use respond::{StreamRelay, Transform};

/// What a client endpoint is: its dialect, what it asks, and its platform restriction.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    pub dialect: Dialect,
    pub operation: Operation,
    /// Name in usage records.
    pub label: &'static str,
    /// Seed 004's `/gemini/v1/chat`: served only by this platform's providers.
    pub platform: Option<&'static str>,
    /// The model capabilities that can serve it (any one of them).
    pub serves: Capabilities,
}

impl Endpoint {
    /// Seed 004's own routes answer errors in its `{code, message}` shape.
    pub fn seed004_errors(&self) -> bool {
        self.label.starts_with("platform.")
    }

    /// Whose rules hold for callers without a Sluice key: seed 000's on its
    /// `/v1/chat/completions`, seed 004's on its routes.
    pub fn scope(&self) -> crate::token_pool::Scope {
        use crate::token_pool::Scope;
        if self.seed004_errors() {
            Scope::Seed004
        } else if self.label == OPENAI_CHAT.label {
            Scope::Seed000
        } else {
            Scope::Standard
        }
    }

    const fn new(dialect: Dialect, operation: Operation, label: &'static str) -> Self {
        Self {
            dialect,
            operation,
            label,
            platform: None,
            serves: match operation {
                // Counting tokens is what chat and embedding models both answer.
                Operation::CountTokens => {
                    Capabilities::only(Capability::Chat).with(Capability::Embedding)
                }
                Operation::Generate => Capabilities::only(Capability::Chat),
                Operation::Embed { .. } => Capabilities::only(Capability::Embedding),
                Operation::Forward { path } => Capabilities::only(match path.as_bytes() {
                    b"/moderations" => Capability::Moderation,
                    b"/rerank" => Capability::Rerank,
                    b"/images/generations" | b"/images/edits" => Capability::Image,
                    b"/completions" => Capability::Completion,
                    _ => Capability::Audio,
                }),
            },
        }
    }
}

pub const OPENAI_CHAT: Endpoint =
    Endpoint::new(Dialect::OpenAiChat, Operation::Generate, "openai.chat");
pub const OPENAI_RESPONSES: Endpoint = Endpoint::new(
    Dialect::OpenAiResponses,
    Operation::Generate,
    "openai.responses",
);
pub const ANTHROPIC_MESSAGES: Endpoint = Endpoint::new(
    Dialect::Anthropic,
    Operation::Generate,
    "anthropic.messages",
);
pub const ANTHROPIC_COUNT: Endpoint = Endpoint::new(
    Dialect::Anthropic,
    Operation::CountTokens,
    "anthropic.count_tokens",
);
pub const GEMINI_GENERATE: Endpoint =
    Endpoint::new(Dialect::Gemini, Operation::Generate, "gemini.generate");
pub const GEMINI_COUNT: Endpoint = Endpoint::new(
    Dialect::Gemini,
    Operation::CountTokens,
    "gemini.count_tokens",
);
/// Legacy completions, served through chat (see [`completions`]) — or, for a model that has
/// the endpoint upstream, forwarded as [`OPENAI_COMPLETIONS_FORWARDED`].
pub const OPENAI_COMPLETIONS: Endpoint = Endpoint::new(
    Dialect::OpenAiChat,
    Operation::Generate,
    "openai.completions",
);
/// Legacy completions forwarded as-is to the upstream's own `/completions` (a `completion`
/// model under an OpenAI-compatible or Azure provider); recorded under the same label.
pub const OPENAI_COMPLETIONS_FORWARDED: Endpoint = Endpoint::new(
    Dialect::OpenAiChat,
    Operation::Forward {
        path: "/completions",
    },
    "openai.completions",
);
pub const OPENAI_MODERATIONS: Endpoint = Endpoint::new(
    Dialect::OpenAiChat,
    Operation::Forward {
        path: "/moderations",
    },
    "openai.moderations",
);
pub const OPENAI_SPEECH: Endpoint = Endpoint::new(
    Dialect::OpenAiChat,
    Operation::Forward {
        path: "/audio/speech",
    },
    "openai.audio_speech",
);
pub const OPENAI_TRANSCRIPTIONS: Endpoint = Endpoint::new(
    Dialect::OpenAiChat,
    Operation::Forward {
        path: "/audio/transcriptions",
    },
    "openai.audio_transcriptions",
);
pub const OPENAI_TRANSLATIONS: Endpoint = Endpoint::new(
    Dialect::OpenAiChat,
    Operation::Forward {
        path: "/audio/translations",
    },
    "openai.audio_translations",
);
pub const OPENAI_IMAGES: Endpoint = Endpoint::new(
    Dialect::OpenAiChat,
    Operation::Forward {
        path: "/images/generations",
    },
    "openai.images_generations",
);
pub const OPENAI_IMAGE_EDITS: Endpoint = Endpoint::new(
    Dialect::OpenAiChat,
    Operation::Forward {
        path: "/images/edits",
    },
    "openai.images_edits",
);
pub const RERANK: Endpoint = Endpoint::new(
    Dialect::OpenAiChat,
    Operation::Forward { path: "/rerank" },
    "rerank",
);
pub const OPENAI_EMBEDDINGS: Endpoint = Endpoint::new(
    Dialect::OpenAiChat,
    Operation::Embed { batch: true },
    "openai.embeddings",
);
pub const GEMINI_EMBED: Endpoint = Endpoint::new(
    Dialect::Gemini,
    Operation::Embed { batch: false },
    "gemini.embed_content",
);
pub const GEMINI_BATCH_EMBED: Endpoint = Endpoint::new(
    Dialect::Gemini,
    Operation::Embed { batch: true },
    "gemini.batch_embed_contents",
);
pub const PLATFORM_OPENAI: Endpoint =
    Endpoint::new(Dialect::OpenAiChat, Operation::Generate, "platform.openai");
pub const PLATFORM_CLAUDE: Endpoint =
    Endpoint::new(Dialect::Anthropic, Operation::Generate, "platform.claude");
pub const PLATFORM_GEMINI: Endpoint = Endpoint {
    platform: Some("gemini"),
    ..Endpoint::new(Dialect::OpenAiChat, Operation::Generate, "platform.gemini")
};

/// The model and stream flag when the URL carries them (Gemini).
#[derive(Debug, Clone, Default)]
pub struct PathModel {
    pub model: String,
    pub stream: bool,
}

macro_rules! endpoint_handler {
    ($($(#[$doc:meta])* $name:ident => $endpoint:expr;)*) => {$(
        $(#[$doc])*
        pub async fn $name(State(app): State<Arc<AppState>>, request: Request) -> Response {
            proxy(&app, $endpoint, request, None).await
        }
    )*};
}

endpoint_handler! {
    /// `POST /v1/chat/completions`.
    chat_completions => OPENAI_CHAT;
    /// `POST /v1/responses`.
    responses => OPENAI_RESPONSES;
    /// `POST /v1/messages`.
    messages => ANTHROPIC_MESSAGES;
    /// `POST /v1/messages/count_tokens`.
    count_tokens => ANTHROPIC_COUNT;
    /// `POST /openai/v1/chat/completions` (seed 004).
    platform_openai => PLATFORM_OPENAI;
    /// `POST /claude/v1/messages` (seed 004).
    platform_claude => PLATFORM_CLAUDE;
    /// `POST /gemini/v1/chat` (seed 004): an OpenAI-style body served by Gemini platforms only.
    platform_gemini => PLATFORM_GEMINI;
    /// `POST /v1/embeddings`.
    embeddings => OPENAI_EMBEDDINGS;
    /// `POST /v1/completions`.
    legacy_completions => OPENAI_COMPLETIONS;
    /// `POST /v1/moderations`.
    moderations => OPENAI_MODERATIONS;
    /// `POST /v1/audio/speech`.
    audio_speech => OPENAI_SPEECH;
    /// `POST /v1/rerank`.
    rerank => RERANK;
    /// `POST /v1/audio/transcriptions` (multipart).
    audio_transcriptions => OPENAI_TRANSCRIPTIONS;
    /// `POST /v1/audio/translations` (multipart).
    audio_translations => OPENAI_TRANSLATIONS;
    /// `POST /v1/images/generations`.
    images_generations => OPENAI_IMAGES;
    /// `POST /v1/images/edits` (multipart).
    images_edits => OPENAI_IMAGE_EDITS;
}

/// The routes of the endpoints beyond chat (embeddings, …), merged into the server's router
/// in one place. Gemini's `:embedContent` / `:batchEmbedContents` ride on [`gemini_action`].
pub fn beyond_chat() -> axum::Router<Arc<AppState>> {
    axum::Router::new()
        .route("/v1/embeddings", axum::routing::post(embeddings))
        .route("/v1/completions", axum::routing::post(legacy_completions))
        .route("/v1/moderations", axum::routing::post(moderations))
        .route("/v1/audio/speech", axum::routing::post(audio_speech))
        .route("/v1/rerank", axum::routing::post(rerank))
        .route(
            "/v1/audio/transcriptions",
            axum::routing::post(audio_transcriptions),
        )
        .route(
            "/v1/audio/translations",
            axum::routing::post(audio_translations),
        )
        .route(
            "/v1/images/generations",
            axum::routing::post(images_generations),
        )
        .route("/v1/images/edits", axum::routing::post(images_edits))
}

/// `POST /v1beta/models/{model}:{action}` (and under `/v1/models/`).
pub async fn gemini_action(
    State(app): State<Arc<AppState>>,
    model_action: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
    let Ok(Path(model_action)) = model_action else {
        return models::invalid_model_path()
            .localized(Lang::from_headers(request.headers()))
            .render(Dialect::Gemini);
    };
    let Some((model, action)) = model_action.rsplit_once(':') else {
        return GatewayError::unknown_route(request.method(), request.uri().path())
            .render(Dialect::Gemini);
    };
    let (endpoint, stream) = match action {
        "generateContent" => (GEMINI_GENERATE, false),
        "streamGenerateContent" => (GEMINI_GENERATE, true),
        "countTokens" => (GEMINI_COUNT, false),
        "embedContent" => (GEMINI_EMBED, false),
        "batchEmbedContents" => (GEMINI_BATCH_EMBED, false),
        _ => {
            return GatewayError::unknown_route(request.method(), request.uri().path())
                .render(Dialect::Gemini);
        }
    };
    let model = model.strip_prefix("models/").unwrap_or(model).to_string();
    proxy(&app, endpoint, request, Some(PathModel { model, stream })).await
}

/// Serves one proxied request of any dialect.
pub async fn proxy(
    app: &AppState,
    endpoint: Endpoint,
    request: Request,
    path: Option<PathModel>,
) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let request_id = crate::server::request_id(&parts.headers);
    let mut ledger = Ledger::open(&app.usage, request_id, endpoint.label, started);
    if crate::otel::on() {
        ledger.set_span(crate::otel::server_span(
            &parts,
            endpoint.label,
            ledger.request_id(),
        ));
    }
    {
        let runtime = app.runtime.load();
        if runtime.config.request_log {
            let max_body = runtime.config.request_log_files.max_body_size.0;
            let capture = crate::request_log::Capture::of_request(
                &parts,
                usize::try_from(max_body).unwrap_or(usize::MAX),
            );
            ledger.with(|r| r.capture = Some(Box::new(capture)));
        }
    }
    // Past the shutdown grace period a request still waiting for its upstream (or still
    // uploading its body) is answered with 503 in its dialect, and recorded so.
    let mut hard_stop = app.hard_stop.subscribe();
    let handled = tokio::select! {
        biased;
        handled = handle(app, endpoint, &parts, body, path, &mut ledger) => handled,
        () = stopped(&mut hard_stop) => Err(GatewayError::cut_by_shutdown()),
    };
    let mut attempts = 0;
    ledger.with(|r| attempts = r.attempts);
    // A completions request served through chat is answered in the completions shape; a
    // forwarded one already is.
    let through_chat =
        endpoint.label == OPENAI_COMPLETIONS.label && !matches!(handled, Ok(Handled::Forwarded(_)));
    let mut response = match handled {
        Ok(Handled::Streaming { relay, upstream }) => {
            let provider = relay.provider.clone();
            respond::sse_response((*relay).into_body(upstream, ledger), &provider)
        }
        Ok(Handled::Forwarded(forwarded)) => forward::respond(*forwarded, ledger),
        Ok(Handled::Complete(response)) => {
            ledger.first_byte();
            ledger.finish(response.status().as_u16(), None);
            response
        }
        Err(error) => {
            let code = error
                .body
                .code
                .clone()
                .unwrap_or_else(|| error.body.kind.openai_type().to_string());
            let message = error.body.message.clone();
            ledger.with(|r| {
                if let Some(capture) = r.capture.as_mut() {
                    capture.error_message = Some(message);
                }
            });
            ledger.finish(error.status.as_u16(), Some(code));
            if endpoint.seed004_errors() {
                error
                    .localized(Lang::for_seed004(&parts.headers))
                    .render_seed004()
            } else {
                error
                    .localized(Lang::from_headers(&parts.headers))
                    .render(endpoint.dialect)
            }
        }
    };
    if through_chat {
        response = completions::reshape(response).await;
    }
    routing::failover::tag_attempts(&mut response, attempts);
    response
}

/// Resolves once the hard stop is ordered (never, if the gateway's state is gone).
async fn stopped(hard_stop: &mut tokio::sync::watch::Receiver<bool>) {
    if hard_stop.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

enum Handled {
    Complete(Response),
    /// An upstream answer relayed unchanged; the relay takes over the ledger.
    Forwarded(Box<forward::Forwarded>),
    /// An upstream stream to relay; the relay takes over the ledger.
    Streaming {
        relay: Box<StreamRelay>,
        upstream: respond::UpstreamBody,
    },
}

async fn handle(
    app: &AppState,
    endpoint: Endpoint,
    parts: &http::request::Parts,
    body: Body,
    path: Option<PathModel>,
    ledger: &mut Ledger,
) -> Result<Handled, GatewayError> {
    let client = endpoint.dialect;
    let counting = endpoint.operation == Operation::CountTokens;
    let runtime = app.runtime.load();
    let accounts = &app.accounts;
    let server = ledger.span().clone();
    let span = otel::phase(&server, "authenticate");
    let phase = Instant::now();
    let authenticated = crate::token_pool::authenticate(
        &runtime,
        accounts,
        &parts.headers,
        parts.uri.query(),
        is_local(&runtime, &parts.extensions, &parts.headers),
        endpoint.scope(),
    );
    let spent = phase.elapsed();
    ledger.with(|r| r.overhead.authenticate = Some(spent));
    failed_phase(&span, &authenticated);
    drop(span);
    let (caller, own_token) = authenticated?;
    ledger.with(|r| {
        r.key_id = caller.key_id.clone();
        r.user_id = caller.user_id;
        r.api_key_id = caller.key.as_ref().map(|k| k.id);
    });

    let limit = match endpoint.operation {
        Operation::Forward { path } if forward::is_multipart(path) => app.limits.max_upload_size,
        _ => app.limits.max_body_size,
    };
    let bytes = read_body(body, limit, app.limits.body_read_timeout).await?;
    otel::record_content(&server, "sluice.request.body", &bytes);
    ledger.with(|r| {
        if let Some(capture) = r.capture.as_mut() {
            capture.body = bytes.clone();
        }
    });
    // Legacy completions are forwarded as they came to a model that has the endpoint
    // upstream, and otherwise continue as the chat request their prompt becomes.
    let (endpoint, bytes) = if endpoint.label == OPENAI_COMPLETIONS.label {
        if completions::forwards(&runtime, &bytes) {
            (OPENAI_COMPLETIONS_FORWARDED, bytes)
        } else {
            let chat = sluice_dialect::openai_completions::chat_request(&bytes)
                .map_err(GatewayError::bad_request)?;
            (endpoint, Bytes::from(chat))
        }
    } else {
        (endpoint, bytes)
    };
    let (path_model, path_stream) = path.map_or((None, false), |p| (Some(p.model), p.stream));
    if forward::is_forward(endpoint.operation) {
        let content_type = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        return forward::handle(
            app,
            &runtime,
            endpoint,
            &caller,
            own_token,
            content_type,
            bytes,
            ledger,
        )
        .await;
    }
    if let Operation::Embed { .. } = endpoint.operation {
        let start = embed::Start {
            caller: &caller,
            own_token,
            body: bytes,
            path_model,
        };
        return embed::handle(app, &runtime, endpoint, start, ledger).await;
    }
    let phase = Instant::now();
    let probe = client.probe(&bytes, path_model.as_deref(), path_stream, counting);
    let mut translating = phase.elapsed();
    let probe = probe.map_err(GatewayError::bad_request)?;
    ledger.with(|r| {
        r.model_requested = Some(probe.model.clone());
        r.stream = probe.stream;
    });

    // The first candidate's upstream body, when pricing the quota reservation needed it
    // (its output limit): the first attempt sends it instead of translating again.
    let first_body = std::sync::OnceLock::<(Dialect, String, Bytes)>::new();
    let session = runtime
        .router
        .session_header()
        .and_then(|header| routing::sticky::session_of(header, &parts.headers, client, &bytes));
    let routed = admit_and_route(
        app,
        &runtime,
        endpoint,
        Routing {
            caller: &caller,
            own_token,
            body: &bytes,
            model: &probe.model,
            session: session.as_deref(),
        },
        ledger,
        |first| {
            if counting {
                return Some(0);
            }
            let target = first?;
            let upstream = target.provider.dialect();
            let body =
                translate::upstream_body(client, upstream, &bytes, &probe, &target.upstream_model)
                    .ok()?;
            let cap = upstream.output_cap(&body);
            let _ = first_body.set((upstream, target.upstream_model.to_string(), body));
            cap
        },
    )
    .await?;
    let (router, mut plan, admitted) = (&runtime.router, routed.plan, routed.admitted);

    if counting && !plan.restrict(|t| t.provider.counts_tokens()) {
        let tokens = translate::local_token_count(client, &bytes)?;
        ledger.with(|r| r.usage.input_tokens = tokens);
        let body = Bytes::from(client.count_tokens_response(tokens).to_string());
        ledger.with(|r| r.capture_response(&body));
        let served_by = plan
            .entry()
            .targets
            .first()
            .map(|t| t.provider.name().to_string())
            .unwrap_or_default();
        return Ok(Handled::Complete(respond::json_response(
            StatusCode::OK,
            body,
            &served_by,
        )));
    }

    let request_id = ledger.request_id().to_string();
    let served = routing::failover::run(router, &mut plan, ledger, probe.stream, |pick| {
        let provider = &pick.target.provider;
        let upstream_dialect = provider.dialect();
        let model = &pick.target.upstream_model;
        let span = otel::phase(&server, "translate_request");
        let phase = Instant::now();
        let upstream_body = if counting {
            translate::count_tokens_body(client, upstream_dialect, &bytes, &probe, model)
        } else {
            match first_body.get() {
                Some((dialect, for_model, body))
                    if *dialect == upstream_dialect && for_model.as_str() == &**model =>
                {
                    Ok(body.clone())
                }
                _ => translate::upstream_body(client, upstream_dialect, &bytes, &probe, model),
            }
        };
        translating += phase.elapsed();
        failed_phase(&span, &upstream_body);
        drop(span);
        let upstream_body = upstream_body?;
        let call = UpstreamCall {
            operation: endpoint.operation,
            model,
            stream: probe.stream,
            forwarded: &forwarded_headers(client, upstream_dialect, &parts.headers),
        };
        prepare(
            provider,
            &call,
            &pick.credential,
            upstream_body,
            &request_id,
        )
    })
    .await;
    ledger.with(|r| r.overhead.translate_request = Some(translating));
    let served = served?;
    let provider = served.pick.target.provider.clone();
    let common = provider.common();
    let upstream_dialect = provider.dialect();

    let body = match served.answer {
        Answer::Stream { response, secrets } => {
            let transform = if client == upstream_dialect {
                match client {
                    Dialect::OpenAiChat => Transform::ChatPassthrough {
                        strip_usage: !probe.include_usage,
                    },
                    _ => Transform::Passthrough {
                        decoder: Box::new(upstream_dialect.stream_decoder()),
                    },
                }
            } else {
                let options = encode_options(app, &probe.model, probe.include_usage);
                Transform::Translate {
                    decoder: Box::new(upstream_dialect.stream_decoder()),
                    encoder: Box::new(client.stream_encoder(&options)),
                }
            };
            let relay = StreamRelay {
                provider: provider.name().to_string(),
                client,
                encode: encode_options(app, &probe.model, probe.include_usage),
                transform,
                idle: common.timeouts.idle,
                secrets,
                shutdown: app.hard_stop.subscribe(),
                span: otel::phase(&server, "relay"),
                admitted,
                on_upstream_fault: routing::failover::stream_fault_reporter(
                    app.runtime.load_full(),
                    &served.pick,
                ),
            };
            return Ok(Handled::Streaming {
                relay: Box::new(relay),
                upstream: provider.stream_body(response),
            });
        }
        Answer::Complete(body) => body,
    };
    drop(admitted);
    let span = otel::phase(&server, "translate_response");
    let phase = Instant::now();
    let (body, usage) = if counting {
        let tokens = count_from_upstream(upstream_dialect, &body);
        let reply = if client == upstream_dialect {
            body
        } else {
            Bytes::from(client.count_tokens_response(tokens).to_string())
        };
        (
            reply,
            sluice_dialect::TokenUsage {
                input_tokens: tokens,
                ..Default::default()
            },
        )
    } else if client == upstream_dialect {
        // Passthrough: read only the usage (OpenAI Chat: without building the answer); the
        // answer's text is needed only when the upstream reported none, to count locally.
        let (usage, decoded) = match client {
            Dialect::OpenAiChat => (openai_chat::response_usage(&body), None),
            other => {
                let decoded = other.decode_response(&body).ok();
                (decoded.as_ref().map(|r| r.usage), decoded)
            }
        };
        if usage.is_none_or(|u| u.total() == 0) {
            let text = decoded
                .or_else(|| upstream_dialect.decode_response(&body).ok())
                .map(|r| crate::pricing::estimate::response_text(&r))
                .unwrap_or_default();
            ledger.with(|r| r.reply_text = Some(text));
        }
        (body, usage.unwrap_or_default())
    } else {
        let mut decoded = upstream_dialect.decode_response(&body).map_err(|e| {
            otel::phase_failed(&span, "invalid_upstream_answer");
            GatewayError::upstream_failed(
                provider.name(),
                &format!("its answer could not be read: {}", e.message),
            )
        })?;
        if decoded.created == 0 {
            decoded.created = app.now_unix();
        }
        if decoded.usage.total() == 0 {
            let text = crate::pricing::estimate::response_text(&decoded);
            ledger.with(|r| r.reply_text = Some(text));
        }
        (
            Bytes::from(client.encode_response(&decoded).to_string()),
            decoded.usage,
        )
    };
    let spent = phase.elapsed();
    drop(span);
    otel::record_content(&server, "sluice.response.body", &body);
    ledger.with(|r| {
        r.usage = usage;
        r.overhead.translate_response = Some(spent);
        r.capture_response(&body);
    });
    Ok(Handled::Complete(respond::json_response(
        StatusCode::OK,
        body,
        provider.name(),
    )))
}

/// What routing one request needs besides the gateway's state.
struct Routing<'a> {
    caller: &'a authenticate::Caller,
    /// The caller's own upstream token (`allow-client-tokens`).
    own_token: Option<String>,
    body: &'a Bytes,
    model: &'a str,
    session: Option<&'a str>,
}

/// A request admitted and routed: the providers that may serve it, in order, and its slot.
struct Routed<'r> {
    plan: routing::Plan<'r>,
    admitted: admit::Admitted,
}

/// Phases 2 and 3 for every endpoint: the gateway-wide admission, the route (only to
/// providers whose model can serve the endpoint, within the key's platforms and models, priced
/// when the key has a quota), then the key's limits and quota reservation — priced at the
/// first candidate's model for the output limit `output_cap` reads from the body that
/// candidate would receive — and the charge that settles it when the record closes.
async fn admit_and_route<'r>(
    app: &AppState,
    runtime: &'r crate::gateway::Runtime,
    endpoint: Endpoint,
    request: Routing<'r>,
    ledger: &mut Ledger,
    output_cap: impl FnOnce(Option<&routing::catalog::Target>) -> Option<u64>,
) -> Result<Routed<'r>, GatewayError> {
    let counting = endpoint.operation == Operation::CountTokens;
    let accounts = &app.accounts;
    let server = ledger.span().clone();
    let span = otel::phase(&server, "admit");
    let phase = Instant::now();
    let admitted = app.admission.admit();
    let mut admitting = phase.elapsed();
    ledger.with(|r| r.overhead.admit = Some(admitting));
    failed_phase(&span, &admitted);
    drop(span);
    let admitted = admitted?;
    if app.is_draining() {
        return Err(GatewayError::shutting_down());
    }

    let span = otel::phase(&server, "route");
    let phase = Instant::now();
    let router = &runtime.router;
    let plan = router.plan(request.model, endpoint.platform, request.session);
    ledger.with(|r| {
        r.model_known = plan.is_ok();
        r.overhead.route = Some(phase.elapsed());
    });
    failed_phase(&span, &plan);
    let mut plan = plan?;
    // A model that cannot do what the endpoint asks is refused before any upstream call;
    // one served by several providers is routed only to those where it can.
    let (serves, operation) = (endpoint.serves, endpoint.operation);
    if !plan.restrict(move |t| t.capabilities.intersects(serves)) {
        return Err(failed(
            &span,
            GatewayError::model_cannot_serve(request.model, serves, plan.entry().capabilities()),
        ));
    }
    if !plan.restrict(move |t| t.provider.supports(operation)) {
        return Err(failed(
            &span,
            GatewayError::no_provider_serves(request.model, endpoint.label),
        ));
    }
    if let Some(token) = request.own_token {
        plan = plan.with_caller_token(token);
    }
    let caller = request.caller;
    let restricted = crate::keys::policy::restrict_plan(
        &mut plan,
        request.model,
        endpoint.platform,
        caller.key.as_deref(),
    );
    let routing_spent = phase.elapsed();
    ledger.with(|r| r.overhead.route = Some(routing_spent));
    failed_phase(&span, &restricted);
    drop(span);
    restricted?;
    // A key with a quota is served only by models with a price: never silently free.
    if !counting
        && caller
            .key
            .as_deref()
            .is_some_and(|k| k.limits.monthly_quota > 0)
    {
        let prices = runtime.prices.clone();
        if !plan.restrict(move |t| prices.price(&t.upstream_model).is_some()) {
            return Err(GatewayError::model_not_priced(request.model));
        }
    }
    let first = plan.entry().targets.first();
    let priced_model = first.map_or_else(
        || request.model.to_string(),
        |t| t.upstream_model.to_string(),
    );
    let reservation = match caller.key.as_deref() {
        Some(key) => {
            let span = otel::phase(&server, "admit");
            let phase = Instant::now();
            let admitted = admit::admit_key(
                accounts,
                &runtime.prices,
                key,
                request.body,
                || output_cap(first),
                &priced_model,
            )
            .await;
            admitting += phase.elapsed();
            ledger.with(|r| r.overhead.admit = Some(admitting));
            failed_phase(&span, &admitted);
            drop(span);
            Some((accounts.limiter.clone(), admitted?))
        }
        None => None,
    };
    ledger.on_close(
        charge::Charge {
            prices: runtime.prices.clone(),
            reservation,
            client: endpoint.dialect,
            body: request.body.clone(),
            billable: !counting,
        }
        .into_hook(),
    );
    Ok(Routed { plan, admitted })
}

/// Marks a phase's span failed with the status its error would answer.
fn failed_phase<T>(span: &tracing::Span, result: &Result<T, GatewayError>) {
    if let Err(e) = result {
        otel::phase_failed(span, e.status.as_str());
    }
}

/// Marks a phase's span failed with `error`'s status, and hands the error on.
fn failed(span: &tracing::Span, error: GatewayError) -> GatewayError {
    otel::phase_failed(span, error.status.as_str());
    error
}

/// Whether the caller is on this machine (for `allow-localhost-unauthenticated`).
fn is_local(
    runtime: &crate::gateway::Runtime,
    ext: &http::Extensions,
    headers: &HeaderMap,
) -> bool {
    crate::peer::client_addr(ext, headers, &runtime.config.trusted_proxies).is_some_and(|c| c.local)
}

fn encode_options(app: &AppState, model: &str, include_usage: bool) -> EncodeOptions {
    EncodeOptions {
        model: model.to_string(),
        include_usage,
        created: app.now_unix(),
    }
}

/// `anthropic-version` / `anthropic-beta` travel to an Anthropic upstream only from Anthropic
/// clients; other clients' headers never reach the upstream.
fn forwarded_headers(client: Dialect, upstream: Dialect, headers: &HeaderMap) -> HeaderMap {
    let mut forwarded = HeaderMap::new();
    if client == Dialect::Anthropic && upstream == Dialect::Anthropic {
        for name in ["anthropic-version", "anthropic-beta"] {
            if let Some(v) = headers.get(name) {
                forwarded.insert(name, v.clone());
            }
        }
    }
    forwarded
}

/// Reads an upstream token count (`input_tokens` or `totalTokens`).
fn count_from_upstream(dialect: Dialect, body: &[u8]) -> u64 {
    let field = if dialect == Dialect::Gemini {
        "totalTokens"
    } else {
        "input_tokens"
    };
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get(field)?.as_u64())
        .unwrap_or(0)
}

/// Reads the body up to the configured limit.
/// A body that stalls past `connections.body-read-timeout` (the listener fails it) is
/// answered 413. A body over the limit is still read (and dropped) up to [`DRAIN_LIMIT`] more
/// bytes before the 413 goes out, so that a client that sends its whole body before reading
/// the answer (most SDKs) gets the 413 rather than a connection reset.
async fn read_body(mut body: Body, limit: u64, timeout: Duration) -> Result<Bytes, GatewayError> {
    let limit_len = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut kept = bytes::BytesMut::new();
    let mut seen: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) if crate::listener::is_body_timeout(&e) => {
                return Err(GatewayError::body_timeout(timeout));
            }
            // A client that broke off while its body was already too large.
            Err(_) if seen > limit => return Err(GatewayError::too_large(limit)),
            Err(_) => {
                return Err(GatewayError::bad_request(ErrorBody::new(
                    ErrorKind::InvalidRequest,
                    "The request body could not be read.",
                )));
            }
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        seen = seen.saturating_add(data.len() as u64);
        if seen <= limit {
            if kept.is_empty() && seen == data.len() as u64 {
                kept.reserve(data.len().min(limit_len));
            }
            kept.extend_from_slice(&data);
        } else {
            kept = bytes::BytesMut::new();
            if seen > limit.saturating_add(DRAIN_LIMIT) {
                break;
            }
        }
    }
    if seen > limit {
        return Err(GatewayError::too_large(limit));
    }
    Ok(kept.freeze())
}

/// How much of a body over the limit is read and dropped before answering 413.
const DRAIN_LIMIT: u64 = 64 * 1024 * 1024;

/// Model listings take the same keys as the proxy endpoints; a refusal is in `dialect`'s shape.
/// The answer is the test a model name must pass to be listed: a stored key sees only the
/// models its `allowed_models` lets it use.
fn authenticate_listing(
    app: &AppState,
    runtime: &crate::gateway::Runtime,
    request: &Request,
    dialect: Dialect,
    scope: crate::token_pool::Scope,
) -> Result<impl Fn(&str) -> bool + use<>, Box<Response>> {
    crate::token_pool::authenticate(
        runtime,
        &app.accounts,
        request.headers(),
        request.uri().query(),
        is_local(runtime, request.extensions(), request.headers()),
        scope,
    )
    .map(|(caller, _)| {
        move |model: &str| caller.key.as_ref().is_none_or(|k| k.models.allows(model))
    })
    .map_err(|e| {
        Box::new(
            e.localized(Lang::from_headers(request.headers()))
                .render(dialect),
        )
    })
}

/// One attempt's upstream request for an endpoint that passes no client headers upstream and
/// asks for no stream of its own (embeddings, forwarded endpoints, which relay whatever comes).
fn prepare_plain(
    endpoint: Endpoint,
    pick: &routing::Pick,
    body: Bytes,
    request_id: &str,
) -> Result<UpstreamRequest, GatewayError> {
    let call = UpstreamCall {
        operation: endpoint.operation,
        model: &pick.target.upstream_model,
        stream: false,
        forwarded: &HeaderMap::new(),
    };
    prepare(
        &pick.target.provider,
        &call,
        &pick.credential,
        body,
        request_id,
    )
}

/// One attempt's upstream request, carrying the gateway's request id.
pub(crate) fn prepare(
    provider: &Provider,
    call: &UpstreamCall<'_>,
    credential: &Credential,
    body: Bytes,
    request_id: &str,
) -> Result<UpstreamRequest, GatewayError> {
    let mut prepared = provider
        .request(call, credential, body)
        .map_err(|e| GatewayError::upstream_failed(provider.name(), &e))?;
    if let Ok(id) = http::HeaderValue::from_str(request_id) {
        prepared.headers.insert("x-request-id", id);
    }
    Ok(prepared)
}
