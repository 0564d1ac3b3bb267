//! Issue 9's resource limits and trust boundaries, against a real server on a real port (and
//! the `sluice` binary where the file system is the point): bounded request ids, private data
//! files, symlinks in `auth-dir`, paths resolved against the config file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn request_ids_are_short_and_safe_or_generated() {
    let h = Harness::start().await;
    let huge = "A".repeat(200 * 1024);
    let cases: [(&str, bool); 6] = [
        ("req-abc_1.2:3/4+5=", true),
        (&"b".repeat(128), true),
        (&"c".repeat(129), false),
        ("has space", false),
        ("semi;colon", false),
        (&huge, false),
    ];
    for (id, kept) in cases {
        // Rejected (no key) and served requests alike.
        for key in [None, Some(CLIENT_KEY)] {
            let mut request = h
                .http
                .post(h.url("/v1/chat/completions"))
                .header("x-request-id", id)
                .json(&json!({"model": "mock-model", "messages": user("hi")}));
            if let Some(key) = key {
                request = request.bearer_auth(key);
            }
            let resp = request.send().await.unwrap();
            assert_eq!(resp.status(), if key.is_some() { 200 } else { 401 });
            let answered = resp.headers()["x-request-id"].to_str().unwrap().to_string();
            if kept {
                assert_eq!(answered, id);
            } else {
                assert!(
                    answered.starts_with("req_") && answered.len() < 40,
                    "{} chars: {}",
                    answered.len(),
                    &answered[..answered.len().min(60)]
                );
            }
        }
    }
    let records = h.records().await;
    assert_eq!(records.len(), 12);
    for r in &records {
        assert!(r.request_id.len() <= 128, "{} chars", r.request_id.len());
    }
    // Two ids in one request: neither is trusted.
    let resp = h
        .chat(json!({"model": "mock-model", "messages": user("hi")}))
        .header("x-request-id", "first")
        .header("x-request-id", "second")
        .send()
        .await
        .unwrap();
    assert!(
        resp.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .starts_with("req_")
    );
    let upstream = h.mock.requests();
    assert!(
        upstream
            .iter()
            .all(|r| r.header("x-request-id").is_some_and(|id| id.len() <= 128))
    );
}

