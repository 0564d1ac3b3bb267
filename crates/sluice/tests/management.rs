//! Seed 003's management API end to end: a real Sluice on a real port, its config in a real
//! file, restarted from that file to show every change persisted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use sluice::config::Config;
use sluice::management::{Host, LogControl};
use sluice::server::RunningServer;
use sluice_mock::{MockConfig, MockServer};

const KEY: &str = "test-management-key";

/// A gateway whose config lives in a temporary file.
struct Managed {
    dir: tempfile::TempDir,
    path: PathBuf,
    server: RunningServer,
    http: reqwest::Client,
    /// Log filters the gateway asked for.
    log: Arc<Mutex<Vec<String>>>,
}

impl Managed {
    async fn start(yaml: &str) -> Managed {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, yaml).unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let server = boot(&path, &log).await;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        Managed {
            dir,
            path,
            server,
            http,
            log,
        }
    }

    /// Stops the server and starts a new one from the same file.
    async fn restart(self) -> Managed {
        let Managed {
            dir,
            path,
            server,
            http,
            log,
        } = self;
        server.shutdown();
        server.wait().await.unwrap();
        let server = boot(&path, &log).await;
        Managed {
            dir,
            path,
            server,
            http,
            log,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/v0/management{path}", self.server.addr)
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(KEY)
    }

    async fn get(&self, path: &str) -> Value {
        let resp = self.req(reqwest::Method::GET, path).send().await.unwrap();
        assert_eq!(resp.status(), 200, "GET {path}");
        resp.json().await.unwrap()
    }

    /// Sends a body; returns status and JSON answer.
    async fn send(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = self
            .req(method, path)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn ok(&self, method: &str, path: &str, body: &str) {
        let (status, answer) = self.send(method, path, body).await;
        assert_eq!(
            (status, answer),
            (200, json!({"status": "ok"})),
            "{method} {path} {body}"
        );
    }

    fn file(&self) -> String {
        std::fs::read_to_string(&self.path).unwrap()
    }

    fn file_config(&self) -> Config {
        Config::parse(&self.file()).unwrap()
    }

    fn proxy(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.addr)
    }
}

async fn boot(path: &std::path::Path, log: &Arc<Mutex<Vec<String>>>) -> RunningServer {
    let config = Config::load(path).unwrap_or_else(|e| panic!("{e:?}"));
    let sink = log.clone();
    let control: LogControl = Arc::new(move |d: &str| sink.lock().unwrap().push(d.to_string()));
    sluice::server::start_with(
        config,
        vec![],
        Host {
            config_path: Some(path.to_path_buf()),
            log: Some(control),
        },
    )
    .await
    .unwrap()
}

/// A config whose management key is already hashed, cheaply (bcrypt cost 4), so tests do not
/// spend their time in bcrypt; [`plaintext_yaml`] has the key as an operator writes it.
fn base_yaml(extra: &str) -> String {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let hash = HASH.get_or_init(|| bcrypt::hash(KEY, 4).unwrap());
    plaintext_yaml(extra).replace(
        &format!("remote-management-key: {KEY}"),
        &format!("remote-management-key: '{hash}'"),
    )
}

fn plaintext_yaml(extra: &str) -> String {
    format!(
        "# Sluice test config
listen: 127.0.0.1:0   # any port
api-keys: [{client}]
remote-management-key: {KEY}   # hashed at start
shutdown-grace-period: 2s
{extra}",
        client = common::CLIENT_KEY
    )
}

/// Polls `check` until it holds or a bounded wait ends (for the file watcher).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not within 5s: {what}");
}

