//! Hot reload: a debounced watcher on the config file's directory (an atomic save replaces
//! the file, so the file itself cannot be watched) and on `auth-dir`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{DebounceEventResult, Debouncer, new_debouncer};

use crate::gateway::AppState;

/// Editors write a file in several steps; changes closer together than this are one change.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// A running watcher; dropping it stops watching.
pub struct Watch {
    _debouncer: Debouncer<RecommendedWatcher>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Config,
    AuthFiles,
}

/// Starts watching `config_path` (and the current `auth-dir`, when it exists).
pub fn start(app: &Arc<AppState>, config_path: &Path) -> anyhow::Result<Watch> {
    let config_path = absolute(config_path);
    let config_dir = config_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let auth_dir = absolute(&crate::settings::auth_dir(&app.runtime.load().config));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (file, auths) = (config_path.clone(), auth_dir.clone());
    let mut debouncer = new_debouncer(DEBOUNCE, move |events: DebounceEventResult| {
        let Ok(events) = events else {
            return;
        };
        let mut changes: Vec<Change> = events
            .iter()
            .filter_map(|event| {
                let hidden = event
                    .path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'));
                if event.path == file {
                    Some(Change::Config)
                } else if !hidden && event.path.parent() == Some(auths.as_path()) {
                    Some(Change::AuthFiles)
                } else {
                    None
                }
            })
            .collect();
        changes.dedup();
        for change in changes {
            let _ = tx.send(change);
        }
    })?;
    debouncer
        .watcher()
        .watch(&config_dir, RecursiveMode::NonRecursive)?;
    if auth_dir.is_dir() && auth_dir != config_dir {
        debouncer
            .watcher()
            .watch(&auth_dir, RecursiveMode::NonRecursive)?;
    }
    let weak = Arc::downgrade(app);
    let task = tokio::spawn(async move {
        while let Some(change) = rx.recv().await {
            let Some(app) = weak.upgrade() else {
                break;
            };
            match change {
                Change::Config => app.management.reload_file(&app).await,
                Change::AuthFiles => {
                    if let Err(e) = app.management.rebuild(&app).await {
                        tracing::warn!(error = %e.error, "auth-dir changed but the providers could not be rebuilt");
                    }
                }
            }
        }
    });
    tracing::info!(path = %config_path.display(), "watching the config file for changes");
    Ok(Watch {
        _debouncer: debouncer,
        task,
    })
}

fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
}
