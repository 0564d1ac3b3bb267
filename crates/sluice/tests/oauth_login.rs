//! `sluice login claude|codex|gemini` end to end: the real binary against sluice-mock's strict
//! sign-in fakes, the pasted value piped through standard input. Claude's paste with the right
//! and a wrong state, Codex's device polling through pending to success (then the account
//! serving a request through a running gateway at once) and to a denial or expiry, Codex's
//! browser flow, Gemini's onboarding with a pending operation, an ineligible tier; Claude's
//! local callback (`--callback`) with the right and a wrong state.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::{CLIENT_KEY, MGMT_KEY, MGMT_KEY_HASH};
use serde_json::{Value, json};
use sluice_mock::oauth_login::{CodeAssistScript, DeviceAnswer, INELIGIBLE_MESSAGE};
use sluice_mock::{MockConfig, MockServer};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const BIN: &str = env!("CARGO_BIN_EXE_sluice");

struct Setup {
    mock: MockServer,
    root: tempfile::TempDir,
    config: PathBuf,
    port: u16,
}

impl Setup {
    async fn new() -> Setup {
        Self::with("").await
    }

    /// With `extra` top-level config lines.
    async fn with(extra: &str) -> Setup {
        let mock = MockServer::start(MockConfig::default()).await.unwrap();
        mock.oauth().set_device_interval(1);
        let root = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let m = format!("http://{}", mock.addr());
        let config = root.path().join("sluice.yaml");
        std::fs::create_dir_all(root.path().join("auths")).unwrap();
        std::fs::write(
            &config,
            format!(
                "listen: 127.0.0.1:{port}
api-keys: [{CLIENT_KEY}]
auth-dir: auths
oauth:
  claude: {{token-url: '{m}/v1/oauth/token', authorize-url: '{m}/oauth/authorize'}}
  codex:
    token-url: '{m}/oauth/token'
    authorize-url: '{m}/oauth/authorize'
    device-url: '{m}/api/accounts/deviceauth'
    verification-url: '{m}/codex/device'
    base-url: '{m}/backend-api/codex'
  gemini: {{token-url: '{m}/token', authorize-url: '{m}/o/oauth2/v2/auth', code-assist-url: '{m}/v1internal'}}
providers: []
{extra}
"
            ),
        )
        .unwrap();
        Setup {
            mock,
            root,
            config,
            port,
        }
    }

    fn auths(&self) -> PathBuf {
        self.root.path().join("auths")
    }

    fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.auths())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn file(&self, name: &str) -> Value {
        let path = self.auths().join(name);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name} is private");
        }
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    fn login(&self, args: &[&str]) -> Login {
        let mut child = tokio::process::Command::new(BIN)
            .arg("login")
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .env_remove("SLUICE_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Login {
            child,
            stdout,
            seen: String::new(),
        }
    }

    /// What the user's browser gets from an authorize URL: the page's text, or the redirect.
    async fn visit(&self, url: &str) -> (u16, String) {
        assert!(
            url.starts_with(&format!("http://{}", self.mock.addr())),
            "{url}"
        );
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let resp = client.get(url).send().await.unwrap();
        let status = resp.status().as_u16();
        if let Some(location) = resp.headers().get("location") {
            return (status, location.to_str().unwrap().to_string());
        }
        (status, resp.text().await.unwrap())
    }
}

struct Login {
    child: tokio::process::Child,
    stdout: BufReader<tokio::process::ChildStdout>,
    seen: String,
}

struct Outcome {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Login {
    /// The next printed line that starts (after indentation) with `prefix`.
    async fn line_starting(&mut self, prefix: &str) -> String {
        let found = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let mut line = String::new();
                let n = self.stdout.read_line(&mut line).await.unwrap();
                assert!(n > 0, "output ended before `{prefix}`: {}", self.seen);
                self.seen.push_str(&line);
                let t = line.trim();
                if t.starts_with(prefix) {
                    return t.to_string();
                }
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("no `{prefix}` line: {}", self.seen))
    }

    async fn paste(&mut self, text: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin
            .write_all(format!("{text}\n").as_bytes())
            .await
            .unwrap();
        stdin.flush().await.unwrap();
    }

