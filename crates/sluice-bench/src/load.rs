//! The load generator: a fixed number of workers pulling request tickets from a shared counter,
//! each timing its requests over pooled keep-alive HTTP/1.1 connections. Kept deliberately
//! light, because it shares the machine's cores with the two servers it measures.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow};
use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt as _, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::{Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::stats::duration_us;

/// The HTTP client every worker shares; its pool keeps one keep-alive connection per worker.
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// No single request may take longer than this, so a stuck server cannot hang the run.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds the pooled HTTP/1.1 client.
pub fn http_client(concurrency: usize) -> HttpClient {
    let mut connector = HttpConnector::new();
    // Small request/response writes must not wait for Nagle; servers set the same.
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(concurrency)
        .build(connector)
}

/// The chat-completions endpoint(s) and the exact request sent to them. With several
/// endpoints (instances behind a load balancer), worker `i` always uses endpoint `i mod n`, as a
/// balancer with keep-alive connections does.
#[derive(Debug, Clone)]
pub struct Target {
    pub uris: Vec<Uri>,
    pub authorization: String,
    pub body: Bytes,
    pub stream: bool,
    /// Each worker starts one request per this interval (an unloaded, paced client) instead of
    /// the next as soon as the last is done.
    pub pace: Option<Duration>,
}

impl Target {
    /// A chat request asking the mock for `words` words, streamed or not.
    pub fn chat(base: &str, bearer: &str, model: &str, words: u32, stream: bool) -> Result<Self> {
        Self::chat_saying(base, bearer, model, &format!("mock:words={words}"), stream)
    }

    /// A chat request whose message carries the mock `directives` (`mock:key=value …`).
    pub fn chat_saying(
        base: &str,
        bearer: &str,
        model: &str,
        directives: &str,
        stream: bool,
    ) -> Result<Self> {
        let uri: Uri = format!("{base}/v1/chat/completions")
            .parse()
            .with_context(|| format!("invalid endpoint URL from base {base}"))?;
        let body = serde_json::json!({
            "model": model,
            "messages": [{"role": "user", "content": format!("Say hello. {directives}")}],
            "stream": stream,
        });
        Ok(Self {
            uris: vec![uri],
            authorization: format!("Bearer {bearer}"),
            body: Bytes::from(serde_json::to_vec(&body).context("serialising request body")?),
            stream,
            pace: None,
        })
    }
}

impl Target {
    /// The same request, `rate` requests per second in all from `workers` workers.
    pub fn paced(mut self, rate: Option<u32>, workers: usize) -> Self {
        self.pace = rate
            .filter(|r| *r > 0)
            .map(|r| Duration::from_secs_f64(workers.max(1) as f64 / f64::from(r)));
        self
    }

    /// The same request spread over the instances at `bases`.
    pub fn spread(mut self, bases: &[String]) -> Result<Self> {
        self.uris = bases
            .iter()
            .map(|base| {
                format!("{base}/v1/chat/completions")
                    .parse()
                    .with_context(|| format!("invalid endpoint URL from base {base}"))
            })
            .collect::<Result<_>>()?;
        Ok(self)
    }
}

/// When a phase stops issuing requests.
#[derive(Debug, Clone, Copy)]
pub enum Stop {
    /// After this many requests have been started.
    AfterRequests(u64),
    /// Once this much time has passed since the phase started.
    After(Duration),
}

/// How one phase (warmup or measured) is run.
#[derive(Debug, Clone, Copy)]
pub struct PhasePlan {
    pub concurrency: usize,
    pub stop: Stop,
    /// A backstop: no new requests start after this long, whatever `stop` says.
    pub time_limit: Duration,
}

/// How often one kind of failure happened, with its first full message.
#[derive(Debug, Clone)]
pub struct ErrorTally {
    pub count: u64,
    pub example: String,
}

/// Counts one failure of `kind` in `errors`, keeping the first one's `example`.
pub fn tally(errors: &mut BTreeMap<String, ErrorTally>, kind: String, example: String) {
    errors
        .entry(kind)
        .and_modify(|t| t.count += 1)
        .or_insert(ErrorTally { count: 1, example });
}

/// Everything one phase observed.
#[derive(Debug, Default)]
pub struct PhaseOutcome {
    pub elapsed: Duration,
    pub ok: u64,
    pub latencies_us: Vec<u32>,
    /// Time to first body chunk; filled for streaming targets only.
    pub ttfb_us: Vec<u32>,
    /// Keyed by a short kind ("HTTP 502", "timeout") so repeated failures aggregate.
    pub errors: BTreeMap<String, ErrorTally>,
    /// The time limit stopped the phase before `stop` did.
    pub cut_short: bool,
}

impl PhaseOutcome {
    /// Failed requests of every kind.
    pub fn error_count(&self) -> u64 {
        self.errors.values().map(|t| t.count).sum()
    }

    fn record_error(&mut self, kind: String, example: String) {
        tally(&mut self.errors, kind, example);
    }

    /// Adds another phase's samples and errors (not its elapsed time).
    pub fn merge(&mut self, other: PhaseOutcome) {
        self.ok += other.ok;
        self.latencies_us.extend(other.latencies_us);
        self.ttfb_us.extend(other.ttfb_us);
        for (kind, tally) in other.errors {
            self.errors
                .entry(kind)
                .and_modify(|t| t.count += tally.count)
                .or_insert(tally);
        }
        self.cut_short |= other.cut_short;
    }
}

/// Runs one phase against `target` and gathers every worker's samples.
pub async fn run_phase(
    client: &HttpClient,
    target: &Target,
    plan: PhasePlan,
) -> Result<PhaseOutcome> {
    let started = Instant::now();
    let tickets = Arc::new(AtomicU64::new(0));
    let target = Arc::new(target.clone());
    let mut workers = tokio::task::JoinSet::new();
    for index in 0..plan.concurrency.max(1) {
        workers.spawn(worker(
            index,
            client.clone(),
            Arc::clone(&target),
            plan,
            started,
            Arc::clone(&tickets),
        ));
    }
    let mut outcome = PhaseOutcome::default();
    while let Some(joined) = workers.join_next().await {
        outcome.merge(joined.context("a load worker task failed")?);
    }
    outcome.elapsed = started.elapsed();
    Ok(outcome)
}

async fn worker(
    index: usize,
    client: HttpClient,
    target: Arc<Target>,
    plan: PhasePlan,
    phase_started: Instant,
    tickets: Arc<AtomicU64>,
) -> PhaseOutcome {
    let mut tally = PhaseOutcome::default();
    let uri = target.uris[index % target.uris.len().max(1)].clone();
    let mut started: u32 = 0;
    loop {
        if let Some(every) = target.pace {
            // Workers start spread over one interval, so a paced load arrives evenly.
            let offset = every.mul_f64(index as f64 / plan.concurrency.max(1) as f64);
            tokio::time::sleep_until((phase_started + offset + every * started).into()).await;
            started = started.saturating_add(1);
        }
        let since_start = phase_started.elapsed();
        let go_on = match plan.stop {
            Stop::AfterRequests(n) => tickets.fetch_add(1, Ordering::Relaxed) < n,
            Stop::After(duration) => since_start < duration,
        };
        if !go_on {
            break;
        }
        if since_start >= plan.time_limit {
            tally.cut_short = true;
            break;
        }
        let sent = Instant::now();
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange(&client, &target, &uri, sent)).await {
            Ok(Ok(sample)) => {
                tally.ok += 1;
                tally.latencies_us.push(sample.latency_us);
                if target.stream {
                    tally.ttfb_us.push(sample.ttfb_us);
                }
            }
            Ok(Err(failure)) => tally.record_error(failure.kind, failure.detail),
            Err(_) => tally.record_error(
                "timeout".to_owned(),
                format!(
                    "no complete response within {} s",
                    REQUEST_TIMEOUT.as_secs()
                ),
            ),
        }
    }
    tally
}