#[cfg(unix)]
#[tokio::test]
async fn auth_file_download_never_follows_a_symlink() {
    let auths = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.json");
    std::fs::write(
        &secret,
        r#"{"type":"claude","access_token":"outside-secret-xyz"}"#,
    )
    .unwrap();
    std::os::unix::fs::symlink(&secret, auths.path().join("evil.json")).unwrap();
    std::fs::write(
        auths.path().join("real.json"),
        r#"{"type":"claude","access_token":"inside-token"}"#,
    )
    .unwrap();
    let h = Harness::with_config(&format!("auth-dir: '{}'", auths.path().display()), "").await;

    let download = |name: &str| {
        h.management(
            reqwest::Method::GET,
            &format!("/auth-files/download?name={name}"),
        )
        .send()
    };
    let resp = download("evil.json").await.unwrap();
    assert_eq!(resp.status(), 404);
    let body = resp.text().await.unwrap();
    assert!(!body.contains("outside-secret"), "{body}");
    assert_eq!(body, r#"{"error":"file not found"}"#);
    let resp = download("real.json").await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("inside-token"));

    let list: Value = h
        .management(reqwest::Method::GET, "/auth-files")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = list["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["real.json"]);
}

/// The binary started from another directory: `data-dir` and `token-pool.data-dir` are found
/// next to the config file, and the store, its WAL and the data directory are private.
#[cfg(unix)]
#[tokio::test]
async fn data_files_are_private_and_paths_follow_the_config_file() {
    use std::os::unix::fs::PermissionsExt;
    let mock = sluice_mock::MockServer::start(Default::default())
        .await
        .unwrap();
    let root = tempfile::tempdir().unwrap();
    let conf = root.path().join("conf");
    let elsewhere = root.path().join("elsewhere");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = conf.join("sluice.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{port}
api-keys: [{CLIENT_KEY}]
token-pool:
  service-key: sk-service-key-0123
  data-dir: pool
providers:
  - {{name: qwen, kind: qwen, base-url: '{}', token-pool: true, models: [{{name: qwen3-coder-plus}}]}}
",
            mock.base_url()
        ),
    )
    .unwrap();
    let _child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["serve", "--config"])
        .arg(&config)
        .current_dir(&elsewhere)
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let mut ready = false;
    for _ in 0..200 {
        if http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "sluice did not become ready");
    let resp = http
        .post(format!("{base}/api/upload-token"))
        .bearer_auth("sk-service-key-0123")
        .json(&json!({"token": "pool-token-0001"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(conf.join("pool/token-pool.json").is_file());
    assert!(
        !elsewhere.join("pool").exists(),
        "resolved against the working directory"
    );
    assert!(!elsewhere.join("data").exists());

    let mode = |p: &std::path::Path| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777
    };
    let data = conf.join("data");
    assert_eq!(mode(&data), 0o700, "data directory");
    assert_eq!(mode(&conf.join("pool")), 0o700, "token pool directory");
    for file in ["sluice.db", "sluice.db-wal", "sluice.db-shm", "jwt-secret"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
}

#[tokio::test]
async fn concurrent_wrong_management_keys_cannot_outrun_the_ban() {
    let h = Harness::start().await;
    let attempts = (0..200).map(|i| {
        h.http
            .get(h.url("/v0/management/debug"))
            .header("x-management-key", format!("guess-{i}"))
            .send()
    });
    let statuses: Vec<u16> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    let wrong = statuses.iter().filter(|s| **s == 401).count();
    let banned = statuses.iter().filter(|s| **s == 403).count();
    assert_eq!((wrong, banned), (5, 195), "only five reach bcrypt");
    let resp = h
        .management(reqwest::Method::GET, "/debug")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403, "the right key is refused while banned");
}

async fn login(h: &Harness, username: &str, password: &str) -> reqwest::Response {
    h.http
        .post(h.url("/api/auth/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn sign_in_is_throttled_per_address_and_user_name() {
    let h = Harness::with_config(
        "auth: {admin: {username: admin, password: right-password-123}}\nmanagement-ban: {max-failures: 5, duration: 10m}",
        "",
    )
    .await;
    // A right password forgives earlier failures.
    for _ in 0..4 {
        assert_eq!(login(&h, "admin", "wrong").await.status(), 401);
    }
    assert_eq!(login(&h, "admin", "right-password-123").await.status(), 200);

    let guesses = (0..40).map(|i| {
        h.http
            .post(h.url("/api/auth/login"))
            .json(&json!({"username": "admin", "password": format!("guess-{i}")}))
            .send()
    });
    let statuses: Vec<u16> = futures_util::future::join_all(guesses)
        .await
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 5);
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 35);
    let resp = login(&h, "admin", "right-password-123").await;
    assert_eq!(resp.status(), 429, "banned: even the right password waits");
    assert!(resp.headers().contains_key("retry-after"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], 429);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("Too many failed sign-ins")
    );
    // The address is banned too, whatever user name it tries next.
    assert_eq!(login(&h, "someone-else", "x").await.status(), 429);
}

