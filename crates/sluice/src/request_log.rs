//! Seed 003's `request-log`: while it is on, every proxied request is written for debugging —
//! its request (headers with secrets redacted, body), its answer (body, or the upstream's stream
//! events as received), its upstream attempts and its usage — as one JSON line in rotating files
//! under `data-dir/request-log/`, kept within `request-log-files` size and age limits.
//!
//! The pipeline only fills a [`Capture`] in the request's usage record (when the switch is on
//! at the request's start, so turning it on or off through the management API takes effect with
//! the next request); [`RequestLogSink`] turns closed records into lines on a thread of its own.
//! `GET /v0/management/request-log` lists the newest entries, `…/request-log/{id}` shows one.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::HeaderMap;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::config::RequestLogFiles;
use crate::pipeline::account::{UsageRecord, UsageSink};

/// Headers whose values are never written.
const SECRET_HEADERS: [&str; 9] = [
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "x-goog-api-key",
    "api-key",
    "x-management-key",
    "cookie",
    "set-cookie",
    "x-amz-security-token",
];

/// Query parameters whose values are never written (Gemini's `?key=`).
const SECRET_PARAMS: [&str; 3] = ["key", "api_key", "token"];

const REDACTED: &str = "[redacted]";

/// The directory under the data directory.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("request-log")
}

/// What one request showed, gathered while it runs (only while the request log is on).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Capture {
    pub method: String,
    /// Path and query, secret parameters redacted.
    pub path: String,
    /// Request headers, secrets redacted.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// The complete answer the client got.
    pub response_body: Option<Bytes>,
    /// The upstream's stream as received (up to `max_body`).
    pub stream: Vec<u8>,
    pub stream_truncated: bool,
    /// The error message the client got.
    pub error_message: Option<String>,
    max_body: usize,
}

impl Capture {
    pub fn of_request(parts: &http::request::Parts, max_body: usize) -> Capture {
        Capture {
            method: parts.method.to_string(),
            path: redact_query(
                parts
                    .uri
                    .path_and_query()
                    .map_or(parts.uri.path(), |p| p.as_str()),
            ),
            headers: redact_headers(&parts.headers),
            max_body,
            ..Capture::default()
        }
    }

    /// Keeps upstream stream bytes, up to the body limit.
    pub fn push_stream(&mut self, bytes: &[u8]) {
        let room = self.max_body.saturating_sub(self.stream.len());
        if bytes.len() > room {
            self.stream_truncated = true;
        }
        self.stream
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

fn redact_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            let value = if SECRET_HEADERS.contains(&name.as_str()) {
                REDACTED.to_string()
            } else {
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            };
            (name.to_string(), value)
        })
        .collect()
}

