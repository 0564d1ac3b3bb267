//! The gateway's side of the web dashboard (`sluice-web`): the [`sluice_web::Gateway`] trait
//! over the application state, and the `/ui` routes.

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use sluice_web::{
    Actor, CredentialAction, CredentialChange, CredentialHealth, Gateway, KeyWrite, KeyWritten,
    ModelHealth, RouteBlocked, RoutePreview, RouteStep, SystemInfo, UserWrite, Web, WebConfig,
    WriteError,
};
use tokio::sync::broadcast;

use crate::gateway::AppState;
use crate::store::{Store, User};

/// The dashboard's view of the gateway.
pub struct DashboardGateway {
    app: Arc<AppState>,
    /// The routing table's changes in the dashboard's words, fed by one task started on the
    /// first subscription (the table's channel outlives config reloads).
    changes: std::sync::OnceLock<broadcast::Sender<CredentialChange>>,
}

/// The `/ui` routes (none when `dashboard.enabled` is false).
pub fn router<S: Clone + Send + Sync + 'static>(app: &Arc<AppState>) -> Option<axum::Router<S>> {
    let config = &app.runtime.load().config.dashboard;
    if !config.enabled {
        return None;
    }
    let web = Web::new(
        Arc::new(DashboardGateway {
            app: app.clone(),
            changes: std::sync::OnceLock::new(),
        }),
        WebConfig {
            secure_cookie: config.secure_cookie,
            session_idle: config.session_idle,
            session_max: config.session_max,
        },
    );
    Some(sluice_web::router(web))
}

/// A cooldown reason in the dashboard's words.
fn reason_name(reason: crate::routing::health::CooldownReason) -> &'static str {
    match reason {
        crate::routing::health::CooldownReason::Quota => "quota",
        crate::routing::health::CooldownReason::ServerError => "server_error",
    }
}

/// A credential that cannot take a model now, in the dashboard's words.
fn blocked(
    target: &crate::routing::Target,
    credential: &str,
    availability: &crate::routing::health::Availability,
    now: std::time::Instant,
) -> RouteBlocked {
    use crate::routing::health::Availability as A;
    let left = |until: std::time::Instant| {
        Some(u64::try_from(until.saturating_duration_since(now).as_millis()).unwrap_or(u64::MAX))
    };
    let (status, reason, remaining_ms) = match availability {
        A::Cooling { until, reason } => {
            ("cooling", Some(reason_name(*reason).into()), left(*until))
        }
        A::Probing { until } => ("probing", None, left(*until)),
        A::Disabled { reason } => ("disabled", Some(reason.clone()), None),
        A::ProbeDue | A::Available => ("active", None, None),
    };
    RouteBlocked {
        provider: target.provider.common().name.to_string(),
        credential: credential.to_string(),
        upstream_model: target.upstream_model.to_string(),
        status: status.into(),
        reason,
        remaining_ms,
    }
}

fn session_of(actor: &Actor) -> crate::api::session::Session {
    crate::api::session::Session {
        user_id: actor.user_id,
        username: actor.username.clone(),
        role: actor.role,
    }
}

#[async_trait]
impl Gateway for DashboardGateway {
    fn store(&self) -> &dyn Store {
        &*self.app.accounts.store
    }

    fn now_ms(&self) -> i64 {
        self.app.accounts.now_ms()
    }

    fn client_ip(&self, parts: &http::request::Parts) -> Option<IpAddr> {
        let config = self.app.runtime.load().config.clone();
        crate::peer::client_addr(&parts.extensions, &parts.headers, &config.trusted_proxies)
            .map(|c| c.ip)
    }

    async fn verify_password(&self, user: Option<&User>, password: &str) -> bool {
        // Unknown users are checked against a dummy hash, so timing does not tell who exists.
        let hash = user.map_or_else(
            || crate::api::session::DUMMY_HASH.to_string(),
            |u| u.password_hash.clone(),
        );
        let known = user.is_some();
        let password = password.to_string();
        let matches =
            tokio::task::spawn_blocking(move || crate::accounts::verify_password(&password, &hash))
                .await
                .unwrap_or(false);
        known && matches
    }

    fn credentials(&self) -> Vec<CredentialHealth> {
        let runtime = self.app.runtime.load();
        crate::routing::status::credentials(&runtime.router)
            .credentials
            .into_iter()
            .map(|c| CredentialHealth {
                status: c.status.to_string(),
                platform: c.platform,
                token_file: c.account.map(|a| a.file),
                last_used: c.health.last_used,
                last_error_detail: c.health.last_error_detail,
                chat_models: crate::routing::probe::models_of(&runtime, &c.id),
                disabled: c.health.disabled,
                models: c
                    .health
                    .models
                    .into_iter()
                    .map(|m| ModelHealth {
                        model: m.model,
                        status: m.status.to_string(),
                        reason: m.reason.map(|r| reason_name(r).to_string()),
                        remaining_ms: m.remaining_ms,
                    })
                    .collect(),
                requests: c.health.requests,
                failures: c.health.failures,
                last_error: c.health.last_error,
                id: c.id,
                provider: c.provider,
                origin: c.origin.to_string(),
            })
            .collect()
    }

