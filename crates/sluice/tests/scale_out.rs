//! Several real `sluice` processes sharing one PostgreSQL database, one Redis and one fake
//! upstream: every promise a single gateway keeps must hold across all of them.
//!
//! Needs `SLUICE_TEST_POSTGRES_URL` and `SLUICE_TEST_REDIS_URL` (each test skips with a printed
//! reason otherwise). Every test gets its own database and its own Redis key prefix, removed at
//! the end; the test that stops Redis runs a private `redis-server` on an ephemeral port.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice::store::postgres::PgStore;
use sluice::store::testing::{TestDatabase, postgres_url, redis_url, unique_suffix};
use sluice::store::{Store, UsageFilter};
use sluice_mock::{MockConfig, MockServer};

const ADMIN_PASSWORD: &str = "admin-password-1";
const UP_A: &str = "upstream-key-a";
const UP_B: &str = "upstream-key-b";

/// One `sluice serve` process.
struct Instance {
    child: Child,
    addr: SocketAddr,
    /// Its log (stderr), for failure messages.
    log: PathBuf,
}

impl Instance {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit (after a signal).
    fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "instance did not exit; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// N instances, a database, a Redis prefix and a fake upstream.
struct Cluster {
    mock: MockServer,
    db: TestDatabase,
    redis: String,
    prefix: String,
    dir: tempfile::TempDir,
    instances: Vec<Instance>,
    /// The `routing:` value every instance gets.
    routing: String,
    http: reqwest::Client,
    token: String,
}

impl Cluster {
    /// `None` (after printing why) when PostgreSQL or Redis is not configured.
    async fn start(test: &str, n: usize, limits_extra: &[&str]) -> Option<Cluster> {
        let pg = postgres_url(test)?;
        let redis = redis_url(test)?;
        Some(Self::start_on(&pg, &redis, n, limits_extra).await)
    }

    async fn start_on(pg: &str, redis: &str, n: usize, limits_extra: &[&str]) -> Cluster {
        Self::start_routed(pg, redis, n, limits_extra, "{strategy: round-robin}").await
    }

    async fn start_routed(
        pg: &str,
        redis: &str,
        n: usize,
        limits_extra: &[&str],
        routing: &str,
    ) -> Cluster {
        let mock = MockServer::start(MockConfig::default()).await.unwrap();
        let db = TestDatabase::create(pg).await.unwrap();
        let mut cluster = Cluster {
            mock,
            db,
            redis: redis.to_string(),
            prefix: format!("sluice-scale-{}", unique_suffix()),
            dir: tempfile::tempdir().unwrap(),
            instances: Vec::new(),
            routing: routing.to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .pool_max_idle_per_host(64)
                .build()
                .unwrap(),
            token: String::new(),
        };
        for i in 0..n {
            let extra = limits_extra.get(i).copied().unwrap_or("");
            let instance = cluster.spawn(i, extra);
            cluster.instances.push(instance);
        }
        cluster.token = cluster.login().await;
        cluster
    }

    fn config(&self, i: usize, limits_extra: &str) -> String {
        format!(
            "listen: 127.0.0.1:0
data-dir: {dir}/data-{i}
store: {store}
shutdown-grace-period: 10s
limits:
  redis: {redis}
  redis-prefix: {prefix}
{limits_extra}
user-keys:
  refresh: 60s
auth:
  admin: {{username: admin, password: {ADMIN_PASSWORD}}}
  jwt-secret: scale-out-test-secret-0123456789abcdef
routing: {routing}
cooldown:
  quota-backoff-max: 30s
prices:
  mock-model: {{input: 0, output: 100000}}
providers:
  - name: mock
    kind: openai-compatible
    base-url: {base}
    api-keys: [{UP_A}, {UP_B}]
    models: [{{name: mock-model}}]
",
            dir = self.dir.path().display(),
            store = self.db.url,
            redis = self.redis,
            prefix = self.prefix,
            base = self.mock.base_url(),
            routing = self.routing,
        )
    }

