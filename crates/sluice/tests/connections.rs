//! Client connection limits (`connections:`, issue 9 item 6), against a real server on a real
//! port with raw sockets: idle sockets, request heads sent a byte at a time and stalled bodies
//! are closed within their timeouts while other clients keep being served, and the
//! connection cap holds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LIMITS: &str = "connections:
  header-read-timeout: 1s
  body-read-timeout: 1500ms
  idle-timeout: 2s
";

/// Reads until the server closes the connection (or `within` passes: then panics); returns
/// what was read and when the close came.
async fn read_until_closed(mut socket: TcpStream, within: Duration) -> (String, Instant) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, socket.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return (String::from_utf8_lossy(&got).into(), Instant::now()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "connection still open after {within:?}; read so far: {}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
}

/// A request head with a `Content-Length` of 1000 and only the first bytes of its body.
fn stalled_upload(path: &str, extra_headers: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         content-length: 1000\r\n{extra_headers}\r\n{{\"model\": \"mock-model\","
    )
}

fn status_and_json(response: &str) -> (u16, Value) {
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {response:?}"));
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn slow_clients_are_closed_in_time_while_others_are_served() {
    let h = Harness::with_config(LIMITS, "").await;
    let addr = h.server.addr;
    let begun = Instant::now();

    // Idle sockets that never send a byte: the first request head is owed within 1 s.
    let idle: Vec<_> = (0..30)
        .map(|_| {
            tokio::spawn(async move {
                let socket = TcpStream::connect(addr).await.unwrap();
                let opened = Instant::now();
                let (got, closed) = read_until_closed(socket, Duration::from_secs(4)).await;
                assert!(got.is_empty(), "an idle socket got {got:?}");
                closed - opened
            })
        })
        .collect();

    // Request heads trickled a byte every 300 ms: each byte arrives in time, the head never.
    let trickle: Vec<_> = (0..10)
        .map(|_| {
            tokio::spawn(async move {
                let socket = TcpStream::connect(addr).await.unwrap();
                let opened = Instant::now();
                let (mut reader, mut writer) = socket.into_split();
                let writing = tokio::spawn(async move {
                    for byte in b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: yes\r\n" {
                        if writer.write_all(&[*byte]).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                });
                let mut buf = [0u8; 256];
                let n = tokio::time::timeout(Duration::from_secs(4), reader.read(&mut buf))
                    .await
                    .expect("a trickled head was not closed in time")
                    .unwrap_or(0);
                writing.abort();
                assert_eq!(n, 0, "answered a head that never ended");
                opened.elapsed()
            })
        })
        .collect();

    // Stalled uploads on a proxy route of each dialect family, and on the sign-in route.
    let stalled: Vec<_> = [
        (
            "/v1/chat/completions",
            format!("authorization: Bearer {CLIENT_KEY}\r\n"),
        ),
        ("/v1/messages", format!("x-api-key: {CLIENT_KEY}\r\n")),
        ("/api/auth/login", String::new()),
    ]
    .into_iter()
    .flat_map(|route| std::iter::repeat_n(route, 4))
    .map(|(path, auth)| {
        tokio::spawn(async move {
            let mut socket = TcpStream::connect(addr).await.unwrap();
            let opened = Instant::now();
            socket
                .write_all(stalled_upload(path, &auth).as_bytes())
                .await
                .unwrap();
            let (got, closed) = read_until_closed(socket, Duration::from_secs(5)).await;
            (path, got, closed - opened)
        })
    })
    .collect();

    // Meanwhile other clients are served, promptly.
    let mut served = 0;
    while begun.elapsed() < Duration::from_millis(2500) {
        let sent = Instant::now();
        let resp = h
            .chat(json!({"model": "mock-model", "messages": user("hi")}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert!(
            sent.elapsed() < Duration::from_millis(500),
            "a normal client waited {:?}",
            sent.elapsed()
        );
        served += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served >= 10, "only {served} requests served");

    for task in idle {
        let lived = task.await.unwrap();
        assert!(
            lived >= Duration::from_millis(900) && lived < Duration::from_millis(2500),
            "idle socket lived {lived:?} (header-read-timeout 1s)"
        );
    }
    for task in trickle {
        let lived = task.await.unwrap();
        assert!(
            lived >= Duration::from_millis(900) && lived < Duration::from_millis(2500),
            "trickling socket lived {lived:?} (header-read-timeout 1s)"
        );
    }
    for task in stalled {
        let (path, got, lived) = task.await.unwrap();
        assert!(
            lived >= Duration::from_millis(1400) && lived < Duration::from_secs(3),
            "{path}: stalled upload lived {lived:?} (body-read-timeout 1.5s)"
        );
        let (status, body) = status_and_json(&got);
        assert_eq!(status, 408, "{path}: {got}");
        assert!(
            got.to_ascii_lowercase().contains("connection: close"),
            "{got}"
        );
        match path {
            "/v1/chat/completions" => {
                assert_eq!(body["error"]["code"], "request_timeout", "{body}");
            }
            "/v1/messages" => {
                assert_eq!(body["type"], "error", "{body}");
                assert!(body["error"]["type"].is_string(), "{body}");
            }
            _ => assert_eq!(body["code"], 408, "{body}"),
        }
    }
    // Every stalled request that reached the proxy pipeline has exactly one record.
    let records = h.records().await;
    let timed_out: Vec<_> = records.iter().filter(|r| r.status == 408).collect();
    assert_eq!(timed_out.len(), 8, "{records:#?}");
    assert!(begun.elapsed() < Duration::from_secs(8));
}

#[tokio::test]
async fn kept_alive_connections_close_after_the_idle_timeout() {
    let h = Harness::with_config(LIMITS, "").await;
    let mut socket = TcpStream::connect(h.server.addr).await.unwrap();
    let request = b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n";
    let mut buf = [0u8; 1024];
    socket.write_all(request).await.unwrap();
    let n = socket.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Idle longer than header-read-timeout (1s) but within idle-timeout (2s): still served.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    socket.write_all(request).await.unwrap();
    let n = socket.read(&mut buf).await.unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    let idle_from = Instant::now();
    let (got, closed) = read_until_closed(socket, Duration::from_secs(4)).await;
    assert!(got.is_empty());
    let idle = closed - idle_from;
    assert!(
        idle >= Duration::from_millis(1900) && idle < Duration::from_millis(3000),
        "closed after {idle:?} idle (idle-timeout 2s)"
    );

    // HTTP/2 with prior knowledge still works on the same port.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = h2
        .post(h.url("/v1/chat/completions"))
        .bearer_auth(CLIENT_KEY)
        .json(&json!({"model": "mock-model", "messages": user("hi")}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
}

async fn healthz_on(socket: &mut TcpStream, within: Duration) -> Option<String> {
    socket
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    match tokio::time::timeout(within, socket.read(&mut buf)).await {
        Ok(Ok(n)) if n > 0 => Some(String::from_utf8_lossy(&buf[..n]).into()),
        Ok(_) => Some(String::new()),
        Err(_) => None,
    }
}

#[tokio::test]
async fn the_connection_cap_holds() {
    let h = Harness::with_config("connections: {max: 4, header-read-timeout: 10s}\n", "").await;
    let addr: SocketAddr = h.server.addr;
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        // Served: each of these connections was accepted.
        let answer = healthz_on(&mut socket, Duration::from_secs(2)).await;
        assert!(answer.unwrap().starts_with("HTTP/1.1 200"));
        held.push(socket);
    }
    // A fifth connection waits in the backlog: its request is not read.
    let mut fifth = TcpStream::connect(addr).await.unwrap();
    assert_eq!(
        healthz_on(&mut fifth, Duration::from_millis(1000)).await,
        None,
        "a connection past the cap was served"
    );
    // One held connection closes: the fifth is accepted and answered.
    drop(held.pop());
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(2), fifth.read(&mut buf))
        .await
        .expect("the waiting connection was not accepted when a slot freed")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}

#[test]
fn connection_limits_are_validated() {
    for (yaml, key) in [
        ("connections: {max: 0}", "connections.max"),
        (
            "connections: {header-read-timeout: 0s}",
            "connections.header-read-timeout",
        ),
        (
            "connections: {body-read-timeout: 0s}",
            "connections.body-read-timeout",
        ),
        (
            "connections: {idle-timeout: 0s}",
            "connections.idle-timeout",
        ),
    ] {
        let errors = sluice::config::Config::from_yaml(yaml, |_| None).unwrap_err();
        assert!(errors.iter().any(|e| e.key == key), "{yaml}: {errors:?}");
    }
    let config = sluice::config::Config::from_yaml("{}", |_| None).unwrap();
    assert_eq!(config.connections.max, 10_000);
    assert_eq!(
        config.connections.header_read_timeout,
        Duration::from_secs(30)
    );
}
