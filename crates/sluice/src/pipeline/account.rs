//! Phase 7: what the request cost. Every request that reaches a proxy endpoint produces exactly
//! one [`UsageRecord`], whether it succeeded, failed or was abandoned by its client. Records go
//! through a channel to a background writer, so the request path never waits on a sink.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use sluice_dialect::TokenUsage;
use sluice_telemetry::{InFlight, Telemetry};
use tokio::sync::{mpsc, oneshot};

/// The usage log's own queue, in `sluice_usage_queue_depth{sink}`.
const CHANNEL: &str = "channel";

/// One request's accounting.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UsageRecord {
    /// The gateway's own id of this record, unique across instances and restarts: the store
    /// writes a record once per id (the request id is the client's and may repeat).
    pub record_id: String,
    pub request_id: String,
    /// When the request arrived (RFC 3339).
    pub time: String,
    /// The same instant in unix milliseconds.
    pub time_ms: i64,
    /// The client endpoint, e.g. `openai.chat`.
    pub endpoint: &'static str,
    pub key_id: Option<String>,
    /// The user who owns the key (config keys belong to the first admin).
    pub user_id: Option<i64>,
    /// The stored key used, when it was one (not a config key).
    pub api_key_id: Option<i64>,
    pub provider: Option<String>,
    pub credential: Option<String>,
    pub platform: Option<String>,
    /// Model as the client asked for it.
    pub model_requested: Option<String>,
    /// Model as sent upstream.
    pub model_served: Option<String>,
    pub stream: bool,
    /// HTTP status sent to the client.
    pub status: u16,
    /// Why the request did not complete normally, if it did not.
    pub error: Option<String>,
    pub usage: TokenUsage,
    /// What the tokens cost, in nano-dollars, from the price table.
    pub cost_nanos: i64,
    /// The gateway counted the tokens itself because the upstream reported none.
    pub estimated: bool,
    /// What the request used besides tokens (seconds, characters, images, documents).
    #[serde(skip_serializing_if = "crate::store::UsageUnits::is_empty")]
    pub units: crate::store::UsageUnits,
    /// The price-table tier of an image request (`quality size`, e.g. `high 1024x1024`):
    /// its images are priced by it.
    #[serde(skip)]
    pub image_tier: Option<String>,
    /// The answer's text, kept only while the upstream has not reported usage, for counting
    /// tokens locally when it never does. Never written anywhere.
    #[serde(skip)]
    pub reply_text: Option<String>,
    /// The answer ended before the upstream's final usage report (a cut, stalled or abandoned
    /// stream): the output is counted from `reply_text` when that is more than was reported.
    #[serde(skip)]
    pub usage_incomplete: bool,
    pub latency_ms: f64,
    /// Time until the first byte of the answer went to the client.
    pub ttft_ms: Option<f64>,
    /// Upstream attempts made (0 when none was: refused before routing, answered locally, or
    /// every credential cooling). `provider`/`credential` name the last one, whose answer the
    /// client got.
    pub attempts: u32,
    /// The attempts before it, which failed and were retried elsewhere: with the last attempt,
    /// every upstream call of the request, each on the credential it went to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_attempts: Vec<FailedAttempt>,
    /// The catalog knows `model_requested` (metrics label unknown names `other`).
    #[serde(skip)]
    pub model_known: bool,
    /// When the last attempt was sent, in ms since the request arrived.
    #[serde(skip)]
    pub last_attempt_ms: Option<f64>,
    /// Time spent in the gateway's own phases.
    #[serde(skip)]
    pub overhead: sluice_telemetry::Overhead,
    /// Cooldowns this request's attempts started: (provider, `quota` / `server_error`).
    #[serde(skip)]
    pub cooldowns: Vec<(String, &'static str)>,
    /// What the request log keeps of this request, while it is on.
    #[serde(skip)]
    pub capture: Option<Box<crate::request_log::Capture>>,
    /// The dialect the last attempt spoke upstream (`openai_chat`, `anthropic`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_dialect: Option<&'static str>,
    /// When the last attempt failed and opened a cooldown window: its end (unix ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_cooldown_until_ms: Option<i64>,
}

impl UsageRecord {
    /// Keeps the complete answer for the request log, when it is on.
    pub fn capture_response(&mut self, body: &bytes::Bytes) {
        if let Some(capture) = self.capture.as_mut() {
            capture.response_body = Some(body.clone());
        }
    }
}

