//! Upstream transport: proxies (HTTP with Basic credentials, SOCKS5 with username/password,
//! `direct`, per provider and per credential) and the per-provider connect timeout.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use common::*;
use serde_json::json;
use sluice_mock::{MockConfig, MockServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Nothing listens here: only a proxy can make a request to it succeed.
const UNREACHABLE: &str = "http://127.0.0.1:1/v1";

async fn ask(h: &Harness, model: &str) -> reqwest::Response {
    h.chat(json!({"model": model, "messages": user("hi")}))
        .send()
        .await
        .unwrap()
}

/// An HTTP forward proxy stand-in: a fake upstream receives the absolute-form request the
/// client sends to an HTTP proxy, and answers it itself, recording `Proxy-Authorization`.
async fn http_proxy() -> MockServer {
    MockServer::start(MockConfig::default()).await.unwrap()
}

#[tokio::test]
async fn http_proxy_with_credentials_global_and_direct_bypass() {
    let proxy = http_proxy().await;
    let upstream = MockServer::start(MockConfig::default()).await.unwrap();
    let yaml = format!(
        "listen: 127.0.0.1:0
api-keys: [{CLIENT_KEY}]
proxy-url: 'http://proxy-user:proxy-pass@{proxy}'
providers:
  - {{name: via-proxy, kind: openai-compatible, base-url: '{UNREACHABLE}', api-keys: [k1], models: [{{name: proxied}}]}}
  - {{name: straight, kind: openai-compatible, base-url: '{base}', api-keys: [k2], proxy-url: direct, models: [{{name: direct-model}}]}}
",
        proxy = proxy.addr(),
        base = upstream.base_url(),
    );
    let h = Harness::from_yaml(upstream, &yaml).await;
    let resp = ask(&h, "proxied").await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let seen = proxy.requests();
    assert_eq!(seen.len(), 1);
    // "proxy-user:proxy-pass" in Basic auth.
    assert_eq!(
        seen[0].header("proxy-authorization"),
        Some("Basic cHJveHktdXNlcjpwcm94eS1wYXNz")
    );
    assert_eq!(seen[0].header("authorization"), Some("Bearer k1"));

    assert_eq!(ask(&h, "direct-model").await.status(), 200);
    assert_eq!(
        proxy.requests().len(),
        1,
        "`direct` bypasses the global proxy"
    );
    assert_eq!(h.mock.requests_with_key("k2"), 1);
}

#[tokio::test]
async fn a_credential_can_have_its_own_proxy() {
    let proxy = http_proxy().await;
    let upstream = MockServer::start(MockConfig::default()).await.unwrap();
    let yaml = format!(
        "listen: 127.0.0.1:0
api-keys: [{CLIENT_KEY}]
providers:
  - name: p
    kind: openai-compatible
    base-url: '{base}'
    api-keys: [plain-key]
    credentials: [{{api-key: proxied-key, proxy-url: 'http://{proxy}'}}]
    models: [{{name: m}}]
",
        proxy = proxy.addr(),
        base = upstream.base_url(),
    );
    let h = Harness::from_yaml(upstream, &yaml).await;
    for _ in 0..4 {
        assert_eq!(ask(&h, "m").await.status(), 200);
    }
    assert_eq!(h.mock.requests_with_key("plain-key"), 2);
    assert_eq!(h.mock.requests_with_key("proxied-key"), 0);
    assert_eq!(proxy.requests_with_key("proxied-key"), 2);
    assert_eq!(proxy.requests_with_key("plain-key"), 0);
}

/// What the SOCKS5 proxy saw: the username/password and the target of each connection.
#[derive(Debug, Default, Clone)]
struct SocksLog(Arc<Mutex<Vec<(String, String, SocketAddr)>>>);

/// A minimal SOCKS5 proxy (RFC 1928 CONNECT with RFC 1929 username/password, IPv4 targets),
/// enough to check that traffic and credentials go through it.
async fn socks5_proxy() -> (SocketAddr, SocksLog) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = SocksLog::default();
    let seen = log.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let _ = socks5_session(client, seen).await;
            });
        }
    });
    (addr, log)
}

