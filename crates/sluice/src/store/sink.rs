//! [`StoreSink`]: usage records into the store, in batches, on a task of its own.
//!
//! The usage log's writer hands each batch over without waiting; this sink's task writes
//! batches of up to [`BATCH`] records per transaction (each transaction also adds the records
//! to their keys' counters, so `used_tokens`, `used_cost`, `request_count` and `last_used_at`
//! always equal the sums of the key's records). A flush of the usage log — graceful shutdown
//! does one — waits until everything handed over is committed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sluice_telemetry::Telemetry;

use tokio::sync::{mpsc, oneshot};

use super::{Store, UsageRow};
use crate::limits::Calendar;
use crate::pipeline::account::{UsageRecord, UsageSink};

/// This sink's name in the usage-writer metrics.
const SINK: &str = "store";

/// Records per transaction.
const BATCH: usize = 500;
/// How long the writer waits for more records before committing a partial batch.
const LINGER: Duration = Duration::from_millis(50);
/// Attempts at writing one batch before its records are given up (and logged as lost).
const ATTEMPTS: u32 = 5;

enum Message {
    Rows(Vec<UsageRow>),
    Flush(oneshot::Sender<()>),
}

/// Sends records to the store's writer task.
pub struct StoreSink {
    tx: mpsc::UnboundedSender<Message>,
    calendar: Calendar,
    /// Records given up on after [`ATTEMPTS`] failed writes.
    lost: Arc<AtomicU64>,
    telemetry: Arc<Telemetry>,
    backlog: Backlog,
}

/// Records handed to the store's writer and not yet committed (or given up), and a counter of
/// batches done that the dashboard's live pages wait on.
#[derive(Debug, Clone)]
pub struct Backlog(
    Arc<std::sync::atomic::AtomicU64>,
    Arc<tokio::sync::watch::Sender<u64>>,
);

impl Default for Backlog {
    fn default() -> Self {
        Backlog(Arc::default(), Arc::new(tokio::sync::watch::channel(0).0))
    }
}

