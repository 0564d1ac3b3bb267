//! The management plane: seed 003's `/v0/management` API, the config file behind it, and the
//! hot reload that keeps the running state equal to that file.
//!
//! - `access`: who may manage (loopback or `allow-remote-management`, the bcrypt-hashed key,
//!   bans after repeated wrong keys).
//! - `api`: the endpoints, registered together with their OpenAPI description (`openapi`).
//! - `yaml_doc`: editing one top-level key of the YAML file, keeping the rest as written.
//! - `watch`: the debounced file watcher.
//!
//! Every change, from the API or from the file, goes through [`Plane::apply`] under one async
//! lock: parse, validate, build a new `Runtime` with the same function start-up uses, swap it
//! in. API writes are validated *before* the file is replaced, written atomically (temporary
//! file in the same directory, fsync, rename), and remembered, so the watcher recognises its
//! own write and does not reload again.

pub mod access;
pub mod api;
pub(crate) mod credentials;
mod error;
mod logins;
pub mod openapi;
mod watch;
pub mod yaml_doc;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::{Config, ConfigError};
use crate::gateway::{AppState, Runtime};
pub use error::ManagementError;
pub use watch::Watch;

/// Changes the process's log filter (installed by `main`; absent in tests).
pub type LogControl = Arc<dyn Fn(&str) + Send + Sync>;

/// What the process around the gateway provides to the management plane.
#[derive(Clone, Default)]
pub struct Host {
    /// The config file the API writes to and the watcher follows; without one, changes live
    /// in memory only.
    pub config_path: Option<PathBuf>,
    /// Applies a new log filter directive (`debug`, `log-level`).
    pub log: Option<LogControl>,
}

/// The config as applied: the file's own values (no `${VAR}` expanded) and its text.
struct Applied {
    raw: Config,
    text: String,
}

/// What the watcher last did with the config file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadStatus {
    /// Changed versions of the file seen (applied or refused).
    pub seen: u64,
    /// Why the last one was refused, when it was.
    pub last_error: Option<String>,
}

/// The management plane's state, one per gateway.
pub struct Plane {
    host: Host,
    reloads: std::sync::Mutex<ReloadStatus>,
    /// Serialises every config change: API writes, reloads, auth-file changes.
    write: tokio::sync::Mutex<()>,
    applied: ArcSwap<Applied>,
    pub access: access::Access,
    /// Sign-ins started through `/anthropic-auth-url` and friends, by state.
    pub logins: crate::oauth::login::Logins,
}

impl Plane {
    /// The plane for a gateway started from `config` (as loaded from `host.config_path`).
    pub fn new(config: &Config, host: Host) -> Plane {
        let from_file = host.config_path.as_deref().and_then(|path| {
            let text = std::fs::read_to_string(path).ok()?;
            let raw = Config::parse(&text).ok()?;
            Some(Applied { raw, text })
        });
        let applied = from_file.unwrap_or_else(|| Applied {
            raw: config.clone(),
            text: yaml_serde::to_string(config).unwrap_or_default(),
        });
        Plane {
            host,
            reloads: Default::default(),
            write: tokio::sync::Mutex::new(()),
            applied: ArcSwap::from_pointee(applied),
            access: access::Access::default(),
            logins: Default::default(),
        }
    }

    /// The file's own values of the applied config (what the API shows and edits).
    pub fn raw(&self) -> Config {
        self.applied.load().raw.clone()
    }

    /// Start-up: loads the management key (hashing a plaintext one and writing the hash back)
    /// and starts watching the config file.
    pub async fn start(app: &Arc<AppState>) -> anyhow::Result<Option<Watch>> {
        let plane = &app.management;
        let effective = app.runtime.load().config.clone();
        plane
            .access
            .load_key(&effective.remote_management_key)
            .await;
        plane.hash_plaintext_key(app).await;
        match &plane.host.config_path {
            Some(path) => Ok(Some(watch::start(app, path)?)),
            None => Ok(None),
        }
    }

