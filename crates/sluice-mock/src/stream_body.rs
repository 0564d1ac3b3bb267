//! Turns pre-rendered stream events into a response body with the stream faults applied
//! (`chunk_delay_ms`, `cut_after`, `stall_after`). Dialect-agnostic: every fake's stream goes
//! through here.

use std::time::Duration;
use std::vec;

use axum::body::{Body, Bytes};
use futures_util::stream;

use crate::directives::Directives;
use crate::record::StreamGuard;

/// `fail_after=N`: the first N of `events`, then the provider's own error event, which
/// `failure` renders from N (Responses numbers its events).
pub(crate) fn fail_after(
    mut events: Vec<Bytes>,
    directives: &Directives,
    failure: impl FnOnce(usize) -> serde_json::Result<Bytes>,
) -> serde_json::Result<Vec<Bytes>> {
    if let Some(n) = directives.fail_after
        && n < events.len()
    {
        events.truncate(n);
        events.push(failure(n)?);
    }
    Ok(events)
}

/// The message of every injected mid-stream error.
pub(crate) const FAILURE_MESSAGE: &str =
    "sluice-mock: the model failed mid-stream (mock:fail_after)";

/// The message of an injected mid-stream error: [`FAILURE_MESSAGE`], with `fail_echo_key` the
/// request's key after it, whole and masked.
pub(crate) fn failure_message(directives: &Directives) -> String {
    match &directives.fail_echo_key {
        Some(key) => format!(
            "{FAILURE_MESSAGE}; key {} ({key})",
            crate::errors::mask_key(key)
        ),
        None => FAILURE_MESSAGE.to_owned(),
    }
}

/// Sends `events` one body chunk each; `guard` counts the stream as cancelled if the body is
/// dropped before it reaches its planned end.
pub(crate) fn body(events: Vec<Bytes>, directives: &Directives, guard: StreamGuard) -> Body {
    let emitter = Emitter {
        events: events.into_iter(),
        sent: 0,
        delay: directives.chunk_delay,
        cut_after: directives.cut_after,
        stall_after: directives.stall_after,
        guard,
        ended: false,
    };
    Body::from_stream(stream::unfold(emitter, Emitter::next))
}

struct Emitter {
    events: vec::IntoIter<Bytes>,
    sent: usize,
    delay: Option<Duration>,
    cut_after: Option<usize>,
    stall_after: Option<usize>,
    guard: StreamGuard,
    ended: bool,
}

impl Emitter {
    async fn next(mut self) -> Option<(std::io::Result<Bytes>, Self)> {
        if self.ended {
            return None;
        }
        if self.sent > 0
            && let Some(delay) = self.delay
        {
            tokio::time::sleep(delay).await;
        }
        if self.stall_after.is_some_and(|n| self.sent >= n) {
            // Never resolves: the guard stays alive until the client gives up.
            std::future::pending::<()>().await;
        }
        if self.cut_after.is_some_and(|n| self.sent >= n) {
            self.ended = true;
            self.guard.complete();
            // Return Pending once so hyper flushes the chunks already sent before it aborts.
            tokio::task::yield_now().await;
            let error = std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "sluice-mock: stream cut by mock:cut_after",
            );
            return Some((Err(error), self));
        }
        match self.events.next() {
            Some(event) => {
                self.sent += 1;
                if self.events.as_slice().is_empty() && self.stall_after.is_none() {
                    self.guard.complete();
                }
                Some((Ok(event), self))
            }
            None => {
                self.guard.complete();
                None
            }
        }
    }
}
