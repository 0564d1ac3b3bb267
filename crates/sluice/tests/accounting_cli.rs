//! The `sluice` binary's store as an operator meets it: users created by the CLI, usage
//! exported by the CLI, and no usage record lost when SIGTERM arrives mid-load.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
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

fn sluice(args: &[&str], config: &std::path::Path, stdin: &str) -> std::process::Output {
    let mut child = Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn users_are_created_and_listed_by_the_cli() {
    let data = tempfile::tempdir().unwrap();
    let config = write_config(&format!("data-dir: {}\n", data.path().display()));
    let out = sluice(
        &[
            "users",
            "create",
            "--username",
            "ops",
            "--admin",
            "--password-stdin",
        ],
        config.path(),
        "ops-password\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("created admin `ops`"));

    let again = sluice(
        &["users", "create", "--username", "ops", "--password-stdin"],
        config.path(),
        "ops-password\n",
    );
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let short = sluice(
        &["users", "create", "--username", "dev", "--password-stdin"],
        config.path(),
        "short\n",
    );
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 8"));

    let list = sluice(&["users", "list"], config.path(), "");
    let listed = String::from_utf8_lossy(&list.stdout);
    assert_eq!(listed.trim(), "1\tops\tadmin\tactive");
    assert!(!listed.contains("argon2"), "no hashes in listings");
}

#[tokio::test]
async fn sigterm_mid_load_loses_no_usage_record_and_export_has_them_all() {
    let mock = sluice_mock::MockServer::start(Default::default())
        .await
        .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let data = tempfile::tempdir().unwrap();
    let config = write_config(&format!(
        "listen: 127.0.0.1:{port}
api-keys: [sk-load-test]
data-dir: {}
shutdown-grace-period: 10s
prices: {{mock-model: {{input: 1, output: 2}}}}
providers:
  - {{name: mock, kind: openai-compatible, base-url: '{}', models: [{{name: mock-model}}]}}
",
        data.path().display(),
        mock.base_url()
    ));
    let mut child = tokio::process::Command::new(BIN)
        .args(["serve", "--config"])
        .arg(config.path())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
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
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(ready, "sluice did not become ready");

    let request =
        |i: usize| {
            let http = http.clone();
            let url = format!("{base}/v1/chat/completions");
            tokio::spawn(async move {
                let stream = i.is_multiple_of(2);
                let resp = http
                .post(url)
                .bearer_auth("sk-load-test")
                .header("x-request-id", format!("load-{i}"))
                .json(&json!({"model": "mock-model", "stream": stream, "messages": [{"role": "user",
                    "content": "mock:latency_ms=200 mock:chunk_delay_ms=20 mock:words=6"}]}))
                .send()
                .await
                .ok()?;
                let status = resp.status().as_u16();
                resp.text().await.ok()?;
                Some((format!("load-{i}"), status))
            })
        };
    let mut tasks: Vec<_> = (0..40).map(request).collect();
    // SIGTERM once all 40 are in flight (at the upstream), however busy the machine is.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while mock.requests().len() < 40 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pid = child.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    // Load keeps arriving while the gateway drains.
    tasks.extend((40..60).map(request));
    let mut answered = Vec::new();
    for t in tasks {
        if let Some(done) = t.await.unwrap() {
            answered.push(done);
        }
    }
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status}");
    let completed = answered.iter().filter(|(_, s)| *s == 200).count();
    assert!(
        completed >= 40,
        "the in-flight requests finish: {answered:?}"
    );

    let out = sluice(&["usage", "export", "--format", "jsonl"], config.path(), "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let recorded: HashSet<&str> = records
        .iter()
        .map(|r| r["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(recorded.len(), records.len(), "one record per request");
    for (id, status) in &answered {
        assert!(
            recorded.contains(id.as_str()),
            "{id} ({status}) has no record"
        );
    }
    assert!(records.len() <= 60);
    for r in records.iter().filter(|r| r["status"] == 200) {
        assert_eq!(r["output_tokens"], 6, "{r}");
        assert!(r["cost"].as_f64().unwrap() > 0.0, "{r}");
    }

    let out = sluice(&["usage", "export", "--format", "csv"], config.path(), "");
    let csv = String::from_utf8_lossy(&out.stdout);
    let mut lines = csv.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("request_id,time,day,endpoint,")
    );
    assert_eq!(lines.count(), records.len());
    let none = sluice(
        &[
            "usage",
            "export",
            "--start",
            "2001-01-01",
            "--end",
            "2001-01-02",
        ],
        config.path(),
        "",
    );
    assert!(none.status.success() && none.stdout.is_empty());
    let bad = sluice(&["usage", "export", "--start", "soon"], config.path(), "");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--start"));
}
