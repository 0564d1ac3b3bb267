//! A gateway killed (SIGKILL) while it writes a refreshed token file leaves the previous file
//! intact: the real binary refreshes an expired Claude account against sluice-mock's rotating
//! token endpoint, is held between its durable temp file and the rename
//! (`SLUICE_TEST_TOKEN_WRITE_PAUSE_MS`), and killed there. The file must be byte for byte what
//! it was, still a valid token file, and a restarted gateway ignores the leftover temp file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::CLIENT_KEY;
use serde_json::json;
use sluice_mock::{MockConfig, MockServer};

const BIN: &str = env!("CARGO_BIN_EXE_sluice");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn serve(config: &Path, pause_ms: Option<u64>) -> tokio::process::Child {
    let mut command = tokio::process::Command::new(BIN);
    command
        .arg("serve")
        .arg("--config")
        .arg(config)
        .env_remove("SLUICE_CONFIG")
        .env_remove(sluice_oauth::store::PAUSE_BEFORE_RENAME_ENV)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    if let Some(ms) = pause_ms {
        command.env(sluice_oauth::store::PAUSE_BEFORE_RENAME_ENV, ms.to_string());
    }
    command.spawn().unwrap()
}

/// The hidden temp files of `name`'s writes in `dir`.
fn temp_files(dir: &Path, name: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!(".{name}.")) && n.ends_with(".tmp"))
        .collect()
}

#[tokio::test]
async fn a_kill_during_the_token_write_leaves_the_previous_file() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let auths = root.path().join("auths");
    std::fs::create_dir_all(&auths).unwrap();
    let expired = chrono::Utc::now() - chrono::Duration::seconds(5);
    let before = json!({
        "type": "claude", "access_token": "expired-claude-at", "refresh_token": "claude-rt-0",
        "email": "me@example.com",
        "expired": expired.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "base_url": format!("http://{}", mock.addr()),
    })
    .to_string();
    std::fs::write(auths.join("claude.json"), &before).unwrap();
    let port = free_port();
    let config = root.path().join("sluice.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{port}
api-keys: [{CLIENT_KEY}]
auth-dir: auths
oauth:
  refresh-interval: 100ms
  refresh-jitter: 0s
  claude: {{token-url: 'http://{}/v1/oauth/token'}}
providers: []
",
            mock.addr()
        ),
    )
    .unwrap();

    let mut gateway = serve(&config, Some(60_000));
    let mut held = Vec::new();
    for _ in 0..400 {
        held = temp_files(&auths, "claude.json");
        if !held.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(held.len(), 1, "the refresh reached the write");
    assert_eq!(
        mock.oauth().token_calls(),
        1,
        "the fake rotated: the old refresh token is spent"
    );
    gateway.start_kill().unwrap(); // SIGKILL
    let status = tokio::time::timeout(Duration::from_secs(10), gateway.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(!status.success());

    let after = std::fs::read_to_string(auths.join("claude.json")).unwrap();
    assert_eq!(after, before, "the previous file, byte for byte");
    sluice::auth_files::parse(after.as_bytes()).expect("still a valid token file");
    let new_pair: serde_json::Value =
        serde_json::from_slice(&std::fs::read(auths.join(&held[0])).unwrap()).unwrap();
    assert!(
        new_pair["refresh_token"]
            .as_str()
            .unwrap()
            .starts_with("oauth-claude-rt-"),
        "the temp file was complete and durable before the rename: {new_pair}"
    );

    // A restarted gateway loads the account from the intact file, not the leftover.
    let listed = sluice::auth_files::list(&auths).unwrap();
    assert_eq!(
        listed.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        ["claude.json"]
    );
    let mut again = serve(&config, None);
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..200 {
        if http
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "the gateway starts again over the same auth-dir");
    again.start_kill().unwrap();
    let _ = again.wait().await;
}