struct Sample {
    latency_us: u32,
    ttfb_us: u32,
}

pub struct Failure {
    pub kind: String,
    pub detail: String,
}

impl Failure {
    pub fn new(kind: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: kind.to_owned(),
            detail: detail.into(),
        }
    }
}

/// Sends `target`'s request to `uri`; the response head.
pub async fn send(
    client: &HttpClient,
    target: &Target,
    uri: &Uri,
) -> Result<hyper::Response<hyper::body::Incoming>, Failure> {
    let request = Request::post(uri.clone())
        .header(CONTENT_TYPE, "application/json")
        .header(AUTHORIZATION, &target.authorization)
        .body(Full::new(target.body.clone()))
        .map_err(|e| Failure::new("building request", e.to_string()))?;
    client
        .request(request)
        .await
        .map_err(|e| Failure::new("transport", format!("{:#}", anyhow!(e))))
}

/// Sends one request and reads the whole response, checking it is what a client expects.
async fn exchange(
    client: &HttpClient,
    target: &Target,
    uri: &Uri,
    sent: Instant,
) -> Result<Sample, Failure> {
    let response = send(client, target, uri).await?;
    let status = response.status();
    let mut body = response.into_body();
    let mut received = BytesMut::new();
    let mut first_byte_at = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Failure::new("reading body", format!("{:#}", anyhow!(e))))?;
        if let Ok(data) = frame.into_data() {
            if first_byte_at.is_none() && !data.is_empty() {
                first_byte_at = Some(Instant::now());
            }
            received.extend_from_slice(&data);
        }
    }
    let done = Instant::now();
    check_response(status, &received, target.stream)?;
    Ok(Sample {
        latency_us: duration_us(done - sent),
        ttfb_us: duration_us(first_byte_at.unwrap_or(done) - sent),
    })
}

