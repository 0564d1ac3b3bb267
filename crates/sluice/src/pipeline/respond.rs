//! Phase 6: the answer goes back.
//!
//! Streams are relayed event by event as they arrive: each network chunk is split into SSE
//! events, and each event is either forwarded as received (same dialect; usage and completion
//! are read on the way) or decoded into canonical events and re-encoded in the client's dialect.
//! A stream that breaks, stalls past the idle timeout, ends early or is cut by shutdown ends with
//! the client dialect's error event, never a hang.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures_util::Stream;
use http::{HeaderValue, StatusCode, header};
use sluice_dialect::canonical::{Delta, StreamEvent, merge_usage};
use sluice_dialect::openai_chat::{self, ChunkAction};
use sluice_dialect::registry::{EncodeOptions, StreamDecoder, StreamEncoder};
use sluice_dialect::{Dialect, ErrorBody, ErrorKind, SseEvent, SseParser, TokenUsage};
use tokio::sync::watch;

use super::account::Ledger;
use super::admit::Admitted;
use super::upstream::{describe, redact_secrets, redact_text};
use crate::pricing::estimate::{MAX_REPLY_TEXT, chat_chunk_text};

/// An upstream response body: chunks of SSE bytes.
pub type UpstreamBody = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// What a relay gets when it asks its upstream for more.
pub(super) enum Pulled {
    Chunk(Bytes),
    /// The upstream ended its answer.
    End,
    /// The answer cannot go on: why, for the client, and the record's error code.
    Fault {
        message: String,
        code: &'static str,
    },
}

/// An upstream body being read: its next chunk, unless it breaks, sends nothing for `idle`, or
/// the gateway's hard stop comes first. Shared by the translating relay and the forward path's.
///
/// Polled, not awaited per chunk: one idle timer and one shutdown watch live as long as the
/// body, and the timer is moved only when it fires early (a stream with steady traffic never
/// touches the timer wheel).
pub(super) struct Upstream {
    body: UpstreamBody,
    idle: Duration,
    idle_timer: Pin<Box<tokio::time::Sleep>>,
    /// When the current wait for a chunk began (`None` while chunks are flowing): the client
    /// reading slowly is not the upstream stalling.
    waiting_since: Option<tokio::time::Instant>,
    /// Resolves at the hard stop; polled only when it may have something new (below).
    stopped: Pin<Box<dyn Future<Output = ()> + Send>>,
    /// The gateway's hard-stop flag, to see cheaply whether it changed since `stopped` was
    /// polled.
    shutdown: watch::Receiver<bool>,
    /// The waker `stopped` last registered: while the relay is polled by the same task, the
    /// registration stands and need not be renewed on every poll (a lock in tokio's `Notify`).
    stop_waker: Option<std::task::Waker>,
}

impl Upstream {
    pub(super) fn new(body: UpstreamBody, idle: Duration, shutdown: watch::Receiver<bool>) -> Self {
        let mut stop = shutdown.clone();
        Upstream {
            body,
            idle,
            idle_timer: Box::pin(tokio::time::sleep(idle)),
            waiting_since: None,
            stopped: Box::pin(async move { super::stopped(&mut stop).await }),
            shutdown,
            stop_waker: None,
        }
    }

