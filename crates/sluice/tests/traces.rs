//! OpenTelemetry traces (issue 12): the real binary, configured by the standard `OTEL_*`
//! variables, exports over OTLP/HTTP (protobuf) to a collector in this test; the spans of a
//! translated, failed-over streaming request form the expected tree, the `traceparent` each
//! upstream attempt carried is that attempt's span, a client's trace is continued, and no
//! prompt or completion text is in any span by default.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::CLIENT_KEY;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as SpanStatus;
use prost::Message;
use serde_json::json;
use sluice_mock::{MockConfig, MockServer};

/// Words that must never reach a span: the prompt (which the mock also echoes in its answer).
const SECRET_PROMPT: &str = "purple-elephant-secret-prompt";

/// What the collector received.
#[derive(Default)]
struct Received {
    spans: Vec<Span>,
    /// `service.name` of every resource.
    services: Vec<String>,
    /// The `x-collector-key` header of every export.
    keys: Vec<String>,
    content_types: Vec<String>,
}

type Shared = Arc<Mutex<Received>>;

async fn export(State(received): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let request = ExportTraceServiceRequest::decode(body).unwrap();
    let mut received = received.lock().unwrap();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    received.keys.push(header("x-collector-key"));
    received.content_types.push(header("content-type"));
    for resource_spans in request.resource_spans {
        if let Some(resource) = &resource_spans.resource {
            received
                .services
                .push(text(attr(&resource.attributes, "service.name")));
        }
        for scope in resource_spans.scope_spans {
            received.spans.extend(scope.spans);
        }
    }
    let _ = ExportTraceServiceResponse::default().encode_to_vec();
    StatusCode::OK
}

/// An OTLP/HTTP collector on an ephemeral port.
async fn collector() -> (String, Shared) {
    let received = Shared::default();
    let app = axum::Router::new()
        .route("/v1/traces", post(export))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), received)
}

fn attr<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
}

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn get(span: &Span, key: &str) -> String {
    text(attr(&span.attributes, key))
}

fn int(span: &Span, key: &str) -> i64 {
    match attr(&span.attributes, key).and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::IntValue(i)) => *i,
        other => panic!("{key} of {} is {other:?}", span.name),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every string in a span: name, attribute values, event names and attributes.
