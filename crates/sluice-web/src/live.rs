//! Live pages without polling: `GET /ui/live/overview` is a Server-Sent Events stream that
//! pushes the Overview's live part, freshly rendered, each time the store writer commits a
//! batch of usage records (`Gateway::usage_written`) or a credential's state changes
//! (cooling, probing, recovered, disabled: checked in memory once a second, never in the
//! store). `GET /ui/live/requests` is the Requests page's live tail: the new rows matching
//! the page's filter, pushed the same way (the browser holds them while the user reads). Bursts
//! are coalesced; the session is re-checked before every push, and a stream whose session ended
//! says so (`event: signedout`) and closes.

use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use http::request::Parts;

use crate::pages::keys::{KeyFilter, KeysTable, filtered_rows};
use crate::pages::overview::{LiveFragment, gather};
use crate::pages::requests::{RequestFilter, RequestRow, RowsFragment};
use crate::pages::{Need, viewer};
use crate::session::Viewer;
use crate::view::Layout;
use crate::{CredentialHealth, Web};

/// Changes closer together than this are pushed once.
const COALESCE: Duration = Duration::from_millis(300);

/// What a credential change means to the page (not the countdowns, which tick in the browser).
fn fingerprint(credentials: &[CredentialHealth]) -> String {
    let mut out = String::new();
    for c in credentials {
        out.push_str(&c.id);
        out.push('=');
        out.push_str(&c.status);
        for m in &c.models {
            out.push(' ');
            out.push_str(&m.model);
            out.push(':');
            out.push_str(&m.status);
        }
        out.push('\n');
    }
    out
}

