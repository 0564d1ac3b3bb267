//! One contract, every store: the same scenario runs on SQLite and, when
//! `SLUICE_TEST_POSTGRES_URL` is set, on a fresh PostgreSQL database, so the two cannot drift.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use sluice_store::postgres::PgStore;
use sluice_store::sqlite::SqliteStore;
use sluice_store::testing::{TestDatabase, postgres_url};
use sluice_store::*;

fn new_key(user_id: i64, hash: &str) -> NewApiKey {
    NewApiKey {
        user_id,
        name: "k".into(),
        key_hash: hash.into(),
        key_prefix: "sk-abc...".into(),
        allowed_platforms: "all".into(),
        allowed_models: String::new(),
        rate_limit: 60,
        daily_limit: 0,
        monthly_quota: 0,
        expires_at: None,
    }
}

fn row(id: &str, key: Option<i64>, time_ms: i64, day: &str, tokens: i64, cost: Nanos) -> UsageRow {
    UsageRow {
        request_id: id.into(),
        time_ms,
        day: day.into(),
        endpoint: "openai.chat".into(),
        user_id: Some(1),
        api_key_id: key,
        key_label: key.map(|k| format!("key:{k}")),
        provider: Some("p".into()),
        credential: Some("p#0".into()),
        platform: Some("openai".into()),
        model_requested: Some("m".into()),
        model_served: Some("m".into()),
        stream: true,
        status: 200,
        error: None,
        input_tokens: tokens,
        output_tokens: 1,
        cache_read_tokens: 2,
        cache_write_tokens: 3,
        reasoning_tokens: 4,
        cost_nanos: cost,
        estimated: false,
        latency_ms: 1.5,
        ttft_ms: Some(0.25),
        record_id: format!("rec-{id}"),
        ..Default::default()
    }
}

const JAN_1: i64 = 1_735_689_600_000; // 2025-01-01T00:00:00Z
const DAY: i64 = 86_400_000;

fn all() -> UsageFilter {
    UsageFilter {
        start_day: "0000-01-01".into(),
        end_day: "9999-12-31".into(),
        ..Default::default()
    }
}