/// An upstream attempt that failed before another credential took over.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FailedAttempt {
    pub provider: String,
    pub credential: String,
    /// Model as sent upstream.
    pub model: String,
    /// The upstream's status, or the gateway's (502/504) for a transport failure.
    pub status: u16,
    pub error: String,
    pub latency_ms: f64,
    /// The provider's platform label (metrics name the provider by it).
    #[serde(skip)]
    pub platform: String,
    /// The end (unix ms) of the cooldown window this failure opened, if it opened one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cooldown_until_ms: Option<i64>,
}

/// Somewhere records go: logs, the store.
pub trait UsageSink: Send + 'static {
    fn write(&mut self, batch: &[UsageRecord]);

    /// For sinks that hand records on to their own writer: resolves once everything written so
    /// far is durable. A flush of the usage log waits for it.
    fn flushed(&mut self) -> Option<oneshot::Receiver<()>> {
        None
    }

    /// Records this sink has given up on so far (a durable sink that could not write them).
    fn lost(&self) -> u64 {
        0
    }
}

/// Emits each record as a structured `tracing` event with target `sluice::usage`.
#[derive(Debug, Default)]
pub struct TracingSink;

impl UsageSink for TracingSink {
    fn write(&mut self, batch: &[UsageRecord]) {
        for r in batch {
            tracing::info!(
                target: "sluice::usage",
                request_id = %r.request_id,
                endpoint = r.endpoint,
                key_id = r.key_id.as_deref(),
                user_id = r.user_id,
                provider = r.provider.as_deref(),
                credential = r.credential.as_deref(),
                platform = r.platform.as_deref(),
                model_requested = r.model_requested.as_deref(),
                model_served = r.model_served.as_deref(),
                stream = r.stream,
                status = r.status,
                error = r.error.as_deref(),
                prompt_tokens = r.usage.input_tokens,
                completion_tokens = r.usage.output_tokens,
                cached_tokens = r.usage.cache_read_tokens,
                reasoning_tokens = r.usage.reasoning_tokens,
                cost_usd = r.cost_nanos as f64 / 1e9,
                estimated = r.estimated,
                latency_ms = r.latency_ms,
                ttft_ms = r.ttft_ms,
                attempts = r.attempts,
                failed_attempts = %FailedList(&r.failed_attempts),
                "usage"
            );
        }
    }
}

/// `credential:status:error` per failed attempt, comma-separated.
struct FailedList<'a>(&'a [FailedAttempt]);

impl std::fmt::Display for FailedList<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}:{}:{}", a.credential, a.status, a.error)?;
        }
        Ok(())
    }
}

/// Keeps records in memory; tests read them through the shared handle.
#[derive(Debug, Default, Clone)]
pub struct MemorySink(pub Arc<Mutex<Vec<UsageRecord>>>);

impl MemorySink {
    pub fn records(&self) -> Vec<UsageRecord> {
        self.0.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl UsageSink for MemorySink {
    fn write(&mut self, batch: &[UsageRecord]) {
        if let Ok(mut records) = self.0.lock() {
            records.extend_from_slice(batch);
        }
    }
}

enum Message {
    Record(Box<UsageRecord>),
    /// Answered with the number of records lost so far.
    Flush(oneshot::Sender<u64>),
}

/// The sending side: cheap to clone, never blocks.
#[derive(Clone, Debug)]
pub struct UsageLog {
    tx: mpsc::UnboundedSender<Message>,
    /// Ledgers opened and not yet closed: requests whose record is still to come.
    open: Arc<OpenLedgers>,
    /// Records that could not be handed to the writer.
    unsent: Arc<AtomicU64>,
    telemetry: Arc<Telemetry>,
    ids: Arc<RecordIds>,
    /// Records sent and not yet handed to the sinks.
    pending: Arc<std::sync::atomic::AtomicU64>,
}

/// Record ids: a random per-process prefix and a counter, unique without a system call per
/// record.
#[derive(Debug)]
struct RecordIds {
    prefix: String,
    next: AtomicU64,
}

impl RecordIds {
    fn new() -> Self {
        Self {
            prefix: uuid::Uuid::new_v4().simple().to_string(),
            next: AtomicU64::new(0),
        }
    }

    fn next(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{}{n:012x}", self.prefix)
    }
}

#[derive(Debug, Default)]
struct OpenLedgers {
    count: AtomicUsize,
    closed: tokio::sync::Notify,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("usage message")
    }
}

impl UsageLog {
    /// Starts the background writer feeding `sinks`, without metrics.
    pub fn start(sinks: Vec<Box<dyn UsageSink>>) -> (UsageLog, tokio::task::JoinHandle<()>) {
        Self::start_with(sinks, Arc::new(Telemetry::disabled()))
    }

