//! OAuth accounts (token files in `auth-dir`) kept alive against the rotating fake token
//! endpoints of `sluice-mock`: single-flight refresh under a burst, refresh detached from a
//! client that leaves, one refresh and one retry after a 401, permanent refusals turning into
//! "needs re-login", `Retry-After` honoured, a grant without a refresh token.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use sluice_mock::oauth::TokenFault;
use sluice_mock::{MockConfig, MockServer};

const CLAUDE_MODEL: &str = "claude-sonnet-4-5";

struct Accounts {
    h: Harness,
    dir: tempfile::TempDir,
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn rfc3339(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A Claude token file whose access token expires at `expires` (unix seconds).
fn claude_file(mock: &MockServer, access: &str, refresh: &str, expires: i64) -> Value {
    json!({
        "type": "claude", "access_token": access, "refresh_token": refresh,
        "email": "me@example.com", "expired": rfc3339(expires),
        "base_url": format!("http://{}", mock.addr()),
    })
}

/// A gateway in front of `mock` with these token files (`MOCK` in them becomes the fake's
/// address); `fallback` adds an Anthropic API-key provider serving the Claude model at a lower
/// priority; `interval` is the refresh scheduler's.
async fn start_with(
    mock: MockServer,
    files: &[(&str, Value)],
    fallback: bool,
    interval: &str,
) -> Accounts {
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in files {
        let body = body.to_string().replace("MOCK", &mock.addr().to_string());
        std::fs::write(dir.path().join(name), body).unwrap();
    }
    let addr = mock.addr();
    let fallback = if fallback {
        format!(
            "  - name: fallback
    kind: anthropic
    base-url: http://{addr}
    api-keys: [{UPSTREAM_KEY}]
    priority: -1
    models: [{{name: {CLAUDE_MODEL}}}]
"
        )
    } else {
        String::new()
    };
    let yaml = format!(
        "listen: 127.0.0.1:0
api-keys: [{CLIENT_KEY}]
auth-dir: '{dir}'
request-retry: 2
oauth:
  refresh-interval: {interval}
  refresh-jitter: 0s
  claude: {{token-url: 'http://{addr}/v1/oauth/token'}}
  codex: {{token-url: 'http://{addr}/oauth/token'}}
  gemini: {{token-url: 'http://{addr}/token'}}
providers:
  - name: mock
    kind: openai-compatible
    base-url: http://{addr}/v1
    api-keys: [{UPSTREAM_KEY}]
    models: [{{name: mock-model}}]
{fallback}",
        dir = dir.path().display(),
    );
    Accounts {
        h: Harness::from_yaml(mock, &yaml).await,
        dir,
    }
}

impl Accounts {
    fn file(&self, name: &str) -> Value {
        serde_json::from_slice(&std::fs::read(self.dir.path().join(name)).unwrap()).unwrap()
    }

    fn ask(&self, model: &str) -> reqwest::RequestBuilder {
        self.h
            .chat(json!({"model": model, "messages": user("hi"), "max_tokens": 16}))
    }

    async fn credentials(&self) -> Value {
        self.h
            .management(reqwest::Method::GET, "/credentials")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The listing entry of the credential built from token file `file`.
    async fn credential_of(&self, file: &str) -> Value {
        let all = self.credentials().await;
        all["credentials"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["account"]["file"] == file)
            .cloned()
            .unwrap_or_else(|| panic!("no credential for {file}: {all}"))
    }

    async fn auth_file_listing(&self, file: &str) -> Value {
        let list: Value = self
            .h
            .management(reqwest::Method::GET, "/auth-files")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        list["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == file)
            .cloned()
            .unwrap()
    }

    /// Waits until the credential of `file` satisfies `done` (a generous deadline: the
    /// refresh scheduler and the routing update that follows it run on a loaded machine).
    async fn wait_credential(
        &self,
        file: &str,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let c = self.credential_of(file).await;
            if done(&c) {
                return c;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{file} never {what}: {c}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the credential of `file` reaches `status`; for `needs_relogin`, until it
    /// is also out of rotation (the scheduler disables it in routing just after the refusal
    /// is recorded on the account).
    async fn wait_status(&self, file: &str, status: &str) -> Value {
        self.wait_credential(file, &format!("became {status}"), |c| {
            c["status"] == status && (status != "needs_relogin" || c["disabled"].is_string())
        })
        .await
    }

    /// Waits until the account of `file` reaches refresh state `state`.
    async fn wait_account_state(&self, file: &str, state: &str) -> Value {
        self.wait_credential(file, &format!("reached {state}"), |c| {
            c["account"]["state"] == state
        })
        .await
    }

    /// Bearer tokens the fake's Anthropic upstream received, in order.
    fn upstream_bearers(&self) -> Vec<String> {
        self.h
            .mock
            .requests()
            .iter()
            .filter(|r| r.path == "/v1/messages")
            .map(|r| {
                r.header("authorization")
                    .or_else(|| r.header("x-api-key"))
                    .unwrap_or_default()
                    .trim_start_matches("Bearer ")
                    .to_string()
            })
            .collect()
    }
}

#[tokio::test]
async fn fifty_concurrent_requests_on_an_expired_account_make_one_token_call() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    // The refresh stays in flight while the burst arrives.
    mock.oauth().delay(Some(Duration::from_millis(300)));
    let file = claude_file(&mock, "expired-access-0", "rt-burst-0", now_s() - 60);
    let a = start_with(mock, &[("claude-a.json", file)], false, "1h").await;
    let requests = (0..50).map(|_| a.ask(CLAUDE_MODEL).send());
    let answers = futures_util::future::join_all(requests).await;
    for answer in answers {
        assert_eq!(answer.unwrap().status(), 200);
    }
    assert_eq!(
        a.h.mock.oauth().token_calls(),
        1,
        "one refresh for the whole burst"
    );
    let issued = a.h.mock.oauth().issued();
    let saved = a.file("claude-a.json");
    assert_eq!(saved["access_token"], issued[0].access_token);
    assert_eq!(saved["refresh_token"], "oauth-claude-rt-1");
    assert_eq!(saved["account_uuid"], "acct-fake", "identity merged in");
    assert_eq!(
        saved["email"], "claude-user@example.com",
        "the provider's account email"
    );
    let bearers = a.upstream_bearers();
    assert_eq!(bearers.len(), 50);
    assert!(
        bearers.iter().all(|b| *b == issued[0].access_token),
        "only the new token is sent"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(a.dir.path().join("claude-a.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let listed = a.credential_of("claude-a.json").await;
    assert_eq!(listed["status"], "active");
    assert_eq!(listed["account"]["refreshes"], 1);
    assert!(
        !listed.to_string().contains("oauth-claude"),
        "no tokens listed: {listed}"
    );
}

#[tokio::test]
async fn a_client_that_leaves_during_the_refresh_does_not_lose_the_rotated_pair() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    mock.oauth().delay(Some(Duration::from_millis(1200)));
    let file = claude_file(&mock, "expired-access-0", "rt-leave-0", now_s() - 60);
    let a = start_with(mock, &[("c.json", file)], false, "1h").await;
    // The scheduler's first pass may already be refreshing; either way the caller gives up.
    let gone = a
        .ask(CLAUDE_MODEL)
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(gone.is_err(), "the client gave up");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let saved = a.file("c.json");
    assert_eq!(
        saved["refresh_token"], "oauth-claude-rt-1",
        "rotated pair persisted"
    );
    a.h.mock.oauth().delay(None);
    let resp = a.ask(CLAUDE_MODEL).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        a.h.mock.oauth().token_calls(),
        1,
        "the persisted pair is used, no new refresh"
    );
    assert_eq!(a.upstream_bearers().last().unwrap(), "oauth-claude-at-1");
}

#[tokio::test]
async fn a_401_gets_one_refresh_and_one_retry() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    // Not expired by the file's clock, but the upstream refuses it.
    let file = claude_file(
        &mock,
        "expired-but-not-by-the-clock",
        "rt-401",
        now_s() + 7200,
    );
    let a = start_with(mock, &[("c.json", file)], false, "1h").await;
    let resp = a.ask(CLAUDE_MODEL).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-sluice-attempts"], "2");
    assert_eq!(a.h.mock.oauth().token_calls(), 1);
    assert_eq!(
        a.upstream_bearers(),
        ["expired-but-not-by-the-clock", "oauth-claude-at-1"]
    );
    let records = a.h.wait_records(1).await;
    assert_eq!(records.len(), 1, "one usage record");
    assert_eq!(records[0].attempts, 2);
    assert_eq!(a.credential_of("c.json").await["status"], "active");
}

#[tokio::test]
async fn a_second_401_fails_over_without_a_second_refresh() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    mock.oauth().reject_access(true);
    let file = claude_file(&mock, "expired-token", "rt-twice", now_s() + 7200);
    let a = start_with(mock, &[("c.json", file)], true, "1h").await;
    let resp = a.ask(CLAUDE_MODEL).send().await.unwrap();
    assert_eq!(resp.status(), 200, "served by the fallback provider");
    assert_eq!(resp.headers()["x-sluice-attempts"], "3");
    assert_eq!(a.h.mock.oauth().token_calls(), 1, "no second refresh");
    assert_eq!(
        a.upstream_bearers(),
        ["expired-token", "oauth-claude-at-1", UPSTREAM_KEY]
    );
    let records = a.h.wait_records(1).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].provider.as_deref(), Some("fallback"));
}

#[tokio::test]
async fn permanent_refusals_need_a_relogin_and_stop_token_calls() {
    for (label, fault) in [
        (
            "invalid_grant",
            Some(TokenFault::Refuse("invalid_grant".into())),
        ),
        ("HTTP 404", Some(TokenFault::NotFound)),
        ("invalid_grant", None), // a refresh token the fake already consumed
    ] {
        let mock = MockServer::start(MockConfig::default()).await.unwrap();
        let refresh = match &fault {
            Some(f) => {
                mock.oauth().push_fault(f.clone());
                "rt-perm".to_string()
            }
            None => {
                mock.oauth().revoke("rt-used");
                "rt-used".to_string()
            }
        };
        let file = claude_file(&mock, "expired-0", &refresh, now_s() - 60);
        let a = start_with(mock, &[("c.json", file)], true, "100ms").await;
        let c = a.wait_status("c.json", "needs_relogin").await;
        assert!(
            c["account"]["reason"].as_str().unwrap().contains(label),
            "{label}: {c}"
        );
        assert!(
            c["disabled"]
                .as_str()
                .unwrap()
                .starts_with("needs re-login: "),
            "{c}"
        );
        let listed = a.auth_file_listing("c.json").await;
        assert_eq!(listed["status"], "needs_relogin", "{listed}");
        assert!(listed["status_message"].as_str().unwrap().contains(label));
        assert!(a.file("c.json")["needs_relogin"]["reason"].is_string());
        // Out of rotation: the fallback serves, and nothing calls the token endpoint again.
        let resp = a.ask(CLAUDE_MODEL).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(a.h.mock.oauth().token_calls(), 1, "{label}");
        assert_eq!(a.upstream_bearers(), [UPSTREAM_KEY], "{label}");
        assert_eq!(
            a.file("c.json")["refresh_token"],
            refresh.as_str(),
            "never dropped"
        );
    }
}

#[tokio::test]
async fn codex_and_gemini_refusals_need_a_relogin_too() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    mock.oauth().revoke("codex-rt-used");
    let codex = json!({"type": "codex", "access_token": "expired-c", "refresh_token": "codex-rt-used",
        "expired": rfc3339(now_s() - 5), "base_url": "http://MOCK/v1"});
    let gemini = json!({"type": "gemini", "token": {"access_token": "expired-g", "refresh_token": "revoked-g",
        "expiry": rfc3339(now_s() - 5)}, "project_id": "p", "base_url": "http://MOCK"});
    let a = start_with(
        mock,
        &[("codex.json", codex), ("gemini.json", gemini)],
        false,
        "100ms",
    )
    .await;
    let c = a.wait_status("codex.json", "needs_relogin").await;
    assert!(
        c["account"]["reason"]
            .as_str()
            .unwrap()
            .contains("refresh_token_reused"),
        "{c}"
    );
    let g = a.wait_status("gemini.json", "needs_relogin").await;
    assert!(
        g["account"]["reason"]
            .as_str()
            .unwrap()
            .contains("invalid_grant"),
        "{g}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(a.h.mock.oauth().token_calls(), 2);
}

#[tokio::test]
async fn codex_and_gemini_tokens_refresh_and_merge() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let codex = json!({"type": "codex", "access_token": "expired-c", "refresh_token": "codex-rt-0",
        "expired": rfc3339(now_s() - 5), "base_url": "http://MOCK/v1"});
    let gemini = json!({"type": "gemini", "token": {"access_token": "expired-g", "refresh_token": "google-rt",
        "expiry": rfc3339(now_s() - 5)}, "project_id": "p", "email": "g@example.com", "base_url": "http://MOCK"});
    let a = start_with(
        mock,
        &[("codex.json", codex), ("gemini.json", gemini)],
        false,
        "100ms",
    )
    .await;
    for _ in 0..100 {
        if a.h.mock.oauth().issued().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let codex = a.file("codex.json");
    assert_eq!(
        codex["account_id"], "chatgpt-acct-fake",
        "account id read from the id_token"
    );
    assert!(
        codex["refresh_token"]
            .as_str()
            .unwrap()
            .starts_with("oauth-codex-rt-")
    );
    let gemini = a.file("gemini.json");
    assert_eq!(
        gemini["token"]["refresh_token"], "google-rt",
        "Google never rotates: kept"
    );
    assert!(
        gemini["token"]["access_token"]
            .as_str()
            .unwrap()
            .starts_with("oauth-google-at-")
    );
    assert_eq!(gemini["project_id"], "p");
    assert_eq!(
        a.h.mock.oauth().token_calls(),
        2,
        "each refreshed once, not on every pass"
    );
    assert_eq!(a.credential_of("codex.json").await["status"], "active");
}

#[tokio::test]
async fn transient_failures_back_off_and_honour_retry_after() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    mock.oauth()
        .push_fault(TokenFault::RateLimited { retry_after: 2 });
    mock.oauth().push_fault(TokenFault::HtmlChallenge);
    let file = claude_file(&mock, "expired-0", "rt-429", now_s() - 60);
    let a = start_with(mock, &[("c.json", file)], false, "100ms").await;
    let listed = a.wait_account_state("c.json", "refresh_backoff").await;
    assert!(listed["account"]["retry_at"].is_string());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        a.h.mock.oauth().token_calls(),
        1,
        "no call inside the Retry-After window"
    );
    // A request meanwhile is not a token call either, and is refused as cooling down.
    let resp = a.ask(CLAUDE_MODEL).send().await.unwrap();
    let status = resp.status();
    let body = resp.text().await.unwrap();
    assert_eq!(status, 429, "{body}");
    assert_eq!(a.h.mock.oauth().token_calls(), 1);
    // After the window: the HTML challenge (transient again, default back-off), not a re-login.
    for _ in 0..60 {
        if a.h.mock.oauth().token_calls() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(a.h.mock.oauth().token_calls(), 2);
    let listed = a.credential_of("c.json").await;
    assert_eq!(listed["account"]["state"], "refresh_backoff");
    assert!(
        listed["account"]["reason"]
            .as_str()
            .unwrap()
            .contains("HTML"),
        "{listed}"
    );
    assert_eq!(a.file("c.json")["refresh_token"], "rt-429", "nothing lost");
}

#[tokio::test]
async fn a_grant_without_a_refresh_token_keeps_the_old_one() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    mock.oauth().omit_refresh_token(true);
    let file = claude_file(&mock, "expired-0", "rt-keep", now_s() - 60);
    let a = start_with(mock, &[("c.json", file)], false, "1h").await;
    let resp = a.ask(CLAUDE_MODEL).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let saved = a.file("c.json");
    assert_eq!(saved["refresh_token"], "rt-keep");
    assert_eq!(saved["access_token"], "oauth-claude-at-1");
    assert!(saved["last_refresh"].is_string());
}