    /// Whether the hard stop has come. `stopped` is polled the first time, when the task
    /// polling the relay changes, and when the flag has changed; otherwise its registration
    /// from an earlier poll stands.
    fn poll_stopped(&mut self, cx: &mut Context<'_>) -> bool {
        let registered = self
            .stop_waker
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()));
        if registered && !self.shutdown.has_changed().unwrap_or(false) {
            return false;
        }
        if self.stopped.as_mut().poll(cx).is_ready() {
            return true;
        }
        if !registered {
            self.stop_waker = Some(cx.waker().clone());
        }
        false
    }

    pub(super) fn poll_pull(&mut self, cx: &mut Context<'_>, provider: &str) -> Poll<Pulled> {
        if self.poll_stopped(cx) {
            return Poll::Ready(Pulled::Fault {
                message: "the gateway is shutting down".into(),
                code: "shutdown",
            });
        }
        let pulled = match self.body.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => Pulled::Chunk(bytes),
            Poll::Ready(None) => Pulled::End,
            Poll::Ready(Some(Err(e))) => Pulled::Fault {
                message: format!(
                    "the stream from provider `{provider}` broke: {}",
                    describe(e)
                ),
                code: "upstream_stream_broken",
            },
            Poll::Pending => return self.poll_idle(cx, provider),
        };
        self.waiting_since = None;
        Poll::Ready(pulled)
    }

    /// The upstream has nothing yet: a fault once it has been quiet for `idle`.
    fn poll_idle(&mut self, cx: &mut Context<'_>, provider: &str) -> Poll<Pulled> {
        let deadline = *self
            .waiting_since
            .get_or_insert_with(tokio::time::Instant::now)
            + self.idle;
        // Deadlines only move later, so the timer fires at or before this one.
        while self.idle_timer.as_mut().poll(cx).is_ready() {
            if tokio::time::Instant::now() >= deadline {
                return Poll::Ready(Pulled::Fault {
                    message: format!(
                        "provider `{provider}` sent nothing for {}",
                        humantime::format_duration(self.idle)
                    ),
                    code: "upstream_idle_timeout",
                });
            }
            self.idle_timer.as_mut().reset(deadline);
        }
        Poll::Pending
    }

    /// The next pull, awaited.
    pub(super) async fn pull(&mut self, provider: &str) -> Pulled {
        std::future::poll_fn(|cx| self.poll_pull(cx, provider)).await
    }
}

/// How upstream events become client events.
pub enum Transform {
    /// OpenAI Chat on both sides: forward events; read usage; strip the usage the gateway (not
    /// the client) asked for. The hot path, so it parses only chunks that mention usage.
    ChatPassthrough { strip_usage: bool },
    /// Same dialect otherwise: forward events; the decoder reads usage and completion.
    Passthrough { decoder: Box<StreamDecoder> },
    /// Different dialects: decode, re-encode.
    Translate {
        decoder: Box<StreamDecoder>,
        encoder: Box<StreamEncoder>,
    },
}

/// Everything a relay needs besides the upstream body and the ledger.
pub struct StreamRelay {
    pub provider: String,
    pub client: Dialect,
    pub encode: EncodeOptions,
    pub transform: Transform,
    pub idle: Duration,
    /// The credentials the attempt sent: removed from the upstream's own error events.
    pub secrets: Vec<String>,
    pub shutdown: watch::Receiver<bool>,
    pub admitted: Admitted,
    /// Called once if the upstream breaks, stalls or truncates the stream (not on shutdown):
    /// the credential's health hears of it.
    pub on_upstream_fault: Option<Box<dyn FnOnce() + Send>>,
    /// The `relay` phase span (`crate::otel`), ended with the stream.
    pub span: tracing::Span,
}

struct RelayState {
    provider: String,
    client: Dialect,
    encode: EncodeOptions,
    transform: Transform,
    secrets: Vec<String>,
    ledger: Option<Ledger>,
    _admitted: Admitted,
    on_upstream_fault: Option<Box<dyn FnOnce() + Send>>,
    upstream: Upstream,
    parser: SseParser,
    /// Client bytes ready but not yet handed to the server (see [`RelayState::poll_chunk`]).
    out: Vec<u8>,
    /// Turns of the scheduler given up since the last chunk, for the upstream connection to
    /// decode what it has already read (see [`RelayState::poll_chunk`]).
    yields: u8,
    /// When the upstream's last chunk arrived, and whether it came within [`BURST_GAP`] of
    /// the one before: only then is waiting for more worth a turn of the scheduler.
    last_chunk: Option<Instant>,
    burst: bool,
    /// Bytes have gone to the client (the record's time to first token is set).
    started: bool,
    usage: TokenUsage,
    /// The upstream said the answer is complete (a stop reason, `[DONE]`, `message_stop`…).
    complete: bool,
    /// An error event came from upstream (and was relayed).
    upstream_error: bool,
    /// Nothing more goes to the client.
    done: bool,
    /// The answer so far, for counting tokens locally should the upstream never report usage.
    reply: ReplyText,
    /// Time spent reading and re-encoding events (the gateway's share of the stream).
    translating: Duration,
    span: tracing::Span,
    /// The upstream's stream bytes for the server span, only with `tracing.record-content`.
    content: Option<Vec<u8>>,
}

/// The streamed answer's text, kept cheaply: translated streams append decoded text; the OpenAI
/// Chat passthrough copies raw chunk data and parses it only if no usage ever arrives.
#[derive(Default)]
struct ReplyText {
    text: String,
    chat_chunks: Vec<u8>,
}

