//! The dashboard's part of the store, on SQLite and (with `SLUICE_TEST_POSTGRES_URL`)
//! PostgreSQL: sessions, rollups that equal the records they sum, attempts, probes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice_store::postgres::PgStore;
use sluice_store::rollup::{
    AttemptRow, Dimension, Grain, ProbeRow, RollupQuery, bucket_of, quantile,
};
use sluice_store::sqlite::SqliteStore;
use sluice_store::testing::{TestDatabase, postgres_url};
use sluice_store::ui::UiSession;
use sluice_store::*;

const T0: i64 = 1_780_000_020_000; // 20 s into a minute
const MIN: i64 = 60_000;

fn record(id: &str, time_ms: i64, status: i64, attempts: i64, latency: f64) -> UsageRow {
    UsageRow {
        request_id: id.into(),
        record_id: format!("rec-{id}"),
        time_ms,
        day: "2026-05-28".into(),
        endpoint: "openai.chat".into(),
        user_id: Some(1),
        key_label: Some("config:abc".into()),
        provider: Some("p".into()),
        credential: Some("p#0".into()),
        model_served: Some("m".into()),
        status,
        input_tokens: 10,
        output_tokens: 5,
        cost_nanos: 1000,
        latency_ms: latency,
        ttft_ms: (status < 400).then_some(latency / 2.0),
        attempts,
        upstream_dialect: Some("openai_chat".into()),
        ..Default::default()
    }
}

