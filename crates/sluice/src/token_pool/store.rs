//! The pool's file: `{data-dir}/token-pool.json`, written whole to a temporary file with mode
//! 0600 and renamed over the old one, so a crash leaves either the old or the new pool, and no
//! other user can read the tokens.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name inside the data directory.
pub const FILE_NAME: &str = "token-pool.json";

/// One stored token: a bare upstream token, or a Qwen OAuth credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredToken {
    /// Stable id (`t-` + digest prefix of the first access token), shown instead of the token.
    pub id: String,
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// Qwen: the host serving this account (`portal.qwen.ai`); decides the upstream base URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_url: Option<String>,
    /// Expiry, Unix milliseconds (Qwen's `expiry_date`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_date: Option<u64>,
    /// When it was uploaded, Unix seconds.
    #[serde(default)]
    pub added_at: u64,
    /// Why the token is out of rotation for good (Qwen's OAuth free tier ended), kept across
    /// reloads and restarts; uploading the token again clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct PoolFile {
    #[serde(default)]
    tokens: Vec<StoredToken>,
}

/// Where the pool lives on disk.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
}

impl Store {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            path: data_dir.join(FILE_NAME),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored tokens; none when the file does not exist yet.
    pub fn load(&self) -> Result<Vec<StoredToken>, String> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice::<PoolFile>(&bytes)
                .map(|f| f.tokens)
                .map_err(|e| format!("{} is not a token pool file: {e}", self.path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(format!("cannot read {}: {e}", self.path.display())),
        }
    }

    /// Replaces the file with `tokens` (atomically, mode 0600).
    pub fn save(&self, tokens: &[StoredToken]) -> Result<(), String> {
        let fail = |what: &str, e: std::io::Error| format!("{what} {}: {e}", self.path.display());
        if let Some(dir) = self.path.parent() {
            crate::store::private::create_dir(dir)
                .map_err(|e| fail("cannot create the directory of", e))?;
        }
        let json = serde_json::to_vec_pretty(&PoolFile {
            tokens: tokens.to_vec(),
        })
        .map_err(|e| format!("cannot encode the token pool: {e}"))?;
        let tmp = self.path.with_extension("json.tmp");
        let mut file = private_file(&tmp).map_err(|e| fail("cannot write next to", e))?;
        file.write_all(&json)
            .and_then(|()| file.sync_all())
            .map_err(|e| fail("cannot write next to", e))?;
        drop(file);
        std::fs::rename(&tmp, &self.path).map_err(|e| fail("cannot replace", e))
    }
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // A leftover temporary file keeps its old mode on open: set it explicitly.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::create(path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn saves_privately_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("nested/data");
        let store = Store::new(&data);
        assert_eq!(store.load().unwrap(), vec![]);
        let token = StoredToken {
            id: "t-1".into(),
            access_token: "secret".into(),
            refresh_token: Some("r".into()),
            token_type: None,
            resource_url: Some("portal.qwen.ai".into()),
            expiry_date: Some(1),
            added_at: 2,
            disabled: Some("ended".into()),
        };
        store.save(std::slice::from_ref(&token)).unwrap();
        store.save(std::slice::from_ref(&token)).unwrap();
        assert_eq!(store.load().unwrap(), vec![token]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(store.path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(store.path(), "not json").unwrap();
        assert!(store.load().unwrap_err().contains("not a token pool file"));
    }
}
