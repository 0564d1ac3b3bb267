//! The web dashboard over real HTTP: security headers on every `/ui` response, the session
//! cookie's flags, sign-in / sign-out / expiry, CSRF refusals, role gating, sign-in limits.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::Harness;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use sha2::Digest as _;

const ADMIN: (&str, &str) = ("admin", "correct horse battery");

struct Ui {
    h: Harness,
    http: reqwest::Client,
}

/// A browser-ish session: its cookies and the CSRF token of the last page.
#[derive(Default, Clone)]
struct Browser {
    cookies: Vec<(String, String)>,
    csrf: String,
}

impl Browser {
    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn absorb(&mut self, headers: &HeaderMap) {
        for value in headers.get_all(SET_COOKIE) {
            let text = value.to_str().unwrap();
            let (pair, _) = text.split_once(';').unwrap_or((text, ""));
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.retain(|(k, _)| k != name);
            if !value.is_empty() && !text.contains("Max-Age=0") {
                self.cookies.push((name.to_string(), value.to_string()));
            }
        }
    }

    fn remember_csrf(&mut self, html: &str) {
        if let Some(rest) = html.split("name=\"csrf\" value=\"").nth(1) {
            self.csrf = rest.split('"').next().unwrap().to_string();
        }
    }
}

impl Ui {
    async fn start(extra: &str) -> Ui {
        let config = format!(
            "auth: {{admin: {{username: {}, password: '{}'}}}}\n{extra}",
            ADMIN.0, ADMIN.1
        );
        Ui::with(Harness::with_config(&config, "").await)
    }

    fn with(h: Harness) -> Ui {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        Ui { h, http }
    }

    fn origin(&self) -> String {
        format!("http://{}", self.h.server.addr)
    }

    async fn get(&self, b: &mut Browser, path: &str) -> (StatusCode, HeaderMap, String) {
        let r = self
            .http
            .get(self.h.url(path))
            .header("cookie", b.cookie_header())
            .send()
            .await
            .unwrap();
        let (status, headers) = (r.status(), r.headers().clone());
        let body = r.text().await.unwrap();
        b.absorb(&headers);
        b.remember_csrf(&body);
        (status, headers, body)
    }

    /// A form post from the dashboard's own page (same origin, the page's token).
    async fn post(
        &self,
        b: &mut Browser,
        path: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, String) {
        let mut fields: Vec<(&str, &str)> = vec![("csrf", b.csrf.as_str())];
        fields.extend_from_slice(form);
        let r = self
            .http
            .post(self.h.url(path))
            .header("cookie", b.cookie_header())
            .header("origin", self.origin())
            .form(&fields)
            .send()
            .await
            .unwrap();
        let (status, headers) = (r.status(), r.headers().clone());
        let body = r.text().await.unwrap();
        b.absorb(&headers);
        (status, headers, body)
    }

    async fn sign_in(&self, username: &str, password: &str) -> Browser {
        let mut b = Browser::default();
        let (status, _, _) = self.get(&mut b, "/ui/login").await;
        assert_eq!(status, 200);
        let (status, headers, body) = self
            .post(
                &mut b,
                "/ui/login",
                &[("username", username), ("password", password)],
            )
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
        assert_eq!(headers[LOCATION], "/ui");
        let (_, _, _) = self.get(&mut b, "/ui/me").await;
        b
    }