async fn contract(s: &dyn Store) {
    s.create_user(
        NewUser {
            username: "u".into(),
            password_hash: "x".into(),
            role: Role::User,
        },
        0,
    )
    .await
    .unwrap();
    // Sessions.
    let ui = s.ui();
    let session = UiSession {
        id_hash: "h1".into(),
        user_id: 1,
        csrf_token: "c".into(),
        created_at: 100,
        last_seen_at: 100,
    };
    ui.create_ui_session(&session).await.unwrap();
    assert_eq!(ui.ui_session("h1").await.unwrap(), Some(session.clone()));
    ui.touch_ui_session("h1", 500).await.unwrap();
    assert_eq!(
        ui.ui_session("h1").await.unwrap().unwrap().last_seen_at,
        500
    );
    ui.create_ui_session(&UiSession {
        id_hash: "h2".into(),
        ..session.clone()
    })
    .await
    .unwrap();
    assert_eq!(ui.expire_ui_sessions(200, 0).await.unwrap(), 1, "h2 idle");
    assert_eq!(ui.delete_ui_sessions_of(1).await.unwrap(), 1);
    assert_eq!(ui.ui_session("h1").await.unwrap(), None);

    // Records with their attempts: one saved by failover, one 5xx, one 4xx, one a minute later.
    let mut saved = record("r1", T0, 200, 2, 400.0);
    saved.attempt_log = vec![
        AttemptRow {
            provider: "p".into(),
            credential: "p#1".into(),
            model: "m".into(),
            status: 429,
            error: Some("rate_limited".into()),
            latency_ms: 30.0,
            cooldown_until_ms: Some(T0 + 5000),
        },
        AttemptRow {
            provider: "p".into(),
            credential: "p#0".into(),
            model: "m".into(),
            status: 200,
            error: None,
            latency_ms: 370.0,
            cooldown_until_ms: None,
        },
    ];
    let batch = vec![
        saved,
        record("r2", T0 + 1000, 502, 1, 60.0),
        record("r3", T0 + 2000, 401, 0, 1.0),
        record("r4", T0 + MIN, 200, 1, 2500.0),
    ];
    s.insert_usage(&batch).await.unwrap();
    let attempts = ui.attempts_of("r1", T0).await.unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].status, 429);
    assert_eq!(attempts[0].cooldown_until_ms, Some(T0 + 5000));
    assert_eq!(attempts[1].credential, "p#0");
    let stored = s.usage_after(None, 10).await.unwrap();
    assert_eq!(stored[0].attempts, 2);
    assert_eq!(stored[0].upstream_dialect.as_deref(), Some("openai_chat"));

    // Per minute, by status class.
    let q = RollupQuery {
        grain: Grain::Minute,
        since_ms: T0 - 10 * MIN,
        until_ms: T0 + 10 * MIN,
        step_ms: MIN,
        by: None,
        user_id: None,
    };
    let points = ui.rollup(&q).await.unwrap();
    let minute = T0 / MIN * MIN;
    let find = |b: i64, class: i64| {
        points
            .iter()
            .find(|p| p.bucket_ms == b && p.status_class == class)
            .map(|p| p.counts.clone())
            .unwrap_or_default()
    };
    assert_eq!(find(minute, 2).requests, 1);
    assert_eq!(find(minute, 2).failover_saved, 1);
    assert_eq!(find(minute, 5).requests, 1);
    assert_eq!(find(minute, 4).requests, 1);
    assert_eq!(find(minute + MIN, 2).requests, 1);
    assert_eq!(find(minute, 2).cost_nanos, 1000);
    assert_eq!(find(minute + MIN, 2).latency[bucket_of(2500.0)], 1);

    // One step over the hour table, grouped by credential: equals the records.
    let hour = ui
        .rollup(&RollupQuery {
            grain: Grain::Hour,
            step_ms: 0,
            by: Some(Dimension::Credential),
            ..q.clone()
        })
        .await
        .unwrap();
    let mut total = rollup::Counts::default();
    for p in &hour {
        assert_eq!(p.group, "p#0");
        total.merge(&p.counts);
    }
    assert_eq!(total.requests, 4);
    assert_eq!(total.tokens(), 60);
    assert_eq!(total.ttft_count, 2);
    assert_eq!(quantile(&total.latency, 0.5), Some(100.0));
    // Another user's view is empty.
    let none = ui
        .rollup(&RollupQuery {
            user_id: Some(99),
            ..q.clone()
        })
        .await
        .unwrap();
    assert!(none.is_empty());

    // Probes are kept apart: no usage, no key counters.
    let before = s
        .usage_totals(&UsageFilter {
            start_day: "2000-01-01".into(),
            end_day: "2100-01-01".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    ui.insert_probe(&ProbeRow {
        id: "probe-1".into(),
        time_ms: T0,
        user_id: Some(1),
        provider: "p".into(),
        credential: "p#0".into(),
        model: "m".into(),
        status: 200,
        error: None,
        latency_ms: 12.0,
        ttft_ms: Some(8.0),
    })
    .await
    .unwrap();
    let probes = ui.probes_of("p#0", 5).await.unwrap();
    assert_eq!(probes.len(), 1);
    assert_eq!(probes[0].ttft_ms, Some(8.0));
    let after = s
        .usage_totals(&UsageFilter {
            start_day: "2000-01-01".into(),
            end_day: "2100-01-01".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(before, after);
}

#[tokio::test]
async fn sqlite_keeps_the_dashboard_contract() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path()).await.unwrap();
    contract(&s).await;
}

#[tokio::test]
async fn postgres_keeps_the_dashboard_contract_and_replays_add_nothing() {
    let Some(url) = postgres_url("postgres_keeps_the_dashboard_contract") else {
        return;
    };
    let db = TestDatabase::create(&url).await.unwrap();
    let s = PgStore::open(&db.url).await.unwrap();
    contract(&s).await;
    // A replayed batch (an instance that committed but never heard back) adds nothing.
    let replay = vec![record("r4", T0 + MIN, 200, 1, 2500.0)];
    s.insert_usage(&replay).await.unwrap();
    let points = s
        .ui()
        .rollup(&RollupQuery {
            grain: Grain::Hour,
            since_ms: 0,
            until_ms: i64::MAX,
            step_ms: 0,
            by: None,
            user_id: None,
        })
        .await
        .unwrap();
    let requests: i64 = points.iter().map(|p| p.counts.requests).sum();
    assert_eq!(requests, 4);
}

/// Records of three keys (two users) in two hours: the keyless hourly totals equal the keyed
/// rollup, per-key and per-user queries still see keys and users, and a top-n query answers
/// only the busiest groups.
async fn totals_and_top_groups(s: &dyn Store) {
    let hour = 3_600_000;
    let mut rows = Vec::new();
    for (i, (key, user, n)) in [("k:a", 1, 3), ("k:b", 2, 5), ("k:c", 1, 1)]
        .into_iter()
        .enumerate()
    {
        for j in 0..n {
            let mut r = record(
                &format!("t{i}-{j}"),
                T0 + (j as i64 % 2) * hour,
                200,
                1,
                80.0,
            );
            r.key_label = Some(key.into());
            r.user_id = Some(user);
            rows.push(r);
        }
    }
    s.insert_usage(&rows).await.unwrap();
    let ui = s.ui();
    let q = RollupQuery {
        grain: Grain::Hour,
        since_ms: T0 - hour,
        until_ms: T0 + 3 * hour,
        step_ms: hour,
        by: None,
        user_id: None,
    };
    let sum = |points: &[rollup::RollupPoint]| {
        let mut total = rollup::Counts::default();
        for p in points {
            total.merge(&p.counts);
        }
        total
    };
    let totals = ui.rollup(&q).await.unwrap();
    let keyed = ui
        .rollup(&RollupQuery {
            by: Some(Dimension::Key),
            ..q.clone()
        })
        .await
        .unwrap();
    assert_eq!(sum(&totals), sum(&keyed));
    assert_eq!(sum(&totals).requests, 9);
    assert_eq!(totals.len(), 2, "one row per hour: {totals:?}");
    let by_model = ui
        .rollup(&RollupQuery {
            by: Some(Dimension::Model),
            ..q.clone()
        })
        .await
        .unwrap();
    assert_eq!(sum(&by_model), sum(&totals));
    // One user's view reads the keyed table.
    let user_1 = ui
        .rollup(&RollupQuery {
            user_id: Some(1),
            ..q.clone()
        })
        .await
        .unwrap();
    assert_eq!(sum(&user_1).requests, 4);
    let by_user = ui
        .rollup(&RollupQuery {
            by: Some(Dimension::User),
            step_ms: 0,
            ..q.clone()
        })
        .await
        .unwrap();
    let groups: Vec<(&str, i64)> = by_user
        .iter()
        .map(|p| (p.group.as_str(), p.counts.requests))
        .collect();
    assert_eq!(groups, vec![("1", 4), ("2", 5)]);
    // The top two keys, hour by hour; the third key's sums are not built.
    let top = ui
        .rollup_top(
            &RollupQuery {
                by: Some(Dimension::Key),
                ..q.clone()
            },
            2,
        )
        .await
        .unwrap();
    let mut names: Vec<&str> = top.iter().map(|p| p.group.as_str()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names, vec!["k:a", "k:b"]);
    assert_eq!(top.len(), 4, "two keys in two hours: {top:?}");
    assert_eq!(sum(&top).requests, 8);
    // Ungrouped, top is the whole answer.
    assert_eq!(ui.rollup_top(&q, 1).await.unwrap(), totals);
}

#[tokio::test]
async fn sqlite_totals_equal_the_keyed_rollup() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path()).await.unwrap();
    totals_and_top_groups(&s).await;
}

#[tokio::test]
async fn postgres_totals_equal_the_keyed_rollup() {
    let Some(url) = postgres_url("postgres_totals_equal_the_keyed_rollup") else {
        return;
    };
    let db = TestDatabase::create(&url).await.unwrap();
    let s = PgStore::open(&db.url).await.unwrap();
    totals_and_top_groups(&s).await;
}
