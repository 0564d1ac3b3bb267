//! Shared harness: a fake upstream and a real Sluice server on ephemeral ports.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod openmetrics;

use std::time::Duration;

use sluice::config::Config;
use sluice::pipeline::account::{MemorySink, UsageRecord};
use sluice::server::RunningServer;
use sluice::store::testing::TestDatabase;
use sluice_mock::{MockConfig, MockServer};

pub const CLIENT_KEY: &str = "sk-test-client-key";
pub const UPSTREAM_KEY: &str = "upstream-secret-key";
/// The management key of every harness (its bcrypt hash, cost 4, is in the config).
pub const MGMT_KEY: &str = "mgmt-test-key";
pub const MGMT_KEY_HASH: &str = "$2b$04$KuaAEhV2210QIvOQ4dciGOfEby.1NGCSLqAvFplHFUBIW5l1Ax596";

pub struct Harness {
    pub mock: MockServer,
    pub server: RunningServer,
    pub usage: MemorySink,
    pub http: reqwest::Client,
    /// The store's data directory (a fresh temporary one unless the config names one).
    pub data_dir: tempfile::TempDir,
    /// The PostgreSQL database of this test, when the suite runs on PostgreSQL.
    pub store_db: Option<TestDatabase>,
}

/// With `SLUICE_TEST_STORE=postgres` (and `SLUICE_TEST_POSTGRES_URL`), points the config at a
/// fresh PostgreSQL database of this test's own, so the whole suite also runs on PostgreSQL.
pub async fn test_store(config: &mut Config) -> Option<TestDatabase> {
    let server = sluice::store::testing::suite_on_postgres()?;
    if !config.store.is_empty() {
        return None;
    }
    let db = TestDatabase::create(&server).await.unwrap();
    config.store = db.url.clone();
    Some(db)
}

/// Config text for a gateway in front of `mock`; `extra` is appended at the top level and
/// `provider_extra` inside the provider entry.
pub fn config_yaml(mock: &MockServer, extra: &str, provider_extra: &str) -> String {
    format!(
        "listen: 127.0.0.1:0
api-keys: [{CLIENT_KEY}]
shutdown-grace-period: 5s
{extra}
providers:
  - name: mock
    kind: openai-compatible
    base-url: {base}
    api-keys: [{UPSTREAM_KEY}]
    headers: {{X-Custom-Header: custom-value}}
    models:
      - {{name: mock-model, alias: gpt-4o-mini}}
{provider_extra}
  - name: dead
    kind: openai-compatible
    base-url: http://127.0.0.1:1/v1
    api-keys: [dead-provider-secret]
    models: [{{name: dead-model}}]
",
        base = mock.base_url()
    )
}

impl Harness {
    pub async fn start() -> Harness {
        Self::with_config("", "").await
    }

    pub async fn with_config(extra: &str, provider_extra: &str) -> Harness {
        let mock = MockServer::start(MockConfig::default()).await.unwrap();
        let yaml = config_yaml(&mock, extra, provider_extra);
        Self::from_yaml(mock, &yaml).await
    }

    pub async fn from_yaml(mock: MockServer, yaml: &str) -> Harness {
        let with_key;
        let yaml = if yaml.contains("remote-management-key") {
            yaml
        } else {
            with_key = format!("{yaml}\nremote-management-key: '{MGMT_KEY_HASH}'\n");
            with_key.as_str()
        };
        let mut config =
            Config::from_yaml(yaml, |_| None).unwrap_or_else(|e| panic!("config: {e:?}\n{yaml}"));
        let data_dir = tempfile::tempdir().unwrap();
        if !yaml.lines().any(|l| l.starts_with("data-dir:")) {
            config.data_dir = data_dir.path().to_path_buf();
        }
        let store_db = test_store(&mut config).await;
        let usage = MemorySink::default();
        let server = sluice::server::start(config, vec![Box::new(usage.clone())])
            .await
            .unwrap();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        Harness {
            mock,
            server,
            usage,
            http,
            data_dir,
            store_db,
        }
    }

    /// A management API request with the harness's management key.
    pub fn management(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(&format!("/v0/management{path}")))
            .header("x-management-key", MGMT_KEY)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.addr)
    }

    pub fn chat(&self, body: serde_json::Value) -> reqwest::RequestBuilder {
        self.http
            .post(self.url("/v1/chat/completions"))
            .bearer_auth(CLIENT_KEY)
            .json(&body)
    }

    /// Usage records, after waiting for the writer to catch up.
    pub async fn records(&self) -> Vec<UsageRecord> {
        self.server.state.usage.flush().await;
        self.usage.records()
    }

    /// Polls until `n` records exist (the record of a cancelled stream is written when the
    /// server notices the disconnect).
    pub async fn wait_records(&self, n: usize) -> Vec<UsageRecord> {
        for _ in 0..200 {
            let records = self.records().await;
            if records.len() >= n {
                return records;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.records().await
    }
}

pub fn user(text: &str) -> serde_json::Value {
    serde_json::json!([{"role": "user", "content": text}])
}

/// The `data:` payloads of an SSE body.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|event| {
            event
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .map(String::from)
        })
        .collect()
}

/// A gateway with one provider of each upstream kind, all on one fake upstream:
/// models `via-chat`, `via-responses`, `via-anthropic`, `via-gemini`.
pub async fn matrix() -> Harness {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let base = format!("http://{}", mock.addr());
    let yaml = format!(
        "listen: 127.0.0.1:0
api-keys: [{CLIENT_KEY}]
providers:
  - {{name: up-chat, kind: openai-compatible, base-url: '{base}/v1', api-keys: [{UPSTREAM_KEY}], models: [{{name: mock-chat-model, alias: via-chat}}]}}
  - {{name: up-responses, kind: openai-responses, base-url: '{base}/v1', api-keys: [{UPSTREAM_KEY}], models: [{{name: mock-responses-model, alias: via-responses}}]}}
  - {{name: up-anthropic, kind: anthropic, base-url: '{base}', api-keys: [{UPSTREAM_KEY}], models: [{{name: claude-mock, alias: via-anthropic}}]}}
  - {{name: up-gemini, kind: gemini, base-url: '{base}', api-keys: [{UPSTREAM_KEY}], models: [{{name: gemini-mock, alias: via-gemini}}]}}
"
    );
    Harness::from_yaml(mock, &yaml).await
}

pub const UPSTREAMS: [&str; 4] = ["via-chat", "via-responses", "via-anthropic", "via-gemini"];

/// The SSE events of a body as (event name, JSON data), skipping `[DONE]` and comments.
pub fn sse_events(body: &str) -> Vec<(Option<String>, serde_json::Value)> {
    body.replace("\r\n", "\n")
        .split("\n\n")
        .filter_map(|block| {
            let mut name = None;
            let mut data = None;
            for line in block.lines() {
                let line = line.trim_end_matches('\r');
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_string());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(d).ok();
                }
            }
            data.map(|d| (name, d))
        })
        .collect()
}