    async fn finish(mut self) -> Outcome {
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("sluice login did not end")
            .unwrap();
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest).await.unwrap();
        let mut stderr = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .await
            .unwrap();
        Outcome {
            ok: status.success(),
            stdout: self.seen + &rest,
            stderr,
        }
    }
}

fn query(url: &str, key: &str) -> String {
    reqwest::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no {key} in {url}"))
}

/// No token of the file, and no code, appears in what the command printed.
fn assert_no_secrets(out: &Outcome, file: &Value, code: Option<&str>) {
    let all = format!("{}{}", out.stdout, out.stderr);
    let tokens = [
        &file["access_token"],
        &file["refresh_token"],
        &file["id_token"],
        &file["token"]["access_token"],
        &file["token"]["refresh_token"],
    ];
    for t in tokens.into_iter().filter_map(Value::as_str) {
        assert!(!all.contains(t), "a token was printed: {all}");
    }
    if let Some(code) = code {
        assert!(!all.contains(code), "the code was printed: {all}");
    }
}

#[tokio::test]
async fn claude_paste_with_the_right_state_signs_in() {
    let s = Setup::new().await;
    for (round, full_url) in [(1, false), (2, true)] {
        let mut login = s.login(&["claude", "--accept-risk"]);
        let url = login.line_starting("http://").await;
        assert_eq!(
            query(&url, "redirect_uri"),
            "https://platform.claude.com/oauth/code/callback"
        );
        let (status, shown) = s.visit(&url).await;
        assert_eq!(status, 200, "{shown}");
        let (code, state) = shown.split_once('#').unwrap();
        assert_eq!(state, query(&url, "state"));
        let pasted = if full_url {
            format!("https://platform.claude.com/oauth/code/callback?code={code}&state={state}")
        } else {
            shown.clone()
        };
        login.paste(&pasted).await;
        let out = login.finish().await;
        assert!(out.ok, "round {round}: {}\n{}", out.stdout, out.stderr);
        assert!(out.stdout.contains("claude-claude-user@example.com.json"));
        let file = s.file("claude-claude-user@example.com.json");
        assert_eq!(file["type"], "claude");
        assert!(
            file["access_token"]
                .as_str()
                .unwrap()
                .starts_with("oauth-claude-at-")
        );
        assert!(
            file["refresh_token"]
                .as_str()
                .unwrap()
                .starts_with("oauth-claude-rt-")
        );
        assert_eq!(file["organization_uuid"], "org-fake");
        assert!(file["expired"].is_string());
        assert_no_secrets(&out, &file, Some(code));
        assert_eq!(s.mock.oauth().exchanges(), round);
    }
    assert_eq!(
        s.files(),
        ["claude-claude-user@example.com.json"],
        "a re-login replaces the file"
    );
}

