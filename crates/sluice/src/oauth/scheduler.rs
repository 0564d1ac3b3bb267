//! The background refresher: every `oauth.refresh-interval` it finds the accounts within their
//! provider's lead of expiry — idle and cooling accounts included — and refreshes them, at most
//! `oauth.refresh-concurrency` at once, each after a random delay up to `oauth.refresh-jitter`.
//! An account found to need a new sign-in is disabled in routing with the reason.

use std::sync::Arc;
use std::time::Duration;

use super::{Recovery, Refresher};
use crate::gateway::AppState;

/// Starts the scheduler; it runs until aborted.
pub fn spawn(state: &Arc<AppState>) -> tokio::task::JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move {
        let mut running = tokio::task::JoinSet::new();
        loop {
            let runtime = state.runtime.load_full();
            let oauth = runtime.config.oauth.clone();
            let refresher = runtime.refresher.clone();
            let permits = Arc::new(tokio::sync::Semaphore::new(oauth.refresh_concurrency));
            for name in refresher.due() {
                let (refresher, permits, state) =
                    (refresher.clone(), permits.clone(), state.clone());
                let jitter = oauth.refresh_jitter;
                running.spawn(async move {
                    let Ok(_permit) = permits.acquire_owned().await else {
                        return;
                    };
                    tokio::time::sleep(random_up_to(jitter)).await;
                    if let Some(Recovery::Dead(reason)) = refresher.refresh_due(&name).await {
                        disable(&state, &name, &reason);
                    }
                });
            }
            // One pass at a time: the next looks again only when this one is done.
            while running.join_next().await.is_some() {}
            tokio::time::sleep(oauth.refresh_interval).await;
        }
    })
}

fn random_up_to(max: Duration) -> Duration {
    let ms = u64::try_from(max.as_millis()).unwrap_or(0);
    if ms == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(rand::random::<u64>() % ms)
}

/// Takes an account that needs a new sign-in out of rotation, visibly.
pub fn disable(state: &AppState, file: &str, reason: &str) {
    let runtime = state.runtime.load();
    disable_in(&runtime, file, reason);
}

/// Disables every credential of the provider built from token file `file`.
pub fn disable_in(runtime: &crate::gateway::Runtime, file: &str, reason: &str) {
    let reason = relogin_reason(reason);
    for provider in runtime.catalog().providers() {
        let common = provider.common();
        if common.account.as_ref().is_some_and(|a| &*a.file == file) {
            for credential in common.credentials().iter() {
                runtime.router.health.disable(&credential.id, &reason);
            }
        }
    }
}

/// The reason shown for an account that needs a new sign-in.
pub fn relogin_reason(reason: &str) -> String {
    format!("needs re-login: {reason}")
}

/// Refresher handle of a provider built from a token file.
#[derive(Debug, Clone)]
pub struct AccountHandle {
    pub refresher: Arc<Refresher>,
    /// The token file's name in `auth-dir`.
    pub file: Arc<str>,
}