fn redact_query(path_and_query: &str) -> String {
    let Some((path, query)) = path_and_query.split_once('?') else {
        return path_and_query.to_string();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if SECRET_PARAMS.contains(&name) => format!("{name}={REDACTED}"),
            _ => pair.to_string(),
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

/// A body as JSON when it is JSON, else as text; cut at `max` bytes.
fn body_value(body: &[u8], max: usize) -> (Value, bool) {
    let truncated = body.len() > max;
    if !truncated && let Ok(json) = serde_json::from_slice::<Value>(body) {
        return (json, false);
    }
    let cut = &body[..body.len().min(max)];
    (
        Value::String(String::from_utf8_lossy(cut).into_owned()),
        truncated,
    )
}

/// One entry: the record and what was captured.
fn entry(r: &UsageRecord, c: &Capture) -> Value {
    let (request_body, request_truncated) = body_value(&c.body, c.max_body);
    let mut response = json!({"status": r.status});
    if let Some(body) = &c.response_body {
        let (body, truncated) = body_value(body, c.max_body);
        response["body"] = body;
        response["truncated"] = json!(truncated);
    }
    if !c.stream.is_empty() {
        response["upstream_events"] = json!(String::from_utf8_lossy(&c.stream));
        response["truncated"] = json!(c.stream_truncated);
    }
    if let Some(message) = &c.error_message {
        response["error"] = json!({"code": r.error, "message": message});
    }
    let mut attempts: Vec<Value> = r
        .failed_attempts
        .iter()
        .map(|a| {
            json!({"provider": a.provider, "credential": a.credential, "model": a.model,
                   "status": a.status, "error": a.error, "latency_ms": a.latency_ms})
        })
        .collect();
    if r.attempts as usize > r.failed_attempts.len() {
        attempts.push(json!({"provider": r.provider, "credential": r.credential,
            "model": r.model_served, "status": r.status, "error": r.error}));
    }
    let headers: serde_json::Map<String, Value> = c
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({
        "request_id": r.request_id,
        "time": r.time,
        "endpoint": r.endpoint,
        "key_id": r.key_id,
        "model_requested": r.model_requested,
        "model_served": r.model_served,
        "provider": r.provider,
        "stream": r.stream,
        "status": r.status,
        "error": r.error,
        "latency_ms": r.latency_ms,
        "usage": r.usage,
        "cost_usd": r.cost_nanos as f64 / 1e9,
        "request": {"method": c.method, "path": c.path, "headers": headers,
                    "body": request_body, "truncated": request_truncated},
        "response": response,
        "attempts": attempts,
    })
}

enum Message {
    Line(String),
    Flush(oneshot::Sender<()>),
}

/// Writes the entries of records that carry a [`Capture`].
pub struct RequestLogSink {
    tx: mpsc::Sender<Message>,
}

impl RequestLogSink {
    /// Starts the writer thread over `dir`.
    pub fn start(dir: PathBuf, limits: RequestLogFiles) -> RequestLogSink {
        let (tx, rx) = mpsc::channel::<Message>();
        let spawned = std::thread::Builder::new()
            .name("request-log".into())
            .spawn(move || {
                let mut files = Files::new(dir, limits);
                for message in rx {
                    match message {
                        Message::Line(line) => files.append(&line),
                        Message::Flush(done) => {
                            files.sync();
                            let _ = done.send(());
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the request log writer");
        }
        RequestLogSink { tx }
    }
}

impl UsageSink for RequestLogSink {
    fn write(&mut self, batch: &[UsageRecord]) {
        for r in batch {
            if let Some(capture) = &r.capture {
                let line = entry(r, capture).to_string();
                let _ = self.tx.send(Message::Line(line));
            }
        }
    }

    fn flushed(&mut self) -> Option<oneshot::Receiver<()>> {
        let (done, wait) = oneshot::channel();
        self.tx.send(Message::Flush(done)).ok().map(|()| wait)
    }
}

/// The rotating files.
struct Files {
    dir: PathBuf,
    limits: RequestLogFiles,
    current: Option<(File, u64)>,
    last_sweep: Option<Instant>,
    seq: u32,
}

/// How often retention runs while entries keep coming.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

impl Files {
    fn new(dir: PathBuf, limits: RequestLogFiles) -> Self {
        Self {
            dir,
            limits,
            current: None,
            last_sweep: None,
            seq: 0,
        }
    }

    fn append(&mut self, line: &str) {
        let len = line.len() as u64 + 1;
        let full = self
            .current
            .as_ref()
            .is_some_and(|(_, size)| *size > 0 && size + len > self.limits.max_file_size.0);
        if self.current.is_none() || full {
            self.rotate();
        }
        if let Some((file, size)) = self.current.as_mut() {
            if let Err(e) = writeln!(file, "{line}") {
                tracing::warn!(error = %e, "request log: cannot write an entry");
            }
            *size += len;
        }
        if self.last_sweep.is_none_or(|at| at.elapsed() >= SWEEP_EVERY) {
            self.sweep();
        }
    }

    fn sync(&mut self) {
        if let Some((file, _)) = self.current.as_mut() {
            let _ = file.flush();
        }
    }

    fn rotate(&mut self) {
        self.current = None;
        if let Err(e) = create_private_dir(&self.dir) {
            tracing::warn!(error = %e, dir = %self.dir.display(), "request log: cannot create the directory");
            return;
        }
        let ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        self.seq = self.seq.wrapping_add(1);
        let path = self
            .dir
            .join(format!("requests-{ms:015}-{:04}.jsonl", self.seq % 10_000));
        match open_private(&path) {
            Ok(file) => self.current = Some((file, 0)),
            Err(e) => {
                tracing::warn!(error = %e, path = %path.display(), "request log: cannot open a file")
            }
        }
        self.sweep();
    }

    /// Deletes files past `max-age`, then the oldest while the total is over `max-total-size`
    /// (never the file being written).
    fn sweep(&mut self) {
        self.last_sweep = Some(Instant::now());
        let files = log_files(&self.dir);
        let newest = files.last().map(|(path, _)| path.clone());
        let mut total: u64 = files.iter().map(|(_, meta)| meta.len()).sum();
        for (path, meta) in &files {
            if Some(path) == newest.as_ref() {
                continue;
            }
            let old = meta
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age > self.limits.max_age);
            if (old || total > self.limits.max_total_size.0) && fs::remove_file(path).is_ok() {
                total = total.saturating_sub(meta.len());
            }
        }
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    {
        fs::create_dir_all(dir)
    }
}

fn open_private(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// The log files, oldest first (names sort by creation time).
fn log_files(dir: &Path) -> Vec<(PathBuf, fs::Metadata)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(PathBuf, fs::Metadata)> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("requests-") && name.ends_with(".jsonl")
        })
        .filter_map(|e| Some((e.path(), e.metadata().ok()?)))
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files
}

/// The newest `limit` entries, newest first, as summaries.
pub fn list(dir: &Path, limit: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for (path, _) in log_files(dir).iter().rev() {
        let Ok(file) = File::open(path) else { continue };
        let lines: Vec<String> = BufReader::new(file).lines().map_while(Result::ok).collect();
        for line in lines.iter().rev() {
            if out.len() >= limit {
                return out;
            }
            if let Ok(entry) = serde_json::from_str::<Value>(line) {
                out.push(summary(&entry));
            }
        }
    }
    out
}

fn summary(entry: &Value) -> Value {
    let mut summary = serde_json::Map::new();
    for field in [
        "request_id",
        "time",
        "endpoint",
        "model_requested",
        "provider",
        "stream",
        "status",
        "error",
        "latency_ms",
    ] {
        summary.insert(field.into(), entry[field].clone());
    }
    Value::Object(summary)
}

/// The entry of one request, newest first if an id repeats.
pub fn find(dir: &Path, request_id: &str) -> Option<Value> {
    let needle = format!("\"request_id\":{}", Value::String(request_id.into()));
    for (path, _) in log_files(dir).iter().rev() {
        let Ok(file) = File::open(path) else { continue };
        let found = BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .filter(|line| line.contains(&needle))
            .last();
        if let Some(line) = found {
            return serde_json::from_str(&line).ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn secrets_in_headers_and_queries_are_redacted() {
        assert_eq!(
            redact_query("/v1beta/models/m:generateContent?key=AIza-secret&alt=sse"),
            "/v1beta/models/m:generateContent?key=[redacted]&alt=sse"
        );
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "Bearer sk-secret".parse().unwrap());
        headers.insert("x-goog-api-key", "AIza".parse().unwrap());
        headers.insert("content-type", "application/json".parse().unwrap());
        let redacted = redact_headers(&headers);
        assert!(
            redacted
                .iter()
                .all(|(_, v)| !v.contains("secret") && v != "AIza")
        );
        assert!(redacted.contains(&("content-type".into(), "application/json".into())));
    }

    #[test]
    fn files_past_the_age_limit_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let limits = RequestLogFiles {
            max_file_size: crate::config::ByteSize(100),
            max_age: Duration::from_secs(1),
            ..RequestLogFiles::default()
        };
        let mut files = Files::new(dir.path().to_path_buf(), limits);
        let line = "x".repeat(80);
        for _ in 0..3 {
            files.append(&line);
        }
        assert_eq!(log_files(dir.path()).len(), 3);
        std::thread::sleep(Duration::from_millis(1100));
        files.append(&line);
        assert_eq!(log_files(dir.path()).len(), 1, "only the new file is left");
    }

    #[test]
    fn files_rotate_at_the_size_limit_and_the_total_is_capped() {
        let dir = tempfile::tempdir().unwrap();
        let limits = RequestLogFiles {
            max_file_size: crate::config::ByteSize(1000),
            max_total_size: crate::config::ByteSize(3000),
            ..RequestLogFiles::default()
        };
        let mut files = Files::new(dir.path().to_path_buf(), limits);
        let line = format!("{{\"request_id\":\"r\",\"pad\":\"{}\"}}", "x".repeat(280));
        for _ in 0..40 {
            files.append(&line);
        }
        files.sync();
        let kept = log_files(dir.path());
        assert!(kept.len() >= 2, "{kept:?}");
        assert!(kept.iter().all(|(_, m)| m.len() <= 1000));
        let total: u64 = kept.iter().map(|(_, m)| m.len()).sum();
        assert!(total <= 3000 + 1000, "{total}");
    }
}