    /// Starts instance `i` and waits until it listens.
    fn spawn(&self, i: usize, limits_extra: &str) -> Instance {
        let config = self.dir.path().join(format!("sluice-{i}.yaml"));
        std::fs::write(&config, self.config(i, limits_extra)).unwrap();
        let log = self.dir.path().join(format!("sluice-{i}.log"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["serve", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .env_remove("SLUICE_API_KEYS")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Read the bound address from the log, then keep copying the log to a file.
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let log_path = log.clone();
        std::thread::spawn(move || {
            let mut file = std::fs::File::create(&log_path).unwrap();
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                use std::io::Write;
                let _ = writeln!(file, "{line}");
                if !sent
                    && line.contains("sluice listening")
                    && let Some(addr) = line.split("addr=").nth(1)
                {
                    let addr = addr.split_whitespace().next().unwrap_or_default();
                    let _ = tx.send(addr.parse::<SocketAddr>().ok());
                    sent = true;
                }
            }
            if !sent {
                let _ = tx.send(None);
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .ok()
            .flatten()
            .unwrap_or_else(|| {
                panic!(
                    "instance {i} did not start:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            });
        Instance { child, addr, log }
    }

    async fn login(&self) -> String {
        let reply: Value = self
            .http
            .post(self.instances[0].url("/api/auth/login"))
            .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        reply["data"]["token"].as_str().unwrap().to_string()
    }

    /// Creates a key through instance 0: (id, secret).
    async fn create_key(&self, fields: Value) -> (i64, String) {
        let reply: Value = self
            .http
            .post(self.instances[0].url("/api/api-keys"))
            .bearer_auth(&self.token)
            .json(&fields)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let data = &reply["data"];
        // Other instances learn of it from the change event (or the epoch poll, 300 ms).
        tokio::time::sleep(Duration::from_millis(400)).await;
        (
            data["id"].as_i64().unwrap_or_else(|| panic!("{reply}")),
            data["key"].as_str().unwrap().to_string(),
        )
    }

    async fn update_key(&self, on: usize, id: i64, fields: Value) {
        let status = self
            .http
            .put(self.instances[on].url(&format!("/api/api-keys/{id}")))
            .bearer_auth(&self.token)
            .json(&fields)
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_success(), "{status}");
    }

    /// A chat request with `key` to instance `on`; `text` may carry `mock:` directives.
    fn chat(&self, on: usize, key: &str, text: &str) -> reqwest::RequestBuilder {
        self.http
            .post(self.instances[on % self.instances.len()].url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&json!({"model": "mock-model", "messages": [{"role": "user", "content": text}]}))
    }

    /// A request with this body to instance `on`.
    fn chat_body(&self, on: usize, key: &str, body: &Value) -> reqwest::RequestBuilder {
        self.http
            .post(self.instances[on % self.instances.len()].url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(body)
    }

    /// `n` concurrent requests spread round-robin: their statuses and error codes.
    async fn burst(&self, key: &str, n: usize, text: &str) -> Vec<(u16, String)> {
        let body = json!({"model": "mock-model", "messages": [{"role": "user", "content": text}]});
        self.burst_body(key, n, &body).await
    }

    /// [`Cluster::burst`] with a whole body.
    async fn burst_body(&self, key: &str, n: usize, body: &Value) -> Vec<(u16, String)> {
        let requests = (0..n).map(|i| {
            let request = self.chat_body(i, key, body);
            async move {
                // An instance killed mid-request resets the connection: status 0.
                let Ok(reply) = request.send().await else {
                    return (0, "connection lost".to_string());
                };
                let status = reply.status().as_u16();
                let body: Value = reply.json().await.unwrap_or(Value::Null);
                (
                    status,
                    body["error"]["code"].as_str().unwrap_or("").to_string(),
                )
            }
        });
        futures_util::future::join_all(requests).await
    }

    async fn pg(&self) -> PgStore {
        PgStore::open(&self.db.url).await.unwrap()
    }

    async fn redis_conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.redis.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// Deletes every Redis key of this cluster's prefix: Redis "lost its data".
    async fn flush_redis(&self) {
        let mut conn = self.redis_conn().await;
        for pattern in [format!("{{{}:*", self.prefix), format!("{}:*", self.prefix)] {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(&pattern)
                .query_async(&mut conn)
                .await
                .unwrap();
            if !keys.is_empty() {
                let _: () = redis::cmd("DEL")
                    .arg(&keys)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
            }
        }
    }

    /// Waits until the store holds `n` records (the writers batch for up to 50 ms).
    async fn wait_records(&self, store: &PgStore, n: usize) -> Vec<sluice::store::UsageRow> {
        let all = UsageFilter {
            start_day: "0000-01-01".into(),
            end_day: "9999-12-31".into(),
            ..Default::default()
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let rows = store.usage_records(&all, 0).await.unwrap();
            if rows.len() >= n || Instant::now() > deadline {
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for (i, instance) in self.instances.iter().enumerate() {
                let log = instance.log_text();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("--- instance {i} log (last lines) ---");
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
        self.instances.clear();
        let url = self.redis.clone();
        let prefix = self.prefix.clone();
        let _ = std::thread::spawn(move || {
            let Ok(client) = redis::Client::open(url.as_str()) else {
                return;
            };
            let Ok(mut conn) = client.get_connection() else {
                return;
            };
            for pattern in [format!("{{{prefix}:*"), format!("{prefix}:*")] {
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(pattern)
                    .query(&mut conn)
                    .unwrap_or_default();
                if !keys.is_empty() {
                    let _: Result<(), _> = redis::cmd("DEL").arg(keys).query(&mut conn);
                }
            }
        })
        .join();
    }
}

fn count(results: &[(u16, String)], status: u16) -> usize {
    results.iter().filter(|(s, _)| *s == status).count()
}

#[tokio::test]
async fn limits_hold_exactly_across_three_instances() {
    let Some(cluster) = Cluster::start("limits_hold_exactly_across_three_instances", 3, &[]).await
    else {
        return;
    };
    // Per minute: 300 concurrent requests, round-robin over three instances, admit exactly 60.
    let (_, minute_key) = cluster
        .create_key(json!({"name": "rpm", "rate_limit": 60}))
        .await;
    let results = cluster.burst(&minute_key, 300, "hi").await;
    assert_eq!(count(&results, 200), 60, "{results:?}");
    assert_eq!(count(&results, 429), 240);
    assert!(
        results
            .iter()
            .filter(|r| r.0 == 429)
            .all(|r| r.1 == "rate_limit_exceeded")
    );

    // Per day, the same.
    let (_, day_key) = cluster
        .create_key(json!({"name": "daily", "rate_limit": 0, "daily_limit": 50}))
        .await;
    let results = cluster.burst(&day_key, 300, "hi").await;
    assert_eq!(count(&results, 200), 50, "{results:?}");

    // A request refused by the day limit takes no minute slot: 3 pass, 5 are refused by the
    // day; once the day allows more, 7 more fit in the same minute (10 per minute), not 2.
    let (id, both) = cluster
        .create_key(json!({"name": "both", "rate_limit": 10, "daily_limit": 3}))
        .await;
    let first = cluster.burst(&both, 8, "hi").await;
    assert_eq!(count(&first, 200), 3);
    assert!(
        first
            .iter()
            .filter(|r| r.0 == 429)
            .all(|r| r.1 == "daily_limit_exceeded"),
        "{first:?}"
    );
    cluster
        .update_key(1, id, json!({"daily_limit": 1000}))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let more = cluster.burst(&both, 10, "hi").await;
    assert_eq!(count(&more, 200), 7, "{more:?}");

    // A monthly quota reached mid-burst. Exact reservations ($1.00 each from max_tokens, and
    // each answer costs $1.00): 20 at once over three instances against $5.50 admit 6.
    let (exact_id, exact) = cluster
        .create_key(json!({"name": "exact", "rate_limit": 0, "monthly_quota": 5.5}))
        .await;
    let body = json!({"model": "mock-model", "max_tokens": 10,
        "messages": [{"role": "user", "content": "mock:words=10 mock:latency_ms=50"}]});
    let results = cluster.burst_body(&exact, 20, &body).await;
    assert_eq!(count(&results, 200), 6, "{results:?}");
    assert!(
        results
            .iter()
            .filter(|r| r.0 != 200)
            .all(|r| r.1 == "monthly_quota_exceeded")
    );
    // Reservations too small ($0.10; the answer costs $1.00): 6 callers in a loop, two per
    // instance, never have more than 6 requests in flight, so $5.50 is overshot by at most $6.
    let (under_id, under) = cluster
        .create_key(json!({"name": "under", "rate_limit": 0, "monthly_quota": 5.5}))
        .await;
    let body = json!({"model": "mock-model", "max_tokens": 1,
        "messages": [{"role": "user", "content": "mock:words=10 mock:latency_ms=20"}]});
    let workers = (0..6).map(|w| {
        let (cluster, under, body) = (&cluster, under.clone(), body.clone());
        async move {
            let mut admitted = 0;
            let mut turn = w;
            loop {
                let reply = cluster.chat_body(turn, &under, &body).send().await.unwrap();
                turn += 3;
                if reply.status() != 200 {
                    return admitted;
                }
                admitted += 1;
            }
        }
    });
    let admitted: usize = futures_util::future::join_all(workers)
        .await
        .into_iter()
        .sum();
    let store = cluster.pg().await;
    // Every request above left a record (429s too), so a record count cannot tell when the
    // admitted answers' records are in: wait for the two keys' counters instead.
    let expected = i64::try_from(admitted).unwrap() * 1_000_000_000;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let exact = store.key_by_id(exact_id).await.unwrap().used_cost;
        let used = store.key_by_id(under_id).await.unwrap().used_cost;
        if (exact == 6_000_000_000 && used == expected) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let exact_row = store.key_by_id(exact_id).await.unwrap();
    assert_eq!(exact_row.used_cost, 6_000_000_000);
    let used = store.key_by_id(under_id).await.unwrap().used_cost;
    assert!(
        (5_500_000_000..=11_500_000_000).contains(&used),
        "used {used} nanos after {admitted} admitted"
    );
    assert_eq!(used, i64::try_from(admitted).unwrap() * 1_000_000_000);
}

#[tokio::test]
async fn a_revoked_key_stops_everywhere_within_a_second() {
    // Instance 2 has no pub/sub (as behind a Redis proxy without it): only the epoch poll tells
    // it. The periodic refresh is 60 s here, so neither path can hide behind it.
    let Some(cluster) = Cluster::start(
        "a_revoked_key_stops_everywhere_within_a_second",
        3,
        &["", "", "  pubsub: false"],
    )
    .await
    else {
        return;
    };
    let (id, key) = cluster.create_key(json!({"name": "revoke-me"})).await;
    let created_at = Instant::now();
    for i in 0..3 {
        // A key created on instance 0 works on the others within a second too.
        while cluster.chat(i, &key, "hi").send().await.unwrap().status() == 401 {
            assert!(
                created_at.elapsed() < Duration::from_secs(1),
                "instance {i} does not know the new key"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let revoked_at = Instant::now();
    let toggled = cluster
        .http
        .put(cluster.instances[0].url(&format!("/api/api-keys/{id}/toggle")))
        .bearer_auth(&cluster.token)
        .send()
        .await
        .unwrap();
    assert!(toggled.status().is_success());
    for i in 1..3 {
        loop {
            let reply = cluster.chat(i, &key, "hi").send().await.unwrap();
            if reply.status() == 401 {
                let body: Value = reply.json().await.unwrap();
                assert_eq!(body["error"]["code"], "api_key_disabled");
                break;
            }
            assert!(
                revoked_at.elapsed() < Duration::from_secs(1),
                "instance {i} still accepts the revoked key after {:?}",
                revoked_at.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Deleting works the same way.
    let (id, key) = cluster.create_key(json!({"name": "delete-me"})).await;
    assert_eq!(
        cluster.chat(2, &key, "hi").send().await.unwrap().status(),
        200
    );
    let deleted_at = Instant::now();
    cluster
        .http
        .delete(cluster.instances[1].url(&format!("/api/api-keys/{id}")))
        .bearer_auth(&cluster.token)
        .send()
        .await
        .unwrap();
    loop {
        if cluster.chat(2, &key, "hi").send().await.unwrap().status() == 401 {
            break;
        }
        assert!(deleted_at.elapsed() < Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_429_seen_by_one_instance_cools_the_credential_for_all_then_one_probe() {
    let Some(cluster) = Cluster::start(
        "a_429_seen_by_one_instance_cools_the_credential_for_all_then_one_probe",
        3,
        &[],
    )
    .await
    else {
        return;
    };
    let (_, key) = cluster
        .create_key(json!({"name": "k", "rate_limit": 0}))
        .await;
    let faults = cluster.mock.faults();
    faults.set_for_key(UP_A, "status=429 retry_after=3");
    // Instance 0 meets the 429 (round-robin reaches credential A within two requests) and
    // fails over to B.
    for _ in 0..2 {
        assert_eq!(
            cluster.chat(0, &key, "hi").send().await.unwrap().status(),
            200
        );
    }
    let cooled_at = Instant::now();
    assert_eq!(cluster.mock.requests_with_key(UP_A), 1);
    // From now on A would answer, slowly: a probe would be visible.
    faults.set_for_key(UP_A, "latency_ms=1500");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // During the window nobody sends A anything.
    while cooled_at.elapsed() < Duration::from_millis(2700) {
        let results = cluster.burst(&key, 9, "hi").await;
        assert_eq!(count(&results, 200), 9);
        assert_eq!(
            cluster.mock.requests_with_key(UP_A),
            1,
            "A was called inside its window"
        );
    }
    tokio::time::sleep(Duration::from_millis(3300).saturating_sub(cooled_at.elapsed())).await;
    // The window is over: many concurrent requests on every instance, exactly one probe of A
    // (in flight for 1.5 s), everything else served by B.
    let burst = cluster.burst(&key, 30, "hi");
    let watch = async {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        cluster.mock.requests_with_key(UP_A)
    };
    let (results, during_probe) = tokio::join!(burst, watch);
    assert_eq!(count(&results, 200), 30);
    assert_eq!(
        during_probe, 2,
        "exactly one probe across the three instances"
    );
    // The probe succeeded: A is back for everyone.
    tokio::time::sleep(Duration::from_millis(800)).await;
    faults.clear_key(UP_A);
    let before = cluster.mock.requests_with_key(UP_A);
    let results = cluster.burst(&key, 12, "hi").await;
    assert_eq!(count(&results, 200), 12);
    assert!(
        cluster.mock.requests_with_key(UP_A) > before,
        "A serves again after its probe"
    );
}

#[tokio::test]
async fn redis_flushed_mid_run_reseeds_from_postgres_without_double_counting() {
    let Some(cluster) = Cluster::start(
        "redis_flushed_mid_run_reseeds_from_postgres_without_double_counting",
        3,
        &[],
    )
    .await
    else {
        return;
    };
    let (id, key) = cluster
        .create_key(json!({"name": "daily", "rate_limit": 0, "daily_limit": 20}))
        .await;
    assert_eq!(count(&cluster.burst(&key, 10, "hi").await, 200), 10);
    let store = cluster.pg().await;
    cluster.wait_records(&store, 10).await;
    cluster.flush_redis().await;
    // Every instance reseeds the cold key from PostgreSQL with set-if-missing: 10 are left
    // today, not 20 (counting from zero) and not 0 (adding the seed three times).
    let results = cluster.burst(&key, 30, "hi").await;
    assert_eq!(count(&results, 200), 10, "{results:?}");
    let records = cluster.wait_records(&store, 40).await;
    let key_row = store.key_by_id(id).await.unwrap();
    let of_key: Vec<_> = records
        .iter()
        .filter(|r| r.api_key_id == Some(id))
        .collect();
    assert_eq!(of_key.iter().filter(|r| r.status == 200).count(), 20);
    assert_eq!(key_row.request_count, i64::try_from(of_key.len()).unwrap());
}

/// A private `redis-server` on an ephemeral port that this test may stop and start.
struct PrivateRedis {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl PrivateRedis {
    fn start() -> Option<PrivateRedis> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let mut redis = PrivateRedis {
            port,
            dir: tempfile::tempdir().ok()?,
            child: None,
        };
        redis.restart().then_some(redis)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn restart(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = child else {
            eprintln!("SKIPPED: redis-server is not installed");
            return false;
        };
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn readyz(cluster: &Cluster, i: usize) -> (u16, Value) {
    let reply = cluster
        .http
        .get(cluster.instances[i].url("/readyz"))
        .send()
        .await
        .unwrap();
    (
        reply.status().as_u16(),
        reply.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn redis_stopped_applies_the_policy_and_recovers() {
    let test = "redis_stopped_applies_the_policy_and_recovers";
    let Some(pg) = postgres_url(test) else { return };
    let Some(mut redis) = PrivateRedis::start() else {
        eprintln!("SKIPPED {test}: cannot start a private redis-server");
        return;
    };
    // Instance 0 refuses while Redis is away; instance 1 counts locally.
    let cluster = Cluster::start_on(
        &pg,
        &redis.url(),
        2,
        &["  on-redis-error: fail-closed", "  on-redis-error: local"],
    )
    .await;
    let (_, key) = cluster
        .create_key(json!({"name": "k", "rate_limit": 5, "daily_limit": 100}))
        .await;
    assert_eq!(
        cluster.chat(0, &key, "hi").send().await.unwrap().status(),
        200
    );
    assert_eq!(readyz(&cluster, 0).await.0, 200);

    redis.stop();
    let reply = cluster.chat(0, &key, "hi").send().await.unwrap();
    assert_eq!(reply.status(), 503);
    assert_eq!(reply.headers()["retry-after"], "1");
    let body: Value = reply.json().await.unwrap();
    assert_eq!(body["error"]["code"], "limits_unavailable");
    let (status, ready) = readyz(&cluster, 0).await;
    assert_eq!(
        (status, ready["status"].as_str()),
        (503, Some("degraded")),
        "{ready}"
    );
    assert!(
        ready["reason"].as_str().unwrap().contains("fail-closed"),
        "{ready}"
    );
    // The local policy serves, limits counted in the instance: 5 per minute there.
    let local = (0..7).map(|_| cluster.chat(1, &key, "hi").send());
    let statuses: Vec<u16> = futures_util::future::join_all(local)
        .await
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        5,
        "{statuses:?}"
    );
    let (status, ready) = readyz(&cluster, 1).await;
    assert_eq!(
        (status, ready["status"].as_str()),
        (200, Some("degraded")),
        "{ready}"
    );
    assert!(
        cluster.instances[0]
            .log_text()
            .contains("Redis is unreachable")
    );

    // Redis returns (empty): both instances recover by themselves within a second or so, and
    // the counters reseed from the store.
    assert!(redis.restart());
    let back = Instant::now();
    loop {
        if readyz(&cluster, 0).await.0 == 200 && readyz(&cluster, 1).await.1["status"] == "ready" {
            break;
        }
        assert!(back.elapsed() < Duration::from_secs(5), "no recovery");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, fresh) = cluster
        .create_key(json!({"name": "fresh", "rate_limit": 3}))
        .await;
    let results = cluster.burst(&fresh, 9, "hi").await;
    assert_eq!(count(&results, 200), 3, "shared limits again: {results:?}");
    assert!(
        cluster.instances[0]
            .log_text()
            .contains("Redis is reachable again")
    );
}

#[tokio::test]
async fn sigkill_mid_batch_and_a_replayed_batch_leave_no_duplicates() {
    let Some(mut cluster) = Cluster::start(
        "sigkill_mid_batch_and_a_replayed_batch_leave_no_duplicates",
        3,
        &[],
    )
    .await
    else {
        return;
    };
    let (id, key) = cluster
        .create_key(json!({"name": "k", "rate_limit": 0}))
        .await;
    // Load on every instance; instance 0 is killed while its writer is busy.
    let load = cluster.burst(&key, 90, "mock:latency_ms=50 hi");
    let kill = async {
        tokio::time::sleep(Duration::from_millis(120)).await;
        cluster.instances[0].signal("KILL");
    };
    let (results, ()) = tokio::join!(load, kill);
    let answered = count(&results, 200);
    assert!(answered >= 60, "the other two instances kept serving");
    let store = cluster.pg().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let records = cluster.wait_records(&store, answered).await;
    // A writer that committed but never heard back retries the same batch: a no-op.
    let replay: Vec<_> = records.iter().take(40).cloned().collect();
    store.insert_usage(&replay).await.unwrap();
    let after = cluster.wait_records(&store, 0).await;
    assert_eq!(
        after.len(),
        records.len(),
        "the replayed batch added nothing"
    );
    let mut ids: Vec<&str> = after.iter().map(|r| r.request_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), after.len(), "no duplicate request ids");
    let key_row = store.key_by_id(id).await.unwrap();
    let of_key: Vec<_> = after.iter().filter(|r| r.api_key_id == Some(id)).collect();
    assert_eq!(key_row.request_count, i64::try_from(of_key.len()).unwrap());
    assert_eq!(
        key_row.used_cost,
        of_key.iter().map(|r| r.cost_nanos).sum::<i64>()
    );
    assert_eq!(
        key_row.used_tokens,
        of_key
            .iter()
            .map(|r| r.input_tokens + r.output_tokens)
            .sum::<i64>()
    );
    let _ = cluster.instances[0].wait_exit(Duration::from_secs(5));
}

#[tokio::test]
async fn sigterm_on_all_three_under_load_keeps_every_record() {
    let Some(mut cluster) =
        Cluster::start("sigterm_on_all_three_under_load_keeps_every_record", 3, &[]).await
    else {
        return;
    };
    let (id, key) = cluster
        .create_key(json!({"name": "k", "rate_limit": 0}))
        .await;
    // 60 requests in flight for ~1 s each when every instance is told to stop.
    let load = cluster.burst(&key, 60, "mock:latency_ms=1000 hi");
    let stop = async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        for instance in &cluster.instances {
            instance.signal("TERM");
        }
    };
    let (results, ()) = tokio::join!(load, stop);
    assert_eq!(
        count(&results, 200),
        60,
        "in-flight requests finish during the drain: {results:?}"
    );
    for instance in &mut cluster.instances {
        assert!(instance.wait_exit(Duration::from_secs(20)).success());
    }
    let store = cluster.pg().await;
    let records = cluster.wait_records(&store, 60).await;
    assert_eq!(records.len(), 60, "one record per request sent");
    assert_eq!(store.key_by_id(id).await.unwrap().request_count, 60);
}

#[tokio::test]
async fn sticky_sessions_are_shared_when_configured() {
    let test = "sticky_sessions_are_shared_when_configured";
    let (Some(pg), Some(redis)) = (postgres_url(test), redis_url(test)) else {
        return;
    };
    let cluster = Cluster::start_routed(
        &pg,
        &redis,
        3,
        &[],
        "{strategy: round-robin, sticky-sessions: true, shared-sticky-sessions: true}",
    )
    .await;
    let (_, key) = cluster
        .create_key(json!({"name": "k", "rate_limit": 0}))
        .await;
    let used = || {
        (
            cluster.mock.requests_with_key(UP_A),
            cluster.mock.requests_with_key(UP_B),
        )
    };
    // Instance 0 serves one request without a session, so its round-robin turn (now on B)
    // differs from the fresh instances 1 and 2 (on A): without shared bindings they would
    // each bind the session to A.
    assert_eq!(
        cluster.chat(0, &key, "hi").send().await.unwrap().status(),
        200
    );
    let before = used();
    let session = "session-1";
    assert_eq!(
        cluster
            .chat(0, &key, "hi")
            .header("x-session-id", session)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let first = used();
    assert_eq!(
        (first.0 - before.0, first.1 - before.1),
        (0, 1),
        "instance 0 bound it to B"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    for i in [1, 2, 1, 2, 0, 1] {
        let status = cluster
            .chat(i, &key, "hi")
            .header("x-session-id", session)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
    }
    let after = used();
    assert_eq!(
        (after.0 - first.0, after.1 - first.1),
        (0, 6),
        "every instance kept the session on B"
    );
}

#[tokio::test]
async fn a_refused_credential_is_disabled_everywhere_and_durably() {
    let Some(mut cluster) = Cluster::start(
        "a_refused_credential_is_disabled_everywhere_and_durably",
        2,
        &[],
    )
    .await
    else {
        return;
    };
    let (_, key) = cluster
        .create_key(json!({"name": "k", "rate_limit": 0}))
        .await;
    cluster.mock.faults().set_for_key(UP_A, "status=401");
    // Round-robin reaches A within two requests on instance 0; it fails over to B.
    for _ in 0..2 {
        assert_eq!(
            cluster.chat(0, &key, "hi").send().await.unwrap().status(),
            200
        );
    }
    assert_eq!(cluster.mock.requests_with_key(UP_A), 1);
    cluster.mock.faults().clear_key(UP_A);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let results = cluster.burst(&key, 10, "hi").await;
    assert_eq!(count(&results, 200), 10);
    assert_eq!(
        cluster.mock.requests_with_key(UP_A),
        1,
        "instance 1 skips A too"
    );
    // Redis loses everything, and a new instance starts: the disable is in PostgreSQL.
    cluster.flush_redis().await;
    let third = cluster.spawn(2, "");
    cluster.instances.push(third);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let results = cluster.burst(&key, 12, "hi").await;
    assert_eq!(count(&results, 200), 12);
    assert_eq!(
        cluster.mock.requests_with_key(UP_A),
        1,
        "A stays disabled on every instance"
    );
}
