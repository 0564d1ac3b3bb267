//! Applying what other instances share (issue 14): key and user changes, cooldown windows,
//! successful probes, disables. Events arrive over Redis (pub/sub, with the epoch poll as
//! backstop, see `sluice_store::redis::events`); an [`Event::Resync`] re-reads everything:
//! the keys changed in the store, and every shared cooldown and disable. The periodic key
//! refresh (`user-keys.refresh`) keeps running as the last line.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use crate::gateway::AppState;
use crate::routing::health::CooldownReason;
use crate::store::shared::{Event, RoutingSnapshot};

/// Starts applying shared events to this instance, when instances share state.
pub fn spawn_apply(state: &Arc<AppState>) -> Option<tokio::task::JoinHandle<()>> {
    let shared = state.accounts.shared.clone()?;
    let mut events = shared.events.subscribe();
    let state = Arc::downgrade(state);
    Some(tokio::spawn(async move {
        // What happened before this instance started.
        if let Some(app) = state.upgrade() {
            resync(&app).await;
        }
        loop {
            let event = match events.recv().await {
                Ok(event) => event,
                Err(RecvError::Lagged(_)) => Event::Resync,
                Err(RecvError::Closed) => return,
            };
            let Some(app) = state.upgrade() else {
                return;
            };
            apply(&app, event).await;
        }
    }))
}

async fn apply(app: &AppState, event: Event) {
    let runtime = app.runtime.load();
    let health = &runtime.router.health;
    match event {
        Event::Keys => refresh_keys(app).await,
        Event::Cooled {
            credential,
            model,
            remaining_ms,
            reason,
        } => {
            let now = runtime.router.clock.now();
            let until = now + Duration::from_millis(remaining_ms);
            health.cool_until(&credential, &model, until, reason_of(&reason), now);
        }
        Event::Cleared { credential, model } => {
            health.clear(&credential, &model, runtime.router.clock.now())
        }
        Event::Disabled { credential, reason } => {
            tracing::warn!(%credential, %reason, "credential disabled by another instance");
            health.disable(&credential, &reason);
        }
        Event::Enabled { credential } => health.enable(&credential),
        Event::Resync => resync(app).await,
    }
}

async fn resync(app: &AppState) {
    refresh_keys(app).await;
    let Some(shared) = &app.accounts.shared else {
        return;
    };
    if let Some(snapshot) = shared.routing.snapshot().await {
        apply_snapshot(app, &snapshot);
    }
}

fn apply_snapshot(app: &AppState, snapshot: &RoutingSnapshot) {
    let runtime = app.runtime.load();
    let now = runtime.router.clock.now();
    for (credential, model, remaining_ms, reason) in &snapshot.cooling {
        let until = now + Duration::from_millis(*remaining_ms);
        runtime
            .router
            .health
            .cool_until(credential, model, until, reason_of(reason), now);
    }
    for (credential, reason) in &snapshot.disabled {
        runtime.router.health.disable(credential, reason);
    }
}

async fn refresh_keys(app: &AppState) {
    let accounts = &app.accounts;
    if let Err(e) = accounts
        .keys
        .refresh(&*accounts.store, accounts.now_ms())
        .await
    {
        tracing::warn!(error = %e, "could not re-read changed keys from the store; the periodic refresh retries");
    }
}

fn reason_of(reason: &str) -> CooldownReason {
    match reason {
        "server_error" => CooldownReason::ServerError,
        _ => CooldownReason::Quota,
    }
}
