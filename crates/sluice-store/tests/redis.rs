//! The Redis limiter and shared routing state against the machine's Redis
//! (`SLUICE_TEST_REDIS_URL`), each test under its own key prefix, removed afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use sluice_store::limits::{Calendar, KeyLimits, Limiter, Refusal};
use sluice_store::redis::events::RedisEvents;
use sluice_store::redis::limiter::RedisLimiter;
use sluice_store::redis::lock::RedisLock;
use sluice_store::redis::routing::RedisRouting;
use sluice_store::redis::{Link, OnRedisError, RedisSettings};
use sluice_store::shared::{Event, EventBus, SharedLock, SharedRouting};
use sluice_store::sqlite::SqliteStore;
use sluice_store::testing::{redis_url, unique_suffix};
use sluice_store::*;

/// A key prefix of this test's own, deleted (every key under it) on drop.
struct Prefix {
    url: String,
    name: String,
}

impl Prefix {
    fn new(url: &str) -> Prefix {
        Prefix {
            url: url.into(),
            name: format!("sluice-test-{}", unique_suffix()),
        }
    }

    fn settings(&self, on_error: OnRedisError) -> RedisSettings {
        RedisSettings {
            url: self.url.clone(),
            prefix: self.name.clone(),
            on_error,
            timeout: Duration::from_millis(500),
        }
    }

    async fn conn(&self) -> ::redis::aio::MultiplexedConnection {
        ::redis::Client::open(self.url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// Deletes every key of this prefix (what "Redis lost its data" looks like to us).
    async fn flush(&self) {
        let mut conn = self.conn().await;
        for pattern in [format!("{{{}:*", self.name), format!("{}:*", self.name)] {
            let keys: Vec<String> = ::redis::cmd("KEYS")
                .arg(&pattern)
                .query_async(&mut conn)
                .await
                .unwrap();
            if !keys.is_empty() {
                let _: () = ::redis::cmd("DEL")
                    .arg(&keys)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
            }
        }
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        let url = self.url.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let Ok(client) = ::redis::Client::open(url.as_str()) else {
                return;
            };
            let Ok(mut conn) = client.get_connection() else {
                return;
            };
            for pattern in [format!("{{{name}:*"), format!("{name}:*")] {
                let keys: Vec<String> = ::redis::cmd("KEYS")
                    .arg(pattern)
                    .query(&mut conn)
                    .unwrap_or_default();
                if !keys.is_empty() {
                    let _: Result<(), _> = ::redis::cmd("DEL").arg(keys).query(&mut conn);
                }
            }
        })
        .join();
    }
}

async fn store_with_usage(rows: &[UsageRow]) -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    store.insert_usage(rows).await.unwrap();
    (Arc::new(store), dir)
}