    fn calendar(&self) -> crate::limits::Calendar {
        self.app.accounts.calendar
    }

    fn usage_written(&self) -> tokio::sync::watch::Receiver<u64> {
        self.app.accounts.store_backlog.batches()
    }

    async fn write_key(&self, actor: &Actor, write: KeyWrite) -> Result<KeyWritten, WriteError> {
        use crate::api::keys;
        let session = session_of(actor);
        let app = &*self.app;
        let refused = |e: crate::error::GatewayError| WriteError {
            status: e.status.as_u16(),
            message: e.body.message,
        };
        // The same ownership rule as /api/api-keys: a user's own keys, any key for an admin.
        let owned = |id: i64| async move {
            keys::owned_key(app, &session_of(actor), &id.to_string())
                .await
                .map_err(refused)
        };
        match write {
            KeyWrite::Create(body) => {
                let (key, secret) = keys::create_key(app, &session, &body, crate::error::Lang::En)
                    .await
                    .map_err(refused)?;
                Ok(KeyWritten {
                    key: Some(key),
                    secret: Some(secret),
                })
            }
            KeyWrite::Update(id, body) => {
                let key = owned(id).await?;
                let (key, _) = keys::update_key(app, key, &body, crate::error::Lang::En)
                    .await
                    .map_err(refused)?;
                Ok(KeyWritten {
                    key: Some(key),
                    secret: None,
                })
            }
            KeyWrite::Toggle(id) => {
                let key = owned(id).await?;
                let key = keys::toggle_key(app, &key).await.map_err(refused)?;
                Ok(KeyWritten {
                    key: Some(key),
                    secret: None,
                })
            }
            KeyWrite::Rotate(id) => {
                let key = owned(id).await?;
                let (key, secret) = keys::rotate_key(app, &key).await.map_err(refused)?;
                Ok(KeyWritten {
                    key: Some(key),
                    secret: Some(secret),
                })
            }
            KeyWrite::Delete(id) => {
                let key = owned(id).await?;
                keys::delete_key(app, &session, &key)
                    .await
                    .map_err(refused)?;
                Ok(KeyWritten {
                    key: None,
                    secret: None,
                })
            }
        }
    }

    async fn write_user(&self, actor: &Actor, write: UserWrite) -> Result<User, WriteError> {
        use crate::api::users;
        if actor.role != crate::store::Role::Admin {
            return Err(WriteError {
                status: 403,
                message: "this needs an admin".into(),
            });
        }
        let refused = |e: crate::error::GatewayError| WriteError {
            status: e.status.as_u16(),
            message: e.body.message,
        };
        match write {
            UserWrite::Create(body) => users::create_user(&self.app, &body).await,
            UserWrite::Update(id, body) => {
                users::update_user(&self.app, &session_of(actor), id, &body).await
            }
        }
        .map_err(refused)
    }

    fn max_keys_per_user(&self) -> i64 {
        self.app.accounts.max_keys_per_user
    }

    fn credential_changes(&self) -> broadcast::Receiver<CredentialChange> {
        self.changes
            .get_or_init(|| {
                let (tx, _) = broadcast::channel(256);
                let mut health = self.app.runtime.load().router.health.subscribe();
                let out = tx.clone();
                tokio::spawn(async move {
                    use crate::routing::health::ChangeKind;
                    loop {
                        let change = match health.recv().await {
                            Ok(c) => c,
                            // Missed changes still mean "look again": at everything.
                            Err(broadcast::error::RecvError::Lagged(_)) => {
                                let _ = out.send(CredentialChange::missed());
                                continue;
                            }
                            Err(broadcast::error::RecvError::Closed) => break,
                        };
                        let kind = match change.kind {
                            ChangeKind::Cooling => "cooling",
                            ChangeKind::Probing => "probing",
                            ChangeKind::ProbeDue => "probe_due",
                            ChangeKind::Recovered => "recovered",
                            ChangeKind::Disabled => "disabled",
                            ChangeKind::Enabled => "enabled",
                        };
                        let _ = out.send(CredentialChange {
                            credential: change.credential.to_string(),
                            model: change.model.map(|m| m.to_string()),
                            kind: kind.into(),
                        });
                    }
                });
                tx
            })
            .subscribe()
    }