#[tokio::test]
async fn claude_paste_with_a_wrong_state_is_refused() {
    let s = Setup::new().await;
    let mut login = s.login(&["claude", "--accept-risk"]);
    let url = login.line_starting("http://").await;
    let (_, shown) = s.visit(&url).await;
    let (code, _) = shown.split_once('#').unwrap();
    login
        .paste(&format!("{code}#not-this-sign-ins-state"))
        .await;
    let out = login.finish().await;
    assert!(!out.ok);
    assert!(
        out.stderr.contains("state does not match"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(code));
    assert_eq!(s.mock.oauth().exchanges(), 0, "the code is never sent");
    assert!(s.files().is_empty());

    // Without the opt-in nothing starts, and the reason is given.
    let out = s.login(&["claude"]).finish().await;
    assert!(!out.ok);
    assert!(out.stderr.contains("--accept-risk"), "{}", out.stderr);
    assert!(out.stderr.contains("your own"), "{}", out.stderr);
    assert!(
        !out.stdout.contains("http://"),
        "no authorize URL: {}",
        out.stdout
    );

    let out = s.login(&["qwen"]).finish().await;
    assert!(!out.ok);
    assert!(out.stderr.contains("discontinued"), "{}", out.stderr);
}

/// `--callback`: the test plays a browser on the same machine, following the authorize page's
/// redirect to `localhost:54545/callback` (Claude Code's registered port). The right state signs
/// in; a callback with another state is refused and nothing is exchanged.
#[tokio::test]
async fn claude_local_callback_with_the_right_state_signs_in_and_a_wrong_one_is_refused() {
    let s = Setup::new().await;
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for right in [true, false] {
        let mut login = s.login(&["claude", "--accept-risk", "--callback"]);
        let url = login.line_starting("http://").await;
        assert_eq!(
            query(&url, "redirect_uri"),
            "http://localhost:54545/callback"
        );
        login
            .line_starting("(or finish in the browser: this machine also listens")
            .await;
        let (status, location) = s.visit(&url).await;
        assert_eq!(status, 302, "{location}");
        assert!(
            location.starts_with("http://localhost:54545/callback?code="),
            "{location}"
        );
        assert_eq!(query(&location, "state"), query(&url, "state"));
        let code = query(&location, "code");
        let callback = if right {
            location.clone()
        } else {
            format!("http://localhost:54545/callback?code={code}&state=someone-elses-state")
        };
        let page = browser.get(&callback).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let out = login.finish().await;
        if right {
            assert!(out.ok, "{}\n{}", out.stdout, out.stderr);
            let file = s.file("claude-claude-user@example.com.json");
            assert!(
                file["access_token"]
                    .as_str()
                    .unwrap()
                    .starts_with("oauth-claude-at-")
            );
            assert_no_secrets(&out, &file, Some(&code));
            assert_eq!(s.mock.oauth().exchanges(), 1);
        } else {
            assert!(!out.ok);
            assert!(
                out.stderr.contains("state does not match"),
                "{}",
                out.stderr
            );
            assert!(!out.stderr.contains(&code));
            assert_eq!(s.mock.oauth().exchanges(), 1, "the code is never sent");
        }
    }
    assert_eq!(s.files(), ["claude-claude-user@example.com.json"]);
}

/// Waits for `sluice serve` on `port` to answer `/healthz` (`/readyz` says 503 until an
/// account exists).
async fn wait_ready(port: u16) {
    let http = reqwest::Client::new();
    for _ in 0..300 {
        if http
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("sluice serve did not become ready");
}

#[tokio::test]
async fn codex_device_login_polls_through_pending_and_serves_at_once() {
    let s = Setup::new().await;
    let _gateway = tokio::process::Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&s.config)
        .env_remove("SLUICE_CONFIG")
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_ready(s.port).await;
    let http = reqwest::Client::new();
    let ask = || {
        http.post(format!("http://127.0.0.1:{}/v1/responses", s.port))
            .bearer_auth(CLIENT_KEY)
            .json(&json!({"model": "gpt-5-codex", "input": "hi"}))
            .send()
    };
    assert_ne!(ask().await.unwrap().status(), 200, "no account yet");

    s.mock
        .oauth()
        .script_device(&[DeviceAnswer::Pending, DeviceAnswer::Pending]);
    let started = std::time::Instant::now();
    let mut login = s.login(&["codex"]);
    let page = login.line_starting("http://").await;
    assert_eq!(page, format!("http://{}/codex/device", s.mock.addr()));
    let code = login.line_starting("FAKE-").await;
    let out = login.finish().await;
    assert!(out.ok, "{}\n{}", out.stdout, out.stderr);
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "polled at the server's 1 s interval: pending, pending, approved"
    );
    let name = "codex-codex-user@example.com.json";
    let file = s.file(name);
    assert_eq!(file["type"], "codex");
    assert_eq!(file["account_id"], "chatgpt-acct-fake");
    assert_eq!(file["email"], "codex-user@example.com");
    assert_no_secrets(&out, &file, None);
    assert!(out.stdout.contains(&code));

    // The running gateway's watcher picks the file up: the account serves at once.
    let mut served = None;
    for _ in 0..100 {
        let resp = ask().await.unwrap();
        if resp.status() == 200 {
            served = Some(resp.json::<Value>().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let served = served.expect("the new account never served");
    assert_eq!(served["object"], "response", "{served}");
    let sent = s
        .mock
        .requests()
        .into_iter()
        .rfind(|r| r.path == "/backend-api/codex/responses")
        .unwrap();
    assert_eq!(
        sent.header("authorization").unwrap(),
        format!("Bearer {}", file["access_token"].as_str().unwrap())
    );
    assert_eq!(
        sent.header("chatgpt-account-id").unwrap(),
        "chatgpt-acct-fake"
    );
}

#[tokio::test]
async fn codex_device_login_ends_on_denial_or_expiry() {
    let s = Setup::new().await;
    for (answers, words) in [
        (vec![DeviceAnswer::Pending, DeviceAnswer::Deny], "denied"),
        (vec![DeviceAnswer::Expire], "expired"),
    ] {
        s.mock.oauth().script_device(&answers);
        let out = s.login(&["codex"]).finish().await;
        assert!(!out.ok);
        assert!(out.stderr.contains(words), "{}", out.stderr);
    }
    s.mock.oauth().disable_device(true);
    let out = s.login(&["codex"]).finish().await;
    assert!(!out.ok);
    assert!(out.stderr.contains("--browser"), "{}", out.stderr);
    assert!(s.files().is_empty());
    assert_eq!(s.mock.oauth().exchanges(), 0);
}

#[tokio::test]
async fn codex_browser_login_takes_the_pasted_redirect() {
    let s = Setup::new().await;
    let mut login = s.login(&["codex", "--browser"]);
    let url = login.line_starting("http://").await;
    let (status, location) = s.visit(&url).await;
    assert_eq!(status, 302);
    assert!(
        location.starts_with("http://localhost:1455/auth/callback?code="),
        "{location}"
    );
    login.paste(&location).await;
    let out = login.finish().await;
    assert!(out.ok, "{}\n{}", out.stdout, out.stderr);
    let file = s.file("codex-codex-user@example.com.json");
    assert_eq!(file["account_id"], "chatgpt-acct-fake");
    assert_no_secrets(&out, &file, Some(&query(&location, "code")));
}

#[tokio::test]
async fn gemini_login_onboards_through_a_pending_operation() {
    let s = Setup::new().await;
    s.mock
        .oauth()
        .script_code_assist(CodeAssistScript::Onboard {
            pending: 2,
            project: "onboarded-project-7".into(),
        });
    let mut login = s.login(&["gemini", "--poll-interval", "100ms"]);
    let url = login.line_starting("http://").await;
    assert_eq!(
        query(&url, "redirect_uri"),
        "https://codeassist.google.com/authcode"
    );
    assert_eq!(query(&url, "code_challenge_method"), "S256");
    let (status, code) = s.visit(&url).await;
    assert_eq!(status, 200);
    login.paste(&code).await;
    let out = login.finish().await;
    assert!(out.ok, "{}\n{}", out.stdout, out.stderr);
    let file = s.file("gemini-gemini-user@example.com.json");
    assert_eq!(file["type"], "gemini");
    assert_eq!(file["project_id"], "onboarded-project-7");
    assert!(file["token"]["refresh_token"].is_string());
    assert!(file["token"]["expiry"].is_string());
    assert!(out.stdout.contains("onboarded-project-7"));
    assert_no_secrets(&out, &file, Some(&code));
    assert_eq!(
        s.mock.oauth().onboard_calls(),
        4,
        "onboardUser (not done), two pending polls, the done one"
    );
}

#[tokio::test]
async fn gemini_login_reports_an_ineligible_tier_in_googles_words() {
    let s = Setup::new().await;
    s.mock
        .oauth()
        .script_code_assist(CodeAssistScript::Ineligible);
    let mut login = s.login(&["gemini"]);
    let url = login.line_starting("http://").await;
    let (_, code) = s.visit(&url).await;
    login.paste(&code).await;
    let out = login.finish().await;
    assert!(!out.ok);
    assert!(out.stderr.contains(INELIGIBLE_MESSAGE), "{}", out.stderr);
    assert!(out.stderr.contains("UNSUPPORTED_CLIENT"), "{}", out.stderr);
    assert!(
        s.files().is_empty(),
        "no file for an account that cannot serve"
    );
}

/// A gateway (in process) whose `oauth:` endpoints are the fake's, with its own `auth-dir`.
async fn management_gateway() -> (common::Harness, tempfile::TempDir) {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let m = format!("http://{}", mock.addr());
    let yaml = format!(
        "listen: 127.0.0.1:0
api-keys: [{CLIENT_KEY}]
auth-dir: '{auths}'
oauth:
  claude: {{token-url: '{m}/v1/oauth/token', authorize-url: '{m}/oauth/authorize', base-url: '{m}'}}
  codex: {{token-url: '{m}/oauth/token', authorize-url: '{m}/oauth/authorize', base-url: '{m}/v1'}}
  gemini: {{token-url: '{m}/token', authorize-url: '{m}/o/oauth2/v2/auth', code-assist-url: '{m}/v1internal'}}
providers: []
",
        auths = dir.path().display()
    );
    (common::Harness::from_yaml(mock, &yaml).await, dir)
}

async fn json_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// Polls `get-auth-status` until the sign-in is no longer waiting.
async fn settled(h: &common::Harness, state: &str) -> Value {
    for _ in 0..100 {
        let (code, body) = json_of(
            h.management(reqwest::Method::GET, "/get-auth-status")
                .query(&[("state", state)])
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(code, 200, "{body}");
        if body["status"] != "wait" {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the sign-in never settled");
}

async fn browser(url: &str) -> (u16, String) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = client.get(url).send().await.unwrap();
    let status = resp.status().as_u16();
    if let Some(location) = resp.headers().get("location") {
        return (status, location.to_str().unwrap().to_string());
    }
    (status, resp.text().await.unwrap())
}

#[tokio::test]
async fn management_api_signs_accounts_in() {
    let (h, dir) = management_gateway().await;
    let get = |path: &str| h.management(reqwest::Method::GET, path).send();
    let callback = |body: Value| {
        h.management(reqwest::Method::POST, "/oauth-callback")
            .json(&body)
            .send()
    };

    // Claude needs the explicit opt-in, and says why.
    let (code, body) = json_of(get("/anthropic-auth-url").await.unwrap()).await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("your own"),
        "{body}"
    );

    let (code, started) = json_of(get("/anthropic-auth-url?accept-risk=true").await.unwrap()).await;
    assert_eq!(code, 200, "{started}");
    assert_eq!(started["status"], "ok");
    let state = started["state"].as_str().unwrap().to_string();
    assert_eq!(query(started["url"].as_str().unwrap(), "state"), state);
    let (_, shown) = browser(started["url"].as_str().unwrap()).await;
    let (claude_code, _) = shown.split_once('#').unwrap();

    // A wrong state names no waiting sign-in: nothing is exchanged, the real one still waits.
    let (code, body) = json_of(
        callback(json!({"provider": "anthropic", "redirect_url": format!("{claude_code}#someone-elses-state")}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 404, "{body}");
    assert_eq!(h.mock.oauth().exchanges(), 0);
    let (_, waiting) = json_of(
        h.management(reqwest::Method::GET, "/get-auth-status")
            .query(&[("state", &state)])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(waiting["status"], "wait");

    let (code, body) = json_of(
        callback(json!({"provider": "anthropic", "redirect_url": shown}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((code, &body["status"]), (200, &json!("ok")), "{body}");
    let done = settled(&h, &state).await;
    assert_eq!(done["status"], "ok", "{done}");
    assert_eq!(done["file"], "claude-claude-user@example.com.json");
    assert!(
        dir.path()
            .join("claude-claude-user@example.com.json")
            .is_file()
    );

    // The state is single-use.
    let (code, _) = json_of(
        callback(json!({"provider": "anthropic", "redirect_url": shown}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 404);
    assert_eq!(h.mock.oauth().exchanges(), 1);

    // The account serves at once (platform claude-official, through the fake's Messages API).
    let resp = h
        .chat(
            json!({"model": "claude-sonnet-4-5", "messages": common::user("hi"), "max_tokens": 8}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());

    // Codex: the pasted redirect URL.
    let (_, started) = json_of(get("/codex-auth-url").await.unwrap()).await;
    let (status, location) = browser(started["url"].as_str().unwrap()).await;
    assert_eq!(status, 302);
    let (code, _) = json_of(
        callback(json!({"provider": "codex", "redirect_url": location}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 200);
    let done = settled(&h, started["state"].as_str().unwrap()).await;
    assert_eq!(done["file"], "codex-codex-user@example.com.json", "{done}");

    // Gemini: Google's page shows only the code; the state comes with it. An ineligible tier
    // ends the sign-in in Google's words.
    h.mock
        .oauth()
        .script_code_assist(CodeAssistScript::Ineligible);
    let (_, started) = json_of(get("/gemini-cli-auth-url").await.unwrap()).await;
    let gstate = started["state"].as_str().unwrap();
    let (_, gcode) = browser(started["url"].as_str().unwrap()).await;
    let (code, _) = json_of(
        callback(json!({"provider": "gemini-cli", "code": gcode, "state": gstate}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 200);
    let done = settled(&h, gstate).await;
    assert_eq!(done["status"], "error");
    assert!(
        done["error"].as_str().unwrap().contains(INELIGIBLE_MESSAGE),
        "{done}"
    );

    // A refused authorization ends the sign-in with the provider's words.
    h.mock.oauth().deny_authorize(true);
    let (_, started) = json_of(get("/codex-auth-url").await.unwrap()).await;
    let (_, location) = browser(started["url"].as_str().unwrap()).await;
    let (code, _) = json_of(
        callback(json!({"provider": "codex", "redirect_url": location}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 400);
    let done = settled(&h, started["state"].as_str().unwrap()).await;
    assert_eq!(done["status"], "error", "{done}");

    let (code, _) = json_of(
        h.management(reqwest::Method::GET, "/get-auth-status")
            .query(&[("state", "never-issued")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn the_claude_oauth_fake_demands_claude_codes_shape() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let http = reqwest::Client::new();
    let send = |beta: Option<&str>, body: Value| {
        let mut req = http
            .post(format!("http://{}/v1/messages", mock.addr()))
            .bearer_auth("sk-ant-oat01-fake")
            .header("anthropic-version", "2023-06-01")
            .json(&body);
        if let Some(beta) = beta {
            req = req.header("anthropic-beta", beta);
        }
        req.send()
    };
    let plain =
        json!({"model": "claude-sonnet-4-5", "max_tokens": 8, "messages": common::user("hi")});
    let mut shaped = plain.clone();
    shaped["system"] = json!([{"type": "text", "text": sluice_mock::CLAUDE_CODE_SYSTEM}]);
    assert_eq!(send(None, shaped.clone()).await.unwrap().status(), 400);
    assert_eq!(
        send(Some("oauth-2025-04-20"), plain)
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        send(Some("oauth-2025-04-20"), shaped)
            .await
            .unwrap()
            .status(),
        200
    );
    let haiku =
        json!({"model": "claude-haiku-4-5", "max_tokens": 8, "messages": common::user("hi")});
    assert_eq!(
        send(Some("oauth-2025-04-20"), haiku)
            .await
            .unwrap()
            .status(),
        200
    );
}

/// Issue 11's "Done when", against the real binary: `sluice login codex` completes the device
/// flow against the fake and the account serves at once; the fake's clock moves past the access
/// token's expiry and traffic continues without a failed request (one refresh); revoking the
/// refresh token at the fake turns the account into "needs re-login" within one request,
/// visible in `/v0/management/credentials` and `/auth-files`, while another account keeps
/// serving.
#[tokio::test]
async fn done_when_a_codex_login_serves_survives_expiry_and_a_revocation() {
    let s = Setup::with(&format!(
        "routing: {{strategy: fill-first}}\nrequest-retry: 2\nremote-management-key: '{MGMT_KEY_HASH}'"
    ))
    .await;
    let gateway_log = s.root.path().join("gateway.log");
    let _gateway = tokio::process::Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&s.config)
        .env_remove("SLUICE_CONFIG")
        .stderr(std::fs::File::create(&gateway_log).unwrap())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_ready(s.port).await;
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{}", s.port);
    // Whole and streamed, two dialects: none may fail.
    let ask = |n: usize| {
        let (path, body) = if n.is_multiple_of(2) {
            (
                "/v1/responses",
                json!({"model": "gpt-5-codex", "input": "hi"}),
            )
        } else {
            (
                "/v1/chat/completions",
                json!({"model": "gpt-5-codex", "stream": true,
                    "messages": [{"role": "user", "content": "hi"}]}),
            )
        };
        http.post(format!("{base}{path}"))
            .bearer_auth(CLIENT_KEY)
            .json(&body)
            .send()
    };
    let management = |path: &str| {
        http.get(format!("{base}/v0/management{path}"))
            .header("x-management-key", MGMT_KEY)
            .send()
    };
    let name = "codex-codex-user@example.com.json";
    let bearer_of = |file: &Value| format!("Bearer {}", file["access_token"].as_str().unwrap());
    let last_bearer = || {
        s.mock
            .requests()
            .into_iter()
            .rfind(|r| r.path == "/backend-api/codex/responses")
            .and_then(|r| r.header("authorization").map(String::from))
    };

    // 1. Sign in with the device flow; the account serves at once.
    s.mock.oauth().script_device(&[DeviceAnswer::Pending]);
    let mut login = s.login(&["codex"]);
    login.line_starting("FAKE-").await;
    let out = login.finish().await;
    assert!(out.ok, "{}\n{}", out.stdout, out.stderr);
    let signed_in = s.file(name);
    let mut served = false;
    for _ in 0..100 {
        if ask(0).await.unwrap().status() == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "the new account never served");
    assert_eq!(last_bearer().unwrap(), bearer_of(&signed_in));
    assert_eq!(s.mock.oauth().token_calls(), 0);

    // 2. The fake's clock passes the access token's expiry (Codex tokens live 10 days): the
    // backend refuses it, Sluice refreshes once and retries, no request fails.
    s.mock.oauth().advance_clock(11 * 24 * 3600);
    for n in 0..6 {
        let resp = ask(n).await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert_eq!(status, 200, "request {n} after the expiry: {text}");
        assert!(!text.contains("\"error\":{"), "request {n}: {text}");
    }
    assert_eq!(s.mock.oauth().token_calls(), 1, "one refresh for all");
    let refreshed = s.file(name);
    assert_ne!(refreshed["refresh_token"], signed_in["refresh_token"]);
    assert_eq!(last_bearer().unwrap(), bearer_of(&refreshed));

    // 3. Another account joins the pool (a second token file).
    let other_id_token = sluice_oauth::jwt::unsigned(&json!({
        "email": "other@example.com",
        "https://api.openai.com/auth": {"chatgpt_account_id": "chatgpt-acct-other"},
    }));
    let expires = (chrono::Utc::now() + chrono::Duration::days(7))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    std::fs::write(
        s.auths().join("codex-other.json"),
        json!({"type": "codex", "access_token": "other-access", "refresh_token": "other-rt",
            "id_token": other_id_token, "email": "other@example.com", "expired": expires})
        .to_string(),
    )
    .unwrap();
    let credentials = || async {
        management("/credentials")
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let of = |all: &Value, file: &str| {
        all["credentials"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["account"]["file"] == file)
            .cloned()
    };
    let mut joined = false;
    for _ in 0..100 {
        if of(&credentials().await, "codex-other.json").is_some() {
            joined = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(joined, "the second account never joined");
    assert_eq!(ask(0).await.unwrap().status(), 200);
    assert_eq!(
        last_bearer().unwrap(),
        bearer_of(&refreshed),
        "fill-first: the signed-in account still serves first"
    );

    // 4. The refresh token is revoked at the provider (with the access token issued with it).
    s.mock
        .oauth()
        .revoke(refreshed["refresh_token"].as_str().unwrap());
    let resp = ask(0).await.unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    assert_eq!(
        last_bearer().unwrap(),
        "Bearer other-access",
        "the other account served that very request"
    );
    let all = credentials().await;
    let dead = of(&all, name).unwrap();
    assert_eq!(dead["status"], "needs_relogin", "{dead}");
    assert!(
        dead["account"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("refresh_token_reused")),
        "{dead}"
    );
    assert!(
        dead["disabled"]
            .as_str()
            .is_some_and(|d| d.starts_with("needs re-login")),
        "{dead}"
    );
    assert_eq!(of(&all, "codex-other.json").unwrap()["status"], "active");
    let files: Value = management("/auth-files")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed = files["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .cloned()
        .unwrap();
    assert_eq!(listed["status"], "needs_relogin", "{listed}");
    assert!(
        listed["status_message"]
            .as_str()
            .is_some_and(|m| m.contains("refresh_token_reused")),
        "{listed}"
    );
    // Out of rotation, never refreshed again; the pool keeps serving.
    let calls = s.mock.oauth().token_calls();
    for n in 0..4 {
        assert_eq!(ask(n).await.unwrap().status(), 200);
    }
    assert_eq!(s.mock.oauth().token_calls(), calls);
    assert_eq!(last_bearer().unwrap(), "Bearer other-access");
}
