//! Graceful shutdown: in-flight streams finish, new connections are refused, usage is flushed;
//! past the grace period open streams end with an error event.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn in_flight_stream_finishes_during_shutdown() {
    let h = Harness::start().await;
    let resp = h
        .chat(json!({"model": "mock-model", "messages": user("mock:chunk_delay_ms=50 mock:words=10"), "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    h.server.shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ready = h.http.get(h.url("/readyz")).send().await;
    if let Ok(ready) = ready {
        assert_eq!(
            ready.status(),
            503,
            "a draining server must not report ready"
        );
    }
    let body = resp.text().await.unwrap();
    assert_eq!(
        sse_data(&body).last().map(String::as_str),
        Some("[DONE]"),
        "stream was cut: {body}"
    );

    let Harness { server, usage, .. } = h;
    let addr = server.addr;
    tokio::time::timeout(Duration::from_secs(10), server.wait())
        .await
        .unwrap()
        .unwrap();
    let records = usage.records();
    assert_eq!(records.len(), 1, "usage was not flushed");
    assert_eq!(
        (records[0].status, records[0].error.as_deref()),
        (200, None)
    );
    assert!(records[0].usage.output_tokens > 0);
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
}

#[tokio::test]
async fn streams_past_the_grace_period_end_with_an_error_event() {
    let mock = sluice_mock::MockServer::start(Default::default())
        .await
        .unwrap();
    let yaml = config_yaml(&mock, "", "")
        .replace("shutdown-grace-period: 5s", "shutdown-grace-period: 300ms");
    let h = Harness::from_yaml(mock, &yaml).await;
    let resp = h
        .chat(json!({"model": "mock-model", "messages": user("mock:chunk_delay_ms=100 mock:words=100"), "stream": true}))
        .send()
        .await
        .unwrap();
    h.server.shutdown();
    let body = tokio::time::timeout(Duration::from_secs(10), resp.text())
        .await
        .unwrap()
        .unwrap();
    let last: Value = serde_json::from_str(sse_data(&body).last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "shutdown");
    let Harness { server, usage, .. } = h;
    tokio::time::timeout(Duration::from_secs(10), server.wait())
        .await
        .unwrap()
        .unwrap();
    let records = usage.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].error.as_deref(), Some("shutdown"));
}