fn strings(span: &Span) -> Vec<String> {
    let mut out = vec![span.name.clone()];
    out.extend(span.attributes.iter().map(|kv| text(kv.value.as_ref())));
    for event in &span.events {
        out.push(event.name.clone());
        out.extend(event.attributes.iter().map(|kv| text(kv.value.as_ref())));
    }
    out
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The binary serving `yaml` with `env`, once it is ready.
async fn start(
    yaml: &str,
    env: &[(&str, String)],
) -> (tokio::process::Child, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("sluice.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{port}\ndata-dir: {}\n{yaml}",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"));
    command
        .args(["serve", "--config"])
        .arg(&config)
        .env_remove("RUST_LOG")
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    for var in [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        "OTEL_SERVICE_NAME",
        "OTEL_TRACES_SAMPLER",
        "OTEL_TRACES_SAMPLER_ARG",
        "OTEL_SDK_DISABLED",
        "OTEL_TRACES_EXPORTER",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        command.env_remove(var);
    }
    for (k, v) in env {
        command.env(k, v);
    }
    let child = command.spawn().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for _ in 0..400 {
        if http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return (child, base, dir);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("sluice did not become ready");
}

/// SIGTERM, then the exit status (the batched spans are flushed on the way out).
async fn stop(mut child: tokio::process::Child) -> std::process::ExitStatus {
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("sluice did not exit after SIGTERM")
        .unwrap()
}

/// A provider speaking Anthropic's dialect with two keys, the first failing with 500: an
/// OpenAI Chat request through it is translated and fails over to the second key.
fn providers(mock: &MockServer) -> String {
    format!(
        "api-keys: [{CLIENT_KEY}]
shutdown-grace-period: 2s
routing: {{strategy: fill-first}}
providers:
  - name: claude
    kind: anthropic
    base-url: 'http://{}'
    api-keys: [key-faulted, key-good]
    models: [{{name: claude-mock, alias: gpt-traced}}]
",
        mock.addr()
    )
}

async fn stream_chat(base: &str, headers: &[(&str, &str)]) -> (String, String) {
    let mut request = reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(CLIENT_KEY)
        .json(&json!({
            "model": "gpt-traced",
            "stream": true,
            "messages": [{"role": "user", "content": format!("say {SECRET_PROMPT}")}],
        }));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let attempts = response.headers()["x-sluice-attempts"]
        .to_str()
        .unwrap()
        .to_string();
    let body = response.text().await.unwrap();
    assert!(
        body.contains(SECRET_PROMPT),
        "the mock echoes the prompt: {body}"
    );
    assert!(body.contains("[DONE]"));
    (request_id, attempts)
}

#[tokio::test]
async fn a_translated_failed_over_stream_exports_its_span_tree_and_propagates_traceparent() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    mock.faults().set_for_key("key-faulted", "status=500");
    let (endpoint, received) = collector().await;
    let (child, base, _dir) = start(
        &providers(&mock),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-collector-key=k%3D1".into()),
            ("OTEL_SERVICE_NAME", "sluice-under-test".into()),
            // Nothing is exported on a timer during the test: every span arrives through the
            // flush on shutdown.
            ("OTEL_BSP_SCHEDULE_DELAY", "600000".into()),
        ],
    )
    .await;

    let (request_id, attempts) = stream_chat(&base, &[]).await;
    assert_eq!(attempts, "2", "the first key failed, the second served");
    let client_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let (continued_id, _) = stream_chat(
        &base,
        &[(
            "traceparent",
            &format!("00-{client_trace}-{client_span}-01"),
        )],
    )
    .await;
    let upstream = mock.requests();
    assert!(
        received.lock().unwrap().spans.is_empty(),
        "batched until shutdown"
    );

    assert!(stop(child).await.success());
    let received = received.lock().unwrap();
    assert!(received.services.iter().all(|s| s == "sluice-under-test"));
    assert!(
        received.keys.iter().all(|k| k == "k=1"),
        "{:?}",
        received.keys
    );
    assert!(
        received
            .content_types
            .iter()
            .all(|c| c == "application/x-protobuf")
    );
    let spans = &received.spans;

    // The first request: one server span, its phases, one client span per attempt.
    let server = spans
        .iter()
        .find(|s| s.kind == SpanKind::Server as i32 && get(s, "sluice.request.id") == request_id)
        .unwrap_or_else(|| panic!("no server span for {request_id}"));
    assert_eq!(server.name, "POST /v1/chat/completions");
    assert!(server.parent_span_id.is_empty(), "a root span");
    for (key, want) in [
        ("http.request.method", "POST"),
        ("http.route", "/v1/chat/completions"),
        ("http.response.status_code", "200"),
        ("gen_ai.operation.name", "chat"),
        ("gen_ai.request.model", "gpt-traced"),
        ("gen_ai.response.model", "claude-mock"),
        ("gen_ai.provider.name", "anthropic"),
        ("sluice.provider", "claude"),
        ("sluice.credential", "claude#1"),
        ("sluice.attempts", "2"),
        ("sluice.stream", "true"),
        ("sluice.dialect", "openai_chat"),
    ] {
        assert_eq!(get(server, key), want, "{key}");
    }
    assert!(int(server, "gen_ai.usage.input_tokens") > 0);
    assert!(int(server, "gen_ai.usage.output_tokens") > 0);
    assert!(attr(&server.attributes, "error.type").is_none());
    let trace = server.trace_id.clone();
    let children: Vec<&Span> = spans
        .iter()
        .filter(|s| s.trace_id == trace && s.parent_span_id == server.span_id)
        .collect();
    let names: Vec<&str> = children.iter().map(|s| s.name.as_str()).collect();
    for phase in ["authenticate", "admit", "route", "relay"] {
        assert_eq!(
            names.iter().filter(|n| **n == phase).count(),
            1,
            "{phase} in {names:?}"
        );
    }
    assert_eq!(
        names.iter().filter(|n| **n == "translate_request").count(),
        2,
        "one translation per attempt: {names:?}"
    );
    let mut attempts: Vec<&Span> = children
        .iter()
        .copied()
        .filter(|s| s.kind == SpanKind::Client as i32)
        .collect();
    attempts.sort_by_key(|s| s.start_time_unix_nano);
    assert_eq!(attempts.len(), 2, "{names:?}");
    let (failed, served) = (attempts[0], attempts[1]);
    for attempt in [failed, served] {
        assert_eq!(attempt.name, "chat claude-mock");
        assert_eq!(get(attempt, "gen_ai.provider.name"), "anthropic");
        assert_eq!(get(attempt, "gen_ai.request.model"), "claude-mock");
        assert_eq!(get(attempt, "server.address"), "127.0.0.1");
        assert_eq!(get(attempt, "sluice.provider"), "claude");
    }
    assert_eq!(get(failed, "sluice.credential"), "claude#0");
    assert_eq!(get(failed, "http.response.status_code"), "500");
    assert_eq!(get(failed, "error.type"), "500");
    assert_eq!(get(failed, "sluice.failover.reason"), "5xx");
    assert_eq!(
        failed.status.as_ref().map(|s| s.code),
        Some(SpanStatus::Error as i32)
    );
    assert_eq!(get(served, "sluice.credential"), "claude#1");
    assert_eq!(get(served, "http.response.status_code"), "200");
    assert!(attr(&served.attributes, "error.type").is_none());
    assert!(attr(&served.attributes, "sluice.failover.reason").is_none());

    // Each upstream request carried its own attempt's context.
    let sent: Vec<&str> = upstream
        .iter()
        .filter_map(|r| r.header("traceparent"))
        .collect();
    assert_eq!(upstream.len(), 4, "two requests, two attempts each");
    assert_eq!(sent.len(), 4, "every attempt sends traceparent");
    for (i, attempt) in [failed, served].iter().enumerate() {
        let want = format!("00-{}-{}-01", hex(&trace), hex(&attempt.span_id));
        assert_eq!(sent[i], want, "attempt {i}");
        let key = upstream[i].header("x-api-key").unwrap();
        assert_eq!(key, ["key-faulted", "key-good"][i]);
    }

    // The second request continued the client's trace.
    let continued = spans
        .iter()
        .find(|s| s.kind == SpanKind::Server as i32 && get(s, "sluice.request.id") == continued_id)
        .unwrap();
    assert_eq!(hex(&continued.trace_id), client_trace);
    assert_eq!(hex(&continued.parent_span_id), client_span);
    assert!(sent[2].starts_with(&format!("00-{client_trace}-")));
    assert!(
        spans
            .iter()
            .filter(|s| s.trace_id == continued.trace_id && s.kind == SpanKind::Client as i32)
            .all(|s| s.parent_span_id == continued.span_id)
    );

    // Names, counts and timings; never the conversation, never a key.
    for span in spans {
        for value in strings(span) {
            for secret in [SECRET_PROMPT, "key-faulted", "key-good", CLIENT_KEY] {
                assert!(
                    !value.contains(secret),
                    "{secret} in {}: {value}",
                    span.name
                );
            }
        }
    }
}

#[tokio::test]
async fn record_content_puts_the_conversation_in_the_server_span_only_when_switched_on() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let (endpoint, received) = collector().await;
    let yaml = format!(
        "{}tracing:\n  enabled: true\n  endpoint: {endpoint}\n  service-name: from-config\n  record-content: true\n",
        providers(&mock)
    );
    let (child, base, _dir) = start(&yaml, &[("OTEL_BSP_SCHEDULE_DELAY", "100".into())]).await;
    let (request_id, _) = stream_chat(&base, &[]).await;
    // Exported on the timer, without waiting for shutdown.
    let mut found = None;
    for _ in 0..100 {
        found = received
            .lock()
            .unwrap()
            .spans
            .iter()
            .find(|s| get(s, "sluice.request.id") == request_id)
            .cloned();
        if found.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let server = found.expect("the span was exported while the gateway runs");
    assert!(
        received
            .lock()
            .unwrap()
            .services
            .iter()
            .all(|s| s == "from-config")
    );
    assert!(get(&server, "sluice.request.body").contains(SECRET_PROMPT));
    assert!(get(&server, "sluice.response.body").contains(SECRET_PROMPT));
    assert!(stop(child).await.success());
}

#[tokio::test]
async fn tracing_off_sends_no_traceparent_and_exports_nothing() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let (endpoint, received) = collector().await;
    // The config names a collector but leaves tracing off; `OTEL_SDK_DISABLED` would win anyway.
    let yaml = format!("{}tracing:\n  endpoint: {endpoint}\n", providers(&mock));
    let (child, base, _dir) = start(&yaml, &[]).await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    stream_chat(&base, &[("traceparent", traceparent)]).await;
    assert!(stop(child).await.success());
    assert!(received.lock().unwrap().spans.is_empty());
    let headers: HashMap<String, String> = mock
        .requests()
        .iter()
        .flat_map(|r| r.headers.clone())
        .collect();
    assert!(!headers.contains_key("traceparent"), "{headers:?}");
}
