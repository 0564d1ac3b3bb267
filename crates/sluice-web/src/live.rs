//! Live pages without polling. Each stream waits on what changes its page and pushes it
//! freshly rendered:
//!
//! - `GET /ui/live/overview`: the Overview's live part, when the store writer commits a batch
//!   of usage records (`Gateway::usage_written`), when a credential's state changes
//!   (`Gateway::credential_changes`: cooling, probing, recovered, disabled, enabled, published
//!   by the routing table where they happen) and when the earliest cooldown it shows ends.
//! - `GET /ui/live/keys`: the Keys table's changed rows with fresh meters (`event: swap`), when
//!   usage is written; the whole table when its keys themselves changed.
//! - `GET /ui/live/requests`: the Requests page's live tail: the new rows matching the page's
//!   filter (the browser holds them while the user reads).
//! - `GET /ui/live/credentials`: the rows of the credentials whose state changed, and the
//!   "routable now?" table (`event: swap`: an element that replaces the one with its id).
//!
//! Bursts are coalesced, and a stream waits at least 40 times its last render before the next
//! (`RENDER_SHARE`: an open page never takes more than a sliver of the CPU the traffic needs);
//! the session is re-checked before every push, and a stream whose
//! session ended says so (`event: signedout`) and closes. Countdowns tick in the browser.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc};

use crate::pages::credentials::{ModelsFragment, model_lines, render_row};
use crate::pages::keys::{KeyFilter, KeyRow, KeyRowHtml, KeysTable, filtered_rows};
use crate::pages::overview::{LiveFragment, gather};
use crate::pages::requests::{RequestFilter, RequestRow, RowsFragment};
use crate::pages::{Need, viewer};
use crate::session::Viewer;
use crate::view::Layout;
use crate::{CredentialChange, Web};

/// Changes closer together than this are pushed once.
const COALESCE: Duration = Duration::from_millis(300);
/// A stream waits this many times its last render before rendering again, so an open page
/// costs at most 1/40 of a core however large the store (the Overview of a million records
/// renders in tens of milliseconds) and never competes with the traffic it shows.
const RENDER_SHARE: u32 = 40;

/// The next change, with whatever else arrived within [`COALESCE`] folded in.
async fn coalesce(
    first: Option<CredentialChange>,
    changes: &mut tokio::sync::broadcast::Receiver<CredentialChange>,
) -> Option<BTreeSet<String>> {
    let mut ids = BTreeSet::new();
    let mut all = first.as_ref().is_none_or(CredentialChange::is_missed);
    if let Some(c) = first {
        ids.insert(c.credential);
    }
    tokio::time::sleep(COALESCE).await;
    loop {
        match changes.try_recv() {
            Ok(c) => {
                all |= c.is_missed();
                ids.insert(c.credential);
            }
            Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => all = true,
            Err(_) => break,
        }
    }
    (!all).then_some(ids)
}

