//! The gateway's side of the web dashboard (`sluice-web`): the [`sluice_web::Gateway`] trait
//! over the application state, and the `/ui` routes.

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use sluice_web::{
    Actor, CredentialHealth, Gateway, KeyWrite, KeyWritten, ModelHealth, SystemInfo, UserWrite,
    Web, WebConfig, WriteError,
};

use crate::gateway::AppState;
use crate::store::{Store, User};

/// The dashboard's view of the gateway.
pub struct DashboardGateway {
    app: Arc<AppState>,
}

/// The `/ui` routes (none when `dashboard.enabled` is false).
pub fn router<S: Clone + Send + Sync + 'static>(app: &Arc<AppState>) -> Option<axum::Router<S>> {
    let config = &app.runtime.load().config.dashboard;
    if !config.enabled {
        return None;
    }
    let web = Web::new(
        Arc::new(DashboardGateway { app: app.clone() }),
        WebConfig {
            secure_cookie: config.secure_cookie,
            session_idle: config.session_idle,
            session_max: config.session_max,
        },
    );
    Some(sluice_web::router(web))
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
                disabled: c.health.disabled,
                models: c
                    .health
                    .models
                    .into_iter()
                    .map(|m| ModelHealth {
                        model: m.model,
                        status: m.status.to_string(),
                        reason: m.reason.map(|r| {
                            match r {
                                crate::routing::health::CooldownReason::Quota => "quota",
                                crate::routing::health::CooldownReason::ServerError => {
                                    "server_error"
                                }
                            }
                            .to_string()
                        }),
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