    /// Starts the background writer feeding `sinks`; its queue depth and the requests in
    /// flight go to `telemetry`.
    pub fn start_with(
        mut sinks: Vec<Box<dyn UsageSink>>,
        telemetry: Arc<Telemetry>,
    ) -> (UsageLog, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
        let unsent = Arc::new(AtomicU64::new(0));
        let unsent_seen = unsent.clone();
        let queue = telemetry.clone();
        let pending = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let handed = pending.clone();
        let writer = tokio::spawn(async move {
            let mut inbox = Vec::with_capacity(256);
            let mut batch = Vec::with_capacity(256);
            while rx.recv_many(&mut inbox, 256).await > 0 {
                let mut flushes = Vec::new();
                for message in inbox.drain(..) {
                    match message {
                        Message::Record(r) => batch.push(*r),
                        Message::Flush(done) => flushes.push(done),
                    }
                }
                if !batch.is_empty() {
                    queue.usage_dequeued(CHANNEL, batch.len());
                    for sink in &mut sinks {
                        sink.write(&batch);
                    }
                    handed.fetch_sub(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    batch.clear();
                }
                if !flushes.is_empty() {
                    let pending: Vec<_> = sinks.iter_mut().filter_map(|s| s.flushed()).collect();
                    for wait in pending {
                        let _ = wait.await;
                    }
                    let lost = sinks.iter().map(|s| s.lost()).sum::<u64>()
                        + unsent_seen.load(Ordering::Relaxed);
                    for done in flushes {
                        let _ = done.send(lost);
                    }
                }
            }
        });
        let log = UsageLog {
            tx,
            open: Arc::default(),
            unsent,
            telemetry,
            ids: Arc::new(RecordIds::new()),
            pending,
        };
        (log, writer)
    }

    /// Records sent and not yet handed to the sinks (a sink with its own writer, as the
    /// store's, counts its own queue).
    pub fn backlog(&self) -> u64 {
        self.pending.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn send(&self, record: UsageRecord) {
        self.telemetry.usage_queued(CHANNEL, 1);
        self.pending.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(Message::Record(Box::new(record))).is_err() {
            self.unsent.fetch_add(1, Ordering::Relaxed);
            self.pending.fetch_sub(1, Ordering::Relaxed);
            self.telemetry.usage_dequeued(CHANNEL, 1);
            self.telemetry.usage_dropped(CHANNEL, 1);
            tracing::error!("usage writer has stopped; a usage record was lost");
        }
    }

    /// The metrics this log reports to.
    pub fn telemetry(&self) -> &Arc<Telemetry> {
        &self.telemetry
    }

    /// Resolves once every record sent before this call has reached the sinks (and durable
    /// sinks have committed them), with the number of records lost so far: refused by a sink
    /// for good, or sent after the writer stopped.
    pub async fn flush(&self) -> u64 {
        let (done, wait) = oneshot::channel();
        match self.tx.send(Message::Flush(done)) {
            Ok(()) => wait
                .await
                .unwrap_or_else(|_| self.unsent.load(Ordering::Relaxed)),
            Err(_) => self.unsent.load(Ordering::Relaxed),
        }
    }

    /// Requests whose record has not been closed yet.
    pub fn open_ledgers(&self) -> usize {
        self.open.count.load(Ordering::Acquire)
    }

    /// Waits until every open ledger has closed (each request in flight has sent its record),
    /// or `limit` passes; returns how many are still open.
    pub async fn wait_ledgers_closed(&self, limit: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let closed = self.open.closed.notified();
            let open = self.open_ledgers();
            if open == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, closed).await.is_err() {
                return self.open_ledgers();
            }
        }
    }
}

/// A request's record under construction. Exactly one record leaves: on [`Ledger::finish`], or
/// on drop (the client went away mid-request, which cancels the future holding the ledger).
#[derive(Debug)]
pub struct Ledger {
    log: UsageLog,
    started: Instant,
    record: Option<UsageRecord>,
    on_close: Option<CloseHook>,
    /// The request's place in `sluice_inflight_requests`, until the record closes.
    in_flight: Option<InFlight>,
    /// The request's server span (`crate::otel`; disabled while tracing is off): the record's
    /// facts are written onto it when it closes, and it ends when the ledger is dropped.
    span: tracing::Span,
}

/// Runs once on the finished record just before it is sent: prices it and settles the key's
/// quota reservation (see `crate::keys::Charge`).
pub struct CloseHook(pub Box<dyn FnOnce(&mut UsageRecord) + Send>);

impl std::fmt::Debug for CloseHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CloseHook")
    }
}

/// Status recorded when the client disconnected before the answer was complete
/// (nginx's convention: there is no HTTP status for it).
pub const CLIENT_CLOSED: u16 = 499;