/// An SSE response fed by `rx`.
fn stream(rx: mpsc::Receiver<Event>) -> Response {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// Whether the viewer's session still stands; tells the browser when it does not.
async fn still_signed_in(web: &Web, v: &Viewer, tx: &mpsc::Sender<Event>) -> bool {
    if matches!(
        web.gateway.store().ui().ui_session(&v.id_hash).await,
        Ok(Some(_))
    ) {
        return true;
    }
    let _ = tx.send(Event::default().event("signedout").data("")).await;
    false
}

/// When the earliest cooldown window the gateway reports now ends.
fn next_window_end(web: &Web) -> Option<tokio::time::Instant> {
    web.gateway
        .credentials()
        .iter()
        .flat_map(|c| c.models.iter())
        .filter_map(|m| m.remaining_ms)
        .min()
        .map(|ms| tokio::time::Instant::now() + Duration::from_millis(ms + 50))
}

/// The next credential change, or never (streams that do not follow credentials).
async fn next_change(
    changes: &mut Option<broadcast::Receiver<CredentialChange>>,
) -> Result<CredentialChange, RecvError> {
    match changes {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Runs a live stream for `v`: waits for a usage batch to be written (and, with
/// `credentials`, for a credential to change state or the earliest cooldown to end), coalesces
/// bursts, re-checks the session, and sends the events `next` renders (none: nothing new;
/// `Err`: end the stream).
fn run<F, Fut>(web: Arc<Web>, v: Viewer, credentials: bool, mut next: F) -> Response
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<Vec<Event>, ()>> + Send,
{
    let (tx, rx) = mpsc::channel::<Event>(4);
    let mut written = web.gateway.usage_written();
    let mut changes = credentials.then(|| web.gateway.credential_changes());
    tokio::spawn(async move {
        let mut deadline = if credentials {
            next_window_end(&web)
        } else {
            None
        };
        let mut pause = COALESCE;
        loop {
            tokio::select! {
                changed = written.changed() => if changed.is_err() { break },
                change = next_change(&mut changes) => {
                    if let Err(RecvError::Closed) = change {
                        break;
                    }
                }
                _ = async {
                    match deadline {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {}
                _ = tx.closed() => break,
            }
            tokio::time::sleep(pause).await;
            written.borrow_and_update();
            if let Some(rx) = changes.as_mut() {
                while !matches!(
                    rx.try_recv(),
                    Err(broadcast::error::TryRecvError::Empty
                        | broadcast::error::TryRecvError::Closed)
                ) {}
                deadline = next_window_end(&web);
            }
            if !still_signed_in(&web, &v, &tx).await {
                break;
            }
            let started = tokio::time::Instant::now();
            let rendered = next().await;
            pause = COALESCE.max(started.elapsed() * RENDER_SHARE);
            let Ok(events) = rendered else { break };
            for event in events {
                if tx.send(event).await.is_err() {
                    return;
                }
            }
        }
    });
    stream(rx)
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
                return Ok(Vec::new());
            };
            match (LiveFragment {
                l: &layout,
                live: &live,
            })
            .render()
            {
                Ok(html) => Ok(vec![Event::default().event("overview").data(html)]),
                Err(e) => {
                    tracing::error!(error = %e, "rendering the overview's live part failed");
                    Err(())
                }
            }
        }
    })
}

/// What the browser shows since the last push: each row's key and a hash of its HTML (16
/// bytes a row, not the 1.6 kB of the row).
type ShownRows = Vec<(i64, u64)>;

/// A row's HTML hash, to tell whether it changed since the last push.
fn row_hash(html: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    html.hash(&mut h);
    h.finish()
}

/// `GET /ui/live/keys?<filter>` (admins): the Keys page's table with fresh meters each time
/// usage is written. Only the rows that changed are pushed (`swap`), so a busy key among a
/// thousand costs one row, not the table; the whole table (`keys`) when the filter's keys
/// themselves changed (one created, deleted, or no longer near a limit) and on the first push.
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
    let shown: Arc<Mutex<Option<ShownRows>>> = Arc::default();
    run(web, v, false, move || {
        let (web, headers, v, filter, shown) = (
            w.clone(),
            headers.clone(),
            viewer.clone(),
            filter.clone(),
            shown.clone(),
        );
        async move {
            let layout = Layout::new(&headers, Some(v), "keys.title", "/ui/keys");
            let Ok(rows) = filtered_rows(&web, &layout, &filter).await else {
                return Ok(Vec::new());
            };
            let mut shown = shown.lock().map_err(|_| ())?;
            key_events(&layout, &rows, &mut shown).map_err(|e| {
                tracing::error!(error = %e, "rendering the key table failed");
            })
        }
    })
}

/// What the Keys stream pushes for `rows`, given what it `shown` last: the rows whose HTML
/// changed when the same keys are listed in the same order, else the whole table.
fn key_events(
    l: &Layout,
    rows: &[KeyRow],
    shown: &mut Option<ShownRows>,
) -> Result<Vec<Event>, askama::Error> {
    let mut fresh = Vec::with_capacity(rows.len());
    let mut hashes: ShownRows = Vec::with_capacity(rows.len());
    for r in rows {
        let html = KeyRowHtml { l, r }.render()?;
        hashes.push((r.key.id, row_hash(&html)));
        fresh.push(html);
    }
    let same_keys = shown.as_ref().is_some_and(|old| {
        old.len() == hashes.len() && old.iter().zip(&hashes).all(|(o, h)| o.0 == h.0)
    });
    let events = match shown.as_ref() {
        Some(old) if same_keys => old
            .iter()
            .zip(&hashes)
            .zip(&fresh)
            .filter(|((o, h), _)| o.1 != h.1)
            .map(|(_, html)| Event::default().event("swap").data(html))
            .collect(),
        _ => vec![
            Event::default()
                .event("keys")
                .data(KeysTable { l, rows }.render()?),
        ],
    };
    *shown = Some(hashes);
    Ok(events)
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
                return Ok(Vec::new());
            };
            let rows: Vec<RequestRow> = rows
                .into_iter()
                .filter(|r| !(r.time_ms == since && sent.contains(&r.request_id)))
                .map(RequestRow::of)
                .collect();
            let Some(newest) = rows.first().map(|r| r.r.time_ms) else {
                return Ok(Vec::new());
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
                Ok(html) => Ok(vec![Event::default().event("rows").data(html)]),
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

/// `GET /ui/live/credentials` (admins): the rows of credentials whose state changed, then the
/// "routable now?" table.
pub async fn credentials(State(web): State<Arc<Web>>, parts: Parts) -> Response {
    let v = match viewer(&web, &parts, Need::Admin).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let headers = parts.headers.clone();
    let (tx, rx) = mpsc::channel::<Event>(16);
    let mut changes = web.gateway.credential_changes();
    tokio::spawn(async move {
        loop {
            let changed = tokio::select! {
                change = changes.recv() => match change {
                    Ok(c) => coalesce(Some(c), &mut changes).await,
                    Err(RecvError::Lagged(_)) => coalesce(None, &mut changes).await,
                    Err(RecvError::Closed) => break,
                },
                _ = tx.closed() => break,
            };
            if !still_signed_in(&web, &v, &tx).await {
                break;
            }
            let layout = Layout::new(&headers, Some(v.clone()), "cred.title", "/ui/credentials");
            let ids: Vec<String> = match changed {
                Some(ids) => ids.into_iter().collect(),
                None => web
                    .gateway
                    .credentials()
                    .into_iter()
                    .map(|c| c.id)
                    .collect(),
            };
            let mut events = Vec::new();
            for id in ids {
                if let Some(Ok(html)) = render_row(&web, &layout, &id).await {
                    events.push(Event::default().event("swap").data(html));
                }
            }
            let models = model_lines(&web).await;
            match (ModelsFragment {
                l: &layout,
                models: &models,
            })
            .render()
            {
                Ok(html) => events.push(Event::default().event("swap").data(html)),
                Err(e) => tracing::error!(error = %e, "rendering the models table failed"),
            }
            for event in events {
                if tx.send(event).await.is_err() {
                    return;
                }
            }
        }
    });
    stream(rx)
}
