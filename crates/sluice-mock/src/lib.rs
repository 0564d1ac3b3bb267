//! A faithful fake of upstream LLM provider APIs, for Sluice's integration tests, demo and
//! benchmark.
//!
//! It speaks four dialects, one sibling module each, all answering alike (the `assistant` module decides what they say):
//!
//! | dialect | endpoints |
//! |---|---|
//! | OpenAI Chat Completions (`openai_chat`) | `POST /v1/chat/completions`, `GET /v1/models` |
//! | Azure OpenAI (`openai_chat`) | `POST /openai/deployments/{deployment}/chat/completions?api-version=…` (`api-key`) |
//! | OpenAI Responses (`openai_responses`) | `POST /v1/responses` |
//! | ChatGPT Codex backend (`codex_backend`) | `POST /backend-api/codex/responses` (OAuth Bearer + `chatgpt-account-id`; `stream: true`, `store: false`, `instructions` required) |
//! | Anthropic Messages (`anthropic`) | `POST /v1/messages`, `POST /v1/messages/count_tokens`, `GET /v1/models` with `anthropic-version` |
//! | AWS Bedrock, Anthropic models (`anthropic::bedrock`) | `POST /model/{id}/invoke`, `/model/{id}/invoke-with-response-stream` (SigV4 or API key; binary event-stream frames) |
//! | Qwen OAuth (`qwen_oauth`) | `POST /api/v1/oauth2/token` (`refresh_token` grant) |
//! | Claude / Codex / Google OAuth (`oauth`) | `POST /v1/oauth/token`, `/oauth/token`, `/token` (rotating refresh grants, scripted faults) |
//! | Gemini (`gemini`) | `POST /v1beta/models/{model}:generateContent`, `:streamGenerateContent`, `:countTokens`, `GET /v1beta/models`, all also under `/v1/` |
//! | Gemini Code Assist (`gemini::code_assist`) | `POST /v1internal:generateContent`, `:streamGenerateContent?alt=sse`, `:countTokens` (wrapped bodies, the account's project, Bearer tokens the Google fake issued) |
//! | Legacy completions (`completions`) | `POST /v1/completions` and Azure's `/openai/deployments/{d}/completions` (completions models only: a chat model is OpenAI's 404; `text_completion` objects, SSE chunks ending in `[DONE]`, the usage chunk with `stream_options.include_usage`) |
//! | Forwarded endpoints (`forwarded`) | `POST /v1/moderations`, `POST /v1/audio/speech` (binary audio), `POST /v1/rerank` |
//! | Audio in and images (`media`) | `POST /v1/audio/transcriptions`, `/v1/audio/translations` (multipart), `/v1/images/generations`, `/v1/images/edits` (multipart), and Azure's deployments of each |
//! | Embeddings (`embeddings`) | `POST /v1/embeddings`, Azure's `/openai/deployments/{d}/embeddings`, Gemini's `:embedContent` / `:batchEmbedContents`, Bedrock's `amazon.titan-embed-*` / `cohere.embed-*` invoke bodies |
//!
//! Replies are deterministic: `Hello from sluice-mock! You said: <last user text>`, one function
//! call when functions are offered to a user turn, `Tool result received: <result>` after a tool
//! result.
//!
//! Faults are chosen per request by `mock:key=value` directives, found anywhere in the raw
//! request body (so they survive a gateway's translation) or in the `x-mock` header (which
//! overrides the body); every dialect honours them alike and shapes errors its own way:
//!
//! | directive | effect |
//! |---|---|
//! | `status=NNN` (400–599) | answer with that status and the dialect's error body |
//! | `retry_after=S` | with `status`: add `Retry-After: S` |
//! | `latency_ms=N` | wait N ms before the response headers |
//! | `chunk_delay_ms=N` | wait N ms between stream events |
//! | `cut_after=N` | abort the connection after N stream events |
//! | `stall_after=N` | send nothing more after N stream events, never end |
//! | `fail_after=N` | after N stream events, the provider's own mid-stream error event (OpenAI error chunk, Responses `response.failed`, Anthropic `error`, Gemini error object), then a clean end |
//! | `fail_echo_key=1` | with `fail_after`, the error event's message echoes the request's key, whole and masked (`sk-...WXYZ`), like a leaky upstream (OpenAI Chat, Anthropic, Gemini) |
//! | `words=N` | reply `w1 w2 … wN` |
//! | `cached=N` | report N cached prompt tokens |
//! | `cycle=S1.S2…` | the Nth request with this pattern answers `S(N mod len)` (`200` = no fault) |
//! | `usage=none` | OpenAI Chat only: report no usage (non-stream body or stream), like servers that ignore `include_usage` |
//! | `reject_key=1` | refuse the key sent as the provider refuses an invalid one: OpenAI 401 `invalid_api_key` echoing it masked (`sk-...WXYZ`), Anthropic 401 `authentication_error`, Gemini 400 `INVALID_ARGUMENT` with reason `API_KEY_INVALID` (usually set per key with [`MockServer::faults`]) |
//!
//! [`MockServer::faults`] adds directives for every request carrying a given upstream key
//! (between the body's and the header's), so one credential of several can be made to fail.
//!
//! Inspection: every request is recorded (unless [`MockConfig::record`] is off) and can be read
//! back with [`MockServer::requests`] or `GET /__mock/requests`; `GET /__mock/stats` gives the
//! counters to clients running the mock as a separate process.
#![forbid(unsafe_code)]