    /// Replaces a plaintext `remote-management-key` in the file by its bcrypt hash.
    async fn hash_plaintext_key(&self, app: &AppState) {
        let raw_key = self.applied.load().raw.remote_management_key.clone();
        if self.host.config_path.is_none() || !access::is_plaintext(&raw_key) {
            return;
        }
        let Some(hash) = access::hash(&raw_key).await else {
            return;
        };
        match self
            .update(app, "remote-management-key", |c| {
                c.remote_management_key = hash;
                Ok(())
            })
            .await
        {
            Ok(()) => tracing::info!(
                "remote-management-key was plaintext: replaced by its bcrypt hash in the config file"
            ),
            Err(e) => tracing::warn!(
                error = %e.error,
                "remote-management-key is plaintext in the config file and could not be replaced by its hash; fix the file's permissions"
            ),
        }
    }

    /// Changes one top-level key: edits the file's values with `edit`, validates the result,
    /// writes the file atomically and applies it. Concurrent calls run one after another, each
    /// on the file as the previous one left it, so no update is lost.
    pub async fn update(
        &self,
        app: &AppState,
        key: &str,
        edit: impl FnOnce(&mut Config) -> Result<(), ManagementError>,
    ) -> Result<(), ManagementError> {
        let _write = self.write.lock().await;
        let text = match &self.host.config_path {
            Some(path) => std::fs::read_to_string(path).map_err(ManagementError::save_failed)?,
            None => self.applied.load().text.clone(),
        };
        let mut raw = Config::parse(&text).map_err(|errors| {
            ManagementError::save_failed(format!(
                "the config file on disk is invalid: {}",
                join(&errors)
            ))
        })?;
        edit(&mut raw)?;
        let value = top_level_value(&raw, key).map_err(ManagementError::save_failed)?;
        let (new_text, how) =
            yaml_doc::set_top_level(&text, key, &value).map_err(ManagementError::save_failed)?;
        if how == yaml_doc::Edit::Rewritten {
            tracing::warn!(
                key,
                "the config file's layout could not be edited in place: it was rewritten whole, without its comments"
            );
        }
        let effective = self
            .effective(&new_text)
            .map_err(|errors| ManagementError::invalid_body().because(join(&errors)))?;
        if let Some(path) = &self.host.config_path {
            write_atomically(path, &new_text).map_err(ManagementError::save_failed)?;
        }
        self.apply_effective(app, effective, new_text)
            .await
            .map_err(|errors| ManagementError::save_failed(join(&errors)))?;
        tracing::info!(key, "config changed through the management API");
        Ok(())
    }