fn limits(rate: u64, daily: u64, quota: Nanos) -> KeyLimits {
    KeyLimits {
        key_id: 7,
        rate_limit: rate,
        daily_limit: daily,
        monthly_quota: quota,
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn record(id: &str, cost: Nanos) -> UsageRow {
    let t = now();
    UsageRow {
        request_id: id.into(),
        time_ms: t,
        day: Calendar::default().day(t),
        endpoint: "openai.chat".into(),
        user_id: Some(1),
        api_key_id: Some(7),
        key_label: None,
        provider: None,
        credential: None,
        platform: None,
        model_requested: None,
        model_served: None,
        stream: false,
        status: 200,
        error: None,
        input_tokens: 1,
        output_tokens: 1,
        cache_read_tokens: 0,
        cache_write_tokens: 0,
        reasoning_tokens: 0,
        cost_nanos: cost,
        estimated: false,
        latency_ms: 1.0,
        ttft_ms: None,
        record_id: format!("rec-{id}"),
        ..Default::default()
    }
}

fn limiter(prefix: &Prefix, store: &Arc<dyn Store>, on_error: OnRedisError) -> Arc<RedisLimiter> {
    let link = Link::open(&prefix.settings(on_error)).unwrap();
    Arc::new(RedisLimiter::new(
        link,
        store.clone(),
        Calendar::default(),
        on_error,
    ))
}

#[tokio::test]
async fn three_limiters_admit_exactly_the_limit() {
    let Some(url) = redis_url("three_limiters_admit_exactly_the_limit") else {
        return;
    };
    let prefix = Prefix::new(&url);
    let (store, _dir) = store_with_usage(&[]).await;
    let instances: Vec<_> = (0..3)
        .map(|_| limiter(&prefix, &store, OnRedisError::FailClosed))
        .collect();
    let mut tasks = Vec::new();
    for i in 0..300 {
        let l = instances[i % 3].clone();
        tasks.push(tokio::spawn(async move {
            l.admit(&limits(60, 100, 0), now(), 0).await
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => admitted += 1,
            Err(Refusal::RateLimited {
                limit: 60,
                retry_after_secs,
            }) => {
                assert!((1..=60).contains(&retry_after_secs))
            }
            Err(other) => panic!("unexpected refusal {other:?}"),
        }
    }
    assert_eq!(admitted, 60);
}

#[tokio::test]
async fn a_day_refusal_takes_no_minute_slot_and_counts_reseed_once() {
    let Some(url) = redis_url("a_day_refusal_takes_no_minute_slot_and_counts_reseed_once") else {
        return;
    };
    let prefix = Prefix::new(&url);
    // The store already holds two of today's requests and 50 nanos of this month.
    let (store, _dir) = store_with_usage(&[record("a", 20), record("b", 30)]).await;
    let instances: Vec<_> = (0..3)
        .map(|_| limiter(&prefix, &store, OnRedisError::FailClosed))
        .collect();
    // Three instances reseed the cold key at once: counted once, so exactly one more fits.
    let day = limits(10, 3, 0);
    let mut tasks = Vec::new();
    for l in &instances {
        let l = l.clone();
        tasks.push(tokio::spawn(async move { l.admit(&day, now(), 0).await }));
    }
    let mut admitted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => admitted += 1,
            Err(Refusal::DailyLimit { limit: 3, .. }) => {}
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(
        admitted, 1,
        "the store's two requests were seeded once, never added"
    );
    let mut conn = prefix.conn().await;
    let minute: i64 = ::redis::cmd("ZCARD")
        .arg(format!("{{{}:k:7}}:rl", prefix.name))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(minute, 1, "requests refused by the day took no minute slot");

    // Redis loses everything: the counters come back from the store, not from zero.
    prefix.flush().await;
    // The store says two today (the request admitted above has no record yet), so the reseed
    // admits exactly one more: set from the store, not added to what Redis had.
    assert!(instances[1].admit(&day, now(), 0).await.is_ok());
    assert!(matches!(
        instances[2].admit(&day, now(), 0).await,
        Err(Refusal::DailyLimit { .. })
    ));
}

#[tokio::test]
async fn quota_reserves_settles_once_and_reseeds_spend() {
    let Some(url) = redis_url("quota_reserves_settles_once_and_reseeds_spend") else {
        return;
    };
    let prefix = Prefix::new(&url);
    let (store, _dir) = store_with_usage(&[record("a", 40)]).await;
    let l = limiter(&prefix, &store, OnRedisError::FailClosed);
    let q = limits(0, 0, 100);
    let a = l.admit(&q, now(), 30).await.unwrap(); // 40 + 30 < 100
    let b = l.admit(&q, now(), 30).await.unwrap(); // 40 + 60 < 100
    assert_eq!(
        l.admit(&q, now(), 30).await.unwrap_err(),
        Refusal::QuotaExhausted { quota: 100 },
        "spent (from the store) + reserved reached the quota"
    );
    l.settle(a, 5);
    l.settle(a, 5); // a retried settle is a no-op
    l.settle(b, 5);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut conn = prefix.conn().await;
    let month = format!("{{{}:k:7}}:m:{}", prefix.name, a.month);
    let (spent, reserved): (i64, i64) = ::redis::cmd("HMGET")
        .arg(&month)
        .arg("spent")
        .arg("reserved")
        .query_async(&mut conn)
        .await
        .map(|v: (i64, i64)| v)
        .unwrap();
    assert_eq!((spent, reserved), (50, 0));
    assert!(l.admit(&q, now(), 30).await.is_ok());
}

#[tokio::test]
async fn unreachable_redis_follows_the_policy() {
    // A port nothing listens on: bind, read the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (store, _dir) = store_with_usage(&[]).await;
    let settings = |on_error| RedisSettings {
        url: format!("redis://127.0.0.1:{port}"),
        prefix: "unreachable".into(),
        on_error,
        timeout: Duration::from_millis(200),
    };
    let closed = RedisLimiter::new(
        Link::open(&settings(OnRedisError::FailClosed)).unwrap(),
        store.clone(),
        Calendar::default(),
        OnRedisError::FailClosed,
    );
    assert_eq!(
        closed.admit(&limits(5, 0, 0), now(), 0).await.unwrap_err(),
        Refusal::Unavailable
    );
    let reason = closed.degraded().expect("degraded");
    assert!(reason.contains("fail-closed"), "{reason}");
    let local = RedisLimiter::new(
        Link::open(&settings(OnRedisError::Local)).unwrap(),
        store,
        Calendar::default(),
        OnRedisError::Local,
    );
    for _ in 0..5 {
        assert!(local.admit(&limits(5, 0, 0), now(), 0).await.is_ok());
    }
    assert!(
        matches!(
            local.admit(&limits(5, 0, 0), now(), 0).await,
            Err(Refusal::RateLimited { .. })
        ),
        "the local fallback still enforces the limit in this process"
    );
    assert!(local.degraded().unwrap().contains("local"));
}

#[tokio::test]
async fn cooldowns_keep_the_later_deadline_and_one_probe_wins() {
    let Some(url) = redis_url("cooldowns_keep_the_later_deadline_and_one_probe_wins") else {
        return;
    };
    let prefix = Prefix::new(&url);
    let link = Link::open(&prefix.settings(OnRedisError::FailClosed)).unwrap();
    let events = RedisEvents::start(link.clone(), true);
    let mut rx = events.subscribe();
    let (store, _dir) = store_with_usage(&[]).await;
    let routing = RedisRouting::new(link.clone(), events.clone(), store);
    let first = routing.cool("p#0", "m", 10_000, "quota").await;
    assert!((9_000..=10_000).contains(&first), "{first}");
    let kept = routing.cool("p#0", "m", 1_000, "quota").await;
    assert!(
        kept > 9_000,
        "a shorter window never shortens a longer one ({kept} ms)"
    );
    let snapshot = routing.snapshot().await.unwrap();
    assert_eq!(snapshot.cooling.len(), 1);
    assert_eq!(snapshot.cooling[0].0, "p#0");
    // Exactly one of many concurrent probers gets the lease.
    let mut wins = 0;
    for _ in 0..10 {
        wins += usize::from(routing.try_probe("p#0", "m", 5_000).await);
    }
    assert_eq!(wins, 1);
    routing.clear("p#0", "m").await;
    assert!(routing.snapshot().await.unwrap().cooling.is_empty());
    assert!(
        routing.try_probe("p#0", "m", 5_000).await,
        "cleared: the lease went with it"
    );
    routing.disable("p#1", "HTTP 401").await;
    assert_eq!(
        routing.snapshot().await.unwrap().disabled,
        vec![("p#1".to_string(), "HTTP 401".to_string())]
    );
    // The changes were published in order (after the subscription's own resync).
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while seen.len() < 4 && tokio::time::Instant::now() < deadline {
        if let Ok(Ok(event)) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await
            && event != Event::Resync
        {
            seen.push(event);
        }
    }
    assert!(matches!(seen[0], Event::Cooled { .. }), "{seen:?}");
    assert!(
        matches!(seen.last(), Some(Event::Disabled { .. })),
        "{seen:?}"
    );

    let lock = RedisLock::new(link);
    let held = lock.try_lock("refresh:claude-1", 5_000).await.unwrap();
    assert!(lock.try_lock("refresh:claude-1", 5_000).await.is_none());
    lock.unlock(held).await;
    assert!(lock.try_lock("refresh:claude-1", 5_000).await.is_some());
}