impl Ledger {
    pub fn open(
        log: &UsageLog,
        request_id: String,
        endpoint: &'static str,
        started: Instant,
    ) -> Self {
        let now = SystemTime::now();
        let time = humantime::format_rfc3339_millis(now).to_string();
        let time_ms = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        log.open.count.fetch_add(1, Ordering::AcqRel);
        let route = crate::telemetry::endpoint_labels(endpoint, false).0;
        Self {
            log: log.clone(),
            started,
            on_close: None,
            in_flight: Some(log.telemetry.in_flight(route)),
            span: tracing::Span::none(),
            record: Some(UsageRecord {
                record_id: log.ids.next(),
                request_id,
                time,
                time_ms,
                endpoint,
                key_id: None,
                user_id: None,
                api_key_id: None,
                provider: None,
                credential: None,
                platform: None,
                model_requested: None,
                model_served: None,
                stream: false,
                status: CLIENT_CLOSED,
                error: Some("client_closed".into()),
                usage: TokenUsage::default(),
                cost_nanos: 0,
                estimated: false,
                units: crate::store::UsageUnits::default(),
                image_tier: None,
                reply_text: None,
                usage_incomplete: false,
                latency_ms: 0.0,
                ttft_ms: None,
                attempts: 0,
                failed_attempts: Vec::new(),
                model_known: false,
                last_attempt_ms: None,
                overhead: sluice_telemetry::Overhead::default(),
                cooldowns: Vec::new(),
                capture: None,
                upstream_dialect: None,
                last_cooldown_until_ms: None,
            }),
        }
    }

    /// Fills in fields as the pipeline learns them.
    pub fn with(&mut self, f: impl FnOnce(&mut UsageRecord)) {
        if let Some(record) = self.record.as_mut() {
            f(record);
        }
    }

    /// Reads the record under construction.
    pub fn peek<T>(&self, f: impl FnOnce(&UsageRecord) -> T) -> Option<T> {
        self.record.as_ref().map(f)
    }

    /// Sets what runs on the finished record before it is sent (replacing any earlier hook).
    pub fn on_close(&mut self, hook: CloseHook) {
        self.on_close = Some(hook);
    }

    /// Sets the request's server span (`crate::otel::server_span`).
    pub fn set_span(&mut self, span: tracing::Span) {
        self.span = span;
    }

    /// The request's server span (disabled while tracing is off).
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// The request id this record is for.
    pub fn request_id(&self) -> &str {
        self.record.as_ref().map_or("", |r| r.request_id.as_str())
    }

    /// Milliseconds since the request arrived.
    pub fn elapsed_ms(&self) -> f64 {
        ms(self.started.elapsed())
    }

    /// Marks the moment the first byte of the answer left for the client.
    pub fn first_byte(&mut self) {
        let at = ms(self.started.elapsed());
        self.with(|r| {
            if r.ttft_ms.is_none() {
                r.ttft_ms = Some(at);
            }
        });
    }

    /// Closes the record with the final status and sends it.
    pub fn finish(mut self, status: u16, error: Option<String>) {
        self.close(status, error);
    }

    fn close(&mut self, status: u16, error: Option<String>) {
        if let Some(mut record) = self.record.take() {
            record.status = status;
            record.error = error;
            record.latency_ms = ms(self.started.elapsed());
            if let Some(CloseHook(hook)) = self.on_close.take() {
                hook(&mut record);
            }
            record.reply_text = None;
            crate::otel::close_server(&self.span, &record);
            self.log.send(record);
            self.in_flight = None;
            if self.log.open.count.fetch_sub(1, Ordering::AcqRel) == 1 {
                self.log.open.closed.notify_waiters();
            }
        }
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        if self.record.is_some() {
            self.close(CLIENT_CLOSED, Some("client_closed".into()));
        }
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn exactly_one_record_per_ledger() {
        let sink = MemorySink::default();
        let (log, _writer) = UsageLog::start(vec![Box::new(sink.clone())]);
        let mut finished = Ledger::open(&log, "a".into(), "openai.chat", Instant::now());
        finished.with(|r| r.usage.input_tokens = 3);
        finished.first_byte();
        finished.finish(200, None);
        drop(Ledger::open(
            &log,
            "b".into(),
            "openai.chat",
            Instant::now(),
        ));
        log.flush().await;
        let records = sink.records();
        assert_eq!(records.len(), 2);
        assert_eq!((records[0].status, records[0].usage.input_tokens), (200, 3));
        assert!(records[0].ttft_ms.is_some() && records[0].error.is_none());
        assert_eq!(records[1].status, CLIENT_CLOSED);
        assert_eq!(records[1].error.as_deref(), Some("client_closed"));
    }
}