mod anthropic;
mod assistant;
mod codex_backend;
mod completions;
mod directives;
mod embeddings;
mod errors;
mod forwarded;
mod gemini;
mod ids;
mod images;
mod media;
mod models;
pub mod oauth;
pub mod oauth_login;
mod openai_chat;
mod openai_gate;
mod openai_responses;
mod qwen_oauth;
mod record;
mod sse;
mod stream_body;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method, Uri};
use axum::middleware;
use axum::response::Response;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use anthropic::CLAUDE_CODE_SYSTEM;
pub use directives::Faults;
pub use errors::QWEN_FREE_TIER_ENDED;
pub use record::{RecordedRequest, Recorder};

use errors::OpenAiError;

/// Largest request body accepted (and recorded), in bytes.
const BODY_LIMIT: usize = 64 * 1024 * 1024;

/// What the fake upstream serves and accepts.
#[derive(Clone, Debug)]
pub struct MockConfig {
    /// Models served; empty = accept any model name.
    pub models: Vec<String>,
    /// Upstream keys accepted, each dialect reading them where its provider does (OpenAI:
    /// `Authorization: Bearer`; Anthropic: `x-api-key` or `Authorization: Bearer`; Gemini:
    /// `x-goog-api-key` or `?key=`); empty = accept any (and none).
    pub api_keys: Vec<String>,
    /// Record every request for later inspection (switch off for benchmarks).
    pub record: bool,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            models: Vec::new(),
            api_keys: Vec::new(),
            record: true,
        }
    }
}

impl MockConfig {
    /// Whether `model` is served (any model when none are configured).
    pub(crate) fn serves(&self, model: &str) -> bool {
        self.models.is_empty() || self.models.iter().any(|served| served == model)
    }

    /// Whether requests must carry a key.
    pub(crate) fn requires_key(&self) -> bool {
        !self.api_keys.is_empty()
    }

    /// Whether `key` is one of the accepted keys.
    pub(crate) fn accepts_key(&self, key: &str) -> bool {
        self.api_keys.iter().any(|accepted| accepted == key)
    }

    /// The model ids listed by the model endpoints: the configured ones, or a default.
    pub(crate) fn listed_models(&self) -> Vec<&str> {
        if self.models.is_empty() {
            vec![models::DEFAULT]
        } else {
            self.models.iter().map(String::as_str).collect()
        }
    }
}

/// Shared by every handler.
pub(crate) struct AppState {
    pub(crate) config: MockConfig,
    pub(crate) recorder: Recorder,
    pub(crate) faults: Faults,
    pub(crate) oauth: Arc<oauth::OAuthFake>,
}

/// A running fake upstream; dropping it shuts the server down.
#[derive(Debug)]
pub struct MockServer {
    addr: SocketAddr,
    recorder: Recorder,
    faults: Faults,
    oauth: Arc<oauth::OAuthFake>,
    task: JoinHandle<()>,
}

