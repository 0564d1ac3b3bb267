//! Issue 9's resource limits and trust boundaries, against a real server on a real port (and
//! the `sluice` binary where the file system is the point): bounded request ids, private data
//! files, symlinks in `auth-dir`, paths resolved against the config file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn request_ids_are_short_and_safe_or_generated() {
    let h = Harness::start().await;
    let huge = "A".repeat(200 * 1024);
    let cases: [(&str, bool); 6] = [
        ("req-abc_1.2:3/4+5=", true),
        (&"b".repeat(128), true),
        (&"c".repeat(129), false),
        ("has space", false),
        ("semi;colon", false),
        (&huge, false),
    ];
    for (id, kept) in cases {
        // Rejected (no key) and served requests alike.
        for key in [None, Some(CLIENT_KEY)] {
            let mut request = h
                .http
                .post(h.url("/v1/chat/completions"))
                .header("x-request-id", id)
                .json(&json!({"model": "mock-model", "messages": user("hi")}));
            if let Some(key) = key {
                request = request.bearer_auth(key);
            }
            let resp = request.send().await.unwrap();
            assert_eq!(resp.status(), if key.is_some() { 200 } else { 401 });
            let answered = resp.headers()["x-request-id"].to_str().unwrap().to_string();
            if kept {
                assert_eq!(answered, id);
            } else {
                assert!(
                    answered.starts_with("req_") && answered.len() < 40,
                    "{} chars: {}",
                    answered.len(),
                    &answered[..answered.len().min(60)]
                );
            }
        }
    }
    let records = h.records().await;
    assert_eq!(records.len(), 12);
    for r in &records {
        assert!(r.request_id.len() <= 128, "{} chars", r.request_id.len());
    }
    // Two ids in one request: neither is trusted.
    let resp = h
        .chat(json!({"model": "mock-model", "messages": user("hi")}))
        .header("x-request-id", "first")
        .header("x-request-id", "second")
        .send()
        .await
        .unwrap();
    assert!(
        resp.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .starts_with("req_")
    );
    let upstream = h.mock.requests();
    assert!(
        upstream
            .iter()
            .all(|r| r.header("x-request-id").is_some_and(|id| id.len() <= 128))
    );
}

#[cfg(unix)]
#[tokio::test]
async fn auth_file_download_never_follows_a_symlink() {
    let auths = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.json");
    std::fs::write(
        &secret,
        r#"{"type":"claude","access_token":"outside-secret-xyz"}"#,
    )
    .unwrap();
    std::os::unix::fs::symlink(&secret, auths.path().join("evil.json")).unwrap();
    std::fs::write(
        auths.path().join("real.json"),
        r#"{"type":"claude","access_token":"inside-token"}"#,
    )
    .unwrap();
    let h = Harness::with_config(&format!("auth-dir: '{}'", auths.path().display()), "").await;

    let download = |name: &str| {
        h.management(
            reqwest::Method::GET,
            &format!("/auth-files/download?name={name}"),
        )
        .send()
    };
    let resp = download("evil.json").await.unwrap();
    assert_eq!(resp.status(), 404);
    let body = resp.text().await.unwrap();
    assert!(!body.contains("outside-secret"), "{body}");
    assert_eq!(body, r#"{"error":"file not found"}"#);
    let resp = download("real.json").await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("inside-token"));

    let list: Value = h
        .management(reqwest::Method::GET, "/auth-files")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = list["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["real.json"]);
}

/// The binary started from another directory: `data-dir` and `token-pool.data-dir` are found
/// next to the config file, and the store, its WAL and the data directory are private.
#[cfg(unix)]
#[tokio::test]
async fn data_files_are_private_and_paths_follow_the_config_file() {
    use std::os::unix::fs::PermissionsExt;
    let mock = sluice_mock::MockServer::start(Default::default())
        .await
        .unwrap();
    let root = tempfile::tempdir().unwrap();
    let conf = root.path().join("conf");
    let elsewhere = root.path().join("elsewhere");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = conf.join("sluice.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{port}
api-keys: [{CLIENT_KEY}]
token-pool:
  service-key: sk-service-key-0123
  data-dir: pool
providers:
  - {{name: qwen, kind: qwen, base-url: '{}', token-pool: true, models: [{{name: qwen3-coder-plus}}]}}
",
            mock.base_url()
        ),
    )
    .unwrap();
    let _child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["serve", "--config"])
        .arg(&config)
        .current_dir(&elsewhere)
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let mut ready = false;
    for _ in 0..200 {
        if http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "sluice did not become ready");
    let resp = http
        .post(format!("{base}/api/upload-token"))
        .bearer_auth("sk-service-key-0123")
        .json(&json!({"token": "pool-token-0001"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(conf.join("pool/token-pool.json").is_file());
    assert!(
        !elsewhere.join("pool").exists(),
        "resolved against the working directory"
    );
    assert!(!elsewhere.join("data").exists());

    let mode = |p: &std::path::Path| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777
    };
    let data = conf.join("data");
    assert_eq!(mode(&data), 0o700, "data directory");
    assert_eq!(mode(&conf.join("pool")), 0o700, "token pool directory");
    for file in ["sluice.db", "sluice.db-wal", "sluice.db-shm", "jwt-secret"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
}