impl ReplyText {
    fn push_text(&mut self, text: &str) {
        if self.text.len() + text.len() <= MAX_REPLY_TEXT {
            self.text.push_str(text);
        }
    }

    fn push_chat_chunk(&mut self, data: &[u8]) {
        if self.chat_chunks.len() + data.len() < MAX_REPLY_TEXT {
            self.chat_chunks.extend_from_slice(data);
            self.chat_chunks.push(b'\n');
        }
    }

    fn take(&mut self) -> String {
        let mut text = std::mem::take(&mut self.text);
        for line in std::mem::take(&mut self.chat_chunks).split(|b| *b == b'\n') {
            chat_chunk_text(line, &mut text);
        }
        text
    }
}

/// Relays an upstream's own error event with every echo of the attempt's credentials removed
/// (as [`super::upstream::error_from_response`] does for error answers before the stream):
/// re-encoded only when something was removed, as received otherwise.
fn relay_error_event(event: &SseEvent, secrets: &[String], out: &mut Vec<u8>) {
    let clean = redact_secrets(event.data.clone(), secrets);
    if clean == event.data {
        out.extend_from_slice(&event.raw);
    } else {
        let data = String::from_utf8_lossy(&clean);
        out.extend_from_slice(&SseEvent::encode(event.event.as_deref(), &data));
    }
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

/// A complete JSON answer.
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
    /// Turns an upstream SSE body into the client's body stream.
    pub fn into_body(self, upstream: UpstreamBody, ledger: Ledger) -> Body {
        let StreamRelay {
            provider,
            client,
            encode,
            transform,
            idle,
            secrets,
            shutdown,
            admitted,
            on_upstream_fault,
            span,
        } = self;
        let state = RelayState {
            provider,
            client,
            encode,
            transform,
            secrets,
            ledger: Some(ledger),
            _admitted: admitted,
            on_upstream_fault,
            upstream: Upstream::new(upstream, idle, shutdown),
            parser: SseParser::default(),
            out: Vec::new(),
            yields: 0,
            last_chunk: None,
            burst: false,
            started: false,
            usage: TokenUsage::default(),
            complete: false,
            upstream_error: false,
            done: false,
            reply: ReplyText::default(),
            translating: Duration::ZERO,
            content: crate::otel::wants_content(&span).then(Vec::new),
            span,
        };
        Body::from_stream(state)
    }
}

/// Bytes gathered for one write to the client at most: past this, they go out without waiting
/// for the upstream's next chunk.
const COALESCE_LIMIT: usize = 16 * 1024;

/// Turns of the scheduler a relay gives up waiting for the upstream's next chunk before it
/// sends what it has. Measured (`BENCHMARKS.md`, "what moved the numbers"): with one, the
/// upstream connection's task had usually not run yet and nothing coalesced (10 writes for a
/// 10-event stream read in one piece); with two, 3 writes (the upstream request, the first
/// event, the rest); more changed nothing.
const MAX_YIELDS: u8 = 2;

/// Chunks closer together than this are a burst (the upstream is ahead of the relay), worth
/// gathering into one write; a model's tokens usually come 10-50 ms apart, and waiting for a
/// next chunk that is not there costs wake-ups for nothing.
const BURST_GAP: Duration = Duration::from_millis(2);

impl Stream for RelayState {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_chunk(cx).map(|chunk| chunk.map(Ok))
    }
}