#[tokio::test]
async fn seed_rules_hold_on_their_own_routes_only() {
    let h = Harness::with_config(
        "allow-anonymous: true\nauth: {admin: {username: admin, password: right-password-123}}",
        "    allow-client-tokens: true",
    )
    .await;
    let body = json!({"model": "mock-model", "messages": user("hi")});
    let post = |path: &str, bearer: Option<&str>, lang: Option<&str>| {
        let mut request = h.http.post(h.url(path)).json(&body);
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        if let Some(lang) = lang {
            request = request.header("accept-language", lang);
        }
        request.send()
    };
    // Seed 004's routes: a Sluice key, always, and its 401s in its words.
    for path in [
        "/openai/v1/chat/completions",
        "/claude/v1/messages",
        "/gemini/v1/chat",
    ] {
        let resp = post(path, None, None).await.unwrap();
        assert_eq!(
            resp.status(),
            401,
            "{path}: allow-anonymous does not open it"
        );
        let answer: Value = resp.json().await.unwrap();
        assert_eq!(
            answer,
            json!({"code": 401, "message": "缺少 API Key，请在 Authorization 或 x-api-key header 中提供"}),
            "{path}"
        );
        let resp = post(path, Some("callers-own-token"), None).await.unwrap();
        assert_eq!(resp.status(), 401, "{path}: no caller token is forwarded");
        let answer: Value = resp.json().await.unwrap();
        assert_eq!(answer, json!({"code": 401, "message": "无效的 API Key"}));
        let resp = post(path, Some("callers-own-token"), Some("en-US,en;q=0.9"))
            .await
            .unwrap();
        let answer: Value = resp.json().await.unwrap();
        assert_eq!(
            answer["message"], "Invalid API key.",
            "{path}: English on request"
        );
    }
    assert!(h.mock.requests().is_empty(), "nothing reached the upstream");
    let resp = post("/openai/v1/chat/completions", Some(CLIENT_KEY), None)
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // Seed 000's route keeps its rules; standard routes stay in English.
    let resp = post("/v1/chat/completions", Some("callers-own-token"), None)
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        post("/v1/chat/completions", None, None)
            .await
            .unwrap()
            .status(),
        200
    );
    let resp = post("/v1/messages", Some("callers-own-token"), None)
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        401,
        "caller tokens belong to seed 000's routes"
    );
    let resp = post("/v1/chat/completions", Some("sk-wrong-key"), None)
        .await
        .unwrap();
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["error"]["message"], "Invalid API key.");

    // A dashboard session token is never forwarded upstream.
    let session: Value = login(&h, "admin", "right-password-123")
        .await
        .json()
        .await
        .unwrap();
    let jwt = session["data"]["token"].as_str().unwrap();
    let resp = post("/v1/chat/completions", Some(jwt), None).await.unwrap();
    assert_eq!(resp.status(), 401);
    let forwarded: Vec<String> = h
        .mock
        .requests()
        .iter()
        .filter_map(|r| r.header("authorization").map(String::from))
        .collect();
    assert!(forwarded.iter().all(|a| !a.contains(jwt)), "{forwarded:?}");
    assert_eq!(forwarded.len(), 3);
}

#[tokio::test]
async fn token_pool_resource_urls_must_be_allowed_https_hosts() {
    let pool = tempfile::tempdir().unwrap();
    let h = Harness::with_config(
        &format!(
            "token-pool: {{service-key: sk-service-key-0123, data-dir: '{}'}}",
            pool.path().display()
        ),
        "    token-pool: true",
    )
    .await;
    let upload = |resource: &str| {
        h.http
            .post(h.url("/api/upload-token"))
            .bearer_auth("sk-service-key-0123")
            .json(&json!({"access_token": format!("tok-{}", resource.len()), "resource_url": resource}))
            .send()
    };
    for refused in [
        "http://169.254.169.254/latest",
        "http://portal.qwen.ai",
        "https://evil.example.com",
        "https://portal.qwen.ai.evil.example.com",
        "https://user:pw@portal.qwen.ai",
        "portal.qwen.ai:8443",
        "127.0.0.1",
    ] {
        let resp = upload(refused).await.unwrap();
        assert_eq!(resp.status(), 400, "{refused}");
        let body: Value = resp.json().await.unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("resource_url"),
            "{body}"
        );
    }
    for accepted in [
        "portal.qwen.ai",
        "https://chat.qwen.ai/",
        "https://dashscope.aliyuncs.com/compatible-mode",
    ] {
        assert_eq!(upload(accepted).await.unwrap().status(), 200, "{accepted}");
    }
    let status: Value = h
        .http
        .get(h.url("/api/token-status"))
        .bearer_auth("sk-service-key-0123")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["total"], 3, "{status}");
}

