//! The request recorder, its HTTP inspection endpoints, and the stream-cancellation counter.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::{AppState, BODY_LIMIT};

/// One request as the mock received it.
#[derive(Clone, Debug, Serialize)]
pub struct RecordedRequest {
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Path without the query, e.g. `/v1/chat/completions`.
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// Header names in lower case with their values, in arrival order.
    pub headers: Vec<(String, String)>,
    /// Raw body as UTF-8 (lossy).
    pub body: String,
}

impl RecordedRequest {
    fn new(parts: &Parts, body: &[u8]) -> Self {
        Self {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            headers: parts
                .headers
                .iter()
                .map(|(name, value)| {
                    (
                        name.as_str().to_owned(),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: String::from_utf8_lossy(body).into_owned(),
        }
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.body).ok()
    }
}

/// Shared handle to what the mock saw; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    requests: Mutex<Vec<RecordedRequest>>,
    cancelled_streams: AtomicU64,
}

impl Recorder {
    /// Snapshot of all recorded requests, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().clone()
    }

    /// Forget all recorded requests.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Number of stream responses whose body was dropped before completion (client went away).
    pub fn cancelled_streams(&self) -> u64 {
        self.shared.cancelled_streams.load(Ordering::Relaxed)
    }

    fn record(&self, request: RecordedRequest) {
        self.lock().push(request);
    }

    /// A guard to keep inside a stream body: dropped before [`StreamGuard::complete`], it counts
    /// the stream as cancelled.
    pub(crate) fn stream_guard(&self) -> StreamGuard {
        StreamGuard {
            recorder: self.clone(),
            complete: false,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<RecordedRequest>> {
        // A panic while holding the lock cannot leave the Vec half-written; keep going.
        self.shared
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Counts its stream as cancelled if dropped before being marked complete.
#[derive(Debug)]
pub(crate) struct StreamGuard {
    recorder: Recorder,
    complete: bool,
}

impl StreamGuard {
    /// The stream ran to its planned end (or fault); dropping it is no cancellation.
    pub(crate) fn complete(&mut self) {
        self.complete = true;
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if !self.complete {
            self.recorder
                .shared
                .cancelled_streams
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Middleware: records every API request (all but `/__mock/…`) before it is handled.
pub(crate) async fn capture(
    State(recorder): State<Recorder>,
    request: Request,
    next: Next,
) -> Response {
    if request.uri().path().starts_with("/__mock/") {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::warn!(%error, path = parts.uri.path(), "could not read request body");
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body unreadable or larger than {BODY_LIMIT} bytes"),
            )
                .into_response();
        }
    };
    recorder.record(RecordedRequest::new(&parts, &bytes));
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// `GET /__mock/requests`, `DELETE /__mock/requests`, `GET /__mock/stats`.
pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/__mock/requests", get(list).delete(clear))
        .route("/__mock/stats", get(stats))
}

async fn list(State(state): State<Arc<AppState>>) -> Json<Vec<RecordedRequest>> {
    Json(state.recorder.requests())
}

async fn clear(State(state): State<Arc<AppState>>) -> StatusCode {
    state.recorder.clear();
    StatusCode::NO_CONTENT
}

#[derive(Serialize)]
struct Stats {
    requests: usize,
    cancelled_streams: u64,
}

/// Counters for clients that run the mock as a separate process.
async fn stats(State(state): State<Arc<AppState>>) -> Json<Stats> {
    Json(Stats {
        requests: state.recorder.lock().len(),
        cancelled_streams: state.recorder.cancelled_streams(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_counts_only_incomplete_streams() {
        let recorder = Recorder::default();
        drop(recorder.stream_guard());
        let mut finished = recorder.stream_guard();
        finished.complete();
        drop(finished);
        assert_eq!(recorder.cancelled_streams(), 1);
    }

    #[test]
    fn header_lookup_is_case_insensitive() {
        let request = RecordedRequest {
            method: "POST".into(),
            path: "/v1/chat/completions".into(),
            query: None,
            headers: vec![("x-one".into(), "1".into())],
            body: "{\"a\":1}".into(),
        };
        assert_eq!(request.header("X-One"), Some("1"));
        assert_eq!(request.header("x-two"), None);
        assert_eq!(request.json(), Some(serde_json::json!({"a": 1})));
    }
}