    /// Reloads the config file if its text differs from what is applied (the watcher's entry
    /// point). An invalid file is refused and the running config kept.
    pub async fn reload_file(&self, app: &AppState) {
        let Some(path) = &self.host.config_path else {
            return;
        };
        let outcome = {
            let _write = self.write.lock().await;
            let text = match std::fs::read_to_string(path) {
                Ok(text) => text,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "config reload: cannot read the file; the running config stays");
                    return;
                }
            };
            if text == self.applied.load().text {
                return;
            }
            match self.effective(&text) {
                Ok(effective) => self.apply_effective(app, effective, text).await,
                Err(errors) => Err(errors),
            }
        };
        if let Ok(mut status) = self.reloads.lock() {
            status.seen += 1;
            status.last_error = outcome.as_ref().err().map(|errors| join(errors));
        }
        match outcome {
            Ok(()) => {
                tracing::info!(path = %path.display(), "config reloaded");
                self.hash_plaintext_key(app).await;
            }
            Err(errors) => tracing::warn!(
                path = %path.display(),
                problems = %join(&errors),
                "config reload refused: the file is invalid and the running config stays; fix it and save again (check with `sluice config check`)"
            ),
        }
    }

    /// What the watcher last did with the config file.
    pub fn reload_status(&self) -> ReloadStatus {
        self.reloads.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Rebuilds the runtime from the applied config (after an auth file changed).
    pub async fn rebuild(&self, app: &AppState) -> Result<(), ManagementError> {
        let _write = self.write.lock().await;
        let old = app.runtime.load_full();
        let runtime = Runtime::build_from(&old.config, Some(&old))
            .map_err(|e| ManagementError::save_failed(format!("{e:#}")))?;
        app.runtime.store(Arc::new(runtime));
        Ok(())
    }

    /// The validated, environment-expanded config of a file text.
    fn effective(&self, text: &str) -> Result<Config, Vec<ConfigError>> {
        let mut config = Config::from_yaml(text, |name| std::env::var(name).ok())?;
        config.config_dir = self
            .host
            .config_path
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf);
        Ok(config)
    }

    /// Builds and swaps in the runtime of a validated config; the caller holds `write`.
    async fn apply_effective(
        &self,
        app: &AppState,
        mut effective: Config,
        text: String,
    ) -> Result<(), Vec<ConfigError>> {
        let raw = Config::parse(&text)?;
        let old = app.runtime.load_full();
        // The listen address may come from `--listen`; it cannot change anyway.
        effective.listen = old.config.listen;
        let runtime = Runtime::build_from(&effective, Some(&old))
            .map_err(|e| vec![ConfigError::new("", format!("{e:#}"))])?;
        let previous = self.applied.load_full();
        warn_restart_only(&previous.raw, &raw);
        self.access.load_key(&effective.remote_management_key).await;
        if let Some(log) = &self.host.log {
            let (before, after) = (log_directive(&old.config), log_directive(&effective));
            if before != after {
                log(&after);
                tracing::info!(filter = %after, "log level changed");
            }
        }
        app.runtime.store(Arc::new(runtime));
        self.applied.store(Arc::new(Applied { raw, text }));
        Ok(())
    }
}

/// The `tracing` filter a config asks for: `debug: true` wins over `log-level`.
pub fn log_directive(config: &Config) -> String {
    let level = if config.debug {
        "debug"
    } else {
        config.log_level.as_str()
    };
    if level.contains('=') || level.contains(',') {
        level.to_string()
    } else {
        format!("{level},hyper=warn,hyper_util=warn,h2=warn,reqwest=warn,rustls=warn,notify=warn")
    }
}

/// Keys read once at start-up: a change is logged as waiting for a restart.
fn warn_restart_only(old: &Config, new: &Config) {
    let changed = [
        ("listen", old.listen != new.listen),
        ("log-format", old.log_format != new.log_format),
        ("max-body-size", old.max_body_size != new.max_body_size),
        (
            "max-upload-size",
            old.max_upload_size != new.max_upload_size,
        ),
        (
            "max-concurrent-requests",
            old.max_concurrent_requests != new.max_concurrent_requests,
        ),
        (
            "shutdown-grace-period",
            old.shutdown_grace_period != new.shutdown_grace_period,
        ),
        ("connections", old.connections != new.connections),
        (
            "demo-upstream",
            old.demo_upstream.as_ref().map(|d| d.listen)
                != new.demo_upstream.as_ref().map(|d| d.listen),
        ),
    ];
    for (key, _) in changed.iter().filter(|(_, c)| *c) {
        tracing::warn!(
            key,
            "this setting changed in the config file but takes effect only after a restart"
        );
    }
}

/// One top-level key of a config, as YAML.
fn top_level_value(config: &Config, key: &str) -> Result<yaml_serde::Value, String> {
    let whole = yaml_serde::to_value(config).map_err(|e| e.to_string())?;
    whole
        .get(key)
        .cloned()
        .ok_or_else(|| format!("unknown key `{key}`"))
}

fn join(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Replaces `path` with `text` so that a reader sees the old file or the new one, never a
/// part: a temporary file in the same directory (same permissions), fsync, rename.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let result = (|| {
        let mut file = std::fs::File::create_new(&tmp)?;
        if let Ok(meta) = std::fs::metadata(path) {
            file.set_permissions(meta.permissions())?;
        }
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