pub fn check_response(status: StatusCode, body: &[u8], stream: bool) -> Result<(), Failure> {
    if status != StatusCode::OK {
        return Err(Failure::new(
            &format!("HTTP {}", status.as_u16()),
            format!("HTTP {status}: {}", snippet(body)),
        ));
    }
    if stream {
        if !body.trim_ascii_end().ends_with(b"data: [DONE]") {
            return Err(Failure::new(
                "stream not ended by data: [DONE]",
                format!("stream ended with: {}", tail(body)),
            ));
        }
    } else if !contains(body, br#""chat.completion""#) {
        return Err(Failure::new(
            "body without \"chat.completion\"",
            format!("body: {}", snippet(body)),
        ));
    }
    Ok(())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(body.get(..200).unwrap_or(body)).into_owned()
}

fn tail(body: &[u8]) -> String {
    String::from_utf8_lossy(body.get(body.len().saturating_sub(200)..).unwrap_or(body)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_must_end_with_done_marker() {
        let good = b"data: {\"object\":\"chat.completion.chunk\"}\n\ndata: [DONE]\n\n";
        assert!(check_response(StatusCode::OK, good, true).is_ok());
        let cut = b"data: {\"object\":\"chat.completion.chunk\"}\n\n";
        assert!(check_response(StatusCode::OK, cut, true).is_err());
    }

    #[test]
    fn non_stream_needs_ok_status_and_completion_object() {
        let good = br#"{"id":"x","object":"chat.completion","choices":[]}"#;
        assert!(check_response(StatusCode::OK, good, false).is_ok());
        let chunk = br#"{"object":"chat.completion.chunk"}"#;
        assert!(check_response(StatusCode::OK, chunk, false).is_err());
        let err = check_response(StatusCode::BAD_GATEWAY, good, false).err();
        assert_eq!(err.map(|f| f.kind).as_deref(), Some("HTTP 502"));
    }

    #[test]
    fn request_body_carries_model_words_and_stream_flag() -> Result<()> {
        let target = Target::chat("http://127.0.0.1:9", "k", "bench-model", 7, true)?;
        let body: serde_json::Value = serde_json::from_slice(&target.body)?;
        assert_eq!(body["model"], "bench-model");
        assert_eq!(body["stream"], true);
        assert_eq!(body["messages"][0]["content"], "Say hello. mock:words=7");
        assert_eq!(target.uris[0].path(), "/v1/chat/completions");
        Ok(())
    }
}
