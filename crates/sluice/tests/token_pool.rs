//! Seed 000's token pool end to end: the admin endpoints with the service key, the three
//! Bearer cases on `/v1/*`, Qwen OAuth credentials (`resource_url`, refresh ahead of expiry and
//! after a 401) against the fake token endpoint, persistence.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::*;
use serde_json::{Value, json};
use sluice_mock::{MockConfig, MockServer};

const SERVICE_KEY: &str = "sk-service-key-0123";
const MODEL: &str = "qwen3-coder-plus";

struct Pool {
    h: Harness,
    dir: tempfile::TempDir,
}

fn pool_yaml(mock: &MockServer, dir: &std::path::Path, top: &str, provider: &str) -> String {
    format!(
        "listen: 127.0.0.1:0
api-keys: [{CLIENT_KEY}]
{top}
token-pool:
  service-key: {SERVICE_KEY}
  data-dir: '{dir}'
  refresh-url: 'http://{addr}/api/v1/oauth2/token'
  client-id: test-client
providers:
  - name: qwen
    kind: qwen
    base-url: '{base}'
    token-pool: true
    models: [{{name: {MODEL}}}]
{provider}
",
        dir = dir.display(),
        addr = mock.addr(),
        base = mock.base_url(),
    )
}

async fn pool(top: &str, provider: &str) -> Pool {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let yaml = pool_yaml(&mock, dir.path(), top, provider);
    Pool {
        h: Harness::from_yaml(mock, &yaml).await,
        dir,
    }
}

