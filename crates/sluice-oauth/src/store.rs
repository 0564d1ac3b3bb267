//! Writing token files so that a crash never leaves a torn one: a private temp file in the same
//! directory, written and fsynced, then renamed over the old file (and the directory fsynced).
//! A process killed at any point leaves either the old file or the new one.

use std::io::Write;
use std::path::Path;

/// Test hook: with this variable set to N, every write waits N ms between the durable temp
/// file and the rename, so a test can kill the process inside that window
/// (`crates/sluice/tests/oauth_crash.rs`). Unset in production; read only when a token is written.
pub const PAUSE_BEFORE_RENAME_ENV: &str = "SLUICE_TEST_TOKEN_WRITE_PAUSE_MS";

/// Writes `bytes` to `path` atomically with mode 0600 (the directory is created 0700).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_private_with(path, bytes, || {
        if let Some(ms) = std::env::var(PAUSE_BEFORE_RENAME_ENV)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
        {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
        Ok(())
    })
}

/// [`write_private`], calling `before_rename` once the temp file is durable (tests inject a
/// crash there).
pub fn write_private_with(
    path: &Path,
    bytes: &[u8],
    before_rename: impl FnOnce() -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    create_private_dir(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("token");
    let tmp = dir.join(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
    let result = (|| {
        let mut file = private_file(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        before_rename()?;
        std::fs::rename(&tmp, path)?;
        // The rename itself is durable once the directory is.
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

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_fault_before_the_rename_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auths").join("a.json");
        write_private(&path, b"{\"v\":1}").unwrap();
        let failed =
            write_private_with(&path, b"{\"v\":2}", || Err(std::io::Error::other("crash")));
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"v\":1}");
        let leftovers = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1, "the temp file is removed");
        write_private(&path, b"{\"v\":3}").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"v\":3}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