impl RelayState {
    /// The next bytes for the client, or `None` when the stream is over.
    ///
    /// Events the upstream sent together go out together. Hyper's client hands over one
    /// chunk (usually one event) per poll, and the server writes whenever the body has nothing
    /// more, so relaying each event at once costs a write per event. Instead, once the first
    /// bytes are out, the relay keeps what it has while the upstream is momentarily empty and
    /// yields (wakes itself and returns `Pending`, up to [`MAX_YIELDS`] times), which lets the
    /// upstream connection's task decode the rest of what it has already read: another chunk
    /// means keep gathering, none means send. Only in a burst (chunks under [`BURST_GAP`]
    /// apart): a stream paced by the model's tokens goes out event by event as before. The
    /// first bytes are never held, so time to first byte is unchanged; a later event waits at
    /// most two turns of the scheduler.
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        loop {
            if self.done {
                return Poll::Ready(self.emit());
            }
            let mut out = std::mem::take(&mut self.out);
            let phase = Instant::now();
            while let Some(event) = self.parser.next_event() {
                self.relay_event(&event, &mut out);
                if self.done {
                    break;
                }
            }
            self.translating += phase.elapsed();
            self.out = out;
            if self.done {
                self.finish(None);
                return Poll::Ready(self.emit());
            }
            if self.out.len() >= COALESCE_LIMIT {
                return Poll::Ready(self.emit());
            }
            let next = match self.upstream.poll_pull(cx, &self.provider) {
                Poll::Ready(next) => next,
                Poll::Pending if self.out.is_empty() => return Poll::Pending,
                Poll::Pending => {
                    if self.started && self.burst && self.yields < MAX_YIELDS {
                        self.yields += 1;
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    return Poll::Ready(self.emit());
                }
            };
            self.yields = 0;
            if matches!(next, Pulled::Fault { .. }) && self.relayed_upstream_error() {
                // The upstream's own error event already reached the client; whatever follows
                // (a cut, a stall, shutdown) adds nothing to it.
                self.done = true;
                self.finish(None);
                return Poll::Ready(self.emit());
            }
            match next {
                Pulled::Chunk(bytes) => {
                    let now = Instant::now();
                    self.burst = self
                        .last_chunk
                        .is_some_and(|last| now.duration_since(last) < BURST_GAP);
                    self.last_chunk = Some(now);
                    if let Some(content) = self.content.as_mut() {
                        let room = crate::otel::MAX_CONTENT.saturating_sub(content.len());
                        content.extend_from_slice(&bytes[..bytes.len().min(room)]);
                    }
                    if let Some(ledger) = self.ledger.as_mut() {
                        ledger.with(|r| {
                            if let Some(capture) = r.capture.as_mut() {
                                capture.push_stream(&bytes);
                            }
                        });
                    }
                    self.parser.push(&bytes);
                }
                Pulled::End => {
                    self.end_of_upstream();
                    return Poll::Ready(self.emit());
                }
                Pulled::Fault { message, code } => {
                    self.fail(message, code);
                    return Poll::Ready(self.emit());
                }
            }
        }
    }

    /// Hands the gathered bytes to the server, if there are any.
    fn emit(&mut self) -> Option<Bytes> {
        self.yields = 0;
        if self.out.is_empty() {
            return None;
        }
        if !self.started {
            self.started = true;
            if let Some(ledger) = self.ledger.as_mut() {
                ledger.first_byte();
            }
        }
        Some(Bytes::from(std::mem::take(&mut self.out)))
    }

    /// The upstream closed the stream: relay what is left, then end cleanly or with an error.
    fn end_of_upstream(&mut self) {
        let mut out = std::mem::take(&mut self.out);
        if let Some(event) = self.parser.finish() {
            self.relay_event(&event, &mut out);
        }
        // Read before the decoder's closing events, which report a cut as an error too.
        let relayed_error = self.relayed_upstream_error();
        if !self.done {
            let closing = match &mut self.transform {
                Transform::ChatPassthrough { .. } => Vec::new(),
                Transform::Passthrough { decoder } | Transform::Translate { decoder, .. } => {
                    decoder.finish()
                }
            };
            for event in closing {
                self.handle_canonical(&event, &mut out);
            }
        }
        if (self.complete && !self.upstream_error) || relayed_error {
            // Whole, or ended by the upstream's own error event (relayed as it came): either
            // way the client has the upstream's last word, and Sluice adds nothing.
            self.done = true;
            self.finish(None);
        } else if self.upstream_error && matches!(self.transform, Transform::Translate { .. }) {
            // The decoder already turned the cut into an error event for the client.
            self.done = true;
            self.finish(Some("upstream_stream_truncated".into()));
        } else {
            self.out = out;
            let msg = format!(
                "provider `{}` ended the stream before it was complete",
                self.provider
            );
            return self.fail(msg, "upstream_stream_truncated");
        }
        self.out = out;
    }

