//! `GET /metrics` through the real binary's server against the fake upstream: each family moves
//! as it should under success, a 429 with failover, a 5xx, a cut stream and a limiter
//! rejection; the exposition is parsed with an OpenMetrics parser (which rejects invalid
//! text); totals equal the usage records; cardinality stays bounded; remote scrapers need the
//! bearer token.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::openmetrics::{Exposition, total};
use common::*;
use serde_json::json;
use sluice_mock::{MockConfig, MockServer};

/// The `/metrics` text as a local scraper sees it.
async fn metrics_text(h: &Harness) -> String {
    let resp = h.http.get(h.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

async fn scrape(h: &Harness) -> Exposition {
    // Metrics of finished requests are recorded by the usage writer: let it catch up.
    h.server.state.usage.flush().await;
    let resp = h.http.get(h.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    common::openmetrics::parse(&resp.text().await.unwrap())
}

fn count(exp: &Exposition, family: &str, labels: &[(&str, &str)]) -> f64 {
    total(exp, family, labels, false)
}

fn series(exp: &Exposition, family: &str) -> usize {
    exp.families
        .get(family)
        .map_or(0, |f| f.iter_samples().count())
}

async fn gateway(extra: &str) -> Harness {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let yaml = format!(
        "listen: 127.0.0.1:0
api-keys: [{CLIENT_KEY}]
max-concurrent-requests: 1
cooldown: {{server-error-threshold: 100}}
prices: {{mock-model: {{input: 1, output: 2}}, flaky-model: {{input: 1, output: 2}}}}
{extra}
providers:
  - name: pool
    kind: openai-compatible
    base-url: {base}
    api-keys: [key-a, key-b]
    models: [{{name: mock-model, alias: gpt-4o-mini}}]
  - name: flaky
    kind: openai-compatible
    base-url: {base}
    api-keys: [key-f]
    models: [{{name: flaky-model}}]
",
        base = mock.base_url()
    );
    Harness::from_yaml(mock, &yaml).await
}

async fn ask(h: &Harness, body: serde_json::Value) -> reqwest::Response {
    h.chat(body).send().await.unwrap()
}

#[tokio::test]
async fn each_family_moves_with_real_traffic_and_matches_the_usage_records() {
    let h = gateway("").await;
    let before = scrape(&h).await;
    assert_eq!(count(&before, "sluice_build", &[]), 1.0);
    assert_eq!(series(&before, "sluice_requests"), 0);
    assert_eq!(
        count(&before, "sluice_credentials", &[("state", "active")]),
        3.0
    );

    // Success, plain and streamed.
    let ok = ask(&h, json!({"model": "gpt-4o-mini", "messages": user("hi")})).await;
    assert_eq!(ok.status(), 200);
    let streamed = ask(
        &h,
        json!({"model": "gpt-4o-mini", "stream": true, "messages": user("mock:words=20 hi")}),
    )
    .await;
    assert_eq!(streamed.status(), 200);
    streamed.text().await.unwrap();
    let m = scrape(&h).await;
    let chat = [("route", "/v1/chat/completions")];
    assert_eq!(
        count(
            &m,
            "sluice_requests",
            &[
                ("route", "/v1/chat/completions"),
                ("sluice_dialect", "openai_chat"),
                ("sluice_provider", "pool"),
                ("gen_ai_request_model", "gpt-4o-mini"),
                ("status_code", "200"),
            ]
        ),
        2.0
    );
    assert_eq!(
        count(
            &m,
            "gen_ai_server_request_duration_seconds",
            &[
                ("gen_ai_operation_name", "chat"),
                ("gen_ai_provider_name", "openai"),
                ("error_type", "")
            ]
        ),
        2.0
    );
    assert_eq!(
        count(
            &m,
            "gen_ai_server_time_to_first_token_seconds",
            &[("sluice_provider", "pool")]
        ),
        1.0
    );
    assert_eq!(
        count(&m, "gen_ai_server_time_per_output_token_seconds", &[]),
        1.0
    );
    assert_eq!(
        count(
            &m,
            "gen_ai_client_operation_time_to_first_chunk_seconds",
            &[]
        ),
        1.0
    );
    assert_eq!(
        count(
            &m,
            "gen_ai_client_operation_duration_seconds",
            &[("gen_ai_request_model", "mock-model")]
        ),
        2.0
    );
    for phase in [
        "authenticate",
        "admit",
        "route",
        "translate_request",
        "translate_response",
    ] {
        assert_eq!(
            count(
                &m,
                "sluice_gateway_overhead_seconds",
                &[("route", "/v1/chat/completions"), ("phase", phase)]
            ),
            2.0,
            "{phase}"
        );
    }
    assert_eq!(
        count(
            &m,
            "gen_ai_client_token_usage",
            &[("gen_ai_token_type", "input")]
        ),
        2.0
    );
    assert!(
        total(
            &m,
            "gen_ai_client_token_usage",
            &[("gen_ai_token_type", "output")],
            true
        ) >= 20.0
    );
    assert!(
        total(
            &m,
            "sluice_cost_usd",
            &[("sluice_provider", "pool"), ("estimated", "false")],
            false
        ) > 0.0
    );
    assert_eq!(
        count(&m, "sluice_upstream_attempts", &[("outcome", "ok")]),
        2.0
    );
    assert_eq!(count(&m, "sluice_inflight_requests", &chat), 0.0);

    // A 429 on the first credential: failover to the second, which serves.
    h.mock
        .faults()
        .set_for_key("key-a", "status=429 retry_after=30");
    let failed_over = ask(&h, json!({"model": "gpt-4o-mini", "messages": user("hi")})).await;
    assert_eq!(failed_over.status(), 200);
    assert_eq!(failed_over.headers()["x-sluice-attempts"], "2");
    let m = scrape(&h).await;
    assert_eq!(
        count(
            &m,
            "sluice_upstream_attempts",
            &[("credential", "pool#0"), ("outcome", "429")]
        ),
        1.0
    );
    assert_eq!(
        count(
            &m,
            "sluice_failovers",
            &[("sluice_provider", "pool"), ("reason", "429")]
        ),
        1.0
    );
    assert_eq!(
        count(
            &m,
            "sluice_credential_cooldowns",
            &[("sluice_provider", "pool"), ("reason", "quota")]
        ),
        1.0
    );
    assert_eq!(
        count(
            &m,
            "sluice_credential_state",
            &[("credential", "pool#0"), ("state", "cooling")]
        ),
        1.0
    );
    assert_eq!(
        count(
            &m,
            "sluice_credential_state",
            &[("credential", "pool#0"), ("state", "active")]
        ),
        0.0
    );
    assert_eq!(
        count(
            &m,
            "sluice_credentials",
            &[("sluice_provider", "pool"), ("state", "cooling")]
        ),
        1.0
    );
    assert_eq!(
        count(
            &m,
            "gen_ai_client_operation_duration_seconds",
            &[("sluice_provider", "pool"), ("error_type", "429")]
        ),
        1.0
    );

    // A 5xx: the client gets the error, the histograms say so.
    let broken = ask(
        &h,
        json!({"model": "flaky-model", "messages": user("mock:status=500")}),
    )
    .await;
    assert_eq!(broken.status(), 500);
    // A stream cut after its 2xx.
    let cut = ask(
        &h,
        json!({"model": "flaky-model", "stream": true, "messages": user("mock:cut_after=2 hi")}),
    )
    .await;
    assert_eq!(cut.status(), 200);
    cut.text().await.unwrap();
    // A model nobody serves: its name is not a label.
    let unknown = ask(
        &h,
        json!({"model": "no-such-model-xyz", "messages": user("hi")}),
    )
    .await;
    assert_eq!(unknown.status(), 404);
    let m = scrape(&h).await;
    assert_eq!(
        count(
            &m,
            "sluice_requests",
            &[("sluice_provider", "flaky"), ("status_code", "500")]
        ),
        1.0
    );
    assert!(
        count(
            &m,
            "sluice_upstream_attempts",
            &[("credential", "flaky#0"), ("outcome", "5xx")]
        ) >= 1.0
    );
    assert_eq!(
        count(
            &m,
            "gen_ai_server_request_duration_seconds",
            &[("sluice_provider", "flaky"), ("error_type", "500")]
        ),
        1.0
    );
    assert_eq!(
        count(
            &m,
            "gen_ai_server_request_duration_seconds",
            &[
                ("sluice_provider", "flaky"),
                ("error_type", "stream_broken")
            ]
        ),
        1.0
    );
    assert_eq!(
        count(
            &m,
            "sluice_requests",
            &[("gen_ai_request_model", "other"), ("status_code", "404")]
        ),
        1.0
    );
    let text = metrics_text(&h).await;
    assert!(!text.contains("no-such-model-xyz"));

    // A limiter rejection: one slow request holds the only slot, the next is refused.
    let slow = {
        let request =
            h.chat(json!({"model": "gpt-4o-mini", "messages": user("mock:latency_ms=1500 hi")}));
        tokio::spawn(async move { request.send().await.unwrap().status() })
    };
    let mut held = false;
    for _ in 0..100 {
        if count(&scrape(&h).await, "sluice_inflight_requests", &chat) == 1.0 {
            held = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(held, "the slow request never showed as in flight");
    let refused = ask(&h, json!({"model": "gpt-4o-mini", "messages": user("hi")})).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(slow.await.unwrap(), 200);
    let m = scrape(&h).await;
    assert_eq!(
        count(
            &m,
            "sluice_limiter_rejections",
            &[("reason", "gateway_concurrency"), ("scope", "global")]
        ),
        1.0
    );
    assert_eq!(count(&m, "sluice_inflight_requests", &chat), 0.0);

    // The metrics and the usage records count the same requests, tokens and money.
    let records = h.records().await;
    assert_eq!(records.len(), 8);
    assert_eq!(count(&m, "sluice_requests", &[]), records.len() as f64);
    let input: u64 = records.iter().map(|r| r.usage.input_tokens).sum();
    let output: u64 = records.iter().map(|r| r.usage.output_tokens).sum();
    assert_eq!(
        total(
            &m,
            "gen_ai_client_token_usage",
            &[("gen_ai_token_type", "input")],
            true
        ),
        input as f64
    );
    assert_eq!(
        total(
            &m,
            "gen_ai_client_token_usage",
            &[("gen_ai_token_type", "output")],
            true
        ),
        output as f64
    );
    let cost: f64 = records.iter().map(|r| r.cost_nanos as f64 / 1e9).sum();
    assert!((total(&m, "sluice_cost_usd", &[], false) - cost).abs() < 1e-9);
    let attempts: u32 = records.iter().map(|r| r.attempts).sum();
    assert_eq!(
        count(&m, "sluice_upstream_attempts", &[]),
        f64::from(attempts)
    );

    // The usage writer: every record reached the store.
    h.server.state.usage.flush().await;
    let m = scrape(&h).await;
    assert_eq!(
        count(
            &m,
            "sluice_usage_records",
            &[("sink", "store"), ("result", "written")]
        ),
        8.0
    );
    assert_eq!(count(&m, "sluice_usage_queue_depth", &[]), 0.0);
    assert!(count(&m, "sluice_usage_batch_size", &[("sink", "store")]) >= 1.0);
    assert_eq!(
        count(&m, "sluice_usage_write_lag_seconds", &[("sink", "store")]),
        8.0
    );
    assert!(count(&m, "sluice_store_query_seconds", &[("op", "insert_usage")]) >= 1.0);
    // Every metric the Grafana dashboard queries is a family of this exposition.
    let text = metrics_text(&h).await;
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/grafana/sluice.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut queried = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let names = expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|t| t.starts_with("sluice_") || t.starts_with("gen_ai_"))
                // Label names (`by (sluice_provider)`) are not metric names.
                .filter(|t| !text.contains(&format!("{t}=\"")));
            for name in names {
                let family = ["_bucket", "_sum", "_count", "_total"]
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix))
                    .unwrap_or(name);
                assert!(
                    text.contains(&format!("# TYPE {family} ")),
                    "the dashboard queries {name}, which /metrics does not have"
                );
                assert!(
                    text.lines().any(|l| l.starts_with(&format!("{name}{{"))
                        || l.starts_with(&format!("{name} "))),
                    "the dashboard queries {name}, which has no sample after this traffic"
                );
                queried += 1;
            }
        }
    }
    assert!(queried >= 15, "{queried}");
    // No key, user, IP or request-id labels by default.
    for family in m.families.values() {
        for name in family.get_label_names() {
            assert!(
                !["key_id", "user", "user_id", "ip", "client_ip", "request_id"]
                    .contains(&name.as_str()),
                "{} has label {name}",
                family.family_name
            );
        }
    }
}