#[tokio::test]
async fn a_qwen_token_whose_free_tier_ended_is_retired_not_refreshed() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    mock.faults()
        .set_for_key("qwen-oauth-at-1", "qwen_free_tier=ended");
    let file = json!({
        "type": "qwen", "access_token": "qwen-oauth-at-1", "refresh_token": "qwen-oauth-rt-1",
        "expired": rfc3339(now_s() + 3600 * 24), "base_url": "http://MOCK/v1",
    });
    let a = start_with(mock, &[("qwen.json", file)], false, "100ms").await;
    let ask = || a.ask("qwen3-coder-plus").send();
    let resp = ask().await.unwrap();
    assert_ne!(resp.status(), 200);
    let c = a.wait_status("qwen.json", "needs_relogin").await;
    let reason = c["account"]["reason"].as_str().unwrap();
    assert!(reason.contains("discontinued"), "{c}");
    assert!(
        reason.contains(sluice_mock::QWEN_FREE_TIER_ENDED),
        "Qwen's own words: {c}"
    );
    let listed = a.auth_file_listing("qwen.json").await;
    assert_eq!(listed["status"], "needs_relogin", "{listed}");
    assert!(a.file("qwen.json")["needs_relogin"]["reason"].is_string());
    assert_eq!(a.file("qwen.json")["refresh_token"], "qwen-oauth-rt-1");
    // Never asked again, never refreshed (no token call at all: not even one attempt).
    let _ = ask().await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(a.h.mock.requests_with_key("qwen-oauth-at-1"), 1);
    assert_eq!(a.h.mock.oauth().token_calls(), 0);
}