/// Runs a live stream for `v`: waits for a usage batch to be written (and, with
/// `credentials`, for a credential to change state), coalesces bursts, re-checks the session,
/// and sends what `next` renders (`Ok(None)`: nothing new; `Err`: end the stream).
fn run<F, Fut>(web: Arc<Web>, v: Viewer, credentials: bool, mut next: F) -> Response
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<Option<Event>, ()>> + Send,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(4);
    let mut written = web.gateway.usage_written();
    tokio::spawn(async move {
        let mut health = fingerprint(&web.gateway.credentials());
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                changed = written.changed() => if changed.is_err() { break },
                _ = tick.tick() => {
                    if tx.is_closed() {
                        break;
                    }
                    if !credentials || fingerprint(&web.gateway.credentials()) == health {
                        continue;
                    }
                }
                _ = tx.closed() => break,
            }
            tokio::time::sleep(COALESCE).await;
            written.borrow_and_update();
            if credentials {
                health = fingerprint(&web.gateway.credentials());
            }
            if !matches!(
                web.gateway.store().ui().ui_session(&v.id_hash).await,
                Ok(Some(_))
            ) {
                let _ = tx.send(Event::default().event("signedout").data("")).await;
                break;
            }
            match next().await {
                Ok(Some(event)) => {
                    if tx.send(event).await.is_err() {
                        break;
                    }
                }
                Ok(None) => {}
                Err(()) => break,
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// `GET /ui/live/overview` (admins).
pub async fn overview(State(web): State<Arc<Web>>, parts: Parts) -> Response {
    let v = match viewer(&web, &parts, Need::Admin).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let headers = parts.headers.clone();
    let (w, viewer) = (web.clone(), v.clone());
    run(web, v, true, move || {
        let (web, headers, v) = (w.clone(), headers.clone(), viewer.clone());
        async move {
            let layout = Layout::new(&headers, Some(v), "overview.title", "/ui/overview");
            let Ok(live) = gather(&web, &layout).await else {
                return Ok(None);
            };
            match (LiveFragment {
                l: &layout,
                live: &live,
            })
            .render()
            {
                Ok(html) => Ok(Some(Event::default().event("overview").data(html))),
                Err(e) => {
                    tracing::error!(error = %e, "rendering the overview's live part failed");
                    Err(())
                }
            }
        }
    })
}

/// `GET /ui/live/keys?<filter>` (admins): the Keys page's table, re-rendered with fresh
/// meters each time usage is written.
pub async fn keys(
    State(web): State<Arc<Web>>,
    Query(filter): Query<KeyFilter>,
    parts: Parts,
) -> Response {
    let v = match viewer(&web, &parts, Need::Admin).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let headers = parts.headers.clone();
    let (w, viewer) = (web.clone(), v.clone());
    run(web, v, false, move || {
        let (web, headers, v, filter) =
            (w.clone(), headers.clone(), viewer.clone(), filter.clone());
        async move {
            let layout = Layout::new(&headers, Some(v), "keys.title", "/ui/keys");
            let Ok(rows) = filtered_rows(&web, &layout, &filter).await else {
                return Ok(None);
            };
            match (KeysTable {
                l: &layout,
                rows: &rows,
            })
            .render()
            {
                Ok(html) => Ok(Some(Event::default().event("keys").data(html))),
                Err(e) => {
                    tracing::error!(error = %e, "rendering the key table failed");
                    Err(())
                }
            }
        }
    })
}

/// Where a request list's live tail is: rows at or after `time_ms` are new unless their id is
/// in `sent` (the ones already sent at exactly `time_ms`).
struct Tail {
    time_ms: i64,
    sent: Vec<String>,
}

/// `GET /ui/live/requests?<filter>&after=<time_ms>` (admins): the Requests page's live tail.
/// Each push is the rows written since the last one that match the page's filter, rendered
/// as the list renders them; the browser holds them back while the user reads.
pub async fn requests(
    State(web): State<Arc<Web>>,
    Query(filter): Query<RequestFilter>,
    Query(after): Query<After>,
    parts: Parts,
) -> Response {
    let v = match viewer(&web, &parts, Need::Admin).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let headers = parts.headers.clone();
    let start = after.after.unwrap_or_else(|| web.gateway.now_ms());
    let tail = Arc::new(Mutex::new(Tail {
        time_ms: start,
        sent: Vec::new(),
    }));
    let (w, viewer) = (web.clone(), v.clone());
    run(web, v, false, move || {
        let (web, headers, v, filter, tail) = (
            w.clone(),
            headers.clone(),
            viewer.clone(),
            filter.clone(),
            tail.clone(),
        );
        async move {
            let mut q = filter.query(web.gateway.now_ms(), TAIL_ROWS);
            let (since, sent) = {
                let t = tail.lock().map_err(|_| ())?;
                (t.time_ms, t.sent.clone())
            };
            q.since_ms = q.since_ms.max(since);
            q.before = None;
            let Ok(rows) = web.gateway.store().ui().requests(&q).await else {
                return Ok(None);
            };
            let rows: Vec<RequestRow> = rows
                .into_iter()
                .filter(|r| !(r.time_ms == since && sent.contains(&r.request_id)))
                .map(RequestRow::of)
                .collect();
            let Some(newest) = rows.first().map(|r| r.r.time_ms) else {
                return Ok(None);
            };
            {
                let mut t = tail.lock().map_err(|_| ())?;
                if newest > t.time_ms {
                    t.time_ms = newest;
                    t.sent.clear();
                }
                t.sent.extend(
                    rows.iter()
                        .filter(|r| r.r.time_ms == newest)
                        .map(|r| r.r.request_id.clone()),
                );
            }
            let layout = Layout::new(&headers, Some(v), "requests.title", "/ui/requests");
            match (RowsFragment {
                l: &layout,
                rows: &rows,
            })
            .render()
            {
                Ok(html) => Ok(Some(Event::default().event("rows").data(html))),
                Err(e) => {
                    tracing::error!(error = %e, "rendering the request list's live tail failed");
                    Err(())
                }
            }
        }
    })
}

/// The newest row the page showed (unix ms).
#[derive(Debug, Default, serde::Deserialize)]
pub struct After {
    #[serde(default)]
    after: Option<i64>,
}

/// Rows one push of the live tail carries at most.
const TAIL_ROWS: i64 = 100;