    /// A user made through the `/api` surface by the admin.
    async fn make_user(&self, name: &str, password: &str) {
        let token = self.api_token(ADMIN.0, ADMIN.1).await;
        let r = self
            .http
            .post(self.h.url("/api/users"))
            .bearer_auth(token)
            .json(&serde_json::json!({"username": name, "password": password, "role": "user"}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }

    async fn api_token(&self, username: &str, password: &str) -> String {
        let r: serde_json::Value = self
            .http
            .post(self.h.url("/api/auth/login"))
            .json(&serde_json::json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["data"]["token"].as_str().unwrap().to_string()
    }
}

fn assert_hardened(path: &str, headers: &HeaderMap) {
    let csp = headers
        .get("content-security-policy")
        .unwrap_or_else(|| panic!("{path}: no CSP"))
        .to_str()
        .unwrap();
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ] {
        assert!(csp.contains(part), "{path}: CSP lacks {part}: {csp}");
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{path}: {csp}"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
    assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
    assert_eq!(headers["x-frame-options"], "DENY", "{path}");
}

#[tokio::test]
async fn every_ui_response_is_hardened_and_pages_have_no_inline_code() {
    let ui = Ui::start("").await;
    let mut anon = Browser::default();
    let (status, headers, login) = ui.get(&mut anon, "/ui/login").await;
    assert_eq!(status, 200);
    assert_hardened("/ui/login", &headers);
    assert_eq!(headers["cache-control"], "no-store");
    // Scripts and styles only from hashed files.
    assert!(!login.contains("<style") && !login.contains(" style="));
    for tag in login.split("<script").skip(1) {
        assert!(tag.split('>').next().unwrap().contains("src=\"/ui/static/"));
    }
    // Every asset the page names is served, immutable, and hardened too.
    let assets: Vec<String> = login
        .split("\"/ui/static/")
        .skip(1)
        .map(|s| format!("/ui/static/{}", s.split('"').next().unwrap()))
        .collect();
    assert_eq!(assets.len(), 4, "{assets:?}");
    for asset in &assets {
        let (status, headers, _) = ui.get(&mut anon, asset).await;
        assert_eq!(status, 200, "{asset}");
        assert_hardened(asset, &headers);
        assert_eq!(
            headers["cache-control"],
            "public, max-age=31536000, immutable"
        );
    }
    let (status, headers, _) = ui.get(&mut anon, "/ui/static/app.0000000000.js").await;
    assert_eq!(status, 404);
    assert_hardened("stale asset", &headers);

    let mut admin = ui.sign_in(ADMIN.0, ADMIN.1).await;
    for path in [
        "/ui",
        "/ui/system",
        "/ui/me",
        "/ui/usage",
        "/ui/usage.csv",
        "/ui/users",
        "/ui/users/1",
        "/ui/no-such-page",
    ] {
        let (status, headers, _) = ui.get(&mut admin, path).await;
        assert!(
            [200, 303, 404].contains(&status.as_u16()),
            "{path}: {status}"
        );
        assert_hardened(path, &headers);
    }
    // Refusals are hardened as well.
    let r = ui
        .http
        .post(ui.h.url("/ui/logout"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_hardened("refused post", r.headers());
}

#[tokio::test]
async fn sign_in_sets_an_opaque_strict_cookie_stored_hashed_and_sign_out_deletes_it() {
    let ui = Ui::start("").await;
    let mut b = Browser::default();
    ui.get(&mut b, "/ui/login").await;
    let (status, headers, _) = ui
        .post(
            &mut b,
            "/ui/login",
            &[("username", ADMIN.0), ("password", ADMIN.1)],
        )
        .await;
    assert_eq!(status, 303);
    let cookie = headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("sluice_ui="))
        .unwrap();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP by default: {cookie}"
    );
    let id = cookie["sluice_ui=".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert!(id.len() >= 43, "{id}");
    // The store has only the id's SHA-256.
    let store = ui.h.server.state.accounts.store.clone();
    let hash: String = sha2::Sha256::digest(id.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(store.ui().ui_session(&hash).await.unwrap().is_some());
    assert!(store.ui().ui_session(&id).await.unwrap().is_none());

    let (status, _, body) = ui.get(&mut b, "/ui/system").await;
    assert_eq!(status, 200);
    assert!(body.contains("id=\"version\""), "{body}");
    let stolen = b.clone();

    let (status, headers, _) = ui.post(&mut b, "/ui/logout", &[]).await;
    assert_eq!(status, 303);
    assert_eq!(headers[LOCATION], "/ui/login");
    assert!(store.ui().ui_session(&hash).await.unwrap().is_none());
    // The old cookie, replayed, is worth nothing.
    let mut replay = stolen;
    let (status, headers, _) = ui.get(&mut replay, "/ui/system").await;
    assert_eq!(status, 303);
    assert_eq!(headers[LOCATION], "/ui/login");
}

#[tokio::test]
async fn secure_cookie_when_configured() {
    let ui = Ui::start("dashboard: {secure-cookie: true}").await;
    let mut b = Browser::default();
    let (_, headers, _) = ui.get(&mut b, "/ui/login").await;
    let login_cookie = headers[SET_COOKIE].to_str().unwrap();
    assert!(login_cookie.contains("; Secure"), "{login_cookie}");
}

#[tokio::test]
async fn wrong_passwords_are_refused_and_limited_per_user() {
    let ui = Ui::start("").await;
    let mut b = Browser::default();
    ui.get(&mut b, "/ui/login").await;
    for _ in 0..5 {
        let (status, _, body) = ui
            .post(
                &mut b,
                "/ui/login",
                &[("username", "admin"), ("password", "guess")],
            )
            .await;
        assert_eq!(status, 401);
        assert!(body.contains("Wrong user name or password"), "{body}");
        assert!(!body.contains("guess"), "the password is never echoed");
        b.remember_csrf(&body);
    }
    // The sixth guess waits, even with the right password.
    let (status, headers, body) = ui
        .post(
            &mut b,
            "/ui/login",
            &[("username", "Admin"), ("password", ADMIN.1)],
        )
        .await;
    assert_eq!(status, 429, "{body}");
    assert!(headers.contains_key("retry-after"));
    assert!(!b.cookies.iter().any(|(k, _)| k == "sluice_ui"));
    // An unknown user is refused the same way.
    b.remember_csrf(&body);
    let (status, _, _) = ui
        .post(
            &mut b,
            "/ui/login",
            &[("username", "nobody"), ("password", "x")],
        )
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn unsafe_requests_need_this_origin_and_the_sessions_token() {
    let ui = Ui::start("").await;
    let mut b = ui.sign_in(ADMIN.0, ADMIN.1).await;
    let post = |origin: Option<&str>, token: Option<&str>| {
        let mut r = ui
            .http
            .post(ui.h.url("/ui/logout"))
            .header("cookie", b.cookie_header());
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        match token {
            Some(t) => r.form(&[("csrf", t)]),
            None => r.form(&[("x", "y")]),
        }
    };
    let origin = ui.origin();
    let cases = [
        (
            Some("http://evil.example"),
            Some(b.csrf.as_str()),
            "foreign origin",
        ),
        (None, Some(b.csrf.as_str()), "no origin"),
        (Some(origin.as_str()), None, "missing token"),
        (Some(origin.as_str()), Some("wrong-token"), "wrong token"),
    ];
    for (o, t, what) in cases {
        let r = post(o, t).send().await.unwrap();
        assert_eq!(r.status(), 403, "{what}");
    }
    // The session survived all of them.
    let (status, _, _) = ui.get(&mut b, "/ui/system").await;
    assert_eq!(status, 200);
    // The header form htmx uses works.
    let r = ui
        .http
        .post(ui.h.url("/ui/logout"))
        .header("cookie", b.cookie_header())
        .header("origin", ui.origin())
        .header("x-csrf-token", &b.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    // Sign-in itself needs the form's own token.
    let mut fresh = Browser::default();
    ui.get(&mut fresh, "/ui/login").await;
    fresh.csrf = "forged".into();
    let (status, _, _) = ui
        .post(
            &mut fresh,
            "/ui/login",
            &[("username", ADMIN.0), ("password", ADMIN.1)],
        )
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn sessions_end_when_idle_and_at_their_absolute_lifetime() {
    let idle = Ui::start("dashboard: {session-idle: 1s, session-max: 1h}").await;
    let mut b = idle.sign_in(ADMIN.0, ADMIN.1).await;
    assert_eq!(idle.get(&mut b, "/ui/system").await.0, 200);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let (status, headers, _) = idle.get(&mut b, "/ui/system").await;
    assert_eq!(status, 303);
    assert_eq!(headers[LOCATION], "/ui/login");

    let absolute = Ui::start("dashboard: {session-idle: 1h, session-max: 1s}").await;
    let mut b = absolute.sign_in(ADMIN.0, ADMIN.1).await;
    for _ in 0..3 {
        assert_eq!(absolute.get(&mut b, "/ui/system").await.0, 200);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(absolute.get(&mut b, "/ui/system").await.0, 303);
}

#[tokio::test]
async fn users_see_me_but_no_admin_page_and_a_password_change_ends_their_sessions() {
    let ui = Ui::start("").await;
    ui.make_user("alice", "alice password 1").await;
    let mut alice = ui.sign_in("alice", "alice password 1").await;
    let (status, _, body) = ui.get(&mut alice, "/ui/me").await;
    assert_eq!(status, 200);
    assert!(
        body.contains("alice") && !body.contains("/ui/system"),
        "{body}"
    );
    let (status, _, body) = ui.get(&mut alice, "/ui/system").await;
    assert_eq!(status, 403);
    assert!(!body.contains("id=\"version\""));
    let (status, headers, _) = ui.get(&mut alice, "/ui").await;
    assert_eq!(status, 303);
    assert_eq!(headers[LOCATION], "/ui/me");
    // htmx requests without a session are told where to sign in.
    let r = ui
        .http
        .get(ui.h.url("/ui/system"))
        .header("hx-request", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["hx-redirect"], "/ui/login");

    // The admin resets alice's password through /api: her dashboard session ends.
    let token = ui.api_token(ADMIN.0, ADMIN.1).await;
    let users: serde_json::Value = ui
        .http
        .get(ui.h.url("/api/users"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = users["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "alice")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let r = ui
        .http
        .put(ui.h.url(&format!("/api/users/{id}")))
        .bearer_auth(&token)
        .json(&serde_json::json!({"password": "alice password 2"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    assert_eq!(ui.get(&mut alice, "/ui/me").await.0, 303);
}

#[tokio::test]
async fn first_run_says_how_to_create_the_admin_and_prefs_persist() {
    let ui = Ui::with(Harness::start().await);
    let mut b = Browser::default();
    let (status, _, body) = ui.get(&mut b, "/ui/login").await;
    assert_eq!(status, 200);
    assert!(body.contains("id=\"first-run\""), "{body}");
    assert!(body.contains("sluice users create"), "{body}");
    assert!(body.contains("--admin") && body.contains("auth:"), "{body}");

    // Language and theme, chosen before signing in, stick.
    let (status, headers, _) = ui
        .post(
            &mut b,
            "/ui/prefs",
            &[("lang", "zh-CN"), ("theme", "dark"), ("next", "/ui/login")],
        )
        .await;
    assert_eq!(status, 303);
    assert_eq!(headers[LOCATION], "/ui/login");
    let (_, _, body) = ui.get(&mut b, "/ui/login").await;
    assert!(
        body.contains("<html lang=\"zh-CN\" data-theme=\"dark\">"),
        "{body}"
    );
    assert!(body.contains("首次运行"));
    // An open redirect is not possible.
    let (_, headers, _) = ui
        .post(
            &mut b,
            "/ui/prefs",
            &[("lang", "en"), ("next", "https://evil.example/")],
        )
        .await;
    assert_eq!(headers[LOCATION], "/ui");
}

/// A request that failed over is stored with every attempt (the 429 and the cooldown it
/// opened, then the answer), and the rollups count it as saved by failover.
#[tokio::test]
async fn failed_attempts_are_persisted_with_their_cooldown_and_rolled_up() {
    use sluice_store::rollup::{Grain, RollupQuery};
    let mock = sluice_mock::MockServer::start(sluice_mock::MockConfig::default())
        .await
        .unwrap();
    let yaml = format!(
        "listen: 127.0.0.1:0
api-keys: [{key}]
providers:
  - {{name: p, kind: openai-compatible, base-url: '{base}', api-keys: [key-a, key-b], models: [{{name: m}}]}}
",
        key = common::CLIENT_KEY,
        base = mock.base_url()
    );
    let h = Harness::from_yaml(mock, &yaml).await;
    h.mock
        .faults()
        .set_for_key("key-a", "status=429 retry_after=30");
    let r = h
        .chat(serde_json::json!({"model": "m", "messages": common::user("hi")}))
        .header("x-request-id", "req-failover-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-sluice-attempts"], "2");
    let record = h.records().await.pop().unwrap();
    let store = h.server.state.accounts.store.clone();
    let attempts = store
        .ui()
        .attempts_of("req-failover-1", record.time_ms)
        .await
        .unwrap();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(
        (attempts[0].credential.as_str(), attempts[0].status),
        ("p#0", 429)
    );
    let until = attempts[0]
        .cooldown_until_ms
        .expect("the 429 opened a window");
    let left = until - record.time_ms;
    assert!((25_000..=31_000).contains(&left), "{left}");
    assert_eq!(
        (attempts[1].credential.as_str(), attempts[1].status),
        ("p#1", 200)
    );
    assert_eq!(attempts[1].cooldown_until_ms, None);
    let rows = store.usage_after(None, 10).await.unwrap();
    assert_eq!(rows[0].attempts, 2);
    assert_eq!(rows[0].upstream_dialect.as_deref(), Some("openai_chat"));
    let points = store
        .ui()
        .rollup(&RollupQuery {
            grain: Grain::Minute,
            since_ms: 0,
            until_ms: i64::MAX,
            step_ms: 0,
            by: None,
            user_id: None,
        })
        .await
        .unwrap();
    let saved: i64 = points.iter().map(|p| p.counts.failover_saved).sum();
    let requests: i64 = points.iter().map(|p| p.counts.requests).sum();
    assert_eq!((requests, saved), (1, 1));
}

/// The Overview and its data and live stream are admins' only; the series is the rollups'; a
/// request through the gateway is pushed to an open live stream (no polling).
#[tokio::test]
async fn overview_is_for_admins_and_pushes_new_usage() {
    let ui = Ui::start("").await;
    ui.make_user("bob", "bob password 1").await;
    let mut bob = ui.sign_in("bob", "bob password 1").await;
    for path in ["/ui/overview", "/ui/overview/series", "/ui/live/overview"] {
        let (status, _, body) = ui.get(&mut bob, path).await;
        assert_eq!(status, 403, "{path}");
        assert!(!body.contains("tile-requests"), "{path}");
    }
    let mut anon = Browser::default();
    for path in ["/ui/overview", "/ui/overview/series", "/ui/live/overview"] {
        let (status, headers, _) = ui.get(&mut anon, path).await;
        assert_eq!(status, 303, "{path}");
        assert_eq!(headers[LOCATION], "/ui/login");
    }

    let mut admin = ui.sign_in(ADMIN.0, ADMIN.1).await;
    let (_, headers, _) = ui.get(&mut admin, "/ui").await;
    assert_eq!(headers[LOCATION], "/ui/overview");
    let (status, _, body) = ui.get(&mut admin, "/ui/overview").await;
    assert_eq!(status, 200);
    assert!(body.contains("data-figure=\"requests\">0<"), "{body}");
    assert!(body.contains("All steady."), "{body}");

    // The live stream, open before the request.
    let mut live = ui
        .http
        .get(ui.h.url("/ui/live/overview"))
        .header("cookie", admin.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    assert_eq!(live.headers()["content-type"], "text/event-stream");
    let r =
        ui.h.chat(serde_json::json!({"model": "mock-model", "messages": common::user("hi")}))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    let mut pushed = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !pushed.contains("data-figure=\"requests\">1<") {
        let chunk = tokio::time::timeout_at(deadline, live.chunk())
            .await
            .expect("the request was pushed within 10 s")
            .unwrap()
            .expect("the stream stays open");
        pushed.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(pushed.starts_with("event: overview\n"), "{pushed}");

    let (status, headers, body) = ui.get(&mut admin, "/ui/overview/series").await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let series: serde_json::Value = serde_json::from_str(&body).unwrap();
    let ok: i64 = series["ok"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .sum();
    assert_eq!(ok, 1, "{series}");
    assert_eq!(series["x"].as_array().unwrap().len(), 180);
    let (_, _, body) = ui.get(&mut admin, "/ui/overview/series?range=24h").await;
    let series: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(series["x"].as_array().unwrap().len(), 144);
}

/// The Keys page's live stream pushes the whole table first, then only the rows whose meters
/// moved (`event: swap`, one row each), and the whole table again when a key is added.
#[tokio::test]
async fn keys_stream_pushes_only_the_rows_that_changed() {
    let ui = Ui::start("").await;
    let mut admin = ui.sign_in(ADMIN.0, ADMIN.1).await;
    let create = async |admin: &mut Browser, name: &str| {
        let (status, _, body) = ui
            .post(admin, "/ui/keys", &[("name", name), ("daily_limit", "100")])
            .await;
        assert_eq!(status, 200, "{body}");
        let secret = shown_secret(&body);
        let id = body
            .split(&format!(">{name}<"))
            .next()
            .and_then(|before| before.rsplit("id=\"key-").next())
            .and_then(|s| s.split('"').next())
            .unwrap()
            .to_string();
        (secret, id)
    };
    let (busy, busy_id) = create(&mut admin, "busy").await;
    let (_, idle_id) = create(&mut admin, "idle").await;
    let call = async |secret: &str| {
        let r = ui
            .http
            .post(ui.h.url("/v1/chat/completions"))
            .bearer_auth(secret)
            .json(&serde_json::json!({"model": "mock-model", "messages": common::user("hi")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    };
    let mut live = ui
        .http
        .get(ui.h.url("/ui/live/keys"))
        .header("cookie", admin.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);

    call(&busy).await;
    let first = read_until(&mut live, |p| p.contains("</table>")).await;
    assert!(first.starts_with("event: keys\n"), "{first}");
    assert!(first.contains(&format!("id=\"key-{idle_id}\"")), "{first}");
    assert!(first.contains("1 / 100"), "{first}");

    call(&busy).await;
    let second = read_until(&mut live, |p| p.contains("</tr>")).await;
    assert!(second.starts_with("event: swap\n"), "{second}");
    assert!(
        second.contains(&format!("id=\"key-{busy_id}\"")),
        "{second}"
    );
    assert!(second.contains("2 / 100"), "{second}");
    assert!(
        !second.contains(&format!("id=\"key-{idle_id}\"")),
        "{second}"
    );
    assert!(!second.contains("<table"), "{second}");

    let (fresh, _) = create(&mut admin, "fresh").await;
    call(&fresh).await;
    let third = read_until(&mut live, |p| p.contains("</table>")).await;
    assert!(third.contains("event: keys\n"), "{third}");
    assert!(third.contains(">fresh<"), "{third}");
}

/// Keys: admins only, every unsafe route needs the origin and the session's token, and a new
/// key's secret is in the answer to its creation and in no page after it.
#[tokio::test]
async fn keys_page_is_for_admins_guards_its_forms_and_shows_a_secret_once() {
    let ui = Ui::start("").await;
    ui.make_user("carol", "carol password 1").await;
    let mut carol = ui.sign_in("carol", "carol password 1").await;
    for path in ["/ui/keys", "/ui/keys/1/edit"] {
        let (status, _, body) = ui.get(&mut carol, path).await;
        assert_eq!(status, 403, "{path}");
        assert!(!body.contains("keys-table"), "{path}");
    }
    for path in [
        "/ui/keys",
        "/ui/keys/1",
        "/ui/keys/1/toggle",
        "/ui/keys/1/delete",
    ] {
        let (status, _, _) = ui.post(&mut carol, path, &[("name", "x")]).await;
        assert_eq!(status, 403, "a user may not {path}");
    }

    let mut admin = ui.sign_in(ADMIN.0, ADMIN.1).await;
    let (status, _, _) = ui.get(&mut admin, "/ui/keys").await;
    assert_eq!(status, 200);
    let (status, _, body) = ui
        .post(
            &mut admin,
            "/ui/keys",
            &[("name", "ci"), ("daily_limit", "10"), ("rate_limit", "")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let secret = body
        .split("id=\"new-key-secret\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap()
        .to_string();
    assert!(secret.starts_with("sk-") && secret.len() == 67, "{secret}");
    assert!(body.contains("ANTHROPIC_AUTH_TOKEN="), "snippets");
    // The key works, and no page shows it again.
    let r = ui
        .http
        .get(ui.h.url("/v1/models"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, headers, list) = ui.get(&mut admin, "/ui/keys").await;
    assert_eq!(headers["cache-control"], "no-store");
    assert!(list.contains(">ci<") && !list.contains(&secret));
    let id = list
        .split("id=\"key-")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    let (status, _, edit) = ui.get(&mut admin, &format!("/ui/keys/{id}/edit")).await;
    assert_eq!(status, 200);
    assert!(!edit.contains(&secret));

    // Unsafe routes without the session's token, or from another origin, are refused.
    for path in [
        "/ui/keys".to_string(),
        format!("/ui/keys/{id}"),
        format!("/ui/keys/{id}/toggle"),
        format!("/ui/keys/{id}/delete"),
    ] {
        let r = ui
            .http
            .post(ui.h.url(&path))
            .header("cookie", admin.cookie_header())
            .header("origin", ui.origin())
            .form(&[("name", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "no token: {path}");
        let r = ui
            .http
            .post(ui.h.url(&path))
            .header("cookie", admin.cookie_header())
            .header("origin", "http://evil.example")
            .form(&[("csrf", admin.csrf.as_str()), ("name", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "foreign origin: {path}");
    }

    // Edit (a wrong value is the gateway's own words), toggle, delete.
    let (status, _, body) = ui
        .post(
            &mut admin,
            &format!("/ui/keys/{id}"),
            &[("name", "ci"), ("daily_limit", "-3")],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("daily_limit must be a whole number"),
        "{body}"
    );
    let (status, headers, _) = ui
        .post(
            &mut admin,
            &format!("/ui/keys/{id}"),
            &[("name", "ci renamed"), ("daily_limit", "20")],
        )
        .await;
    assert_eq!(status, 303);
    assert_eq!(headers[LOCATION], "/ui/keys");
    let (status, _, _) = ui
        .post(&mut admin, &format!("/ui/keys/{id}/toggle"), &[])
        .await;
    assert_eq!(status, 303);
    let r = ui
        .http
        .get(ui.h.url("/v1/models"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a disabled key is refused");
    let (_, _, list) = ui.get(&mut admin, "/ui/keys").await;
    assert!(list.contains("ci renamed") && list.contains("20"), "{list}");
    let (status, _, _) = ui
        .post(&mut admin, &format!("/ui/keys/{id}/delete"), &[])
        .await;
    assert_eq!(status, 303);
    let (_, _, list) = ui.get(&mut admin, "/ui/keys").await;
    assert!(!list.contains("ci renamed"));
    let (status, _, _) = ui.get(&mut admin, &format!("/ui/keys/{id}/edit")).await;
    assert_eq!(status, 404);
}

/// Requests: admins only (list, detail, CSV); the list and CSV hold the gateway's records and
/// a detail page its attempts.
#[tokio::test]
async fn requests_pages_are_for_admins_and_list_the_records() {
    let ui = Ui::start("").await;
    ui.make_user("dan", "dan password 1").await;
    let mut dan = ui.sign_in("dan", "dan password 1").await;
    for path in ["/ui/requests", "/ui/requests.csv", "/ui/requests/1/x"] {
        let (status, _, body) = ui.get(&mut dan, path).await;
        assert_eq!(status, 403, "{path}");
        assert!(
            !body.contains("requests-table") && !body.contains("request_id,"),
            "{path}"
        );
    }
    let r =
        ui.h.chat(serde_json::json!({"model": "mock-model", "messages": common::user("hi")}))
            .header("x-request-id", "req-listed-1")
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    ui.h.server.state.usage.flush().await;
    let mut admin = ui.sign_in(ADMIN.0, ADMIN.1).await;
    let (status, _, list) = ui.get(&mut admin, "/ui/requests").await;
    assert_eq!(status, 200);
    assert!(list.contains("data-request-id=\"req-listed-1\""), "{list}");
    let href = list
        .split("href=\"/ui/requests/")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    let (status, _, detail) = ui.get(&mut admin, &format!("/ui/requests/{href}")).await;
    assert_eq!(status, 200, "{href}");
    assert!(detail.contains("id=\"timeline\""), "{detail}");
    let (status, headers, csv) = ui.get(&mut admin, "/ui/requests.csv?status=2").await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(csv.lines().nth(1).unwrap().contains("req-listed-1"));
    let (_, _, none) = ui.get(&mut admin, "/ui/requests.csv?status=5").await;
    assert_eq!(none.lines().count(), 1);
    let (status, _, _) = ui.get(&mut admin, "/ui/requests/1/nope").await;
    assert_eq!(status, 404);
}

/// The secret of the show-once dialog on a page.
fn shown_secret(body: &str) -> String {
    body.split("id=\"new-key-secret\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap_or_else(|| panic!("no secret shown: {body}"))
        .to_string()
}

async fn models_status(ui: &Ui, secret: &str) -> u16 {
    ui.http
        .get(ui.h.url("/v1/models"))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Rotation (Keys and Me): a new secret shown once, the old one refused at once, the same
/// key (id, settings, counters); a user rotates only their own keys.
#[tokio::test]
async fn rotating_a_key_shows_a_new_secret_once_and_the_old_one_stops_at_once() {
    let ui = Ui::start("").await;
    ui.make_user("erin", "erin password 1").await;
    let mut admin = ui.sign_in(ADMIN.0, ADMIN.1).await;
    let (_, _, _) = ui.get(&mut admin, "/ui/keys").await;
    let (status, _, body) = ui
        .post(
            &mut admin,
            "/ui/keys",
            &[("name", "rot"), ("daily_limit", "7")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let old = shown_secret(&body);
    assert_eq!(models_status(&ui, &old).await, 200);
    let (_, _, list) = ui.get(&mut admin, "/ui/keys").await;
    let id = list
        .split("id=\"key-")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    let (status, _, body) = ui
        .post(&mut admin, &format!("/ui/keys/{id}/rotate"), &[])
        .await;
    assert_eq!(status, 200, "{body}");
    let new = shown_secret(&body);
    assert_ne!(new, old);
    assert!(
        body.contains("ANTHROPIC_AUTH_TOKEN="),
        "snippets with the new secret"
    );
    assert_eq!(
        models_status(&ui, &old).await,
        401,
        "the old secret stops at once"
    );
    assert_eq!(models_status(&ui, &new).await, 200);
    let (_, _, list) = ui.get(&mut admin, "/ui/keys").await;
    assert!(!list.contains(&new) && list.contains(&format!("id=\"key-{id}\"")));
    assert!(
        list.contains("7 / 7") || list.contains("/ 7"),
        "same limits: {list}"
    );
    // No token / foreign origin: refused.
    let r = ui
        .http
        .post(ui.h.url(&format!("/ui/keys/{id}/rotate")))
        .header("cookie", admin.cookie_header())
        .header("origin", "http://evil.example")
        .form(&[("csrf", admin.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(models_status(&ui, &new).await, 200);

    // A user: their own keys from Me, never another's.
    let mut erin = ui.sign_in("erin", "erin password 1").await;
    let (status, _, _) = ui
        .post(&mut erin, &format!("/ui/keys/{id}/rotate"), &[])
        .await;
    assert_eq!(status, 403, "the admin route is for admins");
    let (status, _, _) = ui
        .post(&mut erin, &format!("/ui/me/keys/{id}/rotate"), &[])
        .await;
    assert_eq!(status, 404, "another user's key is not found");
    assert_eq!(models_status(&ui, &new).await, 200);
    let (status, _, body) = ui
        .post(&mut erin, "/ui/me/keys", &[("name", "erin laptop")])
        .await;
    assert_eq!(status, 200, "{body}");
    let mine = shown_secret(&body);
    assert_eq!(models_status(&ui, &mine).await, 200);
    let (_, _, me) = ui.get(&mut erin, "/ui/me").await;
    assert!(me.contains("erin laptop") && !me.contains(&mine), "{me}");
    let my_id = me
        .split("id=\"key-")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    let (status, _, body) = ui
        .post(&mut erin, &format!("/ui/me/keys/{my_id}/rotate"), &[])
        .await;
    assert_eq!(status, 200, "{body}");
    let rotated = shown_secret(&body);
    assert_eq!(models_status(&ui, &mine).await, 401);
    assert_eq!(models_status(&ui, &rotated).await, 200);
}

/// Me: every user's page with their keys, limits, usage and snippets; creating keys stops at
/// the per-user cap with the gateway's words.
#[tokio::test]
async fn me_creates_keys_within_the_cap_and_shows_limits_usage_and_snippets() {
    let ui = Ui::start("user-keys: {max-per-user: 2}").await;
    ui.make_user("fay", "fay password 1").await;
    let mut fay = ui.sign_in("fay", "fay password 1").await;
    let (status, headers, body) = ui.get(&mut fay, "/ui/me").await;
    assert_eq!(status, 200);
    assert_eq!(headers["cache-control"], "no-store");
    assert!(
        body.contains("id=\"me-limits\"") && body.contains("0 / 2"),
        "{body}"
    );
    assert!(body.contains("YOUR_SLUICE_KEY"), "snippets");
    for name in ["one", "two"] {
        let (status, _, body) = ui
            .post(
                &mut fay,
                "/ui/me/keys",
                &[("name", name), ("daily_limit", "5")],
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, _, body) = ui.post(&mut fay, "/ui/me/keys", &[("name", "three")]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("role=\"alert\""), "{body}");
    assert!(!body.contains("id=\"new-key-secret\""));
    let (_, _, body) = ui.get(&mut fay, "/ui/me").await;
    assert!(body.contains("2 / 2"), "{body}");
    // Use one key: Me's usage and meters show it.
    let (status, _, body) = ui.post(&mut fay, "/ui/me/keys/0/rotate", &[]).await;
    assert_eq!(status, 404, "{body}");
    let me = ui.get(&mut fay, "/ui/me").await.2;
    let id = me
        .split("id=\"key-")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    let (_, _, body) = ui
        .post(&mut fay, &format!("/ui/me/keys/{id}/rotate"), &[])
        .await;
    let secret = shown_secret(&body);
    let r = ui
        .http
        .post(ui.h.url("/v1/chat/completions"))
        .bearer_auth(&secret)
        .json(&serde_json::json!({"model": "mock-model", "messages": common::user("hi")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    ui.h.server.state.usage.flush().await;
    let (_, _, body) = ui.get(&mut fay, "/ui/me").await;
    assert!(body.contains("1 / 5"), "the daily meter moved: {body}");
    assert!(body.contains(">mock-model<"), "usage by model: {body}");
}

/// Users: admins only; create, change role, disable (the user is signed out), reset a
/// password; a user's page lists their keys and usage.
#[tokio::test]
async fn users_page_creates_and_changes_users_for_admins_only() {
    let ui = Ui::start("").await;
    ui.make_user("gus", "gus password 1").await;
    let mut gus = ui.sign_in("gus", "gus password 1").await;
    for path in ["/ui/users", "/ui/users/1", "/ui/usage", "/ui/usage.csv"] {
        let (status, _, body) = ui.get(&mut gus, path).await;
        assert_eq!(status, 403, "{path}");
        assert!(!body.contains("users-table") && !body.contains("usage-groups"));
    }
    for path in ["/ui/users", "/ui/users/1"] {
        let (status, _, _) = ui
            .post(
                &mut gus,
                path,
                &[
                    ("username", "x"),
                    ("password", "long enough 1"),
                    ("role", "admin"),
                ],
            )
            .await;
        assert_eq!(status, 403, "a user may not post {path}");
    }

    let mut admin = ui.sign_in(ADMIN.0, ADMIN.1).await;
    let (status, _, body) = ui.get(&mut admin, "/ui/users").await;
    assert_eq!(status, 200);
    assert!(body.contains("data-username=\"gus\""), "{body}");
    assert!(!body.contains("$argon2"), "no hashes");
    let (status, headers, _) = ui
        .post(
            &mut admin,
            "/ui/users",
            &[
                ("username", "hal"),
                ("password", "hal password 1"),
                ("role", "user"),
            ],
        )
        .await;
    assert_eq!(status, 303);
    assert_eq!(headers[LOCATION], "/ui/users");
    let (status, _, body) = ui
        .post(
            &mut admin,
            "/ui/users",
            &[("username", "hal"), ("password", "hal password 1")],
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body.contains("role=\"alert\"") && !body.contains("hal password 1"),
        "{body}"
    );
    let (_, _, list) = ui.get(&mut admin, "/ui/users").await;
    let hal = list
        .split("data-username=\"hal\"")
        .next()
        .and_then(|s| s.rsplit("id=\"user-").next())
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    let mut hal_browser = ui.sign_in("hal", "hal password 1").await;
    // Role: hal becomes an admin and reaches admin pages.
    let (status, _, _) = ui
        .post(
            &mut admin,
            &format!("/ui/users/{hal}"),
            &[("role", "admin")],
        )
        .await;
    assert_eq!(status, 303);
    let (status, _, _) = ui.get(&mut hal_browser, "/ui/usage").await;
    assert_eq!(status, 200, "the new role applies at once");
    // Reset the password: hal's sessions end, the new password works.
    let (status, _, _) = ui
        .post(
            &mut admin,
            &format!("/ui/users/{hal}"),
            &[("password", "hal new password 2")],
        )
        .await;
    assert_eq!(status, 303);
    let (status, _, _) = ui.get(&mut hal_browser, "/ui/me").await;
    assert_eq!(status, 303, "signed out by the reset");
    let mut hal_browser = ui.sign_in("hal", "hal new password 2").await;
    // Disable: hal is out and cannot sign in.
    let (status, _, _) = ui
        .post(
            &mut admin,
            &format!("/ui/users/{hal}"),
            &[("status", "disabled")],
        )
        .await;
    assert_eq!(status, 303);
    let (status, _, _) = ui.get(&mut hal_browser, "/ui/me").await;
    assert_eq!(status, 303);
    // The admin cannot disable themselves: the gateway's words.
    let (status, _, body) = ui
        .post(&mut admin, "/ui/users/1", &[("status", "disabled")])
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("cannot disable or demote themselves"),
        "{body}"
    );
    let (status, _, body) = ui.get(&mut admin, &format!("/ui/users/{hal}")).await;
    assert_eq!(status, 200);
    assert!(
        body.contains("hal") && body.contains("usage-groups"),
        "{body}"
    );
    let (status, _, _) = ui.get(&mut admin, "/ui/users/999").await;
    assert_eq!(status, 404);
}

/// Usage: groups and periods from the rollups, CSV of the same.
#[tokio::test]
async fn usage_page_groups_the_rollups_and_exports_csv() {
    let ui = Ui::start("").await;
    for _ in 0..2 {
        let r =
            ui.h.chat(serde_json::json!({"model": "mock-model", "messages": common::user("hi")}))
                .send()
                .await
                .unwrap();
        assert_eq!(r.status(), 200);
    }
    ui.h.server.state.usage.flush().await;
    let mut admin = ui.sign_in(ADMIN.0, ADMIN.1).await;
    for by in ["key", "user", "model", "provider", "credential"] {
        for grain in ["hour", "day"] {
            let (status, _, body) = ui
                .get(
                    &mut admin,
                    &format!("/ui/usage?by={by}&grain={grain}&range=24h"),
                )
                .await;
            assert_eq!(status, 200, "{by} {grain}");
            assert!(body.contains("id=\"usage-total\""), "{body}");
            assert!(body.contains("Total: 2 ·"), "{by} {grain}: {body}");
        }
    }
    let (_, _, body) = ui.get(&mut admin, "/ui/usage?by=model").await;
    assert!(body.contains(">mock-model<"), "{body}");
    let (status, headers, csv) = ui
        .get(&mut admin, "/ui/usage.csv?by=model&grain=hour")
        .await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(csv.starts_with("hour_utc,model,requests,"), "{csv}");
    let row = csv.lines().nth(1).unwrap();
    assert!(row.contains(",mock-model,2,"), "{csv}");
    let (status, _, _) = ui
        .get(&mut admin, "/ui/usage?by=nonsense&grain=x&range=y")
        .await;
    assert_eq!(status, 200, "unknown choices fall back to the defaults");
}

/// Requests: the user, credential and TTFT filters; the live tail pushes new matching rows
/// over SSE (admins only).
#[tokio::test]
async fn requests_filters_and_live_tail() {
    let ui = Ui::start("").await;
    ui.make_user("ivy", "ivy password 1").await;
    let mut ivy = ui.sign_in("ivy", "ivy password 1").await;
    let (status, _, _) = ui.get(&mut ivy, "/ui/live/requests").await;
    assert_eq!(status, 403);
    let mut admin = ui.sign_in(ADMIN.0, ADMIN.1).await;
    let (status, _, page) = ui.get(&mut admin, "/ui/requests").await;
    assert_eq!(status, 200);
    assert!(page.contains("data-tail=\"/ui/live/requests?"), "{page}");
    let mut tail = ui
        .http
        .get(ui.h.url("/ui/live/requests?status=2"))
        .header("cookie", admin.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(tail.status(), 200);
    assert_eq!(tail.headers()["content-type"], "text/event-stream");
    let r =
        ui.h.chat(serde_json::json!({"model": "mock-model", "messages": common::user("hi")}))
            .header("x-request-id", "req-tailed-1")
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    let mut pushed = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !pushed.contains("data-request-id=\"req-tailed-1\"") {
        let chunk = tokio::time::timeout_at(deadline, tail.chunk())
            .await
            .expect("the request was pushed within 10 s")
            .unwrap()
            .expect("the stream stays open");
        pushed.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(pushed.starts_with("event: rows\n"), "{pushed}");
    ui.h.server.state.usage.flush().await;
    let (_, _, all) = ui.get(&mut admin, "/ui/requests").await;
    assert!(all.contains("req-tailed-1"));
    let (_, _, none) = ui.get(&mut admin, "/ui/requests?user=999").await;
    assert!(
        !none.contains("data-request-id=\"req-tailed-1\""),
        "user filter"
    );
    let (_, _, none) = ui.get(&mut admin, "/ui/requests?credential=nope").await;
    assert!(
        !none.contains("data-request-id=\"req-tailed-1\""),
        "credential filter"
    );
    let (_, _, none) = ui.get(&mut admin, "/ui/requests?ttft=600000").await;
    assert!(
        !none.contains("data-request-id=\"req-tailed-1\""),
        "TTFT filter"
    );
    let (_, _, some) = ui.get(&mut admin, "/ui/requests?ttft=abc").await;
    assert!(
        some.contains("data-request-id=\"req-tailed-1\""),
        "a bad number is no filter"
    );
    let (_, _, csv) = ui.get(&mut admin, "/ui/requests.csv?user=999").await;
    assert_eq!(csv.lines().count(), 1, "{csv}");
}

/// Reads an SSE response until `done` holds for what arrived (or fails after 10 s).
async fn read_until(live: &mut reqwest::Response, done: impl Fn(&str) -> bool) -> String {
    let mut pushed = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done(&pushed) {
        let chunk = tokio::time::timeout_at(deadline, live.chunk())
            .await
            .unwrap_or_else(|_| panic!("pushed within 10 s; got {pushed}"))
            .unwrap()
            .expect("the stream stays open");
        pushed.push_str(&String::from_utf8_lossy(&chunk));
    }
    pushed
}

/// The credentials page and every fragment and action of it: admins only; the actions need
/// this origin and the session's token.
#[tokio::test]
async fn credentials_pages_and_actions_are_for_admins_and_guarded() {
    let ui = Ui::start("").await;
    ui.make_user("bob", "bob password 1").await;
    let mut bob = ui.sign_in("bob", "bob password 1").await;
    let pages = [
        "/ui/credentials",
        "/ui/credentials?model=mock-model",
        "/ui/credentials/row?id=mock%230",
        "/ui/credentials/models",
        "/ui/live/credentials",
    ];
    for path in pages {
        let (status, _, body) = ui.get(&mut bob, path).await;
        assert_eq!(status, 403, "{path}");
        assert!(!body.contains("mock#0"), "{path}");
    }
    for (path, form) in [
        ("/ui/credentials/test", vec![("id", "mock#0")]),
        (
            "/ui/credentials/act",
            vec![("id", "mock#0"), ("action", "clear")],
        ),
        (
            "/ui/credentials/act",
            vec![("id", "mock#0"), ("action", "disable"), ("reason", "x")],
        ),
    ] {
        let (status, _, _) = ui.post(&mut bob, path, &form).await;
        assert_eq!(status, 403, "{path} {form:?}");
    }
    let mut anon = Browser::default();
    for path in pages {
        let (status, headers, _) = ui.get(&mut anon, path).await;
        assert_eq!(status, 303, "{path}");
        assert_eq!(headers[LOCATION], "/ui/login");
    }

    let admin = ui.sign_in(ADMIN.0, ADMIN.1).await;
    for (origin, token, what) in [
        (
            Some("http://evil.example"),
            Some(admin.csrf.as_str()),
            "foreign origin",
        ),
        (Some(ui.origin()).as_deref(), None, "missing token"),
        (None, Some(admin.csrf.as_str()), "no origin"),
    ] {
        for path in ["/ui/credentials/test", "/ui/credentials/act"] {
            let mut r = ui
                .http
                .post(ui.h.url(path))
                .header("cookie", admin.cookie_header());
            if let Some(o) = origin {
                r = r.header("origin", o);
            }
            let mut form = vec![("id", "mock#0"), ("action", "disable"), ("reason", "x")];
            if let Some(t) = token {
                form.push(("csrf", t));
            }
            let r = r.form(&form).send().await.unwrap();
            assert_eq!(r.status(), 403, "{what} {path}");
        }
    }
    assert_eq!(ui.h.mock.requests().len(), 0, "nothing was sent upstream");
    let (_, _, body) = ui.get(&mut admin.clone(), "/ui/credentials").await;
    assert!(
        body.contains("data-status=\"active\""),
        "nothing was disabled: {body}"
    );
}

/// An htmx form post from the page (the header form of the CSRF token).
async fn hx_post(ui: &Ui, b: &Browser, path: &str, form: &[(&str, &str)]) -> (StatusCode, String) {
    let r = ui
        .http
        .post(ui.h.url(path))
        .header("cookie", b.cookie_header())
        .header("origin", ui.origin())
        .header("x-csrf-token", &b.csrf)
        .header("hx-request", "true")
        .form(form)
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

/// A 429 cools the credential: the live stream pushes its row (no polling) with a countdown
/// and the upstream's words, the models table says why the model is not routable, the preview
/// shows it out; "test now" reaches the upstream but is never billed; clear, disable and enable
/// act on the router itself.
#[tokio::test]
async fn a_cooldown_is_pushed_live_and_test_now_is_never_billed() {
    let ui = Ui::start("").await;
    let mut admin = ui.sign_in(ADMIN.0, ADMIN.1).await;
    let (status, headers, body) = ui.get(&mut admin, "/ui/credentials").await;
    assert_eq!(status, 200);
    assert_eq!(headers["cache-control"], "no-store");
    assert!(body.contains("data-credential=\"mock#0\""), "{body}");
    assert!(body.contains("data-credential=\"dead#0\""), "{body}");
    assert!(body.contains("config file"), "{body}");
    assert!(
        body.contains("data-model=\"mock-model\" data-routable=\"true\""),
        "{body}"
    );

    // The preview is the router's own plan.
    let (_, _, body) = ui
        .get(&mut admin, "/ui/credentials?model=gpt-4o-mini")
        .await;
    assert!(
        body.contains(
            "<li data-credential=\"mock#0\"><strong>mock#0</strong> → <code>mock-model</code>"
        ),
        "{body}"
    );

    // "Test now": a real request, recorded as a probe, not as usage.
    let upstream_before = ui.h.mock.requests_with_key(common::UPSTREAM_KEY);
    let records_before = ui.h.records().await.len();
    let (status, fragment) = hx_post(
        &ui,
        &admin,
        "/ui/credentials/test",
        &[("id", "mock#0"), ("model", "mock-model")],
    )
    .await;
    assert_eq!(status, 200, "{fragment}");
    assert!(fragment.contains("data-probe-status=\"200\""), "{fragment}");
    assert!(fragment.contains("first byte"), "{fragment}");
    assert_eq!(
        ui.h.mock.requests_with_key(common::UPSTREAM_KEY),
        upstream_before + 1,
        "the probe reached the upstream with the credential"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        ui.h.records().await.len(),
        records_before,
        "no usage record"
    );
    let (_, _, overview) = ui.get(&mut admin, "/ui/overview").await;
    assert!(
        overview.contains("data-figure=\"requests\">0<"),
        "no rollup: {overview}"
    );
    let (_, _, body) = ui.get(&mut admin, "/ui/credentials").await;
    assert!(
        body.contains("data-probe-status=\"200\""),
        "the probe is kept: {body}"
    );
    let (status, text) = hx_post(&ui, &admin, "/ui/credentials/test", &[("id", "nope#9")]).await;
    assert_eq!(status, 404, "{text}");
    let (status, text) = hx_post(
        &ui,
        &admin,
        "/ui/credentials/test",
        &[("id", "mock#0"), ("model", "other")],
    )
    .await;
    assert_eq!(status, 400, "{text}");

    // The live stream hears the cooldown from the router (no request reads the page).
    let mut live = ui
        .http
        .get(ui.h.url("/ui/live/credentials"))
        .header("cookie", admin.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    ui.h.mock
        .faults()
        .set_for_key(common::UPSTREAM_KEY, "status=429 retry_after=120");
    let r =
        ui.h.chat(serde_json::json!({"model": "mock-model", "messages": common::user("hi")}))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 429);
    let pushed = read_until(&mut live, |p| p.contains("id=\"route-models\"")).await;
    assert!(pushed.starts_with("event: swap\n"), "{pushed}");
    assert!(pushed.contains("data-credential=\"mock#0\""), "{pushed}");
    assert!(pushed.contains("data-status=\"cooling\""), "{pushed}");
    assert!(
        pushed.contains("<time class=\"countdown\" data-remaining-ms=\""),
        "{pushed}"
    );
    assert!(
        pushed.contains("HTTP 429"),
        "the upstream's words: {pushed}"
    );
    assert!(
        !pushed.contains("data-credential=\"dead#0\""),
        "only the row that changed"
    );
    assert!(pushed.contains("data-routable=\"false\""), "{pushed}");

    let (_, _, body) = ui.get(&mut admin, "/ui/credentials?model=mock-model").await;
    assert!(body.contains("every credential is cooling"), "{body}");
    assert!(body.contains("Cannot take it now"), "{body}");

    // Test now while cooling: the upstream's refusal, shown, still not billed.
    let (_, fragment) = hx_post(&ui, &admin, "/ui/credentials/test", &[("id", "mock#0")]).await;
    assert!(fragment.contains("data-probe-status=\"429\""), "{fragment}");
    ui.h.mock.faults().set_for_key(common::UPSTREAM_KEY, "");

    // Clear the cooldown: routable at once, and pushed.
    let (status, row) = hx_post(
        &ui,
        &admin,
        "/ui/credentials/act",
        &[
            ("id", "mock#0"),
            ("action", "clear"),
            ("model", "mock-model"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{row}");
    assert!(row.starts_with("<tr id=\"cred-"), "{row}");
    assert!(row.contains("data-status=\"active\""), "{row}");
    read_until(&mut live, |p| {
        p.matches("data-status=\"active\"").count() >= 1
    })
    .await;
    let r =
        ui.h.chat(serde_json::json!({"model": "mock-model", "messages": common::user("hi")}))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);

    // Disable needs a reason; then the router refuses the credential until it is enabled.
    let (status, _) = hx_post(
        &ui,
        &admin,
        "/ui/credentials/act",
        &[("id", "mock#0"), ("action", "disable"), ("reason", " ")],
    )
    .await;
    assert_eq!(status, 400);
    let (status, row) = hx_post(
        &ui,
        &admin,
        "/ui/credentials/act",
        &[
            ("id", "mock#0"),
            ("action", "disable"),
            ("reason", "rotating the key"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert!(row.contains("data-status=\"disabled\""), "{row}");
    assert!(
        row.contains("disabled by admin from the dashboard: rotating the key"),
        "{row}"
    );
    let r =
        ui.h.chat(serde_json::json!({"model": "mock-model", "messages": common::user("hi")}))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 503);
    let (_, row) = hx_post(
        &ui,
        &admin,
        "/ui/credentials/act",
        &[("id", "mock#0"), ("action", "enable")],
    )
    .await;
    assert!(row.contains("data-status=\"active\""), "{row}");
    let (status, _) = hx_post(
        &ui,
        &admin,
        "/ui/credentials/act",
        &[("id", "nope#9"), ("action", "enable")],
    )
    .await;
    assert_eq!(status, 404);
}
