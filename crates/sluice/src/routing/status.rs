//! `GET /v0/management/credentials`: every credential's health as JSON — status (active,
//! cooling, disabled with its reason), per-model cooldowns with the time left, attempt and
//! failure counts, last use. Ids only, never secrets.
//! Served under `/v0/management`, behind the management guard.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::Router;
use super::health::CredentialReport;
use crate::gateway::AppState;
use crate::providers::Origin;

/// One credential in the listing.
#[derive(Debug, Serialize)]
pub struct CredentialStatus {
    pub id: String,
    pub provider: String,
    pub platform: String,
    /// `config` or `pool`.
    pub origin: &'static str,
    /// `active`, `cooling`, `disabled`, or `needs_relogin` (an OAuth account whose refresh
    /// token was refused: sign in again).
    pub status: &'static str,
    #[serde(flatten)]
    pub health: CredentialReport,
    /// An OAuth account's token file and refresh state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountInfo>,
}

/// The token file behind a credential, and its refresh state.
#[derive(Debug, Serialize)]
pub struct AccountInfo {
    pub file: String,
    #[serde(flatten)]
    pub status: crate::oauth::AccountStatus,
}

/// The whole listing.
#[derive(Debug, Serialize)]
pub struct CredentialsStatus {
    pub credentials: Vec<CredentialStatus>,
    /// Live sticky-session bindings.
    pub sticky_sessions: usize,
}

/// The health of every credential of every provider, in config order.
pub fn credentials(router: &Router) -> CredentialsStatus {
    let now = router.clock.now();
    let mut credentials = Vec::new();
    let mut accounts = None;
    for provider in router.catalog.providers() {
        let common = provider.common();
        let account = common.account.as_ref().and_then(|a| {
            let statuses = accounts.get_or_insert_with(|| a.refresher.statuses());
            Some(AccountInfo {
                file: a.file.to_string(),
                status: statuses.get(&*a.file)?.clone(),
            })
        });
        for credential in common.credentials().iter() {
            let health = router.health.report_for(&credential.id, now);
            let status = match &account {
                Some(a) if a.status.state == "needs_relogin" => "needs_relogin",
                _ => health.status(),
            };
            credentials.push(CredentialStatus {
                id: credential.id.to_string(),
                provider: common.name.to_string(),
                platform: common.platform.to_string(),
                origin: match credential.origin {
                    Origin::Config => "config",
                    Origin::Pool => "pool",
                    Origin::Caller => "caller",
                },
                status,
                health,
                account: account.as_ref().map(|a| AccountInfo {
                    file: a.file.clone(),
                    status: a.status.clone(),
                }),
            });
        }
    }
    CredentialsStatus {
        credentials,
        sticky_sessions: router.sessions(),
    }
}

/// `GET /v0/management/credentials`, behind the management guard.
pub async fn handler(State(app): State<Arc<AppState>>) -> Response {
    let runtime = app.runtime.load();
    axum::Json(credentials(&runtime.router)).into_response()
}

/// An operator's change to a credential's health (the dashboard's buttons).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// End the cooldown windows of one model, or of every model, now.
    Clear { model: Option<String> },
    /// Take the credential out of rotation, with the operator's reason. A config reload gives
    /// it back, as for credentials the upstream refused.
    Disable { reason: String },
    /// Put a disabled credential back.
    Enable,
}

/// Applies an operator's action here and, when instances share routing, on every instance
/// (off the caller's path). `false`: no credential has that id.
pub fn apply(router: &Router, credential: &str, action: &Action) -> bool {
    let known = router.catalog.providers().iter().any(|p| {
        p.common()
            .credentials()
            .iter()
            .any(|c| &*c.id == credential && c.origin != Origin::Caller)
    });
    if !known {
        return false;
    }
    let shared = router.shared().cloned();
    let spawn = |work: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>| {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(work);
        }
    };
    let now = router.clock.now();
    match action {
        Action::Clear { model } => {
            let models: Vec<Arc<str>> = match model {
                Some(m) => vec![m.as_str().into()],
                None => router.health.windows_of(credential),
            };
            for m in models {
                router.health.clear(credential, &m, now);
                if let Some(shared) = shared.clone() {
                    let (c, m) = (credential.to_string(), m.to_string());
                    spawn(Box::pin(async move { shared.clear(&c, &m).await }));
                }
            }
        }
        Action::Disable { reason } => {
            router.health.disable(credential, reason);
            if let Some(shared) = shared {
                let (c, r) = (credential.to_string(), reason.clone());
                spawn(Box::pin(async move { shared.disable(&c, &r).await }));
            }
        }
        Action::Enable => {
            router.health.enable(credential);
            if let Some(shared) = shared {
                let c = credential.to_string();
                spawn(Box::pin(async move { shared.enable(&c).await }));
            }
        }
    }
    true
}