    fn relay_event(&mut self, event: &SseEvent, out: &mut Vec<u8>) {
        match &mut self.transform {
            Transform::ChatPassthrough { strip_usage } => {
                let strip_usage = *strip_usage;
                if !event.has_data() {
                    out.extend_from_slice(&event.raw); // comments / keep-alives pass through
                    return;
                }
                if &event.data[..] == b"[DONE]" {
                    out.extend_from_slice(&event.raw);
                    self.complete = true;
                    self.done = true;
                    return;
                }
                if self.usage.total() == 0 {
                    self.reply.push_chat_chunk(&event.data);
                }
                let inspection = openai_chat::inspect_chunk(&event.data, strip_usage);
                if let Some(usage) = inspection.usage {
                    merge_usage(&mut self.usage, &usage);
                }
                self.upstream_error |= inspection.is_error;
                match inspection.action {
                    ChunkAction::Forward if inspection.is_error => {
                        relay_error_event(event, &self.secrets, out)
                    }
                    ChunkAction::Forward => out.extend_from_slice(&event.raw),
                    ChunkAction::Rewrite(json) => {
                        let json = if inspection.is_error {
                            redact_text(&json, &self.secrets).unwrap_or(json)
                        } else {
                            json
                        };
                        SseEvent::encode_into(None, &json, out)
                    }
                    ChunkAction::Drop => {}
                }
            }
            Transform::Passthrough { decoder } => {
                let events = decoder.push(event);
                if events
                    .iter()
                    .any(|e| matches!(e, StreamEvent::Error { .. }))
                {
                    relay_error_event(event, &self.secrets, out);
                } else {
                    out.extend_from_slice(&event.raw);
                }
                for e in &events {
                    self.observe(e);
                }
            }
            Transform::Translate { decoder, .. } => {
                let mut events = decoder.push(event);
                for e in &mut events {
                    if let StreamEvent::Error { error } = e
                        && let Some(clean) = redact_text(&error.message, &self.secrets)
                    {
                        error.message = clean;
                    }
                }
                for e in &events {
                    self.handle_canonical(e, out);
                    if self.done {
                        break;
                    }
                }
            }
        }
    }

    /// A canonical event: note what it says, and encode it when translating.
    fn handle_canonical(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        self.observe(event);
        if let Transform::Translate { encoder, .. } = &mut self.transform {
            encoder.push(event, out);
            if matches!(event, StreamEvent::Error { .. }) {
                self.done = true;
            }
        }
    }

    fn observe(&mut self, event: &StreamEvent) {
        match event {
            StreamEvent::MessageStart { usage: Some(u), .. } | StreamEvent::Usage { usage: u } => {
                merge_usage(&mut self.usage, u)
            }
            StreamEvent::MessageDelta { stop_reason, usage } => {
                if let Some(u) = usage {
                    merge_usage(&mut self.usage, u);
                }
                self.complete |= stop_reason.is_some();
            }
            StreamEvent::MessageStop => {
                self.complete = true;
                self.done = true;
            }
            StreamEvent::Error { .. } => self.upstream_error = true,
            StreamEvent::Delta { delta, .. } => match delta {
                Delta::Text(t) | Delta::Thinking(t) | Delta::ToolArguments(t) => {
                    self.reply.push_text(t)
                }
                Delta::Signature(_) => {}
            },
            _ => {}
        }
    }

    /// Whether an error event of the upstream's own went to the client unchanged (same-dialect
    /// relays; a translated stream ends at the error it encodes).
    fn relayed_upstream_error(&self) -> bool {
        self.upstream_error && !matches!(self.transform, Transform::Translate { .. })
    }

    /// Ends the stream with an error event in the client's dialect, after what was gathered.
    fn fail(&mut self, message: String, code: &str) {
        tracing::warn!(provider = %self.provider, code, "{message}");
        if code != "shutdown"
            && let Some(report) = self.on_upstream_fault.take()
        {
            report();
        }
        let error = StreamEvent::Error {
            error: ErrorBody::new(ErrorKind::Upstream, message).with_code(code),
        };
        let out = &mut self.out;
        match &mut self.transform {
            Transform::Translate { encoder, .. } => encoder.push(&error, out),
            Transform::Passthrough { decoder } => decoder
                .appending_encoder(self.client, &self.encode)
                .push(&error, out),
            Transform::ChatPassthrough { .. } => {
                self.client.stream_encoder(&self.encode).push(&error, out)
            }
        }
        self.finish(Some(code.to_string()));
        self.done = true;
    }