async fn socks5_session(mut client: TcpStream, log: SocksLog) -> std::io::Result<()> {
    let mut head = [0u8; 2];
    client.read_exact(&mut head).await?;
    let mut methods = vec![0u8; head[1] as usize];
    client.read_exact(&mut methods).await?;
    assert!(methods.contains(&2), "client offers username/password");
    client.write_all(&[5, 2]).await?;
    let mut version = [0u8; 1];
    client.read_exact(&mut version).await?;
    let user = read_field(&mut client).await?;
    let pass = read_field(&mut client).await?;
    client.write_all(&[1, 0]).await?;
    let mut request = [0u8; 4];
    client.read_exact(&mut request).await?;
    assert_eq!(request[3], 1, "an IPv4 target");
    let mut ip = [0u8; 4];
    client.read_exact(&mut ip).await?;
    let port = client.read_u16().await?;
    let target = SocketAddr::from((ip, port));
    log.0.lock().unwrap().push((user, pass, target));
    let mut upstream = TcpStream::connect(target).await?;
    client.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

async fn read_field(stream: &mut TcpStream) -> std::io::Result<String> {
    let len = stream.read_u8().await?;
    let mut field = vec![0u8; len as usize];
    stream.read_exact(&mut field).await?;
    Ok(String::from_utf8_lossy(&field).into_owned())
}

#[tokio::test]
async fn socks5_proxy_with_credentials_per_provider() {
    let (socks, log) = socks5_proxy().await;
    let upstream = MockServer::start(MockConfig::default()).await.unwrap();
    let yaml = format!(
        "listen: 127.0.0.1:0
api-keys: [{CLIENT_KEY}]
providers:
  - {{name: p, kind: openai-compatible, base-url: '{base}', api-keys: [k], proxy-url: 'socks5://sock-user:sock-pass@{socks}', models: [{{name: m}}]}}
",
        base = upstream.base_url(),
    );
    let h = Harness::from_yaml(upstream, &yaml).await;
    let resp = ask(&h, "m").await;
    assert_eq!(resp.status(), 200);
    let seen = log.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "one pooled connection through the proxy");
    assert_eq!(
        (seen[0].0.as_str(), seen[0].1.as_str(), seen[0].2),
        ("sock-user", "sock-pass", h.mock.addr())
    );
    assert_eq!(h.mock.requests_with_key("k"), 1);
}

/// A listener that never accepts, with its accept queue full: a new connection attempt gets
/// no answer at all (the kernel drops its SYN), as with an unresponsive host.
fn black_hole() -> (std::net::TcpListener, Vec<std::net::TcpStream>, SocketAddr) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    socket.listen(0).unwrap();
    let listener: std::net::TcpListener = socket.into();
    let addr = listener.local_addr().unwrap();
    let mut queued = Vec::new();
    for _ in 0..3 {
        if let Ok(stream) =
            std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(200))
        {
            queued.push(stream);
        }
    }
    (listener, queued, addr)
}

#[tokio::test]
async fn connect_timeout_is_per_provider_and_fails_over() {
    let (_listener, _queued, hole) = black_hole();
    let upstream = MockServer::start(MockConfig::default()).await.unwrap();
    // Global timeouts that would outlast the test client: only the provider's own connect
    // timeout can end the first attempt.
    let yaml = format!(
        "listen: 127.0.0.1:0
api-keys: [{CLIENT_KEY}]
timeouts: {{connect: 1h, first-byte: 1h}}
providers:
  - {{name: unresponsive, kind: openai-compatible, base-url: 'http://{hole}/v1', api-keys: [k1], priority: 1, timeouts: {{connect: 200ms}}, models: [{{name: m}}]}}
  - {{name: healthy, kind: openai-compatible, base-url: '{base}', api-keys: [k2], models: [{{name: m}}]}}
",
        base = upstream.base_url(),
    );
    let h = Harness::from_yaml(upstream, &yaml).await;
    let resp = ask(&h, "m").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-sluice-provider"], "healthy");
    let record = &h.records().await[0];
    assert_eq!(record.failed_attempts.len(), 1);
    assert_eq!(record.failed_attempts[0].credential, "unresponsive#0");
    assert_eq!(record.failed_attempts[0].error, "upstream_connect_timeout");
}

#[tokio::test]
async fn an_unreachable_proxy_fails_without_revealing_its_credentials() {
    let upstream = MockServer::start(MockConfig::default()).await.unwrap();
    let yaml = format!(
        "listen: 127.0.0.1:0
api-keys: [{CLIENT_KEY}]
providers:
  - {{name: p, kind: openai-compatible, base-url: '{base}', api-keys: [k], proxy-url: 'http://proxy-user:hunter2-secret@127.0.0.1:1', models: [{{name: m}}]}}
",
        base = upstream.base_url(),
    );
    let h = Harness::from_yaml(upstream, &yaml).await;
    let resp = ask(&h, "m").await;
    assert_eq!(resp.status(), 502);
    let text = resp.text().await.unwrap();
    assert!(text.contains("`p`"), "{text}");
    assert!(!text.contains("hunter2"), "proxy password leaked: {text}");
    assert!(h.mock.requests().is_empty(), "no way around the proxy");
    let status = h
        .http
        .get(h.url("/v0/management/credentials"))
        .header("x-management-key", MGMT_KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!status.contains("hunter2"), "{status}");
}
