//! Seed 004 end to end over HTTP: users sign in, manage their API keys through `/api`, and use
//! them on the proxy routes, where permissions, limits and quotas hold — exactly, under
//! concurrent load — and every request is recorded with its tokens and cost.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::*;
use http::Method;
use serde_json::{Value, json};
use sluice::limits::{Clock, ManualClock};

const ADMIN: (&str, &str) = ("root", "root-password");

/// A gateway with a bootstrap admin; `mock-model` output costs $0.10 a token, input is free.
struct Keys {
    h: Harness,
    admin: String,
}

fn accounts_yaml() -> String {
    format!(
        "auth: {{admin: {{username: {}, password: {}}}}}\nprices: {{mock-model: {{input: 0, output: 100000}}}}",
        ADMIN.0, ADMIN.1
    )
}

impl Keys {
    async fn start() -> Keys {
        Self::with(Harness::with_config(&accounts_yaml(), "").await).await
    }

    async fn with(h: Harness) -> Keys {
        let mut k = Keys {
            h,
            admin: String::new(),
        };
        k.admin = k.login(ADMIN.0, ADMIN.1).await;
        k
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.h.http.request(method, self.h.url(path));
        if !token.is_empty() {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        (status, body)
    }

    async fn login(&self, username: &str, password: &str) -> String {
        let (status, body) = self
            .call(
                Method::POST,
                "/api/auth/login",
                "",
                Some(json!({"username": username, "password": password})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["data"]["token"].as_str().unwrap().to_string()
    }

    /// A new user (created by the admin), signed in.
    async fn user(&self, name: &str) -> String {
        let (status, body) = self
            .call(
                Method::POST,
                "/api/users",
                &self.admin,
                Some(json!({"username": name, "password": "a-good-password"})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        self.login(name, "a-good-password").await
    }

    /// Creates a key; returns its id and secret.
    async fn key(&self, token: &str, body: Value) -> (i64, String) {
        let (status, body) = self
            .call(Method::POST, "/api/api-keys", token, Some(body))
            .await;
        assert_eq!((status, &body["code"]), (200, &json!(0)), "{body}");
        (
            body["data"]["id"].as_i64().unwrap(),
            body["data"]["key"].as_str().unwrap().to_string(),
        )
    }

    fn chat(&self, path: &str, key: &str, body: Value) -> reqwest::RequestBuilder {
        self.h
            .http
            .post(self.h.url(path))
            .bearer_auth(key)
            .json(&body)
    }

    async fn key_row(&self, token: &str, id: i64) -> Value {
        self.h.records().await; // the usage log, and through it the store, is flushed
        let (status, body) = self
            .call(Method::GET, &format!("/api/api-keys/{id}"), token, None)
            .await;
        assert_eq!(status, 200, "{body}");
        body["data"].clone()
    }
}

fn hi() -> Value {
    json!({"model": "mock-model", "messages": user("hi")})
}

/// (status, body) of a proxied request.
async fn send(req: reqwest::RequestBuilder) -> (u16, Value, reqwest::header::HeaderMap) {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
        headers,
    )
}

#[tokio::test]
async fn seed_004_key_api_envelope_fields_and_defaults() {
    let k = Keys::start().await;
    let alice = k.user("alice").await;

    let (status, created) = k
        .call(
            Method::POST,
            "/api/api-keys",
            &alice,
            Some(json!({"name": "测试Key"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (&created["code"], &created["message"]),
        (&json!(0), &json!("created"))
    );
    let data = &created["data"];
    let secret = data["key"].as_str().unwrap();
    assert!(secret.starts_with("sk-") && secret.len() == 67, "{secret}");
    assert!(secret[3..].chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(data["key_prefix"], format!("{}...", &secret[..11]));
    assert_eq!(data["name"], "测试Key");
    let id = data["id"].as_i64().unwrap();

    // Listed and fetched with every seed field and its default, and never the key again.
    let (status, list) = k.call(Method::GET, "/api/api-keys", &alice, None).await;
    assert_eq!(
        (status, &list["code"], &list["message"]),
        (200, &json!(0), &json!("success"))
    );
    let listed = &list["data"][0];
    for (field, default) in [
        ("allowed_platforms", json!("all")),
        ("allowed_models", json!("")),
        ("rate_limit", json!(60)),
        ("daily_limit", json!(0)),
        ("used_tokens", json!(0)),
        ("request_count", json!(0)),
        ("status", json!("active")),
        ("last_used_at", Value::Null),
        ("expires_at", Value::Null),
    ] {
        assert_eq!(listed[field], default, "{field} in {listed}");
    }
    assert_eq!(listed["monthly_quota"].as_f64(), Some(0.0));
    assert_eq!(listed["used_cost"].as_f64(), Some(0.0));
    assert!(listed["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(listed.get("key").is_none() && !list.to_string().contains(secret));
    let (_, one) = k
        .call(Method::GET, &format!("/api/api-keys/{id}"), &alice, None)
        .await;
    assert_eq!(&one["data"], listed);

    // PUT answers with the id and exactly the fields it changed.
    let (status, updated) = k
        .call(
            Method::PUT,
            &format!("/api/api-keys/{id}"),
            &alice,
            Some(json!({"name": "更新后的名称", "rate_limit": 120})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        updated,
        json!({"code": 0, "message": "success", "data": {"id": id, "name": "更新后的名称", "rate_limit": 120}})
    );

    let toggle = format!("/api/api-keys/{id}/toggle");
    let (_, off) = k.call(Method::PUT, &toggle, &alice, None).await;
    assert_eq!(off["data"], json!({"id": id, "status": "disabled"}));
    let (_, on) = k.call(Method::PUT, &toggle, &alice, None).await;
    assert_eq!(on["data"], json!({"id": id, "status": "active"}));

    let (status, deleted) = k
        .call(Method::DELETE, &format!("/api/api-keys/{id}"), &alice, None)
        .await;
    assert_eq!(
        (status, deleted),
        (200, json!({"code": 0, "message": "success"}))
    );
    let (status, gone) = k
        .call(Method::GET, &format!("/api/api-keys/{id}"), &alice, None)
        .await;
    assert_eq!((status, &gone["code"]), (404, &json!(404)));
    assert!(gone["message"].is_string());
}

#[tokio::test]
async fn key_api_validation_names_the_field_and_requires_a_session() {
    let k = Keys::start().await;
    let alice = k.user("alice").await;
    for (body, field) in [
        (json!({}), "name"),
        (json!({"name": ""}), "name"),
        (json!({"name": "k", "rate_limit": "fast"}), "rate_limit"),
        (json!({"name": "k", "rate_limit": -1}), "rate_limit"),
        (json!({"name": "k", "daily_limit": 1.5}), "daily_limit"),
        (json!({"name": "k", "monthly_quota": -3}), "monthly_quota"),
        (
            json!({"name": "k", "expires_at": "next tuesday"}),
            "expires_at",
        ),
        (
            json!({"name": "k", "expires_at": "2001-01-01T00:00:00Z"}),
            "expires_at",
        ),
        (
            json!({"name": "k", "allowed_models": "gpt 4o"}),
            "allowed_models",
        ),
    ] {
        let (status, err) = k
            .call(Method::POST, "/api/api-keys", &alice, Some(body.clone()))
            .await;
        assert_eq!((status, &err["code"]), (400, &json!(400)), "{body}: {err}");
        assert!(
            err["message"].as_str().unwrap().contains(field),
            "{body}: {err}"
        );
    }
    let (status, err) =
        k.h.http
            .post(k.h.url("/api/api-keys"))
            .bearer_auth(&alice)
            .body("{not json")
            .send()
            .await
            .map(|r| (r.status().as_u16(), r))
            .unwrap();
    assert_eq!(status, 400, "{:?}", err.text().await);

    let (status, err) = k.call(Method::GET, "/api/api-keys", "", None).await;
    assert_eq!((status, &err["code"]), (401, &json!(401)));
    let (status, _) = k
        .call(Method::GET, "/api/api-keys", "not.a.token", None)
        .await;
    assert_eq!(status, 401);
    let (status, err) = k
        .call(
            Method::POST,
            "/api/auth/login",
            "",
            Some(json!({"username": "alice", "password": "wrong-password"})),
        )
        .await;
    assert_eq!((status, &err["code"]), (401, &json!(401)));
}

#[tokio::test]
async fn ten_keys_per_user_and_users_see_only_their_own() {
    let k = Keys::start().await;
    let alice = k.user("alice").await;
    let bob = k.user("bob").await;
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(k.key(&alice, json!({"name": format!("k{i}")})).await.0);
    }
    let (status, err) = k
        .call(
            Method::POST,
            "/api/api-keys",
            &alice,
            Some(json!({"name": "eleventh"})),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    assert!(err["message"].as_str().unwrap().contains("10"), "{err}");
    // Deleting one frees a slot.
    k.call(
        Method::DELETE,
        &format!("/api/api-keys/{}", ids[0]),
        &alice,
        None,
    )
    .await;
    k.key(&alice, json!({"name": "replacement"})).await;

    let (_, bobs) = k.call(Method::GET, "/api/api-keys", &bob, None).await;
    assert_eq!(bobs["data"], json!([]));
    for (method, suffix) in [
        (Method::GET, ""),
        (Method::PUT, ""),
        (Method::DELETE, ""),
        (Method::PUT, "/toggle"),
        (Method::GET, "/usage"),
    ] {
        let path = format!("/api/api-keys/{}{suffix}", ids[1]);
        let (status, _) = k
            .call(method.clone(), &path, &bob, Some(json!({"name": "mine"})))
            .await;
        assert_eq!(status, 404, "{method} {path} by another user");
    }
    let (_, still) = k
        .call(
            Method::GET,
            &format!("/api/api-keys/{}", ids[1]),
            &alice,
            None,
        )
        .await;
    assert_eq!(still["data"]["name"], "k1");

    // Users may not manage users; admins see anyone's keys.
    let (status, _) = k.call(Method::GET, "/api/users", &alice, None).await;
    assert_eq!(status, 403);
    let (_, users) = k.call(Method::GET, "/api/users", &k.admin, None).await;
    let alice_id = users["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "alice")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let (_, keys) = k
        .call(
            Method::GET,
            &format!("/api/users/{alice_id}/api-keys"),
            &k.admin,
            None,
        )
        .await;
    assert_eq!(keys["data"].as_array().unwrap().len(), 10);
}

#[tokio::test]
async fn proxy_errors_follow_the_seed_on_platform_routes_and_the_dialect_elsewhere() {
    let k = Keys::start().await;
    let alice = k.user("alice").await;
    let (id, key) = k.key(&alice, json!({"name": "main"})).await;
    let platform = "/openai/v1/chat/completions";

    let (status, body, _) = send(k.chat(platform, &key, hi())).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = send(
        k.h.http
            .post(k.h.url(platform))
            .header("x-api-key", &key)
            .json(&hi()),
    )
    .await;
    assert_eq!(status, 200, "X-API-Key works too");

    // Missing and unknown keys: the seed's Chinese by default on its routes, English when the
    // caller prefers it.
    let (status, body, _) = send(
        k.h.http
            .post(k.h.url(platform))
            .header("accept-language", "en")
            .json(&hi()),
    )
    .await;
    assert_eq!((status, &body["code"]), (401, &json!(401)));
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Missing API key"),
        "{body}"
    );
    let (_, body, _) = send(
        k.h.http
            .post(k.h.url(platform))
            .header("accept-language", "zh-CN,zh;q=0.9,en;q=0.8")
            .json(&hi()),
    )
    .await;
    assert_eq!(
        body,
        json!({"code": 401, "message": "缺少 API Key，请在 Authorization 或 x-api-key header 中提供"})
    );
    let wrong = format!("sk-{}", "x".repeat(64));
    let (_, body, _) = send(
        k.chat(platform, &wrong, hi())
            .header("accept-language", "en-GB"),
    )
    .await;
    assert_eq!(body, json!({"code": 401, "message": "Invalid API key."}));
    let (_, body, _) = send(k.chat(platform, &wrong, hi())).await;
    assert_eq!(body["message"], "无效的 API Key");

    // The same errors on a standard route keep the caller's dialect.
    let (status, body, _) = send(k.chat("/v1/chat/completions", &wrong, hi())).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (401, &json!("invalid_api_key"))
    );
    let (status, body, _) = send(
        k.h.http
            .post(k.h.url("/v1/messages"))
            .header("x-api-key", &wrong)
            .header("accept-language", "zh-CN")
            .json(&json!({"model": "mock-model", "max_tokens": 10, "messages": user("hi")})),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        (&body["type"], &body["error"]["message"]),
        (&json!("error"), &json!("无效的 API Key"))
    );

    // Disabled takes effect at once, and so does re-enabling.
    let toggle = format!("/api/api-keys/{id}/toggle");
    k.call(Method::PUT, &toggle, &alice, None).await;
    let (_, body, _) = send(k.chat(platform, &key, hi()).header("accept-language", "en")).await;
    assert_eq!(
        body,
        json!({"code": 401, "message": "API key is disabled."})
    );
    let (_, body, _) = send(k.chat(platform, &key, hi())).await;
    assert_eq!(body["message"], "API Key 已被禁用");
    k.call(Method::PUT, &toggle, &alice, None).await;
    assert_eq!(send(k.chat(platform, &key, hi())).await.0, 200);

    // A disabled owner disables their keys.
    let (_, me) = k.call(Method::GET, "/api/auth/me", &alice, None).await;
    let alice_id = me["data"]["id"].as_i64().unwrap();
    k.call(
        Method::PUT,
        &format!("/api/users/{alice_id}"),
        &k.admin,
        Some(json!({"status": "disabled"})),
    )
    .await;
    assert_eq!(
        send(k.chat(platform, &key, hi())).await.1["message"],
        "API Key 已被禁用"
    );
    k.call(
        Method::PUT,
        &format!("/api/users/{alice_id}"),
        &k.admin,
        Some(json!({"status": "active"})),
    )
    .await;

    // Expired.
    k.call(
        Method::PUT,
        &format!("/api/api-keys/{id}"),
        &alice,
        Some(json!({"expires_at": "2001-01-01T00:00:00Z"})),
    )
    .await;
    let (status, body, _) =
        send(k.chat(platform, &key, hi()).header("accept-language", "en")).await;
    assert_eq!(
        (status, body),
        (401, json!({"code": 401, "message": "API key has expired."}))
    );
    let (_, body, _) = send(k.chat(platform, &key, hi()).header("accept-language", "zh")).await;
    assert_eq!(body["message"], "API Key 已过期");
    k.call(
        Method::PUT,
        &format!("/api/api-keys/{id}"),
        &alice,
        Some(json!({"expires_at": null})),
    )
    .await;

    // Platform and model permissions: 403.
    k.call(
        Method::PUT,
        &format!("/api/api-keys/{id}"),
        &alice,
        Some(json!({"allowed_platforms": "gemini,claude-official"})),
    )
    .await;
    let (status, body, _) = send(k.chat(platform, &key, hi())).await;
    assert_eq!((status, &body["code"]), (403, &json!(403)), "{body}");
    let (_, body, _) = send(k.chat(platform, &key, hi()).header("accept-language", "zh")).await;
    assert_eq!(body["message"], "无权访问此平台");
    k.call(
        Method::PUT,
        &format!("/api/api-keys/{id}"),
        &alice,
        Some(json!({"allowed_platforms": "openai", "allowed_models": "other-model"})),
    )
    .await;
    let (status, body, _) = send(k.chat(platform, &key, hi())).await;
    assert_eq!((status, &body["code"]), (403, &json!(403)), "{body}");
    let (_, body, _) = send(k.chat(platform, &key, hi()).header("accept-language", "zh")).await;
    assert_eq!(body["message"], "无权使用此模型");
    let (status, body, _) = send(k.chat("/v1/chat/completions", &key, hi())).await;
    assert_eq!(
        (status, &body["error"]["type"]),
        (403, &json!("permission_error"))
    );
    k.call(
        Method::PUT,
        &format!("/api/api-keys/{id}"),
        &alice,
        Some(json!({"allowed_models": "mock-*"})),
    )
    .await;
    assert_eq!(send(k.chat(platform, &key, hi())).await.0, 200);
    // Model listings show a key only the models it may use.
    let listed: Value =
        k.h.http
            .get(k.h.url("/v1/models"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let ids: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, vec!["mock-model"], "{listed}");

    // Deleted: gone at once.
    k.call(Method::DELETE, &format!("/api/api-keys/{id}"), &alice, None)
        .await;
    assert_eq!(
        send(k.chat(platform, &key, hi())).await.1["message"],
        "无效的 API Key"
    );
}

#[tokio::test]
async fn rate_daily_and_quota_limits_answer_429() {
    let k = Keys::start().await;
    let alice = k.user("alice").await;
    let platform = "/openai/v1/chat/completions";

    let (_, per_minute) = k.key(&alice, json!({"name": "rpm", "rate_limit": 2})).await;
    assert_eq!(send(k.chat(platform, &per_minute, hi())).await.0, 200);
    assert_eq!(send(k.chat(platform, &per_minute, hi())).await.0, 200);
    let (status, body, headers) = send(
        k.chat(platform, &per_minute, hi())
            .header("accept-language", "en"),
    )
    .await;
    assert_eq!((status, &body["code"]), (429, &json!(429)), "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("2 per minute"),
        "{body}"
    );
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let (_, body, _) = send(
        k.chat(platform, &per_minute, hi())
            .header("accept-language", "zh-CN"),
    )
    .await;
    assert_eq!(body["message"], "请求过于频繁，请稍后再试");

    let (_, daily) = k
        .key(&alice, json!({"name": "daily", "daily_limit": 1}))
        .await;
    assert_eq!(send(k.chat(platform, &daily, hi())).await.0, 200);
    let (status, body, _) = send(
        k.chat(platform, &daily, hi())
            .header("accept-language", "en"),
    )
    .await;
    assert_eq!(status, 429);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("Daily request limit"),
        "{body}"
    );

    // $0.50 buys no more than one 10-word answer ($1.00 each).
    let (_, quota) = k
        .key(&alice, json!({"name": "quota", "monthly_quota": 0.5}))
        .await;
    let ten = json!({"model": "mock-model", "max_tokens": 10, "messages": user("mock:words=10")});
    assert_eq!(send(k.chat(platform, &quota, ten.clone())).await.0, 200);
    let (status, body, _) = send(
        k.chat(platform, &quota, ten.clone())
            .header("accept-language", "en"),
    )
    .await;
    assert_eq!(status, 429);
    assert!(
        body["message"].as_str().unwrap().contains("quota"),
        "{body}"
    );
    let (status, body, _) = send(k.chat("/v1/chat/completions", &quota, ten)).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (429, &json!("monthly_quota_exceeded"))
    );
}

#[tokio::test]
async fn two_hundred_concurrent_requests_against_rate_limit_60_admit_exactly_60() {
    let k = Keys::start().await;
    let alice = k.user("alice").await;
    let (id, key) = k
        .key(&alice, json!({"name": "burst", "rate_limit": 60}))
        .await;
    let k = Arc::new(k);
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let k = k.clone();
            let key = key.clone();
            tokio::spawn(async move { send(k.chat("/v1/chat/completions", &key, hi())).await.0 })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((ok, limited), (60, 140), "{statuses:?}");
    let row = k.key_row(&alice, id).await;
    assert_eq!(
        row["request_count"], 200,
        "every request is recorded, refused ones too"
    );
}

#[tokio::test]
async fn a_quota_reached_mid_burst_is_overshot_by_at_most_the_requests_in_flight() {
    let k = Arc::new(Keys::start().await);
    let alice = k.user("alice").await;

    // Exact reservations ($1.00 each, from max_tokens): 20 at once against $5.50 admit 6.
    let (id, key) = k
        .key(&alice, json!({"name": "exact", "monthly_quota": 5.5}))
        .await;
    let body = json!({"model": "mock-model", "max_tokens": 10, "messages": user("mock:words=10 mock:latency_ms=50")});
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (k, key, body) = (k.clone(), key.clone(), body.clone());
            tokio::spawn(async move { send(k.chat("/v1/chat/completions", &key, body)).await.0 })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        ok += usize::from(t.await.unwrap() == 200);
    }
    assert_eq!(ok, 6);
    let row = k.key_row(&alice, id).await;
    assert_eq!(row["used_cost"].as_f64().unwrap(), 6.0);

    // Reservations too small ($0.10, the answer costs $1.00): 4 callers in a loop never
    // have more than 4 requests in flight, so the quota is overshot by at most $4.00.
    let (id, key) = k
        .key(&alice, json!({"name": "under", "monthly_quota": 5.5}))
        .await;
    let body = json!({"model": "mock-model", "max_tokens": 1, "messages": user("mock:words=10 mock:latency_ms=20")});
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (k, key, body) = (k.clone(), key.clone(), body.clone());
            tokio::spawn(async move {
                let mut admitted = 0;
                while send(k.chat("/v1/chat/completions", &key, body.clone()))
                    .await
                    .0
                    == 200
                {
                    admitted += 1;
                }
                admitted
            })
        })
        .collect();
    let mut admitted = 0;
    for w in workers {
        admitted += w.await.unwrap();
    }
    let used = k.key_row(&alice, id).await["used_cost"].as_f64().unwrap();
    assert!(
        (5.5..=5.5 + 4.0).contains(&used),
        "used {used} after {admitted} admitted"
    );
    assert_eq!(used, admitted as f64);
}

#[tokio::test]
async fn the_daily_limit_resets_at_midnight_in_the_configured_time_zone() {
    // 23:59:50 on 2025-03-09 in Shanghai is 15:59:50 UTC.
    let start = chrono::DateTime::parse_from_rfc3339("2025-03-09T15:59:50Z")
        .unwrap()
        .timestamp_millis();
    let clock = Arc::new(ManualClock::new(start));
    let mock = sluice_mock::MockServer::start(Default::default())
        .await
        .unwrap();
    let yaml = config_yaml(
        &mock,
        &format!("{}\ntimezone: Asia/Shanghai", accounts_yaml()),
        "",
    );
    let mut config = sluice::config::Config::from_yaml(&yaml, |_| None).unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    config.data_dir = data_dir.path().to_path_buf();
    let store_db = common::test_store(&mut config).await;
    let usage = sluice::pipeline::account::MemorySink::default();
    let server =
        sluice::server::start_with_clock(config, vec![Box::new(usage.clone())], clock.clone())
            .await
            .unwrap();
    let http = reqwest::Client::new();
    let h = Harness {
        mock,
        server,
        usage,
        http,
        data_dir,
        store_db,
    };
    let k = Keys::with(h).await;
    let alice = k.user("alice").await;
    let (_, key) = k
        .key(&alice, json!({"name": "daily", "daily_limit": 2}))
        .await;
    let path = "/openai/v1/chat/completions";
    assert_eq!(send(k.chat(path, &key, hi())).await.0, 200);
    assert_eq!(send(k.chat(path, &key, hi())).await.0, 200);
    let (status, _, headers) = send(k.chat(path, &key, hi())).await;
    assert_eq!(
        (status, headers["retry-after"].to_str().unwrap()),
        (429, "10")
    );
    clock.advance(9_999);
    assert_eq!(
        send(k.chat(path, &key, hi())).await.0,
        429,
        "23:59:59.999 is still the same day"
    );
    clock.advance(1); // midnight in Shanghai; still the 9th in UTC
    assert_eq!(send(k.chat(path, &key, hi())).await.0, 200);
    assert_eq!(send(k.chat(path, &key, hi())).await.0, 200);
    assert_eq!(send(k.chat(path, &key, hi())).await.0, 429);
    assert!(clock.now_ms() > start);
}

#[tokio::test]
async fn every_request_is_recorded_with_the_upstreams_tokens_and_their_cost() {
    let mock = sluice_mock::MockServer::start(Default::default())
        .await
        .unwrap();
    let base = format!("http://{}", mock.addr());
    let yaml = format!(
        "listen: 127.0.0.1:0
{}
prices: {{mock-chat-model: {{input: 1, output: 2}}, claude-mock: {{input: 3, output: 15, cache-read: 0.3}}}}
providers:
  - {{name: up-chat, kind: openai-compatible, base-url: '{base}/v1', models: [{{name: mock-chat-model, alias: via-chat}}]}}
  - {{name: up-anthropic, kind: anthropic, base-url: '{base}', models: [{{name: claude-mock, alias: via-anthropic}}]}}
",
        accounts_yaml().lines().next().unwrap()
    );
    let k = Keys::with(Harness::from_yaml(mock, &yaml).await).await;
    let alice = k.user("alice").await;
    let (id, key) = k.key(&alice, json!({"name": "metered"})).await;

    // Passthrough and translated, streamed and not: the client sees the upstream's usage.
    let (mut input, mut output, mut cost) = (0u64, 0u64, 0f64);
    let mut n = 0;
    for model in ["via-chat", "via-anthropic"] {
        for stream in [false, true] {
            for words in [3, 7] {
                let body = json!({"model": model, "stream": stream, "stream_options": {"include_usage": true},
                    "messages": user(&format!("count me mock:words={words} mock:cached=2"))});
                let body = if stream {
                    body
                } else {
                    json!({"model": model, "messages": body["messages"]})
                };
                let resp = k
                    .chat("/v1/chat/completions", &key, body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200);
                let text = resp.text().await.unwrap();
                let usage = if stream {
                    let chunks = sse_data(&text);
                    serde_json::from_str::<Value>(&chunks[chunks.len() - 2]).unwrap()["usage"]
                        .clone()
                } else {
                    serde_json::from_str::<Value>(&text).unwrap()["usage"].clone()
                };
                let (p, c, cached) = (
                    usage["prompt_tokens"].as_u64().unwrap(),
                    usage["completion_tokens"].as_u64().unwrap(),
                    usage["prompt_tokens_details"]["cached_tokens"]
                        .as_u64()
                        .unwrap_or(0),
                );
                assert_eq!(c, words, "{usage}");
                input += p;
                output += c;
                cost += if model == "via-chat" {
                    (p - cached) as f64 * 1.0 + cached as f64 * 1.0 + c as f64 * 2.0
                } else {
                    (p - cached) as f64 * 3.0 + cached as f64 * 0.3 + c as f64 * 15.0
                } / 1e6;
                n += 1;
            }
        }
    }
    let _ = k.h.records().await; // flushes the usage log into the store
    let (status, report) = k
        .call(
            Method::GET,
            &format!("/api/api-keys/{id}/usage?limit=100"),
            &alice,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let data = &report["data"];
    assert_eq!(data["requests"], n);
    assert_eq!(
        (
            data["input_tokens"].as_u64(),
            data["output_tokens"].as_u64()
        ),
        (Some(input), Some(output))
    );
    assert!(
        (data["cost"].as_f64().unwrap() - cost).abs() < 1e-9,
        "{} vs {cost}",
        data["cost"]
    );
    let records = data["records"].as_array().unwrap();
    assert_eq!(records.len(), n);
    assert!(
        records
            .iter()
            .all(|r| r["estimated"] == false && r["api_key_id"] == id && r["status"] == 200)
    );
    assert_eq!(
        records.iter().filter(|r| r["stream"] == true).count(),
        n / 2
    );
    assert!(
        records
            .iter()
            .any(|r| r["model_served"] == "claude-mock" && r["platform"] == "claude-console")
    );
    let row = k.key_row(&alice, id).await;
    assert_eq!(row["request_count"], n);
    assert_eq!(row["used_tokens"].as_u64(), Some(input + output));
    assert!((row["used_cost"].as_f64().unwrap() - cost).abs() < 1e-9);
    assert!(row["last_used_at"].is_string());

    // Summaries: the user's own, and the admin's global view; ranges are validated.
    let (_, summary) = k
        .call(Method::GET, "/api/usage/summary", &alice, None)
        .await;
    assert_eq!(summary["data"]["requests"], n);
    let (_, models) = k.call(Method::GET, "/api/usage/models", &alice, None).await;
    let names: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["model"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["claude-mock", "mock-chat-model"]);
    let (_, daily) = k
        .call(Method::GET, "/api/usage/daily", &k.admin, None)
        .await;
    assert_eq!(daily["data"][0]["requests"], n);
    let (_, empty) = k
        .call(
            Method::GET,
            "/api/usage/summary?start=2001-01-01&end=2001-01-31",
            &alice,
            None,
        )
        .await;
    assert_eq!(empty["data"]["requests"], 0);
    let (status, err) = k
        .call(
            Method::GET,
            "/api/usage/summary?start=yesterday",
            &alice,
            None,
        )
        .await;
    assert_eq!(status, 400);
    assert!(err["message"].as_str().unwrap().contains("start"));
    let bob = k.user("bob").await;
    let (_, bobs) = k.call(Method::GET, "/api/usage/summary", &bob, None).await;
    assert_eq!(
        bobs["data"]["requests"], 0,
        "users see only their own usage"
    );
}

#[tokio::test]
async fn upstreams_that_report_no_usage_are_counted_locally_and_marked_estimated() {
    let k = Keys::start().await;
    let alice = k.user("alice").await;
    let (id, key) = k.key(&alice, json!({"name": "k"})).await;
    // Config keys count too, as the first admin's.
    for (stream, who) in [
        (false, key.as_str()),
        (true, key.as_str()),
        (false, CLIENT_KEY),
    ] {
        let body = json!({"model": "gpt-4o-mini", "stream": stream, "messages": user("Hello world mock:usage=none mock:words=5")});
        let resp = k
            .chat("/v1/chat/completions", who, body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let text = resp.text().await.unwrap();
        assert!(
            !text.contains("\"usage\""),
            "the client asked for no usage: {text}"
        );
    }
    let records = k.h.records().await;
    assert_eq!(records.len(), 3);
    for r in &records {
        assert!(r.estimated, "{r:?}");
        // `mock-model` is not an OpenAI model: a token per four characters of "w1 w2 w3 w4 w5".
        assert_eq!(r.usage.output_tokens, 4, "{r:?}");
        assert!(r.usage.input_tokens > 0);
        assert_eq!(r.cost_nanos, 400_000_000, "4 output tokens at $0.10");
    }
    assert!(records[2].api_key_id.is_none() && records[2].user_id == Some(1));
    let row = k.key_row(&alice, id).await;
    assert_eq!(row["request_count"], 2);
    assert_eq!(row["used_cost"].as_f64(), Some(0.8));
}

/// A gateway with an Anthropic upstream (`claude-mock`, `via-anthropic`): output costs
/// `output_price` USD per million tokens, input is free.
async fn anthropic_keys(output_price: u32) -> Keys {
    let mock = sluice_mock::MockServer::start(Default::default())
        .await
        .unwrap();
    let yaml = format!(
        "listen: 127.0.0.1:0
auth: {{admin: {{username: {}, password: {}}}}}
prices: {{claude-mock: {{input: 0, output: {output_price}}}}}
cooldown: {{server-error-threshold: 1000}}
providers:
  - {{name: up-anthropic, kind: anthropic, base-url: 'http://{}', api-keys: [{UPSTREAM_KEY}], models: [{{name: claude-mock, alias: via-anthropic}}]}}
",
        ADMIN.0,
        ADMIN.1,
        mock.addr()
    );
    Keys::with(Harness::from_yaml(mock, &yaml).await).await
}

fn messages(k: &Keys, key: &str, body: Value) -> reqwest::RequestBuilder {
    k.h.http
        .post(k.h.url("/v1/messages"))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .json(&body)
}

/// Anthropic reports output tokens only at the end of a stream: 20 streams cut after hundreds
/// of words (10 by the upstream, 10 by their client) are billed for what the client received,
/// and a small quota then stops admitting cut streams.
#[tokio::test]
async fn cut_streams_are_billed_for_the_tokens_the_client_received() {
    use futures_util::StreamExt;
    let k = Arc::new(anthropic_keys(10).await);
    let alice = k.user("alice").await;
    let (_, key) = k.key(&alice, json!({"name": "open"})).await;
    // 3 events precede the text deltas: 300 words reach the client, then the upstream breaks.
    let cut = json!({"model": "claude-mock", "max_tokens": 1000, "stream": true,
        "messages": user("mock:words=1000 mock:cut_after=303")});
    let slow = json!({"model": "claude-mock", "max_tokens": 1000, "stream": true,
        "messages": user("mock:words=1000 mock:chunk_delay_ms=2")});
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (k, key) = (k.clone(), key.clone());
        let body = if i < 10 { cut.clone() } else { slow.clone() };
        tasks.push(tokio::spawn(async move {
            let resp = messages(&k, &key, body).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            let mut stream = resp.bytes_stream();
            let mut text = String::new();
            while let Some(Ok(chunk)) = stream.next().await {
                text.push_str(&String::from_utf8_lossy(&chunk));
                // The client goes away after 300 text deltas.
                if i >= 10 && text.matches("\"text_delta\"").count() >= 300 {
                    break;
                }
            }
            text.matches("\"text_delta\"").count()
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap() >= 300);
    }
    let records = k.h.wait_records(20).await;
    assert_eq!(records.len(), 20);
    for r in &records {
        assert!(r.stream && r.estimated, "{r:?}");
        // "w1 w2 … w300": about 1,400 characters, 350 tokens at four characters a token.
        assert!(r.usage.output_tokens >= 300, "{:?}", r.usage);
        assert!(r.cost_nanos >= 3_000_000, "{r:?}");
    }
    let upstream_cut = records
        .iter()
        .filter(|r| r.error.as_deref() == Some("upstream_stream_broken"))
        .count();
    let client_cut = records.iter().filter(|r| r.status == 499).count();
    assert_eq!((upstream_cut, client_cut), (10, 10), "{records:?}");

    // $0.01 of quota: each cut stream costs about $0.0035 (350 tokens at $10 a million), so
    // admission stops after three or four of twenty.
    let (id, quota) = k
        .key(&alice, json!({"name": "small", "monthly_quota": 0.01}))
        .await;
    let small = json!({"model": "claude-mock", "max_tokens": 400, "stream": true,
        "messages": user("mock:words=1000 mock:cut_after=303")});
    let mut admitted = 0;
    for _ in 0..20 {
        let resp = messages(&k, &quota, small.clone()).send().await.unwrap();
        if resp.status() == 200 {
            admitted += 1;
            resp.text().await.unwrap();
        } else {
            let status = resp.status();
            let text = resp.text().await.unwrap();
            assert_eq!(status, 429, "{text}");
            assert!(text.contains("quota"), "{text}");
        }
    }
    let row = k.key_row(&alice, id).await;
    assert!((3..=4).contains(&admitted), "admitted {admitted}: {row}");
    let row = k.key_row(&alice, id).await;
    assert!(row["used_cost"].as_f64().unwrap() >= 0.01, "{row}");
}

/// The reservation is priced from the output limit the upstream will enforce: a Responses
/// client's `max_completion_tokens: 1` (a field the translation to Anthropic drops; the
/// upstream gets the default `max_tokens` 8192) does not shrink it.
#[tokio::test]
async fn a_field_the_upstream_ignores_does_not_shrink_the_reservation() {
    let k = Arc::new(anthropic_keys(1).await);
    let alice = k.user("alice").await;
    // 8192 output tokens at $1 a million: $0.0082 reserved; $0.01 covers one such request.
    let (_, key) = k
        .key(&alice, json!({"name": "small", "monthly_quota": 0.01}))
        .await;
    let body = json!({"model": "via-anthropic", "input": "hi mock:latency_ms=500",
        "max_completion_tokens": 1});
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (k, key, body) = (k.clone(), key.clone(), body.clone());
            tokio::spawn(async move {
                let req =
                    k.h.http
                        .post(k.h.url("/v1/responses"))
                        .bearer_auth(&key)
                        .json(&body);
                send(req).await.0
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert!((1..=2).contains(&ok), "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 50 - ok);
}

/// A model with no price is never free to a key with a quota: without `default-price` such a
/// key is refused it (403 naming the model, in the route's shape, and recorded); a key without
/// a quota is served at $0. With `default-price` it is charged, and the quota stops it.
#[tokio::test]
async fn unpriced_models_are_refused_to_quota_keys_or_charged_the_default_price() {
    let unpriced = "      - {name: unpriced-model}";
    let k = Keys::with(Harness::with_config(&accounts_yaml(), unpriced).await).await;
    let alice = k.user("alice").await;
    let (_, quota) = k
        .key(&alice, json!({"name": "quota", "monthly_quota": 0.5}))
        .await;
    let (_, open) = k.key(&alice, json!({"name": "open"})).await;
    let ask = json!({"model": "unpriced-model", "messages": user("mock:words=10")});
    let (status, body, _) = send(k.chat("/v1/chat/completions", &quota, ask.clone())).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &json!("model_not_priced")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`unpriced-model`")
    );
    let (status, body, _) = send(k.chat("/openai/v1/chat/completions", &quota, ask.clone())).await;
    assert_eq!((status, &body["code"]), (403, &json!(403)), "{body}");
    // Seed 004's route speaks Chinese unless English is preferred.
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("没有价格") && message.contains("`unpriced-model`"),
        "{body}"
    );
    let (_, body, _) = send(
        k.chat("/openai/v1/chat/completions", &quota, ask.clone())
            .header("accept-language", "en-US,en;q=0.9"),
    )
    .await;
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Model `unpriced-model` has no price"),
        "{body}"
    );
    assert_eq!(
        send(k.chat("/v1/chat/completions", &open, ask.clone()))
            .await
            .0,
        200
    );
    let records = k.h.records().await;
    let statuses: Vec<(u16, i64)> = records.iter().map(|r| (r.status, r.cost_nanos)).collect();
    assert_eq!(statuses, [(403, 0), (403, 0), (403, 0), (200, 0)]);

    // $0.10 a token by default: ten words cost $1.00, beyond a $0.50 quota after one answer.
    let yaml = format!(
        "{}\ndefault-price: {{input: 0, output: 100000}}",
        accounts_yaml()
    );
    let k = Keys::with(Harness::with_config(&yaml, unpriced).await).await;
    let alice = k.user("alice").await;
    let (id, quota) = k
        .key(&alice, json!({"name": "quota", "monthly_quota": 0.5}))
        .await;
    assert_eq!(
        send(k.chat("/v1/chat/completions", &quota, ask.clone()))
            .await
            .0,
        200
    );
    let (status, body, _) = send(k.chat("/v1/chat/completions", &quota, ask)).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (429, &json!("monthly_quota_exceeded"))
    );
    assert_eq!(k.key_row(&alice, id).await["used_cost"].as_f64(), Some(1.0));
}

/// Every record has a gateway-generated id, and the store writes one row per id: 30 requests
/// at once that share a client's `X-Request-Id` (PostgreSQL used to merge those within a
/// millisecond) are 30 records, and the key's counters count all 30.
#[tokio::test]
async fn requests_sharing_a_request_id_each_keep_their_record() {
    let k = Arc::new(Keys::start().await);
    let alice = k.user("alice").await;
    let (id, key) = k
        .key(&alice, json!({"name": "same-id", "rate_limit": 0}))
        .await;
    let tasks: Vec<_> = (0..30)
        .map(|_| {
            let (k, key) = (k.clone(), key.clone());
            tokio::spawn(async move {
                let req = k
                    .chat("/v1/chat/completions", &key, hi())
                    .header("x-request-id", "client-chosen-id");
                send(req).await.0
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let row = k.key_row(&alice, id).await;
    assert_eq!(row["request_count"], 30, "{row}");
    let (status, usage) = k
        .call(
            Method::GET,
            &format!("/api/api-keys/{id}/usage?limit=100"),
            &alice,
            None,
        )
        .await;
    assert_eq!(status, 200, "{usage}");
    let records = usage["data"]["records"].as_array().unwrap();
    let ids: std::collections::HashSet<&str> = records
        .iter()
        .map(|r| r["record_id"].as_str().unwrap())
        .collect();
    assert_eq!((records.len(), ids.len()), (30, 30), "{usage}");
    assert!(
        records
            .iter()
            .all(|r| r["request_id"] == "client-chosen-id")
    );
}

/// Seed 004 lets a user set their own keys' limits; an admin's ceilings bound them: existing
/// keys are lowered to fit, values above a ceiling are refused with 403 naming it, new keys
/// start within them, the monthly budget is shared by all the user's keys, and the limits hold
/// at admission. Without ceilings, the seed's behaviour (unlimited keys) is back.
#[tokio::test]
async fn admin_ceilings_bound_what_users_set_on_their_keys() {
    let k = Keys::start().await;
    let alice = k.user("alice").await;
    let (_, me) = k.call(Method::GET, "/api/auth/me", &alice, None).await;
    let uid = me["data"]["id"].as_i64().unwrap();
    let user_path = format!("/api/users/{uid}");
    let (first, _) = k
        .key(
            &alice,
            json!({"name": "free", "rate_limit": 0, "monthly_quota": 0}),
        )
        .await;
    let (status, _) = k
        .call(
            Method::PUT,
            &user_path,
            &alice,
            Some(json!({"max_rate_limit": 1000})),
        )
        .await;
    assert_eq!(status, 403, "only admins set ceilings");

    let ceilings = json!({"max_rate_limit": 100, "max_daily_limit": 1000,
        "max_monthly_quota": 5, "monthly_budget": 8});
    let (status, body) = k
        .call(Method::PUT, &user_path, &k.admin, Some(ceilings))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["monthly_budget"].as_f64(), Some(8.0));
    let row = k.key_row(&alice, first).await;
    assert_eq!(
        (
            &row["rate_limit"],
            &row["daily_limit"],
            &row["monthly_quota"]
        ),
        (&json!(100), &json!(1000), &json!(5.0)),
        "the existing key is lowered to fit"
    );

    let key_path = format!("/api/api-keys/{first}");
    for (change, ceiling) in [
        (json!({"rate_limit": 0}), "max_rate_limit"),
        (json!({"rate_limit": 500}), "max_rate_limit"),
        (json!({"daily_limit": 0}), "max_daily_limit"),
        (json!({"monthly_quota": 6}), "max_monthly_quota"),
    ] {
        let (status, body) = k
            .call(Method::PUT, &key_path, &alice, Some(change.clone()))
            .await;
        assert_eq!(status, 403, "{change}: {body}");
        let message = body["message"].as_str().unwrap();
        // Seed 004's words by default: Chinese, naming the ceiling.
        assert!(
            message.contains(ceiling) && message.contains("管理员"),
            "{change}: {body}"
        );
        let english: Value =
            k.h.http
                .put(k.h.url(&key_path))
                .bearer_auth(&alice)
                .header("accept-language", "en")
                .json(&change)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        let message = english["message"].as_str().unwrap();
        assert!(
            message.contains(ceiling) && message.contains("set by an administrator"),
            "{change}: {english}"
        );
    }
    let (status, body) = k
        .call(
            Method::PUT,
            &key_path,
            &alice,
            Some(json!({"rate_limit": 50})),
        )
        .await;
    assert_eq!((status, &body["data"]["rate_limit"]), (200, &json!(50)));

    // A new key starts within the ceilings, with what the budget has left ($8 - $5).
    let (second, key) = k.key(&alice, json!({"name": "second"})).await;
    let row = k.key_row(&alice, second).await;
    assert_eq!(
        (
            &row["rate_limit"],
            &row["daily_limit"],
            &row["monthly_quota"]
        ),
        (&json!(60), &json!(1000), &json!(3.0))
    );
    let (status, body) = k
        .call(
            Method::POST,
            "/api/api-keys",
            &alice,
            Some(json!({"name": "third"})),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("monthly_budget"),
        "{body}"
    );
    let (status, body) = k
        .call(
            Method::PUT,
            &format!("/api/api-keys/{second}"),
            &alice,
            Some(json!({"monthly_quota": 4})),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("monthly_budget"),
        "{body}"
    );

    // The lowered quota holds at admission: $1.00 answers against $3.00.
    let ten = json!({"model": "mock-model", "max_tokens": 10, "messages": user("mock:words=10")});
    let mut admitted = 0;
    while send(k.chat("/v1/chat/completions", &key, ten.clone()))
        .await
        .0
        == 200
    {
        admitted += 1;
        assert!(admitted <= 3, "the quota does not hold");
    }
    assert_eq!(admitted, 3);

    // A budget below what the keys' quotas already add up to is refused, naming it.
    let (status, body) = k
        .call(
            Method::PUT,
            &user_path,
            &k.admin,
            Some(json!({"monthly_budget": 4})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("monthly_budget"),
        "{body}"
    );

    // Ceilings removed: the seed's behaviour, unlimited keys included, is back.
    let none = json!({"max_rate_limit": null, "max_daily_limit": null,
        "max_monthly_quota": null, "monthly_budget": null});
    let (status, body) = k.call(Method::PUT, &user_path, &k.admin, Some(none)).await;
    assert_eq!(
        (status, &body["data"]["max_rate_limit"]),
        (200, &Value::Null)
    );
    let (status, body) = k
        .call(
            Method::PUT,
            &key_path,
            &alice,
            Some(json!({"rate_limit": 0, "daily_limit": 0, "monthly_quota": 0})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn keys_limits_and_quotas_hold_on_embeddings_and_forwarded_endpoints() {
    let h = Harness::with_config(
        &accounts_yaml(),
        "      - {name: text-embedding-3-small}\n      - {name: omni-moderation-latest}",
    )
    .await;
    let k = Keys::with(h).await;
    let alice = k.user("alice").await;
    let embed = json!({"model": "text-embedding-3-small", "input": "hi"});
    let moderate = json!({"input": "hi"});

    // One per-minute counter across chat, embeddings and moderations.
    let (_, key) = k.key(&alice, json!({"name": "two", "rate_limit": 2})).await;
    assert_eq!(
        send(k.chat("/v1/embeddings", &key, embed.clone())).await.0,
        200
    );
    assert_eq!(
        send(k.chat("/v1/moderations", &key, moderate.clone()))
            .await
            .0,
        200
    );
    let (status, body, _) = send(k.chat("/v1/embeddings", &key, embed.clone())).await;
    assert_eq!(status, 429, "{body}");

    // A key's allowed models hold.
    let (_, key) = k
        .key(
            &alice,
            json!({"name": "chat-only", "allowed_models": "mock-model"}),
        )
        .await;
    let (status, body, _) = send(k.chat("/v1/embeddings", &key, embed.clone())).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        send(k.chat("/v1/moderations", &key, moderate.clone()))
            .await
            .0,
        403
    );

    // A key with a quota is served priced embedding models (built-in price) and charged;
    // never an unpriced model.
    let (id, key) = k
        .key(&alice, json!({"name": "quota", "monthly_quota": 5}))
        .await;
    assert_eq!(send(k.chat("/v1/embeddings", &key, embed)).await.0, 200);
    let (status, body, _) = send(k.chat("/v1/moderations", &key, moderate)).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "model_not_priced");
    assert_eq!(
        k.h.mock.requests().len(),
        3,
        "only admitted calls went upstream"
    );
    let records = k.h.records().await;
    let charged = records
        .iter()
        .find(|r| r.api_key_id == Some(id) && r.status == 200)
        .unwrap();
    assert!(charged.cost_nanos > 0, "{charged:?}");
    assert_eq!(charged.endpoint, "openai.embeddings");
}
