//! Live pages without polling: `GET /ui/live/overview` is a Server-Sent Events stream that
//! pushes the Overview's live part, freshly rendered, each time the store writer commits a
//! batch of usage records (`Gateway::usage_written`) or a credential's state changes
//! (cooling, probing, recovered, disabled: checked in memory once a second, never in the
//! store). Bursts are coalesced; the session is re-checked before every push, and a stream
//! whose session ended says so (`event: signedout`) and closes.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use http::request::Parts;

use crate::pages::overview::{LiveFragment, gather};
use crate::pages::{Need, viewer};
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

/// `GET /ui/live/overview` (admins).
pub async fn overview(State(web): State<Arc<Web>>, parts: Parts) -> Response {
    let v = match viewer(&web, &parts, Need::Admin).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let headers = parts.headers.clone();
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
                    if fingerprint(&web.gateway.credentials()) == health {
                        continue;
                    }
                }
                _ = tx.closed() => break,
            }
            tokio::time::sleep(COALESCE).await;
            written.borrow_and_update();
            health = fingerprint(&web.gateway.credentials());
            if !matches!(
                web.gateway.store().ui().ui_session(&v.id_hash).await,
                Ok(Some(_))
            ) {
                let _ = tx.send(Event::default().event("signedout").data("")).await;
                break;
            }
            let layout = Layout::new(&headers, Some(v.clone()), "overview.title", "/ui/overview");
            let Ok(live) = gather(&web, &layout).await else {
                continue;
            };
            let html = match (LiveFragment {
                l: &layout,
                live: &live,
            })
            .render()
            {
                Ok(html) => html,
                Err(e) => {
                    tracing::error!(error = %e, "rendering the overview's live part failed");
                    break;
                }
            };
            if tx
                .send(Event::default().event("overview").data(html))
                .await
                .is_err()
            {
                break;
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
