//! Phase 6: the answer goes back. Streams are relayed event by event as they arrive: each
//! network chunk is split into SSE events, usage is read from the chunk that carries it, and
//! whatever the client did not ask for is stripped. A stream that breaks, stalls past the idle
//! timeout or is cut by shutdown ends with an error event, never a hang.

use std::convert::Infallible;
use std::pin::Pin;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use http::{HeaderValue, StatusCode, header};
use sluice_dialect::openai_chat::{self, ChunkAction};
use sluice_dialect::{ErrorBody, ErrorKind, SseEvent, SseParser, TokenUsage};
use tokio::sync::watch;

use super::account::Ledger;
use super::admit::Admitted;
use super::upstream::describe;

struct RelaySettings {
    provider: String,
    idle: Duration,
    strip_usage: bool,
    shutdown: watch::Receiver<bool>,
}

type Upstream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// Everything a relay needs; owned by the stream so it lives exactly as long as the response.
pub struct StreamRelay {
    pub provider: String,
    pub idle: Duration,
    /// The gateway, not the client, asked upstream for usage: strip it on the way back.
    pub strip_usage: bool,
    pub shutdown: watch::Receiver<bool>,
    pub admitted: Admitted,
}

struct RelayState {
    relay: RelaySettings,
    ledger: Option<Ledger>,
    _admitted: Admitted,
    upstream: Upstream,
    parser: SseParser,
    usage: Option<TokenUsage>,
    upstream_error: bool,
    done: bool,
}

/// Headers of every relayed stream.
pub fn sse_response(body: Body, provider: &str) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Ask reverse proxies in front of Sluice (nginx) not to buffer the stream.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    insert_provider(&mut response, provider);
    response
}

/// Names the provider that served the request.
pub fn insert_provider(response: &mut Response, provider: &str) {
    if let Ok(v) = HeaderValue::from_str(provider) {
        response.headers_mut().insert("x-sluice-provider", v);
    }
}

/// A complete JSON answer passed through.
pub fn json_response(status: StatusCode, body: Bytes, provider: &str) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    insert_provider(&mut response, provider);
    response
}

impl StreamRelay {
    /// Turns an upstream SSE response into the client's body stream.
    pub fn into_body(self, upstream: reqwest::Response, ledger: Ledger) -> Body {
        let StreamRelay {
            provider,
            idle,
            strip_usage,
            shutdown,
            admitted,
        } = self;
        let state = RelayState {
            relay: RelaySettings {
                provider,
                idle,
                strip_usage,
                shutdown,
            },
            ledger: Some(ledger),
            _admitted: admitted,
            upstream: Box::pin(upstream.bytes_stream()),
            parser: SseParser::default(),
            usage: None,
            upstream_error: false,
            done: false,
        };
        let stream = futures_util::stream::unfold(state, |mut state| async move {
            let chunk = state.next_chunk().await?;
            Some((Ok::<_, Infallible>(chunk), state))
        });
        Body::from_stream(stream)
    }
}

impl RelayState {
    /// The next bytes for the client, or `None` when the stream is over.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            if self.done {
                return None;
            }
            let mut out = BytesMut::new();
            while let Some(event) = self.parser.next_event() {
                self.relay_event(event, &mut out);
                if self.done {
                    break;
                }
            }
            if self.done {
                self.finish(None);
                return non_empty(out);
            }
            if !out.is_empty() {
                if let Some(ledger) = self.ledger.as_mut() {
                    ledger.first_byte();
                }
                return Some(out.freeze());
            }
            let shutdown = &mut self.relay.shutdown;
            let next = tokio::select! {
                biased;
                _ = async {
                    // A dropped sender means the gateway state is gone, not a shutdown order.
                    if shutdown.wait_for(|stop| *stop).await.is_err() {
                        std::future::pending::<()>().await;
                    }
                } => None,
                next = tokio::time::timeout(self.relay.idle, self.upstream.next()) => Some(next),
            };
            let Some(next) = next else {
                return self.fail("the gateway is shutting down".into(), "shutdown");
            };
            match next {
                Ok(Some(Ok(bytes))) => self.parser.push(&bytes),
                Ok(Some(Err(e))) => {
                    let detail = describe(e);
                    return self.fail(
                        format!(
                            "the stream from provider `{}` broke: {detail}",
                            self.relay.provider
                        ),
                        "upstream_stream_broken",
                    );
                }
                Ok(None) => {
                    if let Some(event) = self.parser.finish() {
                        let mut out = BytesMut::new();
                        self.relay_event(event, &mut out);
                        if self.done {
                            self.finish(None);
                            return non_empty(out);
                        }
                    }
                    let msg = format!(
                        "provider `{}` ended the stream before it was complete",
                        self.relay.provider
                    );
                    return self.fail(msg, "upstream_stream_truncated");
                }
                Err(_) => {
                    let msg = format!(
                        "provider `{}` sent nothing for {}",
                        self.relay.provider,
                        humantime::format_duration(self.relay.idle)
                    );
                    return self.fail(msg, "upstream_idle_timeout");
                }
            }
        }
    }

    fn relay_event(&mut self, event: SseEvent, out: &mut BytesMut) {
        if !event.has_data() {
            out.extend_from_slice(&event.raw); // comments / keep-alives pass through
            return;
        }
        if &event.data[..] == b"[DONE]" {
            out.extend_from_slice(&event.raw);
            self.done = true;
            return;
        }
        let inspection = openai_chat::inspect_chunk(&event.data, self.relay.strip_usage);
        if let Some(usage) = inspection.usage {
            self.usage = Some(usage);
        }
        self.upstream_error |= inspection.is_error;
        match inspection.action {
            ChunkAction::Forward => out.extend_from_slice(&event.raw),
            ChunkAction::Rewrite(json) => out.extend_from_slice(&SseEvent::encode(None, &json)),
            ChunkAction::Drop => {}
        }
    }

    /// Ends the stream with an error event the client's SDK will raise.
    fn fail(&mut self, message: String, code: &str) -> Option<Bytes> {
        tracing::warn!(provider = %self.relay.provider, code, "{message}");
        let body = ErrorBody::new(ErrorKind::Upstream, message).with_code(code);
        self.finish(Some(code.to_string()));
        self.done = true;
        Some(Bytes::from(openai_chat::stream_error_event(&body)))
    }

    fn finish(&mut self, error: Option<String>) {
        let error = error.or_else(|| {
            self.upstream_error
                .then(|| "upstream_error_event".to_string())
        });
        let usage = self.usage.unwrap_or_default();
        if let Some(mut ledger) = self.ledger.take() {
            ledger.with(|r| r.usage = usage);
            ledger.finish(200, error);
        }
    }
}

fn non_empty(out: BytesMut) -> Option<Bytes> {
    (!out.is_empty()).then(|| out.freeze())
}