impl MockServer {
    /// Bind 127.0.0.1:0 and serve in a background tokio task.
    pub async fn start(config: MockConfig) -> std::io::Result<MockServer> {
        Self::bind(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    /// Bind the given address and serve in a background task.
    pub async fn bind(addr: SocketAddr, config: MockConfig) -> std::io::Result<MockServer> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let faults = Faults::default();
        let oauth = Arc::new(oauth::OAuthFake::default());
        let (app, recorder) = router_with(config, faults.clone(), oauth.clone());
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(nodelay(listener), app).await {
                tracing::error!(%error, "sluice-mock server stopped; restart it");
            }
        });
        Ok(MockServer {
            addr,
            recorder,
            faults,
            oauth,
            task,
        })
    }

    /// The bound address (with the real port when bound to port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://{addr}/v1`, the base URL an OpenAI client is pointed at.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Snapshot of all recorded requests, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.recorder.requests()
    }

    /// Forget all recorded requests.
    pub fn clear(&self) {
        self.recorder.clear();
    }

    /// Faults applied by key (e.g. make one upstream key answer 429).
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// The fake OAuth token endpoints (rotation, scripted faults, issued tokens).
    pub fn oauth(&self) -> &oauth::OAuthFake {
        &self.oauth
    }

    /// How many recorded requests carried `key` (as each provider sends it).
    pub fn requests_with_key(&self, key: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| {
                r.header("authorization")
                    .and_then(|v| {
                        v.strip_prefix("Bearer ")
                            .or_else(|| directives::sigv4_key_id(v))
                    })
                    .or_else(|| r.header("x-api-key"))
                    .or_else(|| r.header("x-goog-api-key"))
                    .or_else(|| r.header("api-key"))
                    == Some(key)
            })
            .count()
    }

    /// Number of stream responses whose body was dropped before completion (client went away).
    pub fn cancelled_streams(&self) -> u64 {
        self.recorder.cancelled_streams()
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        // Aborting drops the listener; axum then closes idle connections and lets in-flight
        // responses finish.
        self.task.abort();
    }
}

/// Build the router without binding (for embedding in another process's server, e.g. Sluice's
/// demo upstream).
pub fn router(config: MockConfig) -> (Router, Recorder) {
    router_with(config, Faults::default(), Arc::default())
}

fn router_with(
    config: MockConfig,
    faults: Faults,
    oauth: Arc<oauth::OAuthFake>,
) -> (Router, Recorder) {
    let recorder = Recorder::default();
    let record = config.record;
    let state = Arc::new(AppState {
        config,
        recorder: recorder.clone(),
        faults,
        oauth,
    });
    let mut app = Router::new()
        .merge(openai_chat::routes())
        .merge(completions::routes())
        .merge(embeddings::routes())
        .merge(forwarded::routes())
        .merge(media::routes())
        .merge(openai_responses::routes())
        .merge(codex_backend::routes())
        .merge(anthropic::routes())
        .merge(anthropic::bedrock::routes())
        .merge(gemini::routes())
        .merge(models::routes())
        .merge(qwen_oauth::routes())
        .merge(oauth::routes())
        .merge(record::routes())
        .fallback(unknown_url)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state);
    if record {
        app = app.layer(middleware::from_fn_with_state(
            recorder.clone(),
            record::capture,
        ));
    }
    let app = app.layer(middleware::map_response(tag_request_id));
    (app, recorder)
}

/// Every response carries an `x-request-id`, like OpenAI's.
async fn tag_request_id(mut response: Response) -> Response {
    if let Ok(value) = HeaderValue::from_str(&ids::request_id()) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

async fn unknown_url(method: Method, uri: Uri) -> OpenAiError {
    OpenAiError::invalid_url(&method, uri.path())
}

async fn wrong_method(method: Method, uri: Uri) -> OpenAiError {
    OpenAiError::invalid_method(&method, uri.path())
}

/// Streams are many small writes: without TCP_NODELAY, Nagle's algorithm holds each one for
/// the previous one's ACK (about 40 ms on loopback with delayed ACKs).
fn nodelay(
    listener: tokio::net::TcpListener,
) -> impl axum::serve::Listener<Io = tokio::net::TcpStream, Addr = SocketAddr> {
    axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
        let _ = tcp.set_nodelay(true);
    })
}
