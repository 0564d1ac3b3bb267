#![allow(clippy::unwrap_used)]
use super::*;

fn done<'a>(model: Option<&'a str>, key: Option<&'a str>) -> RequestDone<'a> {
    RequestDone {
        route: "/v1/chat/completions",
        dialect: "openai_chat",
        operation: "chat",
        provider: Some("mock"),
        platform: Some("openai"),
        model,
        status: 200,
        error: None,
        stream: true,
        duration: Duration::from_millis(120),
        ttft: Some(Duration::from_millis(20)),
        tokens: Tokens {
            input: 10,
            output: 11,
            ..Tokens::default()
        },
        cost_usd: 0.5,
        estimated: false,
        key_id: key,
        attempts: vec![],
        overhead: Overhead::default(),
        cooldowns: &[],
    }
}

fn build() -> Build {
    Build {
        version: "1.2.3",
        commit: "abc",
    }
}

#[test]
fn unknown_models_and_keys_stay_bounded() {
    let t = Telemetry::new(
        Settings {
            per_key: true,
            per_key_limit: 3,
            ..Settings::default()
        },
        build(),
    );
    let keys: Vec<String> = (0..50).map(|i| format!("key-{i}")).collect();
    for key in &keys {
        t.request(&done(None, Some(key)));
    }
    let text = t.encode();
    let series = text
        .lines()
        .filter(|l| l.starts_with("sluice_requests_total{"))
        .count();
    assert_eq!(series, 4, "{text}");
    assert!(text.contains(r#"gen_ai_request_model="other""#));
    assert!(text.contains(r#"sluice_metrics_series_dropped_total{cap="per_key"} 47"#));
    assert!(text.contains(r#"sluice_build_info{version="1.2.3",commit="abc"} 1"#));
    assert!(text.ends_with("# EOF\n"));
}

#[test]
fn a_stream_fills_the_server_histograms() {
    let t = Telemetry::new(Settings::default(), build());
    t.request(&done(Some("gpt"), Some("secret-key-id")));
    let text = t.encode();
    assert!(!text.contains("key_id"), "per-key is off by default");
    assert!(text.contains("gen_ai_server_time_to_first_token_seconds_count{"));
    // (120 ms - 20 ms) / (11 - 1) = 10 ms per token.
    assert!(text.contains("gen_ai_server_time_per_output_token_seconds_sum{"));
    let tpot = text
        .lines()
        .find(|l| l.starts_with("gen_ai_server_time_per_output_token_seconds_sum{"))
        .unwrap();
    let value: f64 = tpot.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((value - 0.01).abs() < 1e-9, "{tpot}");
    assert!(text.contains(r#"gen_ai_token_type="output""#));
    assert!(!text.contains(r#"gen_ai_token_type="reasoning_output""#));
    assert!(text.contains("sluice_cost_usd_total{"));
}

#[test]
fn disabled_records_nothing() {
    let t = Telemetry::disabled();
    t.request(&done(Some("gpt"), None));
    let _held = t.in_flight("/v1/chat/completions");
    assert!(!t.encode().contains("sluice_requests_total{"));
}

#[test]
fn outcomes_and_provider_names() {
    assert_eq!(attempt_outcome(429, Some("rate_limit")), "429");
    assert_eq!(attempt_outcome(504, Some("upstream_timeout")), "timeout");
    assert_eq!(
        attempt_outcome(502, Some("upstream_unavailable")),
        "connect"
    );
    assert_eq!(attempt_outcome(503, None), "5xx");
    assert_eq!(attempt_outcome(401, None), "auth");
    assert_eq!(attempt_outcome(400, None), "4xx");
    assert_eq!(provider_name("claude-console"), "anthropic");
    assert_eq!(provider_name("my-vllm"), "my-vllm");
    assert_eq!(
        server_error_type(200, Some("upstream_stream_broken")).as_deref(),
        Some("stream_broken")
    );
    assert_eq!(
        rejection("gateway_overloaded"),
        Some(("gateway_concurrency", "global"))
    );
}

/// The value of the one sample line starting with `prefix`.
fn sample(text: &str, prefix: &str) -> f64 {
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(prefix)).collect();
    assert_eq!(lines.len(), 1, "{prefix}: {text}");
    lines[0].rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn records_of_one_label_tuple_accumulate_in_the_same_series() {
    let t = Telemetry::new(Settings::default(), build());
    let mut failed = done(Some("gpt"), None);
    failed.status = 502;
    failed.error = Some("upstream_unavailable");
    failed.stream = false;
    failed.tokens = Tokens::default();
    failed.cost_usd = 0.0;
    failed.attempts = vec![Attempt {
        provider: "mock",
        platform: "openai",
        credential: "mock#1",
        model: "gpt",
        status: 502,
        error: Some("upstream_unavailable"),
        duration: Duration::from_millis(3),
        first_chunk: None,
        failed_over: true,
    }];
    for _ in 0..3 {
        t.request(&done(Some("gpt"), None));
        t.request(&failed);
    }
    let text = t.encode();
    assert_eq!(
        sample(
            &text,
            r#"sluice_requests_total{route="/v1/chat/completions",sluice_dialect="openai_chat",sluice_provider="mock",gen_ai_request_model="gpt",status_code="200""#
        ),
        3.0
    );
    assert_eq!(
        sample(
            &text,
            r#"sluice_requests_total{route="/v1/chat/completions",sluice_dialect="openai_chat",sluice_provider="mock",gen_ai_request_model="gpt",status_code="502""#
        ),
        3.0
    );
    assert_eq!(
        sample(
            &text,
            r#"gen_ai_client_token_usage_sum{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt",sluice_dialect="openai_chat",sluice_provider="mock",gen_ai_token_type="output""#
        ),
        33.0
    );
    assert_eq!(sample(&text, "sluice_cost_usd_total{"), 1.5);
    assert_eq!(
        sample(&text, "gen_ai_server_time_to_first_token_seconds_count{"),
        3.0
    );
    assert_eq!(
        sample(
            &text,
            r#"gen_ai_server_request_duration_seconds_count{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt",sluice_dialect="openai_chat",sluice_provider="mock",stream="false",error_type="502"}"#
        ),
        3.0
    );
    assert_eq!(
        sample(
            &text,
            r#"sluice_upstream_attempts_total{sluice_provider="mock",credential="mock#1",outcome="connect"}"#
        ),
        3.0
    );
    assert_eq!(
        sample(
            &text,
            r#"sluice_failovers_total{sluice_provider="mock",reason="connect"}"#
        ),
        3.0
    );
    // Series no request observed stay absent: no reasoning tokens were reported, no attempt
    // relayed a first chunk.
    assert!(
        !text.contains(r#"gen_ai_token_type="reasoning_output""#),
        "{text}"
    );
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("gen_ai_client_operation_time_to_first_chunk_seconds_count"))
            .count(),
        0
    );
}

#[test]
fn overflowing_keys_count_every_observation_as_dropped() {
    let t = Telemetry::new(
        Settings {
            per_key: true,
            per_key_limit: 2,
            ..Settings::default()
        },
        build(),
    );
    for _ in 0..2 {
        for key in ["k1", "k2", "k3", "k4"] {
            t.request(&done(None, Some(key)));
        }
    }
    let text = t.encode();
    assert_eq!(
        sample(
            &text,
            r#"sluice_metrics_series_dropped_total{cap="per_key"}"#
        ),
        4.0
    );
    assert_eq!(
        sample(
            &text,
            r#"sluice_requests_total{route="/v1/chat/completions",sluice_dialect="openai_chat",sluice_provider="mock",gen_ai_request_model="other",status_code="200",stream="true",key_id="other"}"#
        ),
        4.0
    );
}