/// The scenario every store must pass.
async fn contract(s: &dyn Store) {
    let admin = s
        .create_user(
            NewUser {
                username: "root".into(),
                password_hash: "h".into(),
                role: Role::Admin,
            },
            1,
        )
        .await
        .unwrap();
    assert_eq!(admin.id, 1);
    let dup = s
        .create_user(
            NewUser {
                username: "root".into(),
                password_hash: "h".into(),
                role: Role::User,
            },
            1,
        )
        .await
        .unwrap_err();
    assert!(matches!(dup, StoreError::Conflict(_)), "{dup}");
    let a = s.create_key(new_key(1, "h1"), 2, 10).await.unwrap();
    let b = s.create_key(new_key(1, "h2"), 2, 11).await.unwrap();
    assert_eq!((a.id, b.id), (1, 2));
    assert!(matches!(
        s.create_key(new_key(1, "h3"), 2, 12).await,
        Err(StoreError::Conflict(_))
    ));
    s.delete_key(a.id, 13).await.unwrap();
    assert!(matches!(s.key_by_id(a.id).await, Err(StoreError::NotFound)));
    let c = s.create_key(new_key(1, "h3"), 2, 14).await.unwrap();
    assert_eq!(c.id, 3, "ids are never reused");
    let changed = s.keys_changed_since(13).await.unwrap();
    assert_eq!(changed.iter().map(|k| k.id).collect::<Vec<_>>(), vec![1, 3]);
    let updated = s
        .update_key(
            b.id,
            KeyUpdate {
                rate_limit: Some(5),
                expires_at: Some(Some(99)),
                status: Some(Status::Disabled),
                ..Default::default()
            },
            20,
        )
        .await
        .unwrap();
    assert_eq!(
        (updated.rate_limit, updated.expires_at, updated.status),
        (5, Some(99), Status::Disabled)
    );
    let cleared = s
        .update_key(
            b.id,
            KeyUpdate {
                expires_at: Some(None),
                ..Default::default()
            },
            21,
        )
        .await
        .unwrap();
    assert_eq!((cleared.rate_limit, cleared.expires_at), (5, None));
    let user = s
        .update_user(
            1,
            UserUpdate {
                status: Some(Status::Disabled),
                ..Default::default()
            },
            22,
        )
        .await
        .unwrap();
    assert_eq!(user.status, Status::Disabled);
    assert_eq!(s.users_changed_since(22).await.unwrap().len(), 1);
    // Ceilings are set all at once, and kept by updates that do not name them.
    let ceilings = Ceilings {
        max_rate_limit: Some(5),
        monthly_budget: Some(9),
        ..Default::default()
    };
    let capped = s
        .update_user(
            1,
            UserUpdate {
                ceilings: Some(ceilings),
                ..Default::default()
            },
            22,
        )
        .await
        .unwrap();
    assert_eq!(
        (capped.status, capped.ceilings),
        (Status::Disabled, ceilings)
    );
    let kept = s.update_user(1, UserUpdate::default(), 22).await.unwrap();
    assert_eq!(kept.ceilings, ceilings);
    assert_eq!(s.user_by_id(1).await.unwrap().ceilings, ceilings);

    // Usage across a month boundary (two PostgreSQL partitions), with a refused request.
    let mut refused = row("r3", Some(b.id), JAN_1 + 31 * DAY, "2025-02-01", 0, 0);
    refused.status = 429;
    refused.error = Some("rate_limit_exceeded".into());
    let batch = vec![
        row("r1", Some(b.id), JAN_1, "2025-01-01", 10, 7),
        row("r2", Some(b.id), JAN_1 + 31 * DAY, "2025-02-01", 20, 8),
        refused,
        row("r4", None, JAN_1 + 31 * DAY, "2025-02-01", 5, 1),
    ];
    s.insert_usage(&batch).await.unwrap();
    let key = s.key_by_id(b.id).await.unwrap();
    assert_eq!(
        (key.used_tokens, key.used_cost, key.request_count),
        (33, 15, 3)
    );
    assert_eq!(key.last_used_at, Some(JAN_1 + 31 * DAY));
    let feb = UsageFilter {
        start_day: "2025-02-01".into(),
        end_day: "2025-02-28".into(),
        ..Default::default()
    };
    let totals = s.usage_totals(&feb).await.unwrap();
    assert_eq!(
        (
            totals.requests,
            totals.errors,
            totals.input_tokens,
            totals.cost_nanos,
            totals.reasoning_tokens
        ),
        (3, 1, 25, 9, 12)
    );
    let by_key = UsageFilter {
        api_key_id: Some(b.id),
        ..all()
    };
    assert_eq!(s.usage_by_day(&by_key).await.unwrap().len(), 2);
    assert_eq!(s.usage_by_model(&by_key).await.unwrap()[0].1.requests, 3);
    let newest = s.usage_records(&by_key, 1).await.unwrap();
    assert_eq!(newest.len(), 1);
    let all_records = s.usage_records(&all(), 0).await.unwrap();
    assert_eq!(all_records.len(), 4);
    let original = batch.iter().find(|r| r.request_id == "r1").unwrap();
    assert_eq!(
        all_records.iter().find(|r| r.request_id == "r1").unwrap(),
        original,
        "a record reads back exactly as written"
    );
    let spend = s.key_spend("2025-02-01", "2025-02-01").await.unwrap();
    assert_eq!(
        spend,
        vec![(
            b.id,
            KeySpend {
                requests_today: 1,
                cost_this_month: 8
            }
        )],
        "refused requests do not count against the day"
    );
    assert_eq!(
        s.key_spend_of(b.id, "2025-02-01", "2025-02-01")
            .await
            .unwrap(),
        spend[0].1
    );
    assert_eq!(
        s.key_spend_of(999, "2025-02-01", "2025-02-01")
            .await
            .unwrap(),
        KeySpend::default()
    );

    // A cursor over every record, oldest first.
    let first = s.usage_after(None, 2).await.unwrap();
    assert_eq!(
        first
            .iter()
            .map(|r| r.request_id.as_str())
            .collect::<Vec<_>>(),
        ["r1", "r2"]
    );
    let last = first.last().unwrap();
    let rest = s
        .usage_after(Some((last.time_ms, last.request_id.clone())), 10)
        .await
        .unwrap();
    assert_eq!(
        rest.iter()
            .map(|r| r.request_id.as_str())
            .collect::<Vec<_>>(),
        ["r3", "r4"]
    );
}