async fn model_ids(m: &Managed, key: Option<&str>) -> (u16, Vec<String>) {
    let mut req = m.http.get(m.proxy("/v1/models"));
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let ids = body["data"]
        .as_array()
        .map(|d| {
            d.iter()
                .filter_map(|m| m["id"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    (status, ids)
}

#[tokio::test]
async fn plaintext_key_is_hashed_in_the_file_and_still_accepted() {
    let m = Managed::start(&plaintext_yaml("debug: false\n")).await;
    let file = m.file();
    assert!(!file.contains(KEY), "{file}");
    let hash = m.file_config().remote_management_key;
    assert!(hash.starts_with("$2") && hash.len() == 60, "{hash}");
    assert!(file.starts_with("# Sluice test config\nlisten: 127.0.0.1:0   # any port\n"));
    assert!(file.contains("   # hashed at start"), "{file}");
    assert_eq!(m.get("/debug").await, json!({"debug": false}));
    // X-Management-Key works as well as Bearer.
    let resp = m
        .http
        .get(m.url("/debug"))
        .header("X-Management-Key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let m = m.restart().await;
    assert_eq!(m.file_config().remote_management_key, hash);
    assert_eq!(m.get("/debug").await, json!({"debug": false}));
}

#[tokio::test]
async fn scalar_settings_follow_the_seed_and_persist() {
    let m = Managed::start(&base_yaml("")).await;
    // debug
    assert_eq!(m.get("/debug").await, json!({"debug": false}));
    m.ok("PUT", "/debug", r#"{"value":true}"#).await;
    assert_eq!(m.get("/debug").await, json!({"debug": true}));
    assert!(
        m.log.lock().unwrap().iter().any(|d| d.starts_with("debug")),
        "the log filter was not switched to debug"
    );
    // proxy-url: PUT, PATCH, DELETE
    m.ok(
        "PUT",
        "/proxy-url",
        r#"{"value":"socks5://user:pass@127.0.0.1:1080/"}"#,
    )
    .await;
    assert_eq!(
        m.get("/proxy-url").await,
        json!({"proxy-url": "socks5://user:pass@127.0.0.1:1080/"})
    );
    m.ok(
        "PATCH",
        "/proxy-url",
        r#"{"value":"http://127.0.0.1:8080"}"#,
    )
    .await;
    assert_eq!(
        m.get("/proxy-url").await,
        json!({"proxy-url": "http://127.0.0.1:8080"})
    );
    let resp = m
        .req(reqwest::Method::DELETE, "/proxy-url")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(m.get("/proxy-url").await, json!({"proxy-url": ""}));
    m.ok(
        "PATCH",
        "/proxy-url",
        r#"{"value":"http://127.0.0.1:8080"}"#,
    )
    .await;
    // quota-exceeded
    assert_eq!(
        m.get("/quota-exceeded/switch-project").await,
        json!({"switch-project": true})
    );
    m.ok(
        "PUT",
        "/quota-exceeded/switch-project",
        r#"{"value":false}"#,
    )
    .await;
    m.ok(
        "PATCH",
        "/quota-exceeded/switch-preview-model",
        r#"{"value":false}"#,
    )
    .await;
    assert_eq!(
        m.get("/quota-exceeded/switch-preview-model").await,
        json!({"switch-preview-model": false})
    );
    // request-retry
    assert_eq!(m.get("/request-retry").await, json!({"request-retry": 3}));
    m.ok("PATCH", "/request-retry", r#"{"value":5}"#).await;
    // allow-localhost-unauthenticated
    assert_eq!(
        m.get("/allow-localhost-unauthenticated").await,
        json!({"allow-localhost-unauthenticated": false})
    );
    m.ok(
        "PUT",
        "/allow-localhost-unauthenticated",
        r#"{"value":true}"#,
    )
    .await;

    let m = m.restart().await;
    let c = m.file_config();
    assert!(c.debug);
    assert_eq!(c.proxy_url, "http://127.0.0.1:8080");
    assert!(!c.quota_exceeded.switch_project && !c.quota_exceeded.switch_preview_model);
    assert_eq!(c.request_retry, 5);
    assert!(c.allow_localhost_unauthenticated);
    let all = m.get("/config").await;
    assert_eq!(all["debug"], true);
    assert_eq!(all["proxy-url"], "http://127.0.0.1:8080");
    assert_eq!(
        all["quota-exceeded"],
        json!({"switch-project": false, "switch-preview-model": false})
    );
    assert_eq!(all["request-retry"], 5);
    assert_eq!(all["allow-localhost-unauthenticated"], true);
    assert_eq!(all["api-keys"], json!([common::CLIENT_KEY]));
    assert!(all.get("remote-management-key").is_none());
    // Unrelated lines and comments are untouched.
    assert!(
        m.file()
            .starts_with("# Sluice test config\nlisten: 127.0.0.1:0   # any port\n")
    );
}

#[tokio::test]
async fn string_lists_follow_the_seed_and_change_who_is_served() {
    let m = Managed::start(&base_yaml("")).await;
    m.ok("PUT", "/api-keys", r#"["k1","k2","k3"]"#).await;
    assert_eq!(
        m.get("/api-keys").await,
        json!({"api-keys": ["k1","k2","k3"]})
    );
    m.ok("PATCH", "/api-keys", r#"{"old":"k2","new":"k2b"}"#)
        .await;
    m.ok("PATCH", "/api-keys", r#"{"index":0,"value":"k1b"}"#)
        .await;
    assert_eq!(
        m.get("/api-keys").await,
        json!({"api-keys": ["k1b","k2b","k3"]})
    );
    // The client keys changed at once: the old key is refused, a new one accepted.
    assert_eq!(model_ids(&m, Some(common::CLIENT_KEY)).await.0, 401);
    assert_eq!(model_ids(&m, Some("k2b")).await.0, 200);
    let resp = m
        .req(reqwest::Method::DELETE, "/api-keys?value=k1b")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = m
        .req(reqwest::Method::DELETE, "/api-keys?index=0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(m.get("/api-keys").await, json!({"api-keys": ["k3"]}));
    // {"items": [...]} is a PUT too.
    m.ok("PUT", "/api-keys", r#"{"items":["k3","k4"]}"#).await;

    m.ok(
        "PUT",
        "/generative-language-api-key",
        r#"["AIzaSy-1","AIzaSy-2"]"#,
    )
    .await;
    m.ok(
        "PATCH",
        "/generative-language-api-key",
        r#"{"old":"AIzaSy-1","new":"AIzaSy-1b"}"#,
    )
    .await;
    let resp = m
        .req(
            reqwest::Method::DELETE,
            "/generative-language-api-key?value=AIzaSy-2",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        m.get("/generative-language-api-key").await,
        json!({"generative-language-api-key": ["AIzaSy-1b"]})
    );
    // The Gemini key became a provider serving the default Gemini models.
    let (_, ids) = model_ids(&m, Some("k4")).await;
    assert!(ids.contains(&"gemini-2.5-pro".to_string()), "{ids:?}");

    let m = m.restart().await;
    let c = m.file_config();
    assert_eq!(c.api_keys, ["k3", "k4"]);
    assert_eq!(c.generative_language_api_key, ["AIzaSy-1b"]);
    assert_eq!(model_ids(&m, Some("k3")).await.0, 200);
}

#[tokio::test]
async fn object_lists_follow_the_seed_and_persist() {
    let m = Managed::start(&base_yaml("")).await;
    for list in ["codex-api-key", "claude-api-key"] {
        let path = format!("/{list}");
        m.ok(
            "PUT",
            &path,
            r#"[{"api-key":"sk-a"},{"api-key":"sk-b","base-url":"https://c.example.com"}]"#,
        )
        .await;
        assert_eq!(
            m.get(&path).await,
            json!({list: [{"api-key":"sk-a","base-url":""},{"api-key":"sk-b","base-url":"https://c.example.com"}]})
        );
        m.ok(
            "PATCH",
            &path,
            r#"{"index":1,"value":{"api-key":"sk-b2","base-url":"https://c.example.com"}}"#,
        )
        .await;
        m.ok(
            "PATCH",
            &path,
            r#"{"match":"sk-a","value":{"api-key":"sk-a","base-url":""}}"#,
        )
        .await;
        assert_eq!(
            m.get(&path).await,
            json!({list: [{"api-key":"sk-a","base-url":""},{"api-key":"sk-b2","base-url":"https://c.example.com"}]})
        );
        // The keys became providers: Claude and Codex models are served.
        let (_, ids) = model_ids(&m, Some(common::CLIENT_KEY)).await;
        let expected = if list == "codex-api-key" {
            "gpt-5-codex"
        } else {
            "claude-sonnet-4-5"
        };
        assert!(ids.contains(&expected.to_string()), "{ids:?}");
        let resp = m
            .req(reqwest::Method::DELETE, &format!("{path}?api-key=sk-b2"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            m.get(&path).await,
            json!({list: [{"api-key":"sk-a","base-url":""}]})
        );
    }
    let resp = m
        .req(reqwest::Method::DELETE, "/codex-api-key?index=0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(m.get("/codex-api-key").await, json!({"codex-api-key": []}));

    m.ok(
        "PUT",
        "/openai-compatibility",
        r#"[{"name":"openrouter","base-url":"https://openrouter.ai/api/v1","api-keys":["sk"],"models":[{"name":"m","alias":"a"}]}]"#,
    )
    .await;
    let (_, ids) = model_ids(&m, Some(common::CLIENT_KEY)).await;
    assert!(
        ids.contains(&"a".to_string()) && ids.contains(&"m".to_string()),
        "{ids:?}"
    );
    m.ok(
        "PATCH",
        "/openai-compatibility",
        r#"{"name":"openrouter","value":{"name":"openrouter","base-url":"https://openrouter.ai/api/v1","api-keys":[],"models":[]}}"#,
    )
    .await;
    m.ok(
        "PATCH",
        "/openai-compatibility",
        r#"{"index":0,"value":{"name":"openrouter","base-url":"https://openrouter.ai/api/v1","api-keys":[],"models":[]}}"#,
    )
    .await;
    assert_eq!(
        m.get("/openai-compatibility").await,
        json!({"openai-compatibility": [{"name":"openrouter","base-url":"https://openrouter.ai/api/v1","api-keys":[],"models":[]}]})
    );
    m.ok(
        "PUT",
        "/openai-compatibility",
        r#"[{"name":"one","base-url":"https://one.example/v1"},{"name":"two","base-url":"https://two.example/v1"}]"#,
    )
    .await;
    let resp = m
        .req(reqwest::Method::DELETE, "/openai-compatibility?name=one")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let m = m.restart().await;
    let c = m.file_config();
    assert!(c.codex_api_key.is_empty());
    assert_eq!(c.claude_api_key.len(), 1);
    assert_eq!(c.claude_api_key[0].api_key, "sk-a");
    assert_eq!(c.openai_compatibility.len(), 1);
    assert_eq!(c.openai_compatibility[0].name, "two");
    let resp = m
        .req(reqwest::Method::DELETE, "/openai-compatibility?index=0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(m.file_config().openai_compatibility.is_empty());
}

#[tokio::test]
async fn errors_are_the_seeds() {
    let m = Managed::start(&base_yaml("")).await;
    let cases = [
        (
            "PUT",
            "/debug",
            "not json",
            400,
            json!({"error": "invalid body"}),
        ),
        (
            "PUT",
            "/debug",
            r#"{"nope":true}"#,
            400,
            json!({"error": "invalid body"}),
        ),
        (
            "PUT",
            "/api-keys",
            r#"{"a":1}"#,
            400,
            json!({"error": "invalid body"}),
        ),
        (
            "PATCH",
            "/api-keys",
            r#"{"old":"missing","new":"x"}"#,
            404,
            json!({"error": "item not found"}),
        ),
        (
            "PATCH",
            "/api-keys",
            r#"{"index":9,"value":"x"}"#,
            404,
            json!({"error": "item not found"}),
        ),
        (
            "PATCH",
            "/codex-api-key",
            r#"{"match":"nope","value":{"api-key":"x"}}"#,
            404,
            json!({"error": "item not found"}),
        ),
        (
            "PATCH",
            "/openai-compatibility",
            r#"{"name":"nope","value":{"name":"x","base-url":"https://x"}}"#,
            404,
            json!({"error": "item not found"}),
        ),
    ];
    for (method, path, body, status, expected) in cases {
        let (got, answer) = m.send(method, path, body).await;
        assert_eq!((got, answer), (status, expected), "{method} {path} {body}");
    }
    for path in [
        "/api-keys?value=nope",
        "/api-keys?index=7",
        "/claude-api-key?api-key=nope",
    ] {
        let resp = m.req(reqwest::Method::DELETE, path).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{path}");
        assert_eq!(
            resp.json::<Value>().await.unwrap(),
            json!({"error": "item not found"})
        );
    }
    let resp = m
        .req(reqwest::Method::DELETE, "/api-keys")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    // A value the config refuses is a 400 that says why, and nothing is written.
    let before = m.file();
    let (status, answer) = m
        .send("PUT", "/proxy-url", r#"{"value":"ftp://nope"}"#)
        .await;
    assert_eq!(status, 400);
    assert_eq!(answer["error"], "invalid body");
    assert!(
        answer["message"].as_str().unwrap().contains("proxy-url"),
        "{answer}"
    );
    let (status, _) = m.send("PUT", "/request-retry", r#"{"value":-1}"#).await;
    assert_eq!(status, 400);
    assert_eq!(m.file(), before);
    // Authentication.
    let resp = m.http.get(m.url("/debug")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"error": "missing management key"})
    );
    let resp = m
        .http
        .get(m.url("/debug"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"error": "invalid management key"})
    );
    // Unknown management paths answer in the management shape, behind authentication.
    let resp = m.req(reqwest::Method::GET, "/nope").send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"error": "not found"})
    );
    let resp = m.http.get(m.url("/nope")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn without_a_management_key_the_api_is_closed() {
    let m = Managed::start("listen: 127.0.0.1:0\napi-keys: [k]\n").await;
    for key in [None, Some("anything")] {
        let mut req = m.http.get(m.url("/config"));
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 403);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "management key not configured");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("remote-management-key")
        );
    }
}

#[tokio::test]
async fn five_wrong_keys_ban_the_address() {
    let m = Managed::start(&base_yaml("")).await;
    for _ in 0..5 {
        let resp = m
            .http
            .get(m.url("/debug"))
            .bearer_auth("guess")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
    }
    // Now even the right key is refused from this address.
    let resp = m.req(reqwest::Method::GET, "/debug").send().await.unwrap();
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().starts_with("IP banned"),
        "{body}"
    );
}

#[tokio::test]
async fn a_right_key_resets_the_failure_count() {
    let m = Managed::start(&base_yaml(
        "management-ban: {max-failures: 3, duration: 10m}\n",
    ))
    .await;
    for round in 0..2 {
        for _ in 0..2 {
            let resp = m
                .http
                .get(m.url("/debug"))
                .bearer_auth("guess")
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 401, "round {round}");
        }
        assert_eq!(
            m.req(reqwest::Method::GET, "/debug")
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
}

/// A non-loopback address of this machine (the first from `ip -4 addr`), to be a remote peer.
fn non_loopback_address() -> Option<String> {
    let out = std::process::Command::new("ip")
        .args(["-o", "-4", "addr", "show"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|line| {
            let cidr = line
                .split_whitespace()
                .skip_while(|w| *w != "inet")
                .nth(1)?;
            let ip = cidr.split('/').next()?;
            (!ip.starts_with("127.")).then(|| ip.to_string())
        })
}

#[tokio::test]
async fn remote_management_is_off_and_forwarded_headers_do_not_bypass_it() {
    let Some(ip) = non_loopback_address() else {
        println!("SKIPPED: this machine has no non-loopback IPv4 address to act as a remote peer");
        return;
    };
    let yaml = base_yaml("allow-localhost-unauthenticated: true\n")
        .replace("127.0.0.1:0", &format!("{ip}:0"));
    let m = Managed::start(&yaml).await;
    assert!(!m.server.addr.ip().is_loopback());
    for forwarded in [None, Some("127.0.0.1")] {
        let mut req = m.req(reqwest::Method::GET, "/debug");
        if let Some(f) = forwarded {
            req = req.header("X-Forwarded-For", f).header("X-Real-IP", f);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 403, "forwarded: {forwarded:?}");
        assert_eq!(
            resp.json::<Value>().await.unwrap(),
            json!({"error": "remote management disabled"})
        );
    }
    // allow-localhost-unauthenticated does not extend to a remote peer either.
    assert_eq!(model_ids(&m, None).await.0, 401);

    // Switched on in the file (not through the API), remote management works with the key.
    let text = m.file().replace(
        "allow-localhost-unauthenticated: true",
        "allow-remote-management: true",
    );
    std::fs::write(&m.path, text).unwrap();
    let m = m.restart().await;
    assert_eq!(m.get("/debug").await, json!({"debug": false}));
    let resp = m
        .http
        .get(m.url("/debug"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    // Behind a configured trusted proxy, X-Forwarded-For names the client.
    let text = m.file().replace(
        "allow-remote-management: true",
        &format!("trusted-proxies: [{ip}]"),
    );
    std::fs::write(&m.path, text).unwrap();
    let m = m.restart().await;
    let resp = m
        .req(reqwest::Method::GET, "/debug")
        .header("X-Forwarded-For", "127.0.0.1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = m
        .req(reqwest::Method::GET, "/debug")
        .header("X-Forwarded-For", "127.0.0.1, 198.51.100.7")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
}

#[tokio::test]
async fn localhost_unauthenticated_lets_loopback_callers_in() {
    let m = Managed::start(&base_yaml("")).await;
    assert_eq!(model_ids(&m, None).await.0, 401);
    m.ok(
        "PUT",
        "/allow-localhost-unauthenticated",
        r#"{"value":true}"#,
    )
    .await;
    assert_eq!(model_ids(&m, None).await.0, 200);
    // A wrong key is still wrong.
    assert_eq!(model_ids(&m, Some("wrong")).await.0, 401);
    // A request relayed by a local proxy is not a local caller.
    let resp = m
        .http
        .get(m.proxy("/v1/models"))
        .header("X-Forwarded-For", "203.0.113.5")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn proxy_url_reroutes_upstream_traffic() {
    // The provider's own address is dead; only through the proxy can it be reached. The
    // "proxy" is a second fake upstream: a plain HTTP proxy receives the request with an
    // absolute URL and this fake answers it as if it were the upstream.
    let proxy = MockServer::start(MockConfig::default()).await.unwrap();
    let yaml = base_yaml(
        "providers:
  - {name: far, kind: openai-compatible, base-url: 'http://127.0.0.1:9/v1', api-keys: [up], models: [{name: far-model}]}
",
    );
    let m = Managed::start(&yaml).await;
    let chat = || {
        m.http
            .post(m.proxy("/v1/chat/completions"))
            .bearer_auth(common::CLIENT_KEY)
            .json(&json!({"model": "far-model", "messages": common::user("hi")}))
            .send()
    };
    assert_eq!(chat().await.unwrap().status(), 502);
    m.ok(
        "PUT",
        "/proxy-url",
        &format!(r#"{{"value":"http://{}"}}"#, proxy.addr()),
    )
    .await;
    let resp = chat().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(proxy.requests().len(), 1);
    assert_eq!(proxy.requests()[0].path, "/v1/chat/completions");
    let resp = m
        .req(reqwest::Method::DELETE, "/proxy-url")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(chat().await.unwrap().status(), 502);
    assert_eq!(proxy.requests().len(), 1);
}

#[tokio::test]
async fn fifty_parallel_patches_lose_nothing_and_never_tear_the_file() {
    let keys: Vec<String> = (0..50).map(|i| format!("key-{i}")).collect();
    let m = Arc::new(Managed::start(&base_yaml("")).await);
    m.ok("PUT", "/api-keys", &serde_json::to_string(&keys).unwrap())
        .await;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (path, done) = (m.path.clone(), done.clone());
        std::thread::spawn(move || {
            let mut reads = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let text = std::fs::read_to_string(&path).unwrap();
                let parsed = Config::parse(&text);
                assert!(parsed.is_ok(), "torn config file:\n{text}");
                assert_eq!(parsed.unwrap().api_keys.len(), 50, "{text}");
                reads += 1;
            }
            reads
        })
    };
    let patches = (0..50).map(|i| {
        let m = m.clone();
        tokio::spawn(async move {
            m.ok(
                "PATCH",
                "/api-keys",
                &format!(r#"{{"old":"key-{i}","new":"new-{i}"}}"#),
            )
            .await
        })
    });
    for p in futures_util::future::join_all(patches).await {
        p.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
    let expected: Vec<String> = (0..50).map(|i| format!("new-{i}")).collect();
    assert_eq!(m.file_config().api_keys, expected);
    assert_eq!(m.get("/api-keys").await, json!({"api-keys": expected}));
    // No temporary files are left behind (beside the config: the store's `data` directory).
    let leftovers: Vec<_> = std::fs::read_dir(m.dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "config.yaml" && n != "data")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn hand_edits_are_applied_and_invalid_ones_refused() {
    let m = Managed::start(&base_yaml("request-retry: 3\n")).await;
    // The API's own writes are not reloaded again.
    m.ok("PUT", "/request-retry", r#"{"value":4}"#).await;
    m.ok("PUT", "/debug", r#"{"value":true}"#).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(m.server.state.management.reload_status().seen, 0);
    let text = m.file().replace("request-retry: 4", "request-retry: 8");
    std::fs::write(&m.path, &text).unwrap();
    eventually("request-retry 8 applied", || async {
        m.get("/request-retry").await == json!({"request-retry": 8})
    })
    .await;
    // A new client key from a hand edit is accepted.
    let text = m.file().replace(common::CLIENT_KEY, "hand-added-key");
    std::fs::write(&m.path, &text).unwrap();
    eventually("new client key", || async {
        model_ids(&m, Some("hand-added-key")).await.0 == 200
    })
    .await;
    // An invalid file is refused; the old config keeps serving.
    let seen = m.server.state.management.reload_status().seen;
    std::fs::write(
        &m.path,
        text.replace("request-retry: 8", "request-retry: [broken"),
    )
    .unwrap();
    eventually("the broken file was seen", || async {
        m.server.state.management.reload_status().seen > seen
    })
    .await;
    let status = m.server.state.management.reload_status();
    assert!(
        status
            .last_error
            .as_deref()
            .unwrap()
            .contains("request-retry"),
        "{status:?}"
    );
    assert_eq!(m.get("/request-retry").await, json!({"request-retry": 8}));
    assert_eq!(model_ids(&m, Some("hand-added-key")).await.0, 200);
    // Writes through the API are refused while the file on disk is broken, naming the cause.
    let (status, answer) = m.send("PUT", "/debug", r#"{"value":true}"#).await;
    assert_eq!(status, 500);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .starts_with("failed to save config: "),
        "{answer}"
    );
    // Fixed again, it is applied.
    std::fs::write(
        &m.path,
        text.replace("request-retry: 8", "request-retry: 9"),
    )
    .unwrap();
    eventually("request-retry 9 applied", || async {
        m.get("/request-retry").await == json!({"request-retry": 9})
    })
    .await;
}

fn qwen_token(mock: &MockServer, token: &str) -> String {
    json!({"type": "qwen", "access_token": token, "refresh_token": "r", "resource_url": format!("http://{}", mock.addr()), "expired": "2030-01-01T00:00:00Z"}).to_string()
}

#[tokio::test]
async fn auth_files_upload_list_download_delete() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let m = Managed::start(&base_yaml("")).await;
    assert_eq!(m.get("/auth-files").await, json!({"files": []}));
    let chat = |model: &'static str| {
        m.http
            .post(m.proxy("/v1/chat/completions"))
            .bearer_auth(common::CLIENT_KEY)
            .json(&json!({"model": model, "messages": common::user("hi")}))
            .send()
    };
    assert_eq!(chat("qwen3-coder-plus").await.unwrap().status(), 404);

    // Multipart upload, as `curl -F file=@acc1.json`.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(qwen_token(&mock, "qwen-access-1").into_bytes())
            .file_name("acc1.json"),
    );
    let resp = m
        .req(reqwest::Method::POST, "/auth-files")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"status": "ok"}));
    // Loaded into the pool at once: the Qwen model is served with the file's token.
    let resp = chat("qwen3-coder-plus").await.unwrap();
    assert_eq!(resp.status(), 200);
    let sent = mock.requests();
    assert_eq!(
        sent.last().unwrap().header("authorization"),
        Some("Bearer qwen-access-1")
    );

    // Raw JSON upload with ?name=.
    let claude = json!({"type": "claude", "access_token": "claude-at", "refresh_token": "rt", "email": "a@example.com", "base_url": format!("http://{}", mock.addr())});
    let (status, _) = m
        .send(
            "POST",
            "/auth-files?name=claude-a.json",
            &claude.to_string(),
        )
        .await;
    assert_eq!(status, 200);
    let resp = m
        .http
        .post(m.proxy("/v1/messages"))
        .bearer_auth(common::CLIENT_KEY)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": common::user("hi")}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let last = mock.requests().pop().unwrap();
    assert_eq!(last.header("authorization"), Some("Bearer claude-at"));
    assert_eq!(
        last.header("anthropic-beta"),
        Some(
            "claude-code-20250219,oauth-2025-04-20,interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14"
        )
    );
    // Claude's OAuth API's shape (platform claude-official): Claude Code's headers, `?beta=true`,
    // its system line first, no x-api-key.
    assert_eq!(last.header("x-app"), Some("cli"));
    assert_eq!(last.header("x-api-key"), None);
    assert!(
        last.header("user-agent")
            .unwrap()
            .starts_with("claude-cli/")
    );
    assert_eq!(last.query.as_deref(), Some("beta=true"));
    let sent: Value = serde_json::from_str(&last.body).unwrap();
    assert_eq!(
        sent["system"][0]["text"],
        "You are Claude Code, Anthropic's official CLI for Claude."
    );
    // A client's own beta flags travel with the OAuth one.
    let resp = m
        .http
        .post(m.proxy("/v1/messages"))
        .bearer_auth(common::CLIENT_KEY)
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "prompt-caching-2024-07-31")
        .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": common::user("hi")}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let last = mock.requests().pop().unwrap();
    assert_eq!(
        last.header("anthropic-beta"),
        Some(
            "claude-code-20250219,oauth-2025-04-20,interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14,prompt-caching-2024-07-31"
        )
    );

    let list = m.get("/auth-files").await;
    let files = list["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0]["name"], "acc1.json");
    assert_eq!(files[0]["type"], "qwen");
    assert!(files[0]["size"].as_u64().unwrap() > 10);
    assert!(files[0]["modtime"].as_str().unwrap().ends_with('Z'));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(m.dir.path().join("auths/acc1.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let resp = m
        .req(reqwest::Method::GET, "/auth-files/download?name=acc1.json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("acc1.json")
    );
    assert_eq!(
        resp.text().await.unwrap(),
        qwen_token(&mock, "qwen-access-1")
    );
    let resp = m
        .req(reqwest::Method::GET, "/auth-files/download?name=nope.json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"error": "file not found"})
    );

    // Survives a restart.
    let m = m.restart().await;
    assert_eq!(
        m.get("/auth-files").await["files"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let (_, ids) = model_ids(&m, Some(common::CLIENT_KEY)).await;
    assert!(ids.contains(&"qwen3-coder-plus".to_string()), "{ids:?}");

    // Deleting one unloads it.
    let resp = m
        .req(reqwest::Method::DELETE, "/auth-files?name=acc1.json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (_, ids) = model_ids(&m, Some(common::CLIENT_KEY)).await;
    assert!(!ids.contains(&"qwen3-coder-plus".to_string()), "{ids:?}");
    assert!(ids.contains(&"claude-sonnet-4-5".to_string()), "{ids:?}");
    let resp = m
        .req(reqwest::Method::DELETE, "/auth-files?name=acc1.json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"error": "file not found"})
    );
    // And all of them.
    let (status, _) = m
        .send(
            "POST",
            "/auth-files?name=acc2.json",
            &qwen_token(&mock, "q2"),
        )
        .await;
    assert_eq!(status, 200);
    let resp = m
        .req(reqwest::Method::DELETE, "/auth-files?all=true")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"status": "ok", "deleted": 2})
    );
    let (_, ids) = model_ids(&m, Some(common::CLIENT_KEY)).await;
    assert!(ids.is_empty(), "{ids:?}");
}

#[tokio::test]
async fn auth_file_names_contents_and_sizes_are_checked() {
    let m = Managed::start(&base_yaml("")).await;
    let token = r#"{"type":"codex","access_token":"x"}"#;
    for name in [
        "../evil.json",
        "..%2Fevil.json",
        "a%2Fb.json",
        "x.txt",
        ".hidden.json",
        "a..json",
    ] {
        let (status, answer) = m
            .send("POST", &format!("/auth-files?name={name}"), token)
            .await;
        assert_eq!(status, 400, "{name}: {answer}");
        let resp = m
            .req(
                reqwest::Method::GET,
                &format!("/auth-files/download?name={name}"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{name}");
        let resp = m
            .req(reqwest::Method::DELETE, &format!("/auth-files?name={name}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{name}");
    }
    // A traversal in a multipart file name is refused too.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(token.as_bytes().to_vec()).file_name("../../evil.json"),
    );
    let resp = m
        .req(reqwest::Method::POST, "/auth-files")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(!m.dir.path().join("evil.json").exists());
    // Not a token file.
    for body in [
        "not json",
        r#"{"type":"dropbox","access_token":"x"}"#,
        r#"{"type":"claude"}"#,
    ] {
        let (status, answer) = m.send("POST", "/auth-files?name=bad.json", body).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(answer["error"], "invalid body");
    }
    // Too large, raw or multipart.
    let big = format!(
        r#"{{"type":"codex","access_token":"x","pad":"{}"}}"#,
        "a".repeat(sluice::auth_files::MAX_FILE_SIZE)
    );
    let (status, answer) = m.send("POST", "/auth-files?name=big.json", &big).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (413, Some("file too large"))
    );
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(big.into_bytes()).file_name("big.json"),
    );
    let resp = m
        .req(reqwest::Method::POST, "/auth-files")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(m.get("/auth-files").await, json!({"files": []}));
}

#[tokio::test]
async fn openapi_document_describes_every_management_endpoint() {
    let m = Managed::start(&base_yaml("")).await;
    // Public: it describes the API, it grants nothing.
    let doc: Value = m
        .http
        .get(m.proxy("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/config", &["get"][..]),
        ("/debug", &["get", "put", "patch"]),
        ("/proxy-url", &["get", "put", "patch", "delete"]),
        ("/quota-exceeded/switch-project", &["get", "put", "patch"]),
        (
            "/quota-exceeded/switch-preview-model",
            &["get", "put", "patch"],
        ),
        ("/api-keys", &["get", "put", "patch", "delete"]),
        (
            "/generative-language-api-key",
            &["get", "put", "patch", "delete"],
        ),
        ("/codex-api-key", &["get", "put", "patch", "delete"]),
        ("/claude-api-key", &["get", "put", "patch", "delete"]),
        ("/openai-compatibility", &["get", "put", "patch", "delete"]),
        ("/request-retry", &["get", "put", "patch"]),
        ("/allow-localhost-unauthenticated", &["get", "put", "patch"]),
        ("/auth-files", &["get", "post", "delete"]),
        ("/auth-files/download", &["get"]),
    ] {
        let item = &paths[&format!("/v0/management{path}")];
        for method in methods {
            assert!(item.get(*method).is_some(), "{method} {path} missing");
            // And the route really exists.
            let resp = m
                .req(
                    reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                    path,
                )
                .send()
                .await
                .unwrap();
            assert_ne!(resp.status(), 405, "{method} {path}");
        }
    }

    // The `/api` surface (seed 004) and seed 000's token pool: exactly these operations are
    // documented, each with a security requirement (empty for sign-in), and each is routed.
    let expected: Vec<(&str, &str)> = vec![
        ("/api/auth/login", "post"),
        ("/api/auth/me", "get"),
        ("/api/api-keys", "get"),
        ("/api/api-keys", "post"),
        ("/api/api-keys/{id}", "get"),
        ("/api/api-keys/{id}", "put"),
        ("/api/api-keys/{id}", "delete"),
        ("/api/api-keys/{id}/toggle", "put"),
        ("/api/api-keys/{id}/usage", "get"),
        ("/api/users", "get"),
        ("/api/users", "post"),
        ("/api/users/{id}", "put"),
        ("/api/users/{id}/api-keys", "get"),
        ("/api/usage/summary", "get"),
        ("/api/usage/daily", "get"),
        ("/api/usage/models", "get"),
        ("/api/upload-token", "post"),
        ("/api/token-status", "get"),
    ];
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in paths.iter().filter(|(p, _)| p.starts_with("/api/")) {
        for (method, op) in item.as_object().unwrap() {
            if ["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                documented.push((path.clone(), method.clone()));
                assert!(op["security"].is_array(), "{method} {path}: no security");
                assert!(op["responses"]["200"].is_object(), "{method} {path}");
            }
        }
    }
    let mut want: Vec<(String, String)> = expected
        .iter()
        .map(|(p, m)| (p.to_string(), m.to_string()))
        .collect();
    want.sort();
    documented.sort();
    assert_eq!(documented, want, "documented /api operations");
    assert_eq!(
        paths["/api/auth/login"]["post"]["security"],
        json!([]),
        "sign-in needs no session"
    );
    for (path, method) in &expected {
        let url = m.proxy(&path.replace("{id}", "1"));
        let resp = m
            .http
            .request(
                reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                &url,
            )
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body = resp.text().await.unwrap();
        assert_ne!(status, 405, "{method} {path} is not routed: {body}");
        assert!(
            !body.contains("unknown_url"),
            "{method} {path} is not routed: {body}"
        );
    }
}

#[test]
fn config_check_names_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let check = |text: &str| {
        let path = dir.path().join("check.yaml");
        std::fs::write(&path, text).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["config", "check"])
            .arg(&path)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, stderr) = check(
        "listen: 127.0.0.1:1
proxy-url: 'ftp://x'
request-retry: 2
claude-api-key:
  - {api-key: sk-1}
  - api-key: ''
    base-url: nope
openai-compatibility: [{name: a, base-url: 'https://a'}, {name: a, base-url: 'https://b'}]
trusted-proxies: [10.0.0.0/8]
",
    );
    assert!(!ok);
    for expected in [
        "line 2: proxy-url:",
        "line 6: claude-api-key[1].api-key:",
        "line 7: claude-api-key[1].base-url:",
        "line 8: openai-compatibility[1].name: another provider already has this name",
    ] {
        assert!(stderr.contains(expected), "{expected} not in:\n{stderr}");
    }
    let (ok, stderr) = check("listen: 127.0.0.1:1\nrequest-retry: lots\n");
    assert!(!ok);
    assert!(
        stderr.contains("line 2, column 16: request-retry:"),
        "{stderr}"
    );
    let (ok, stderr) =
        check("listen: 127.0.0.1:1\nmanagement-ban: {max-failures: 0}\ntrusted-proxies: [nope]\n");
    assert!(
        !ok && stderr.contains("line 3") && stderr.contains("nope"),
        "{stderr}"
    );
    let (ok, _) = check(
        "remote-management-key: x\nallow-remote-management: true\ngenerative-language-api-key: [a]\n",
    );
    assert!(ok);
}
