//! Two gateways sharing one `auth-dir` and one real Redis (`limits.redis`) refresh an expired
//! OAuth account once between them: the refresh holds the account's Redis lock
//! (`oauth-refresh:<file>`), and the instance that waited re-reads the file inside the lock and
//! uses the rotated token instead of spending the consumed refresh token (which the rotating
//! fake would refuse, turning the account into "needs re-login").
//!
//! Needs `SLUICE_TEST_REDIS_URL` (skips with a printed reason otherwise); its own key prefix.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use sluice::store::testing::{redis_url, unique_suffix};
use sluice_mock::{MockConfig, MockServer};

const MODEL: &str = "claude-sonnet-4-5";

#[tokio::test]
async fn two_instances_refresh_a_shared_account_once() {
    let Some(redis) = redis_url("two_instances_refresh_a_shared_account_once") else {
        return;
    };
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    // The fake rotates at once but answers late, so both instances are inside a refresh at once.
    mock.oauth().delay(Some(Duration::from_millis(800)));
    let addr = mock.addr();
    let dir = tempfile::tempdir().unwrap();
    let expired = chrono::Utc::now() - chrono::Duration::seconds(5);
    std::fs::write(
        dir.path().join("claude.json"),
        json!({
            "type": "claude", "access_token": "expired-shared", "refresh_token": "shared-rt-0",
            "email": "me@example.com",
            "expired": expired.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "base_url": format!("http://{addr}"),
        })
        .to_string(),
    )
    .unwrap();
    let yaml = format!(
        "listen: 127.0.0.1:0
api-keys: [{CLIENT_KEY}]
auth-dir: '{dir}'
limits:
  redis: {redis}
  redis-prefix: sluice-oauth-lock-{suffix}
oauth:
  refresh-interval: 1h
  claude: {{token-url: 'http://{addr}/v1/oauth/token'}}
providers: []
",
        dir = dir.path().display(),
        suffix = unique_suffix(),
    );
    let a = Harness::from_yaml(mock, &yaml).await;
    let b = Harness::from_yaml(
        MockServer::start(MockConfig::default()).await.unwrap(),
        &yaml,
    )
    .await;

    let ask = |h: &Harness| {
        h.chat(json!({"model": MODEL, "messages": user("hi"), "max_tokens": 16}))
            .send()
    };
    let mut calls = Vec::new();
    for i in 0..20 {
        calls.push(ask(if i % 2 == 0 { &a } else { &b }));
    }
    let answers = futures_util::future::join_all(calls).await;
    let statuses: Vec<u16> = answers
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(
        a.mock.oauth().token_calls(),
        1,
        "one refresh between the two instances"
    );
    let file: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("claude.json")).unwrap()).unwrap();
    assert!(
        file["refresh_token"]
            .as_str()
            .unwrap()
            .starts_with("oauth-claude-rt-"),
        "{file}"
    );
    assert!(file.get("needs_relogin").is_none(), "{file}");
}