/// Issue 9 item 13: whatever of the gateway's own provider key an upstream error echoes (the
/// mock answers like OpenAI, `Incorrect API key provided: sk-...WXYZ`) never reaches the
/// client, in the upstream's dialect or translated.
#[tokio::test]
async fn upstream_errors_never_echo_the_gateway_key() {
    const KEY_ONE: &str = "sk-live-gateway-key-0001-WXYZ";
    const KEY_TWO: &str = "sk-live-gateway-key-0002-QRST";
    const KEY_THREE: &str = "sk-live-gateway-key-0003-LMNO";
    const KEY_FOUR: &str = "sk-live-gateway-key-0004-HIJK";
    let keys = [KEY_ONE, KEY_TWO, KEY_THREE, KEY_FOUR];
    let mock = sluice_mock::MockServer::start(sluice_mock::MockConfig::default())
        .await
        .unwrap();
    for key in keys {
        mock.faults().set_for_key(key, "mock:reject_key=1");
    }
    let yaml = format!(
        "listen: 127.0.0.1:0
api-keys: [{CLIENT_KEY}]
request-retry: 1
providers:
  - name: leaky
    kind: openai-compatible
    base-url: {base}
    api-keys: [{KEY_ONE}, {KEY_TWO}, {KEY_THREE}, {KEY_FOUR}]
    models: [{{name: mock-model}}]
",
        base = mock.base_url()
    );
    let h = Harness::from_yaml(mock, &yaml).await;
    let chat = h
        .chat(json!({"model": "mock-model", "messages": user("hi")}))
        .send()
        .await
        .unwrap();
    assert_eq!(chat.status(), 401);
    let chat = chat.text().await.unwrap();
    let messages = h
        .http
        .post(h.url("/v1/messages"))
        .header("x-api-key", CLIENT_KEY)
        .json(&json!({"model": "mock-model", "max_tokens": 16, "messages": user("hi")}))
        .send()
        .await
        .unwrap();
    assert_eq!(messages.status(), 401);
    let messages = messages.text().await.unwrap();
    // Every key was tried (and refused with its masked echo).
    assert_eq!(h.mock.requests().len(), 4);
    for body in [&chat, &messages] {
        for fragment in keys
            .iter()
            .chain(&["WXYZ", "QRST", "LMNO", "HIJK", "sk-..."])
        {
            assert!(!body.contains(fragment), "{fragment} leaked: {body}");
        }
        assert!(body.contains("Incorrect API key provided"), "{body}");
        assert!(body.contains("[redacted]"), "{body}");
    }
    let chat: Value = serde_json::from_str(&chat).unwrap();
    assert_eq!(chat["error"]["code"], "invalid_api_key");
}

/// Issue 9 item 13: Gemini refuses an invalid API key with 400 `INVALID_ARGUMENT` (reason
/// `API_KEY_INVALID`); the gateway treats it like a 401: the credential is disabled and the
/// request fails over to the next one.
#[tokio::test]
async fn an_invalid_gemini_key_is_disabled_like_a_401() {
    const BAD: &str = "AIzaSy-bad-gemini-key-0000";
    const GOOD: &str = "AIzaSy-good-gemini-key-1111";
    let mock = sluice_mock::MockServer::start(sluice_mock::MockConfig::default())
        .await
        .unwrap();
    mock.faults().set_for_key(BAD, "mock:reject_key=1");
    let yaml = format!(
        "listen: 127.0.0.1:0
api-keys: [{CLIENT_KEY}]
providers:
  - name: gem
    kind: gemini
    base-url: 'http://{addr}'
    api-keys: [{BAD}, {GOOD}]
    models: [{{name: gemini-mock}}]
",
        addr = h_addr(&mock)
    );
    let h = Harness::from_yaml(mock, &yaml).await;
    for _ in 0..4 {
        let resp = h
            .chat(json!({"model": "gemini-mock", "messages": user("hi")}))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        assert_eq!(status, 200, "{}", resp.text().await.unwrap());
    }
    let sent_with = |key: &str| {
        h.mock
            .requests()
            .iter()
            .filter(|r| r.header("x-goog-api-key") == Some(key))
            .count()
    };
    assert_eq!(sent_with(BAD), 1, "the invalid key was used again");
    assert_eq!(sent_with(GOOD), 4);
    let records = h.records().await;
    let failed: Vec<_> = records
        .iter()
        .flat_map(|r| r.failed_attempts.iter())
        .collect();
    assert_eq!(failed.len(), 1, "{records:#?}");
    assert_eq!(
        (failed[0].status, failed[0].credential.as_str()),
        (400, "gem#0")
    );
    let credentials: Value = h
        .management(reqwest::Method::GET, "/credentials")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = credentials.to_string();
    assert!(text.contains("disabled"), "{text}");
    assert!(!text.contains(BAD), "{text}");
}