/// A record is one record id: a replayed batch inserts nothing and adds nothing to its key's
/// counters, and two records that share a request id and a millisecond are both kept.
async fn records_are_one_per_record_id(s: &dyn Store) {
    let before = s.key_by_id(2).await.unwrap();
    let first = row("same", Some(2), JAN_1 + 59 * DAY, "2025-03-01", 1, 10);
    let mut second = first.clone();
    second.record_id = "rec-same-again".into();
    let batch = [first, second];
    s.insert_usage(&batch).await.unwrap();
    s.insert_usage(&batch).await.unwrap();
    let after = s.key_by_id(2).await.unwrap();
    assert_eq!(
        (
            after.request_count - before.request_count,
            after.used_cost - before.used_cost
        ),
        (2, 20)
    );
    let march = UsageFilter {
        start_day: "2025-03-01".into(),
        end_day: "2025-03-31".into(),
        ..Default::default()
    };
    let stored = s.usage_records(&march, 0).await.unwrap();
    let mut ids: Vec<&str> = stored.iter().map(|r| r.record_id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["rec-same", "rec-same-again"]);
}

/// What PostgreSQL adds: replays are no-ops, and retention drops whole months.
async fn postgres_extras(s: &PgStore) {
    let replay = vec![
        row("r1", Some(2), JAN_1, "2025-01-01", 10, 7),
        row("r5", Some(2), JAN_1 + 2 * DAY, "2025-01-03", 1, 100),
    ];
    s.insert_usage(&replay).await.unwrap();
    s.insert_usage(&replay).await.unwrap();
    let key = s.key_by_id(2).await.unwrap();
    assert_eq!(
        (key.used_tokens, key.used_cost, key.request_count),
        (35, 115, 4),
        "only r5 was new, once"
    );
    assert_eq!(s.usage_records(&all(), 0).await.unwrap().len(), 5);
    // Retention: January ends at JAN_1 + 31 days; a cut inside February drops only January.
    let removed = s.prune_usage(JAN_1 + 40 * DAY).await.unwrap();
    assert_eq!(removed, 2);
    assert_eq!(s.usage_records(&all(), 0).await.unwrap().len(), 3);
    // A record for the dropped month can still be written (its partition comes back).
    s.insert_usage(&[row("r6", None, JAN_1 + DAY, "2025-01-02", 1, 1)])
        .await
        .unwrap();
    assert_eq!(s.usage_records(&all(), 0).await.unwrap().len(), 4);
}

#[tokio::test]
async fn sqlite_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path()).await.unwrap();
    contract(&s).await;
    assert_eq!(s.prune_usage(JAN_1 + 31 * DAY).await.unwrap(), 1);
    records_are_one_per_record_id(&s).await;
}

#[tokio::test]
async fn postgres_keeps_the_contract() {
    let Some(url) = postgres_url("postgres_keeps_the_contract") else {
        return;
    };
    let db = TestDatabase::create(&url).await.unwrap();
    let s = PgStore::open(&db.url).await.unwrap();
    contract(&s).await;
    postgres_extras(&s).await;
    records_are_one_per_record_id(&s).await;
}