impl Backlog {
    pub fn get(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Changes after each batch the writer is done with.
    pub fn batches(&self) -> tokio::sync::watch::Receiver<u64> {
        self.1.subscribe()
    }

    fn add(&self, n: usize) {
        self.0
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
    }

    fn done(&self, n: usize) {
        self.0
            .fetch_sub(n as u64, std::sync::atomic::Ordering::Relaxed);
        self.1.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// A record as stored; `day` is its date in the configured time zone.
pub fn row_of(r: &UsageRecord, calendar: &Calendar) -> UsageRow {
    let tokens = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    UsageRow {
        request_id: r.request_id.clone(),
        time_ms: r.time_ms,
        day: calendar.day(r.time_ms),
        endpoint: r.endpoint.to_string(),
        user_id: r.user_id,
        api_key_id: r.api_key_id,
        key_label: r.key_id.clone(),
        provider: r.provider.clone(),
        credential: r.credential.clone(),
        platform: r.platform.clone(),
        model_requested: r.model_requested.clone(),
        model_served: r.model_served.clone(),
        stream: r.stream,
        status: i64::from(r.status),
        error: r.error.clone(),
        input_tokens: tokens(r.usage.input_tokens),
        output_tokens: tokens(r.usage.output_tokens),
        cache_read_tokens: tokens(r.usage.cache_read_tokens),
        cache_write_tokens: tokens(r.usage.cache_write_tokens),
        reasoning_tokens: tokens(r.usage.reasoning_tokens),
        cost_nanos: r.cost_nanos,
        estimated: r.estimated,
        latency_ms: r.latency_ms,
        ttft_ms: r.ttft_ms,
        record_id: r.record_id.clone(),
        attempts: i64::from(r.attempts),
        upstream_dialect: r.upstream_dialect.map(String::from),
        units: r.units,
        attempt_log: attempt_log(r),
    }
}

/// Every upstream attempt of a record: the failed ones, then the last (whose answer the client
/// got), with the latency left after the failed ones.
fn attempt_log(r: &UsageRecord) -> Vec<crate::store::rollup::AttemptRow> {
    use crate::store::rollup::AttemptRow;
    let mut log: Vec<AttemptRow> = r
        .failed_attempts
        .iter()
        .map(|a| AttemptRow {
            provider: a.provider.clone(),
            credential: a.credential.clone(),
            model: a.model.clone(),
            status: i64::from(a.status),
            error: Some(a.error.clone()),
            latency_ms: a.latency_ms,
            cooldown_until_ms: a.cooldown_until_ms,
        })
        .collect();
    if r.attempts as usize > log.len() {
        let before: f64 = log.iter().map(|a| a.latency_ms).sum();
        log.push(AttemptRow {
            provider: r.provider.clone().unwrap_or_default(),
            credential: r.credential.clone().unwrap_or_default(),
            model: r.model_served.clone().unwrap_or_default(),
            status: i64::from(r.status),
            error: r.error.clone(),
            latency_ms: (r.latency_ms - before).max(0.0),
            cooldown_until_ms: r.last_cooldown_until_ms,
        });
    }
    log
}

impl StoreSink {
    /// Starts the writer task, without metrics.
    pub fn start(store: Arc<dyn Store>, calendar: Calendar) -> StoreSink {
        Self::start_with(
            store,
            calendar,
            Arc::new(Telemetry::disabled()),
            Backlog::default(),
        )
    }

    /// Starts the writer task; queue depth, batch sizes, write lag, records written and
    /// dropped, and the insert's latency go to `telemetry`.
    pub fn start_with(
        store: Arc<dyn Store>,
        calendar: Calendar,
        telemetry: Arc<Telemetry>,
        backlog: Backlog,
    ) -> StoreSink {
        let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
        let lost = Arc::new(AtomicU64::new(0));
        let lost_by_writer = lost.clone();
        let metrics = telemetry.clone();
        let written = backlog.clone();
        tokio::spawn(async move {
            let mut inbox = Vec::with_capacity(64);
            let mut pending: Vec<UsageRow> = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut inbox, 64).await > 0 {
                let mut flushes = Vec::new();
                // Linger briefly so one transaction carries many records: under load, committing
                // per request would cost a WAL write per request. A flush ends the wait at once.
                let deadline = tokio::time::Instant::now() + LINGER;
                loop {
                    for message in inbox.drain(..) {
                        match message {
                            Message::Rows(rows) => pending.extend(rows),
                            Message::Flush(done) => flushes.push(done),
                        }
                    }
                    if !flushes.is_empty() || pending.len() >= BATCH {
                        break;
                    }
                    match tokio::time::timeout_at(deadline, rx.recv_many(&mut inbox, 64)).await {
                        Ok(n) if n > 0 => {}
                        _ => break,
                    }
                }
                while !pending.is_empty() {
                    let take = pending.len().min(BATCH);
                    let batch: Vec<UsageRow> = pending.drain(..take).collect();
                    if !write(&*store, &batch, &metrics).await {
                        lost_by_writer.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    }
                    written.done(batch.len());
                }
                for done in flushes {
                    let _ = done.send(());
                }
            }
        });
        StoreSink {
            tx,
            calendar,
            lost,
            telemetry,
            backlog,
        }
    }
}

/// Writes one batch, retrying; `false` when its records were given up.
async fn write(store: &dyn Store, batch: &[UsageRow], telemetry: &Telemetry) -> bool {
    let mut delay = Duration::from_millis(50);
    telemetry.usage_dequeued(SINK, batch.len());
    for attempt in 1..=ATTEMPTS {
        let started = Instant::now();
        let written = store.insert_usage(batch).await;
        telemetry.store_query("insert_usage", started.elapsed());
        match written {
            Ok(()) => {
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
                telemetry.usage_written(
                    SINK,
                    batch.iter().map(|r| {
                        let closed = r.time_ms as f64 + r.latency_ms;
                        Duration::from_secs_f64(((now_ms - closed) / 1000.0).max(0.0))
                    }),
                );
                return true;
            }
            Err(e) if attempt < ATTEMPTS => {
                tracing::warn!(error = %e, attempt, records = batch.len(), "writing usage records failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => {
                telemetry.usage_dropped(SINK, batch.len());
                tracing::error!(
                    error = %e,
                    records = batch.len(),
                    first_request_id = batch.first().map(|r| r.request_id.as_str()),
                    "usage records LOST: the store refused them {ATTEMPTS} times; check the data directory's disk and permissions"
                );
            }
        }
    }
    false
}

impl UsageSink for StoreSink {
    fn write(&mut self, batch: &[UsageRecord]) {
        let rows = batch.iter().map(|r| row_of(r, &self.calendar)).collect();
        self.telemetry.usage_queued(SINK, batch.len());
        self.backlog.add(batch.len());
        if self.tx.send(Message::Rows(rows)).is_err() {
            self.backlog.done(batch.len());
            self.lost.fetch_add(batch.len() as u64, Ordering::Relaxed);
            self.telemetry.usage_dequeued(SINK, batch.len());
            self.telemetry.usage_dropped(SINK, batch.len());
            tracing::error!(
                records = batch.len(),
                "usage store writer has stopped; records lost"
            );
        }
    }

    fn flushed(&mut self) -> Option<oneshot::Receiver<()>> {
        let (done, wait) = oneshot::channel();
        self.tx.send(Message::Flush(done)).ok().map(|()| wait)
    }

    fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::pipeline::account::{Ledger, UsageLog};
    use crate::store::UsageFilter;
    use crate::store::sqlite::SqliteStore;

    #[tokio::test]
    async fn a_flush_returns_only_once_every_record_is_committed() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
        let sink = StoreSink::start(store.clone(), Calendar::default());
        let (log, _writer) = UsageLog::start(vec![Box::new(sink)]);
        for i in 0..1200 {
            let mut ledger = Ledger::open(
                &log,
                format!("r{i}"),
                "openai.chat",
                std::time::Instant::now(),
            );
            ledger.with(|r| {
                r.usage.output_tokens = 2;
                r.cost_nanos = 5;
            });
            ledger.finish(200, None);
        }
        log.flush().await;
        let all = UsageFilter {
            start_day: "0000-01-01".into(),
            end_day: "9999-12-31".into(),
            ..Default::default()
        };
        let totals = store.usage_totals(&all).await.unwrap();
        assert_eq!(
            (totals.requests, totals.output_tokens, totals.cost_nanos),
            (1200, 2400, 6000)
        );
    }
}