fn h_addr(mock: &sluice_mock::MockServer) -> std::net::SocketAddr {
    mock.addr()
}

/// Issue 9 item 11: `allow-anonymous` (seed 000's "no header uses the pool") opens seed 000's
/// routes only; the other standard routes still need a key.
#[tokio::test]
async fn allow_anonymous_opens_only_seed_000s_routes() {
    let h = Harness::with_config("allow-anonymous: true", "").await;
    let chat = h
        .http
        .post(h.url("/v1/chat/completions"))
        .json(&json!({"model": "mock-model", "messages": user("hi")}))
        .send()
        .await
        .unwrap();
    assert_eq!(chat.status(), 200);
    let models = h.http.get(h.url("/v1/models")).send().await.unwrap();
    assert_eq!(models.status(), 200);
    let closed = [
        (
            "/v1/messages",
            json!({"model": "mock-model", "max_tokens": 8, "messages": user("hi")}),
        ),
        (
            "/v1/responses",
            json!({"model": "mock-model", "input": "hi"}),
        ),
        (
            "/v1beta/models/mock-model:generateContent",
            json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
        ),
    ];
    for (path, body) in closed {
        let resp = h.http.post(h.url(path)).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 401, "{path}: opened by allow-anonymous");
        // With a key they are served.
        let keyed = h
            .http
            .post(h.url(path))
            .bearer_auth(CLIENT_KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(keyed.status(), 200, "{path}");
    }
    let listing = h.http.get(h.url("/v1beta/models")).send().await.unwrap();
    assert_eq!(listing.status(), 401);
}

/// An upstream's redirect is not followed: the client gets a 502 in its dialect, nothing
/// reaches the address the redirect names (the provider's credential headers would have gone
/// with the request), and the request has its one usage record.
#[tokio::test]
async fn an_upstream_redirect_is_answered_as_a_bad_gateway_and_not_followed() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    async fn serve(app: axum::Router) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    }

    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let elsewhere = serve(axum::Router::new().fallback(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        async { "{}" }
    }))
    .await;
    let target = format!("http://{elsewhere}/v1/chat/completions");
    let redirector = serve(axum::Router::new().fallback(move || {
        let target = target.clone();
        async move {
            (
                http::StatusCode::TEMPORARY_REDIRECT,
                [(http::header::LOCATION, target)],
            )
        }
    }))
    .await;
    let mock = sluice_mock::MockServer::start(Default::default())
        .await
        .unwrap();
    let yaml = format!(
        "listen: 127.0.0.1:0
api-keys: [{CLIENT_KEY}]
providers:
  - name: moved
    kind: openai-compatible
    base-url: http://{redirector}/v1
    api-keys: [sk-upstream-secret-0123456789]
    headers: {{X-Api-Key: sk-upstream-secret-0123456789}}
    models: [{{name: gpt-4o-mini}}]
"
    );
    let h = Harness::from_yaml(mock, &yaml).await;
    for stream in [false, true] {
        let r = h
            .chat(json!({"model": "gpt-4o-mini", "stream": stream, "messages": [user("hi")]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 502);
        let body: Value = r.json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("HTTP 307 (a redirect)"), "{body}");
        assert!(!body.to_string().contains("sk-upstream-secret"), "{body}");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the redirect was followed");
    let records = h.records().await;
    assert_eq!(records.len(), 2);
    assert!(records.iter().all(|r| r.status == 502), "{records:?}");
}