    async fn route_preview(
        &self,
        model: &str,
        key_id: Option<i64>,
    ) -> Result<RoutePreview, String> {
        let key = match key_id {
            Some(id) => match self.app.accounts.store.key_by_id(id).await {
                Ok(k) if k.deleted_at.is_none() => Some(crate::keys::CachedKey::from_row(&k)),
                Ok(_) | Err(crate::store::StoreError::NotFound) => {
                    return Err(format!("no key has id {id}"));
                }
                Err(e) => return Err(format!("the store is unavailable: {e}")),
            },
            None => None,
        };
        let runtime = self.app.runtime.load();
        let router = &runtime.router;
        let mut plan = router.plan(model, None, None).map_err(|e| e.body.message)?;
        crate::keys::policy::restrict_plan(&mut plan, model, None, key.as_ref())
            .map_err(|e| e.body.message)?;
        let preview = plan.preview();
        let now = router.clock.now();
        Ok(RoutePreview {
            model: model.to_string(),
            steps: preview
                .steps
                .iter()
                .map(|s| RouteStep {
                    model: s.model.clone(),
                    provider: s.target.provider.common().name.to_string(),
                    credential: s.credential.id.to_string(),
                    upstream_model: s.target.upstream_model.to_string(),
                    priority: s.target.priority,
                    probe: s.probe,
                })
                .collect(),
            unavailable: preview
                .unavailable
                .iter()
                .map(|(t, c, a)| blocked(t, &c.id, a, now))
                .collect(),
            blocked: preview.exhausted.map(|e| {
                use crate::routing::Exhausted;
                let (status, reason, remaining_ms) = match e {
                    Exhausted::Cooling { until } => (
                        "cooling",
                        None,
                        Some(
                            u64::try_from(until.saturating_duration_since(now).as_millis())
                                .unwrap_or(u64::MAX),
                        ),
                    ),
                    Exhausted::Disabled { reason } => ("disabled", Some(reason), None),
                    Exhausted::NoneLeft => ("none", None, None),
                };
                RouteBlocked {
                    status: status.into(),
                    reason,
                    remaining_ms,
                    ..RouteBlocked::default()
                }
            }),
            attempts: router.retry.request_retry.saturating_add(1),
        })
    }

    async fn credential_action(
        &self,
        actor: &Actor,
        credential: &str,
        action: CredentialAction,
    ) -> Result<(), WriteError> {
        use crate::routing::status::{Action, apply};
        if actor.role != crate::store::Role::Admin {
            return Err(WriteError {
                status: 403,
                message: "only admins change credentials".into(),
            });
        }
        let action = match action {
            CredentialAction::Clear { model } => Action::Clear { model },
            CredentialAction::Disable { reason } => Action::Disable {
                reason: format!(
                    "disabled by {} from the dashboard: {reason}",
                    actor.username
                ),
            },
            CredentialAction::Enable => Action::Enable,
        };
        let runtime = self.app.runtime.load();
        if !apply(&runtime.router, credential, &action) {
            return Err(WriteError {
                status: 404,
                message: format!("no credential is named {credential}"),
            });
        }
        tracing::info!(user_id = actor.user_id, %credential, ?action, "credential changed from the dashboard");
        Ok(())
    }

    async fn test_credential(
        &self,
        actor: &Actor,
        credential: &str,
        model: Option<&str>,
    ) -> Result<crate::store::rollup::ProbeRow, WriteError> {
        use crate::management::credentials::{test_now, unserved};
        use crate::routing::probe::ProbeError;
        if actor.role != crate::store::Role::Admin {
            return Err(WriteError {
                status: 403,
                message: "only admins test credentials".into(),
            });
        }
        test_now(&self.app, credential, model, Some(actor.user_id))
            .await
            .map_err(|e| match e {
                ProbeError::UnknownCredential => WriteError {
                    status: 404,
                    message: format!("no credential is named {credential}"),
                },
                ProbeError::UnknownModel(m) => WriteError {
                    status: 400,
                    message: unserved(credential, &m),
                },
            })
    }

    fn models(&self) -> Vec<String> {
        let runtime = self.app.runtime.load();
        let mut names: Vec<String> = runtime
            .catalog()
            .models()
            .map(|(name, _)| name.to_string())
            .collect();
        names.dedup();
        names
    }

    async fn system(&self) -> SystemInfo {
        let runtime = self.app.runtime.load();
        let config = &runtime.config;
        let location = config.store_location().ok();
        let database_bytes = match &location {
            Some(crate::store::Location::Sqlite(dir)) => {
                let file = dir.join(crate::store::sqlite::DB_FILE);
                let size = |suffix: &str| {
                    let mut name = file.clone().into_os_string();
                    name.push(suffix);
                    std::fs::metadata(name).map(|m| m.len()).unwrap_or(0)
                };
                Some(size("") + size("-wal"))
            }
            _ => None,
        };
        let providers = runtime.catalog().providers();
        SystemInfo {
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_unix: i64::try_from(self.app.started_unix).unwrap_or(0),
            data_dir: config.data_path().display().to_string(),
            store: location.map(|l| l.redacted()).unwrap_or_default(),
            database_bytes,
            usage_backlog: self.app.usage.backlog() + self.app.accounts.store_backlog.get(),
            remote_management: config.allow_remote_management,
            management_key_set: self.app.management.access.has_key(),
            providers: providers.len(),
            credentials: providers
                .iter()
                .map(|p| p.common().credentials().len())
                .sum(),
            links: {
                let mut links = vec![("OpenAPI (/openapi.json)".into(), "/openapi.json".into())];
                // Metrics on the main listener only link from here (a separate `metrics.listen`
                // address is not this origin).
                if config.metrics.enabled && config.metrics.listen.is_none() {
                    links.push(("Metrics (/metrics)".into(), "/metrics".into()));
                }
                links
            },
        }
    }
}
