//! The `sluice` binary as an operator runs it: config errors, serving, SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_sluice");

fn write_config(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

#[test]
fn invalid_config_refuses_to_start_and_names_the_key() {
    let file = write_config(
        "listen: 127.0.0.1:0
providers:
  - {name: p, kind: openai-compatible, base-url: 'not a url', models: [{name: m}]}
",
    );
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(file.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("providers[0].base-url"), "{stderr}");

    let out = Command::new(BIN)
        .args(["config", "check"])
        .arg(file.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("providers[0].base-url"));

    let typo = write_config("listen: 127.0.0.1:0\nallow-anonymus: true\n");
    let out = Command::new(BIN)
        .args(["config", "check"])
        .arg(typo.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("allow-anonymus"),
        "{stderr}"
    );
}

/// `sluice config check`: every unset variable in one run, a bad size or duration named by its
/// key, and one `request-retry` maximum (the one the management API's schema states).
#[test]
fn config_check_reports_every_problem_by_key() {
    let file = write_config(
        "api-keys: ['${SLUICE_TEST_UNSET_A}']
remote-management-key: '${SLUICE_TEST_UNSET_B}'
providers:
  - {name: p, kind: openai-compatible, base-url: 'http://x/v1', api-keys: ['${SLUICE_TEST_UNSET_C}'], models: [{name: m}]}
",
    );
    let out = Command::new(BIN)
        .args(["config", "check"])
        .arg(file.path())
        .env_remove("SLUICE_API_KEYS")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    for (key, var) in [
        ("api-keys[0]", "SLUICE_TEST_UNSET_A"),
        ("remote-management-key", "SLUICE_TEST_UNSET_B"),
        ("providers[0].api-keys[0]", "SLUICE_TEST_UNSET_C"),
    ] {
        assert!(
            stderr.lines().any(|l| l.contains(key) && l.contains(var)),
            "{key} / {var} not reported: {stderr}"
        );
    }

    for (yaml, key) in [
        ("max-body-size: 3 parsecs\n", "max-body-size"),
        ("timeouts: {idle: forever}\n", "timeouts.idle"),
    ] {
        let file = write_config(yaml);
        let out = Command::new(BIN)
            .args(["config", "check"])
            .arg(file.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(key),
            "{yaml}: {stderr}"
        );
    }

    let max = sluice::settings::MAX_REQUEST_RETRY;
    for (retry, ok) in [(max, true), (max + 1, false)] {
        let file = write_config(&format!("request-retry: {retry}\n"));
        let out = Command::new(BIN)
            .args(["config", "check"])
            .arg(file.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.success(), ok, "request-retry {retry}: {stderr}");
        if !ok {
            assert!(
                stderr.contains(&format!("request-retry: must be at most {max}")),
                "{stderr}"
            );
        }
    }
}

#[test]
fn shipped_example_config_is_valid() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config.example.yaml");
    let out = Command::new(BIN)
        .args(["config", "check", example])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn sigterm_drains_streams_and_flushes_usage() {
    let mock = sluice_mock::MockServer::start(Default::default())
        .await
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    // Port 0: the address comes from the server's own "listening" line, so no other process
    // can take a port picked in advance.
    let file = write_config(&format!(
        "listen: 127.0.0.1:0
api-keys: [sk-cli-test]
log-format: json
data-dir: {data}
providers:
  - name: mock
    kind: openai-compatible
    base-url: {}
    api-keys: [upstream]
    models: [{{name: mock-model}}]
",
        mock.base_url(),
        data = data.path().display()
    ));
    let mut child = tokio::process::Command::new(BIN)
        .args(["serve", "--config"])
        .arg(file.path())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Read the log as it comes (a full pipe would block the server), and hand over the
    // listening address as soon as it is logged.
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    let log = tokio::spawn(async move {
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        let mut text = String::new();
        let mut addr_tx = Some(addr_tx);
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["fields"]["message"] == "sluice listening"
                && let (Some(tx), Some(addr)) = (addr_tx.take(), v["fields"]["addr"].as_str())
            {
                let _ = tx.send(addr.to_string());
            }
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    let addr = tokio::time::timeout(Duration::from_secs(60), addr_rx)
        .await
        .expect("sluice did not start listening within 60 s")
        .expect("sluice exited before listening");
    let http = reqwest::Client::new();
    let base = format!("http://{addr}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "sluice did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let resp = http
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth("sk-cli-test")
        .header("x-request-id", "sigterm-stream")
        .json(&json!({"model": "mock-model", "stream": true,
            "messages": [{"role": "user", "content": "mock:chunk_delay_ms=40 mock:words=12"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let pid = child.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );

    let body = resp.text().await.unwrap();
    assert!(
        body.trim_end().ends_with("data: [DONE]"),
        "stream cut by SIGTERM: {body}"
    );
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("sluice did not exit within 60 s of SIGTERM")
        .unwrap();
    assert!(status.success(), "exit status {status}");

    let stderr = log.await.unwrap();
    let usage: Vec<Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == "sluice::usage")
        .collect();
    assert_eq!(usage.len(), 1, "{stderr}");
    let fields = &usage[0]["fields"];
    assert_eq!(fields["request_id"], "sigterm-stream");
    assert_eq!(fields["status"], 200);
    assert!(fields["completion_tokens"].as_u64().unwrap() > 0);
    assert!(
        !stderr.contains("sk-cli-test") && !stderr.contains("upstream\""),
        "secret in logs: {stderr}"
    );
}