/// Concurrent writers (several instances) never deadlock and never lose or double a record.
#[tokio::test]
async fn postgres_concurrent_batches_add_up() {
    let Some(url) = postgres_url("postgres_concurrent_batches_add_up") else {
        return;
    };
    let db = TestDatabase::create(&url).await.unwrap();
    let instances: Vec<Arc<PgStore>> = vec![
        Arc::new(PgStore::open(&db.url).await.unwrap()),
        Arc::new(PgStore::open(&db.url).await.unwrap()),
        Arc::new(PgStore::open(&db.url).await.unwrap()),
    ];
    let s = &instances[0];
    s.create_user(
        NewUser {
            username: "u".into(),
            password_hash: "h".into(),
            role: Role::User,
        },
        1,
    )
    .await
    .unwrap();
    for i in 0..5 {
        s.create_key(new_key(1, &format!("h{i}")), 10, 1)
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for (n, store) in instances.iter().enumerate() {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for batch in 0..10 {
                // Keys in opposite orders on different instances; every batch overlaps the
                // previous one by half (a replay after a crash).
                let mut rows = Vec::new();
                for i in 0..40 {
                    let id = batch * 20 + i;
                    let key = if n % 2 == 0 { 1 + id % 5 } else { 5 - id % 5 };
                    rows.push(row(
                        &format!("i{n}-{id}"),
                        Some(key),
                        JAN_1 + id,
                        "2025-01-01",
                        1,
                        1,
                    ));
                }
                store.insert_usage(&rows).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let records = s.usage_records(&all(), 0).await.unwrap();
    assert_eq!(records.len(), 3 * (9 * 20 + 40));
    let keys = s.keys_of_user(1).await.unwrap();
    for key in keys {
        let of_key = records.iter().filter(|r| r.api_key_id == Some(key.id));
        let (n, tokens, cost) = of_key.fold((0, 0, 0), |(n, t, c), r| {
            (
                n + 1,
                t + r.input_tokens + r.output_tokens,
                c + r.cost_nanos,
            )
        });
        assert_eq!(
            (key.request_count, key.used_tokens, key.used_cost),
            (n, tokens, cost),
            "key {} counters equal the sums of its records",
            key.id
        );
    }
}

/// `store copy`'s building blocks: accounts keep their ids, counters come from the records.
#[tokio::test]
async fn accounts_and_records_copy_between_stores() {
    let dir = tempfile::tempdir().unwrap();
    let from = SqliteStore::open(dir.path()).await.unwrap();
    contract(&from).await;
    let target_dir = tempfile::tempdir().unwrap();
    let sqlite_target: Arc<dyn Store> =
        Arc::new(SqliteStore::open(target_dir.path()).await.unwrap());
    let mut targets = vec![sqlite_target];
    let mut _db = None;
    if let Some(url) = postgres_url("accounts_and_records_copy_between_stores (postgres target)") {
        let db = TestDatabase::create(&url).await.unwrap();
        targets.push(Arc::new(PgStore::open(&db.url).await.unwrap()));
        _db = Some(db);
    }
    let users = from.list_users().await.unwrap();
    let keys = from.keys_changed_since(0).await.unwrap();
    for to in targets {
        to.restore_accounts(&users, &keys).await.unwrap();
        let mut cursor = None;
        loop {
            let page = from.usage_after(cursor.clone(), 3).await.unwrap();
            let Some(last) = page.last() else { break };
            cursor = Some((last.time_ms, last.request_id.clone()));
            to.insert_usage(&page).await.unwrap();
        }
        assert_eq!(to.list_users().await.unwrap(), users);
        let copied = to.keys_changed_since(0).await.unwrap();
        for (a, b) in keys.iter().zip(&copied) {
            assert_eq!(
                (
                    a.id,
                    &a.key_hash,
                    a.status,
                    a.deleted_at,
                    a.used_cost,
                    a.request_count
                ),
                (
                    b.id,
                    &b.key_hash,
                    b.status,
                    b.deleted_at,
                    b.used_cost,
                    b.request_count
                )
            );
        }
        assert_eq!(
            to.usage_records(&all(), 0).await.unwrap(),
            from.usage_records(&all(), 0).await.unwrap()
        );
        // New ids continue after the copied ones.
        let next = to.create_key(new_key(1, "fresh"), 10, 30).await.unwrap();
        assert_eq!(next.id, 4);
    }
}