    fn finish(&mut self, error: Option<String>) {
        let error = error.or_else(|| {
            self.upstream_error
                .then(|| "upstream_error_event".to_string())
        });
        self.hand_over_usage();
        if let Some(code) = &error {
            crate::otel::phase_failed(&self.span, code);
        }
        // The relay's span ends with the stream's last byte, before the request's.
        drop(std::mem::replace(&mut self.span, tracing::Span::none()));
        if let Some(ledger) = self.ledger.take() {
            if let Some(content) = self.content.take() {
                crate::otel::record_content(ledger.span(), "sluice.response.body", &content);
            }
            ledger.finish(200, error);
        }
    }

    /// Puts the usage seen so far into the record, and the answer's text when the upstream's
    /// usage cannot be trusted to cover it: none came, or the stream ended before the upstream's
    /// final count (Anthropic and Gemini report output tokens at the end; a cut stream carries
    /// only the first event's count).
    fn hand_over_usage(&mut self) {
        let usage = self.usage;
        let incomplete = !self.complete;
        let reply = (usage.total() == 0 || incomplete).then(|| self.reply.take());
        let translating = self.translating;
        if let Some(ledger) = self.ledger.as_mut() {
            ledger.with(|r| {
                r.usage = usage;
                r.usage_incomplete = incomplete;
                r.reply_text = reply;
                r.overhead.translate_response = Some(translating);
            });
        }
    }
}

impl Drop for RelayState {
    /// The client went away mid-stream: the record (closed by the ledger's own drop) still
    /// gets what was used so far.
    fn drop(&mut self) {
        if self.ledger.is_some() {
            self.hand_over_usage();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use futures_util::StreamExt;

    use super::*;

    /// An upstream that sends `chunks` chunks `gap` apart, then nothing more (never ends).
    fn paced(chunks: usize, gap: Duration) -> UpstreamBody {
        Box::pin(
            futures_util::stream::unfold(0, move |sent| async move {
                if sent == chunks {
                    std::future::pending::<()>().await;
                }
                tokio::time::sleep(gap).await;
                Some((Ok(Bytes::from_static(b"data: {}\n\n")), sent + 1))
            })
            .fuse(),
        )
    }

    fn code(pulled: &Pulled) -> &str {
        match pulled {
            Pulled::Chunk(_) => "chunk",
            Pulled::End => "end",
            Pulled::Fault { code, .. } => code,
        }
    }

    #[tokio::test]
    async fn idle_time_counts_from_the_last_chunk_not_from_the_start() {
        let (_stop, shutdown) = watch::channel(false);
        let idle = Duration::from_millis(300);
        // Five chunks 100 ms apart: 500 ms in all, more than `idle`, never idle for it.
        let mut upstream = Upstream::new(paced(5, Duration::from_millis(100)), idle, shutdown);
        for _ in 0..5 {
            assert_eq!(code(&upstream.pull("p").await), "chunk");
        }
        let quiet = Instant::now();
        let stalled = upstream.pull("p").await;
        assert_eq!(code(&stalled), "upstream_idle_timeout");
        assert!(
            quiet.elapsed() >= idle,
            "timed out after {:?}",
            quiet.elapsed()
        );
        let Pulled::Fault { message, .. } = stalled else {
            unreachable!()
        };
        assert_eq!(message, "provider `p` sent nothing for 300ms");
    }

    #[tokio::test]
    async fn a_client_reading_slowly_is_not_an_upstream_stall() {
        let (_stop, shutdown) = watch::channel(false);
        let idle = Duration::from_millis(200);
        let mut upstream = Upstream::new(paced(3, Duration::from_millis(50)), idle, shutdown);
        assert_eq!(code(&upstream.pull("p").await), "chunk");
        // Nobody asks for the next chunk for longer than `idle` (the client is slow to read).
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(code(&upstream.pull("p").await), "chunk");
        assert_eq!(code(&upstream.pull("p").await), "chunk");
    }

    #[tokio::test]
    async fn the_hard_stop_ends_a_waiting_pull() {
        let (stop, shutdown) = watch::channel(false);
        let body = paced(3, Duration::from_millis(10));
        let mut upstream = Upstream::new(body, Duration::from_secs(60), shutdown);
        // Chunks first (the stop's registration from the first poll carries over), then a wait
        // that only the hard stop ends.
        let pull = tokio::spawn(async move {
            for _ in 0..3 {
                assert_eq!(code(&upstream.pull("p").await), "chunk");
            }
            code(&upstream.pull("p").await).to_owned()
        });
        tokio::time::sleep(Duration::from_millis(150)).await;
        stop.send(true).unwrap();
        assert_eq!(pull.await.unwrap(), "shutdown");
    }
}