#[tokio::test]
async fn thousands_of_unknown_models_and_keys_make_a_handful_of_series() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let keys: Vec<String> = (0..300).map(|i| format!("sk-card-{i:04}")).collect();
    let yaml = format!(
        "listen: 127.0.0.1:0
api-keys: [{keys}]
metrics: {{per-key: true, per-key-limit: 5}}
providers:
  - {{name: p, kind: openai-compatible, base-url: '{base}', api-keys: [k], models: [{{name: m}}]}}
",
        keys = keys.join(", "),
        base = mock.base_url()
    );
    let h = Harness::from_yaml(mock, &yaml).await;
    let url = h.url("/v1/chat/completions");
    let sent = futures_util::future::join_all((0..16).map(|worker| {
        let (http, url, keys) = (h.http.clone(), url.clone(), keys.clone());
        async move {
            for i in (worker..2000).step_by(16) {
                let resp = http
                    .post(&url)
                    .bearer_auth(&keys[i % keys.len()])
                    .json(&json!({"model": format!("junk-model-{i}"), "messages": user("hi")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 404);
            }
        }
    }));
    sent.await;
    let m = scrape(&h).await;
    assert_eq!(count(&m, "sluice_requests", &[]), 2000.0);
    // Five keys of their own plus `other`; one model label, `other`.
    assert_eq!(series(&m, "sluice_requests"), 6);
    // Each key sent 6 or 7 requests: all but the five capped keys' went to `other`.
    assert!(
        count(
            &m,
            "sluice_requests",
            &[("gen_ai_request_model", "other"), ("key_id", "other")]
        ) >= 2000.0 - 35.0
    );
    assert!(count(&m, "sluice_metrics_series_dropped", &[("cap", "per_key")]) > 1900.0);
    let text = metrics_text(&h).await;
    assert!(text.len() < 64 * 1024, "{} bytes", text.len());
    assert!(!text.contains("junk-model-"));
    assert!(!text.contains("sk-card-"), "a key itself became a label");
}

#[tokio::test]
async fn remote_scrapers_need_the_bearer_token_and_metrics_can_move_or_go() {
    // Through a proxy (X-Forwarded-For on a loopback connection) the scraper is not local.
    let h = gateway("").await;
    let remote = |h: &Harness| {
        h.http
            .get(h.url("/metrics"))
            .header("x-forwarded-for", "203.0.113.9")
    };
    assert_eq!(remote(&h).send().await.unwrap().status(), 403);
    let h = gateway("metrics: {bearer-token: scrape-secret}").await;
    assert_eq!(remote(&h).send().await.unwrap().status(), 401);
    let wrong = remote(&h).bearer_auth("nope").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(!wrong.text().await.unwrap().contains("scrape-secret"));
    let right = remote(&h)
        .bearer_auth("scrape-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);

    // `metrics.listen`: served there, not on the main listener.
    let h = gateway("metrics: {listen: '127.0.0.1:0'}").await;
    let addr = h.server.metrics_addr.expect("metrics listener");
    let there = h
        .http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(there.status(), 200);
    assert!(there.text().await.unwrap().contains("sluice_build_info"));
    assert_eq!(
        h.http.get(h.url("/metrics")).send().await.unwrap().status(),
        404
    );

    // Off: nothing served.
    let h = gateway("metrics: {enabled: false}").await;
    assert_eq!(
        h.http.get(h.url("/metrics")).send().await.unwrap().status(),
        404
    );
}