impl Pool {
    fn upload(&self, key: Option<&str>, body: Value) -> reqwest::RequestBuilder {
        let mut request = self
            .h
            .http
            .post(self.h.url("/api/upload-token"))
            .json(&body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request
    }

    async fn status(&self) -> Value {
        self.h
            .http
            .get(self.h.url("/api/token-status"))
            .bearer_auth(SERVICE_KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    fn chat(&self, bearer: Option<&str>) -> reqwest::RequestBuilder {
        let mut request = self
            .h
            .http
            .post(self.h.url("/v1/chat/completions"))
            .json(&json!({"model": MODEL, "messages": user("hi")}));
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        request
    }

    /// The Bearer tokens the upstream received, in order.
    fn upstream_tokens(&self) -> Vec<String> {
        self.h
            .mock
            .requests()
            .iter()
            .filter(|r| r.path == "/v1/chat/completions")
            .filter_map(|r| {
                r.header("authorization")?
                    .strip_prefix("Bearer ")
                    .map(String::from)
            })
            .collect()
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test]
async fn admin_endpoints_need_the_service_key_and_mask_tokens() {
    let p = pool("", "").await;
    for (key, code) in [
        (None, "missing_service_key"),
        (Some("sk-wrong-service-key"), "invalid_service_key"),
        (Some(CLIENT_KEY), "invalid_service_key"),
    ] {
        let resp = p
            .upload(key, json!({"token": "bare-upstream-token-1"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], code);
        let mut status = p.h.http.get(p.h.url("/api/token-status"));
        if let Some(key) = key {
            status = status.bearer_auth(key);
        }
        assert_eq!(status.send().await.unwrap().status(), 401);
    }
    assert_eq!(p.status().await["total"], 0, "nothing was added");

    let expiry = now_ms() + 3_600_000;
    let resp = p
        .upload(
            Some(SERVICE_KEY),
            json!([
                "bare-upstream-token-1",
                {"access_token": "oauth-access-token-2", "refresh_token": "oauth-refresh-2", "token_type": "Bearer", "resource_url": "portal.qwen.ai", "expiry_date": expiry}
            ]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let added: Value = resp.json().await.unwrap();
    assert_eq!(
        (added["added"].as_u64(), added["total"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(added["tokens"][0]["token"], "bare...en-1");

    let resp =
        p.h.http
            .get(p.h.url("/api/token-status"))
            .bearer_auth(SERVICE_KEY)
            .send()
            .await
            .unwrap();
    let text = resp.text().await.unwrap();
    for secret in [
        "bare-upstream-token-1",
        "oauth-access-token-2",
        "oauth-refresh-2",
    ] {
        assert!(!text.contains(secret), "unmasked token in {text}");
    }
    let status: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (status["total"].as_u64(), status["available"].as_u64()),
        (Some(2), Some(2))
    );
    let tokens = status["tokens"].as_array().unwrap();
    assert_eq!(tokens[0]["type"], "bearer");
    assert_eq!(tokens[1]["type"], "oauth");
    assert_eq!(tokens[1]["token"], "oaut...en-2");
    assert_eq!(tokens[1]["resource_url"], "portal.qwen.ai");
    assert_eq!(tokens[1]["status"], "active");
    assert!(tokens[1]["expires_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(tokens[0]["requests"], 0);

    // Uploading the same credential again replaces it.
    let again = p
        .upload(Some(SERVICE_KEY), json!({"token": "bare-upstream-token-1"}))
        .send()
        .await
        .unwrap();
    let again: Value = again.json().await.unwrap();
    assert_eq!(
        (again["added"].as_u64(), again["updated"].as_u64()),
        (Some(0), Some(1))
    );

    let bad = p
        .upload(Some(SERVICE_KEY), json!({"nope": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let bad: Value = bad.json().await.unwrap();
    assert_eq!(bad["error"]["code"], "invalid_tokens");
}

#[tokio::test]
async fn the_pool_is_persisted_privately_and_survives_a_restart() {
    let p = pool("", "").await;
    let resp = p
        .upload(Some(SERVICE_KEY), json!({"token": "persisted-token-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let file = p.dir.path().join("token-pool.json");
    let saved = std::fs::read_to_string(&file).unwrap();
    assert!(saved.contains("persisted-token-1"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the pool file is private");
    }
    // A new gateway on the same data directory serves with the uploaded token.
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let yaml = pool_yaml(&mock, p.dir.path(), "", "");
    let restarted = Pool {
        h: Harness::from_yaml(mock, &yaml).await,
        dir: tempfile::tempdir().unwrap(),
    };
    assert_eq!(
        restarted
            .chat(Some(CLIENT_KEY))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(restarted.upstream_tokens(), ["persisted-token-1"]);
}

#[test]
fn a_service_key_without_sk_is_refused_at_start() {
    let yaml = "
token-pool: {service-key: admin-key-123, data-dir: /tmp/unused}
providers:
  - {name: qwen, kind: qwen, token-pool: true, models: [{name: m}]}
";
    let errors = sluice::config::Config::from_yaml(yaml, |_| None).unwrap_err();
    assert_eq!(errors[0].key, "token-pool.service-key");
    assert!(errors[0].reason.contains("sk-"), "{}", errors[0].reason);

    let mut file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::io::Write::write_all(&mut file, format!("listen: 127.0.0.1:0\n{yaml}").as_bytes())
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["serve", "--config"])
        .arg(file.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "the gateway must not start");
    assert!(String::from_utf8_lossy(&out.stderr).contains("token-pool.service-key"));
}

#[tokio::test]
async fn the_three_bearer_cases() {
    let p = pool("", "    allow-client-tokens: true").await;
    p.upload(Some(SERVICE_KEY), json!({"token": "pool-token-0001"}))
        .send()
        .await
        .unwrap();

    // 1. A Sluice key (and the service key, which is one) uses the pool.
    for key in [CLIENT_KEY, SERVICE_KEY] {
        let resp = p.chat(Some(key)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
    }
    // 2. A Bearer without `sk-` is the caller's own token, forwarded as it is.
    let resp = p.chat(Some("callers-own-qwen-token")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        p.upstream_tokens(),
        [
            "pool-token-0001",
            "pool-token-0001",
            "callers-own-qwen-token"
        ]
    );
    let models =
        p.h.http
            .get(p.h.url("/v1/models"))
            .bearer_auth("callers-own-qwen-token")
            .send()
            .await
            .unwrap();
    assert_eq!(models.status(), 200);
    // An `sk-` Bearer that is no Sluice key is refused, not forwarded.
    let resp = p.chat(Some("sk-not-a-sluice-key")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    // 3. No Bearer: refused without allow-anonymous.
    let resp = p.chat(None).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(p.upstream_tokens().len(), 3);
    // The caller's own token is never cooled, disabled or listed.
    p.h.mock
        .faults()
        .set_for_key("callers-own-bad-token", "status=401");
    let resp = p.chat(Some("callers-own-bad-token")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(p.chat(Some(CLIENT_KEY)).send().await.unwrap().status(), 200);
    let status = p.status().await;
    assert_eq!(status["total"], 1);
    assert_eq!(status["tokens"][0]["status"], "active");
}

#[tokio::test]
async fn client_tokens_need_the_switch_and_anonymous_use_needs_allow_anonymous() {
    let p = pool("allow-anonymous: true", "").await;
    p.upload(Some(SERVICE_KEY), json!({"token": "pool-token-0002"}))
        .send()
        .await
        .unwrap();
    let resp = p.chat(Some("callers-own-qwen-token")).send().await.unwrap();
    assert_eq!(resp.status(), 401, "no provider allows client tokens");
    let resp = p.chat(None).send().await.unwrap();
    assert_eq!(resp.status(), 200, "allow-anonymous: the pool serves");
    assert_eq!(p.upstream_tokens(), ["pool-token-0002"]);
}

#[tokio::test]
async fn an_empty_pool_is_a_clear_503() {
    let p = pool("", "").await;
    let resp = p.chat(Some(CLIENT_KEY)).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "no_credentials");
}

#[tokio::test]
async fn resource_url_decides_the_upstream() {
    let account = MockServer::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    // A plain-http test upstream must be listed as an origin.
    let yaml = pool_yaml(&mock, dir.path(), "", "").replace(
        "  client-id: test-client\n",
        &format!(
            "  client-id: test-client\n  resource-url-hosts: ['http://{}']\n",
            account.addr()
        ),
    );
    let p = Pool {
        h: Harness::from_yaml(mock, &yaml).await,
        dir,
    };
    p.upload(
        Some(SERVICE_KEY),
        json!({"access_token": "account-token-1", "resource_url": format!("http://{}", account.addr())}),
    )
    .send()
    .await
    .unwrap();
    let resp = p.chat(Some(CLIENT_KEY)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(account.requests_with_key("account-token-1"), 1);
    assert_eq!(account.requests()[0].path, "/v1/chat/completions");
    assert!(
        p.upstream_tokens().is_empty(),
        "not the provider's base-url"
    );
}

#[tokio::test]
async fn oauth_tokens_are_refreshed_ahead_of_expiry_keeping_the_refresh_token() {
    let p = pool("", "").await;
    p.upload(
        Some(SERVICE_KEY),
        json!({"access_token": "about-to-expire", "refresh_token": "refresh-keep-me", "expiry_date": now_ms() + 60_000}),
    )
    .send()
    .await
    .unwrap();
    for _ in 0..3 {
        assert_eq!(p.chat(Some(CLIENT_KEY)).send().await.unwrap().status(), 200);
    }
    let refreshes: Vec<_> =
        p.h.mock
            .requests()
            .into_iter()
            .filter(|r| r.path == "/api/v1/oauth2/token")
            .collect();
    assert_eq!(
        refreshes.len(),
        1,
        "one refresh, then the new token is fresh"
    );
    let form = &refreshes[0].body;
    for field in [
        "grant_type=refresh_token",
        "refresh_token=refresh-keep-me",
        "client_id=test-client",
    ] {
        assert!(form.contains(field), "{form}");
    }
    let used = p.upstream_tokens();
    assert_eq!(used.len(), 3);
    assert!(
        used.iter()
            .all(|t| t.starts_with("qwen-access-test-client-")),
        "{used:?}"
    );
    assert!(!used.contains(&"about-to-expire".to_string()));
    let saved = std::fs::read_to_string(p.dir.path().join("token-pool.json")).unwrap();
    assert!(
        saved.contains("refresh-keep-me"),
        "the old refresh token is kept"
    );
    assert!(!saved.contains("about-to-expire"));
    assert_eq!(p.status().await["tokens"][0]["refreshes"], 1);
}

#[tokio::test]
async fn a_401_refreshes_the_token_and_retries_and_a_dead_refresh_token_disables_it() {
    let p = pool("", "").await;
    let later = now_ms() + 3_600_000;
    p.upload(
        Some(SERVICE_KEY),
        json!({"access_token": "stale-access-1", "refresh_token": "refresh-ok", "expiry_date": later}),
    )
    .send()
    .await
    .unwrap();
    p.h.mock
        .faults()
        .set_for_key("stale-access-1", "status=401");
    let resp = p.chat(Some(CLIENT_KEY)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-sluice-attempts"], "2");
    let used = p.upstream_tokens();
    assert_eq!(used[0], "stale-access-1");
    assert!(used[1].starts_with("qwen-access-"), "{used:?}");

    let p = pool("", "").await;
    p.upload(
        Some(SERVICE_KEY),
        json!({"access_token": "stale-access-2", "refresh_token": "revoked-refresh", "expiry_date": later}),
    )
    .send()
    .await
    .unwrap();
    p.h.mock
        .faults()
        .set_for_key("stale-access-2", "status=401");
    let resp = p.chat(Some(CLIENT_KEY)).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let status = p.status().await;
    assert_eq!(status["tokens"][0]["status"], "disabled");
    assert!(
        status["tokens"][0]["disabled"]
            .as_str()
            .unwrap()
            .contains("401")
    );
    assert_eq!(status["available"], 0);
}

/// Seed 000's pool: a Qwen token whose OAuth free tier ended (Qwen's "free tier … discontinued"
/// answer) is disabled with that reason, recorded in the pool's file, and stays out of rotation
/// after a restart, while a working token keeps serving.
#[tokio::test]
async fn a_pool_token_whose_free_tier_ended_stays_disabled_across_a_restart() {
    let p = pool("", "").await;
    p.h.mock
        .faults()
        .set_for_key("ended-qwen-token", "qwen_free_tier=ended");
    let up = |token: &str| p.upload(Some(SERVICE_KEY), json!({"token": token})).send();
    assert_eq!(up("ended-qwen-token").await.unwrap().status(), 200);
    let resp = p.chat(Some(CLIENT_KEY)).send().await.unwrap();
    assert_ne!(resp.status(), 200);
    let status = p.status().await;
    let token = &status["tokens"][0];
    assert_eq!(token["status"], "disabled", "{status}");
    let reason = token["disabled"].as_str().unwrap();
    assert!(reason.contains("discontinued"), "{reason}");
    assert!(
        reason.contains(sluice_mock::QWEN_FREE_TIER_ENDED),
        "{reason}"
    );
    let saved: Value =
        serde_json::from_slice(&std::fs::read(p.dir.path().join("token-pool.json")).unwrap())
            .unwrap();
    assert!(saved["tokens"][0]["disabled"].is_string(), "{saved}");
    assert_eq!(up("working-qwen-token").await.unwrap().status(), 200);

    // A new gateway on the same data directory: still disabled, never sent upstream again.
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let yaml = pool_yaml(&mock, p.dir.path(), "", "");
    let restarted = Pool {
        h: Harness::from_yaml(mock, &yaml).await,
        dir: tempfile::tempdir().unwrap(),
    };
    let status = restarted.status().await;
    assert_eq!(status["available"], 1, "{status}");
    let ended = status["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["status"] == "disabled")
        .unwrap_or_else(|| panic!("{status}"));
    assert!(ended["disabled"].as_str().unwrap().contains("discontinued"));
    for _ in 0..4 {
        let resp = restarted.chat(Some(CLIENT_KEY)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
    }
    assert_eq!(restarted.upstream_tokens(), ["working-qwen-token"; 4]);

    // Uploading it again is the operator's way to bring it back.
    assert_eq!(
        restarted
            .upload(Some(SERVICE_KEY), json!({"token": "ended-qwen-token"}))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(restarted.status().await["available"], 2);
}
