//! The `sluice` binary's store as an operator meets it: users created by the CLI, usage
//! exported by the CLI, no usage record lost when SIGTERM arrives mid-load, and `/metrics`
//! telling the same story as the store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashSet};
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `sluice serve` on `port` and waits until it is ready: the child, a client, the base URL.
async fn serve(
    config: &tempfile::NamedTempFile,
    port: u16,
    stderr: Stdio,
) -> (tokio::process::Child, reqwest::Client, String) {
    let child = tokio::process::Command::new(BIN)
        .args(["serve", "--config"])
        .arg(config.path())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let mut ready = false;
    for _ in 0..400 {
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
    (child, http, base)
}

fn sigterm(child: &tokio::process::Child) {
    let pid = child.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
}

/// The usage records `sluice usage export` finds.
fn exported(config: &tempfile::NamedTempFile) -> Vec<Value> {
    let out = sluice(&["usage", "export", "--format", "jsonl"], config.path(), "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
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
    let port = free_port();
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
    let (mut child, http, base) = serve(&config, port, Stdio::null()).await;

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
    sigterm(&child);
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

    let records = exported(&config);
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

/// Past a short grace period, every request still in flight — waiting for a slow upstream,
/// streaming, still uploading its body, or on an HTTP/2 connection whose client drops its
/// streams when shutdown begins — is answered (503 or an error event in its dialect) and has
/// exactly one record in the store; the exit is clean.
#[tokio::test]
async fn sigterm_past_the_grace_period_answers_and_records_every_request() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mock = sluice_mock::MockServer::start(Default::default())
        .await
        .unwrap();
    let port = free_port();
    let data = tempfile::tempdir().unwrap();
    let config = write_config(&format!(
        "listen: 127.0.0.1:{port}
api-keys: [sk-cut-test]
data-dir: {}
shutdown-grace-period: 1s
providers:
  - {{name: mock, kind: openai-compatible, base-url: '{}', models: [{{name: mock-model}}]}}
",
        data.path().display(),
        mock.base_url()
    ));
    let (child, http, base) = serve(&config, port, Stdio::null()).await;
    let url = format!("{base}/v1/chat/completions");
    let send = |http: &reqwest::Client, id: String, stream: bool, text: &str| {
        let request = http
            .post(&url)
            .bearer_auth("sk-cut-test")
            .header("x-request-id", id)
            .json(&json!({"model": "mock-model", "stream": stream,
                "messages": [{"role": "user", "content": text}]}));
        tokio::spawn(async move {
            let resp = request.send().await.ok()?;
            let status = resp.status().as_u16();
            Some((status, resp.text().await.unwrap_or_default()))
        })
    };
    let waiting: Vec<_> = (0..6)
        .map(|i| send(&http, format!("wait-{i}"), false, "mock:latency_ms=30000"))
        .collect();
    let streaming: Vec<_> = (0..4)
        .map(|i| {
            let text = "mock:chunk_delay_ms=300 mock:words=200";
            send(&http, format!("stream-{i}"), true, text)
        })
        .collect();
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let dropped: Vec<_> = (0..20)
        .map(|i| send(&h2, format!("h2-{i}"), i % 2 == 0, "mock:latency_ms=30000"))
        .collect();
    // Uploads that stall half-way through their body.
    let mut uploads = Vec::new();
    for i in 0..4 {
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let head = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer sk-cut-test\r\n\
             x-request-id: upload-{i}\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{{\"model\":"
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        uploads.push(tcp);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while mock.requests().len() < 30 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        mock.requests().len(),
        30,
        "requests did not reach the upstream"
    );
    sigterm(&child);
    // HTTP/2 clients that give up on their streams as shutdown begins.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for task in &dropped {
        task.abort();
    }
    drop(h2);

    for task in waiting {
        let (status, body) = task.await.unwrap().expect("no answer");
        assert_eq!(status, 503, "{body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"]["code"], "shutdown", "{body}");
    }
    for task in streaming {
        let (status, body) = task.await.unwrap().expect("no answer");
        assert_eq!(status, 200);
        let last = body
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .last()
            .unwrap();
        let last: Value = serde_json::from_str(last).unwrap();
        assert_eq!(last["error"]["code"], "shutdown", "{body}");
    }
    for mut tcp in uploads {
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("\"shutdown\""), "{answer}");
    }
    let mut child = child;
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status}");

    let records = exported(&config);
    let mut ids: Vec<&str> = records
        .iter()
        .map(|r| r["request_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let mut expected: Vec<String> = (0..6)
        .map(|i| format!("wait-{i}"))
        .chain((0..4).map(|i| format!("stream-{i}")))
        .chain((0..20).map(|i| format!("h2-{i}")))
        .chain((0..4).map(|i| format!("upload-{i}")))
        .collect();
    expected.sort_unstable();
    assert_eq!(ids, expected, "exactly one record per request");
    for r in &records {
        let id = r["request_id"].as_str().unwrap();
        if id.starts_with("wait-") || id.starts_with("upload-") {
            assert_eq!(
                (r["status"].as_i64(), r["error"].as_str()),
                (Some(503), Some("shutdown")),
                "{r}"
            );
        }
    }
}

/// A record the store refuses for good makes the process exit non-zero and say so.
#[tokio::test]
async fn an_unwritable_record_makes_the_exit_fail() {
    let mock = sluice_mock::MockServer::start(Default::default())
        .await
        .unwrap();
    let port = free_port();
    let data = tempfile::tempdir().unwrap();
    let config = write_config(&format!(
        "listen: 127.0.0.1:{port}
api-keys: [sk-lost-test]
data-dir: {}
providers:
  - {{name: mock, kind: openai-compatible, base-url: '{}', models: [{{name: mock-model}}]}}
",
        data.path().display(),
        mock.base_url()
    ));
    let (child, http, base) = serve(&config, port, Stdio::piped()).await;
    // Another process breaks the store under the gateway: the usage table is gone.
    let url = format!("sqlite://{}", data.path().join("sluice.db").display());
    let mut db = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query("ALTER TABLE usage_records RENAME TO usage_records_moved")
        .execute(&mut db)
        .await
        .unwrap();
    let resp = http
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth("sk-lost-test")
        .json(&json!({"model": "mock-model", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    sigterm(&child);
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "exit status {}: {log}", out.status);
    assert!(
        log.contains("usage record(s) could not be written"),
        "{log}"
    );
}

/// Issue 12's "done when": Prometheus scraping the running binary shows the traffic, tokens
/// and cost that the usage store recorded for the same traffic (successes, streams, a failover
/// after a 429, an upstream 5xx, a request refused before routing).
#[tokio::test]
async fn metrics_scraped_from_the_binary_match_the_usage_store() {
    use common::openmetrics::{parse, total};

    let mock = sluice_mock::MockServer::start(Default::default())
        .await
        .unwrap();
    let port = free_port();
    let data = tempfile::tempdir().unwrap();
    let config = write_config(&format!(
        "listen: 127.0.0.1:{port}
api-keys: [sk-metrics-store]
data-dir: {data}
cooldown: {{server-error-threshold: 100}}
prices: {{mock-model: {{input: 1, output: 2}}}}
providers:
  - name: mock
    kind: openai-compatible
    base-url: {}
    api-keys: [upstream-a, upstream-b]
    models: [{{name: mock-model}}]
",
        mock.base_url(),
        data = data.path().display()
    ));
    let (mut child, http, base) = serve(&config, port, Stdio::null()).await;
    let traffic = [
        ("mock-model", false, "mock:words=7"),
        ("mock-model", false, "mock:words=30 mock:cached=4"),
        ("mock-model", true, "mock:words=12"),
        ("mock-model", true, "mock:words=3"),
        ("mock-model", false, "mock:cycle=429.200 mock:words=5"),
        ("mock-model", false, "mock:status=500"),
        ("no-such-model", false, "hello"),
    ];
    for (model, stream, text) in traffic {
        let resp = http
            .post(format!("{base}/v1/chat/completions"))
            .bearer_auth("sk-metrics-store")
            .json(&json!({"model": model, "stream": stream,
                "messages": [{"role": "user", "content": text}]}))
            .send()
            .await
            .unwrap();
        resp.bytes().await.unwrap();
    }
    // Metrics of finished requests are observed by the usage writer: wait until it saw all.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let metrics = loop {
        let text = http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let m = parse(&text);
        if total(&m, "sluice_requests", &[], false) >= traffic.len() as f64 {
            break m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the metrics never counted {} requests:\n{text}",
            traffic.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    sigterm(&child);
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status}");

    let records = exported(&config);
    assert_eq!(records.len(), traffic.len(), "{records:?}");
    let requests = total(&metrics, "sluice_requests", &[], false);
    assert_eq!(requests, records.len() as f64);
    // Request counts by status, as the store and the metrics see them.
    let mut by_status = BTreeMap::<String, f64>::new();
    for r in &records {
        *by_status.entry(r["status"].to_string()).or_default() += 1.0;
    }
    assert!(by_status.len() >= 3, "{by_status:?}");
    for (status, n) in &by_status {
        let scraped = total(
            &metrics,
            "sluice_requests",
            &[("status_code", status)],
            false,
        );
        assert_eq!(scraped, *n, "status {status}");
    }
    // Token sums by type and the money.
    for (column, token_type) in [
        ("input_tokens", "input"),
        ("output_tokens", "output"),
        ("cache_read_tokens", "cache_read_input"),
    ] {
        let stored: u64 = records.iter().map(|r| r[column].as_u64().unwrap()).sum();
        assert!(stored > 0, "{column}: {records:?}");
        let scraped = total(
            &metrics,
            "gen_ai_client_token_usage",
            &[("gen_ai_token_type", token_type)],
            true,
        );
        assert_eq!(scraped, stored as f64, "{column}");
    }
    let stored_cost: f64 = records.iter().map(|r| r["cost"].as_f64().unwrap()).sum();
    assert!(stored_cost > 0.0);
    let scraped_cost = total(&metrics, "sluice_cost_usd", &[], false);
    assert!(
        (scraped_cost - stored_cost).abs() < 1e-9,
        "metrics ${scraped_cost}, store ${stored_cost}"
    );
    // Upstream attempts: the failover's 429 and the 5xx are attempts too.
    let attempts = total(&metrics, "sluice_upstream_attempts", &[], false);
    assert_eq!(attempts, mock.requests().len() as f64);
    assert_eq!(
        total(
            &metrics,
            "sluice_upstream_attempts",
            &[("outcome", "429")],
            false
        ),
        1.0
    );
}
