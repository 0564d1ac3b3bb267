//! Moving an installation as an operator does it: `sluice store copy` from SQLite into an empty
//! PostgreSQL database, `sluice migrate`, `sluice store prune` (needs
//! `SLUICE_TEST_POSTGRES_URL`; skips otherwise).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use sluice::store::postgres::PgStore;
use sluice::store::sqlite::SqliteStore;
use sluice::store::testing::{TestDatabase, postgres_url};
use sluice::store::{NewApiKey, NewUser, Role, Store, UsageFilter, UsageRow, UsageUnits};

const BIN: &str = env!("CARGO_BIN_EXE_sluice");

fn record(id: &str, key: i64, time_ms: i64, day: &str) -> UsageRow {
    UsageRow {
        request_id: id.into(),
        time_ms,
        day: day.into(),
        endpoint: "openai.chat".into(),
        user_id: Some(1),
        api_key_id: Some(key),
        key_label: Some(format!("key:{key}")),
        provider: Some("mock".into()),
        credential: Some("mock#0".into()),
        platform: Some("openai".into()),
        model_requested: Some("m".into()),
        model_served: Some("m".into()),
        stream: false,
        status: 200,
        error: None,
        input_tokens: 3,
        output_tokens: 4,
        cache_read_tokens: 0,
        cache_write_tokens: 0,
        reasoning_tokens: 0,
        cost_nanos: 1_000,
        estimated: false,
        latency_ms: 2.0,
        ttft_ms: None,
        record_id: format!("rec-{id}"),
        ..Default::default()
    }
}

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn an_installation_moves_from_sqlite_to_postgres() {
    let Some(server) = postgres_url("an_installation_moves_from_sqlite_to_postgres") else {
        return;
    };
    // An existing single-machine installation: two users, keys (one deleted), 5 000 records
    // over three months.
    let data = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(data.path()).await.unwrap();
    for (name, role) in [("admin", Role::Admin), ("alice", Role::User)] {
        sqlite
            .create_user(
                NewUser {
                    username: name.into(),
                    password_hash: "$argon2id$fake".into(),
                    role,
                },
                1,
            )
            .await
            .unwrap();
    }
    for (user, hash) in [
        (2, "a".repeat(64)),
        (2, "b".repeat(64)),
        (1, "c".repeat(64)),
    ] {
        sqlite
            .create_key(
                NewApiKey {
                    user_id: user,
                    name: "k".into(),
                    key_hash: hash,
                    key_prefix: "sk-x...".into(),
                    allowed_platforms: "all".into(),
                    allowed_models: String::new(),
                    rate_limit: 60,
                    daily_limit: 0,
                    monthly_quota: 0,
                    expires_at: None,
                },
                10,
                1,
            )
            .await
            .unwrap();
    }
    sqlite.delete_key(2, 5).await.unwrap();
    let jan_1 = 1_735_689_600_000_i64;
    let rows: Vec<UsageRow> = (0..5_000)
        .map(|i| {
            let t = jan_1 + i * 1_700_000;
            let day = chrono::DateTime::from_timestamp_millis(t)
                .unwrap()
                .format("%Y-%m-%d")
                .to_string();
            let mut row = record(&format!("r{i}"), 1 + i % 3, t, &day);
            // Every fifth record used units beyond tokens (issue 13): they travel too.
            if i % 5 == 0 {
                row.units = UsageUnits {
                    audio_seconds: 1.5,
                    characters: 7,
                    images: 2,
                    documents: 3,
                    search_units: 1,
                };
            }
            row
        })
        .collect();
    for chunk in rows.chunks(500) {
        sqlite.insert_usage(chunk).await.unwrap();
    }

    let db = TestDatabase::create(&server).await.unwrap();
    let from = format!("sqlite://{}", data.path().display());
    let (ok, out) = run(&["store", "copy", "--from", &from, "--to", &db.url]);
    assert!(ok, "{out}");
    assert!(
        out.contains("copied 2 users, 3 keys and 5000 usage records"),
        "{out}"
    );

    let pg = PgStore::open(&db.url).await.unwrap();
    let all = UsageFilter {
        start_day: "0000-01-01".into(),
        end_day: "9999-12-31".into(),
        ..Default::default()
    };
    let copied = pg.usage_totals(&all).await.unwrap();
    assert_eq!(copied, sqlite.usage_totals(&all).await.unwrap());
    assert_eq!(
        copied.units,
        UsageUnits {
            audio_seconds: 1500.0,
            characters: 7_000,
            images: 2_000,
            documents: 3_000,
            search_units: 1_000,
        }
    );
    let first = pg.usage_after(None, 1).await.unwrap();
    assert_eq!(first[0].units.images, 2, "{:?}", first[0]);
    for key in sqlite.keys_changed_since(0).await.unwrap() {
        let copied = pg
            .keys_changed_since(0)
            .await
            .unwrap()
            .into_iter()
            .find(|k| k.id == key.id)
            .unwrap();
        assert_eq!(
            (
                copied.request_count,
                copied.used_cost,
                copied.deleted_at,
                copied.key_hash
            ),
            (
                key.request_count,
                key.used_cost,
                key.deleted_at,
                key.key_hash
            )
        );
    }
    // A second copy into the now non-empty database is refused, and changes nothing.
    let (ok, out) = run(&["store", "copy", "--from", &from, "--to", &db.url]);
    assert!(!ok && out.contains("is not empty"), "{out}");
    assert_eq!(pg.usage_totals(&all).await.unwrap().requests, 5_000);

    // The gateway's config points at the new store: migrate, then prune the first month.
    let config = data.path().join("cluster.yaml");
    std::fs::write(
        &config,
        format!("data-dir: {}\nstore: {}\n", data.path().display(), db.url),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let (ok, out) = run(&["migrate", "--config", config]);
    assert!(ok && out.contains("schema up to date"), "{out}");
    let (ok, out) = run(&["users", "list", "--config", config]);
    assert!(
        ok && out.contains("alice"),
        "the CLI reads the PostgreSQL store: {out}"
    );
    let (ok, out) = run(&[
        "store",
        "prune",
        "--config",
        config,
        "--older-than",
        "100000days",
    ]);
    assert!(ok && out.contains("removed 0 usage records"), "{out}");
    let before = pg.usage_totals(&all).await.unwrap().requests;
    let (ok, out) = run(&["store", "prune", "--config", config, "--older-than", "1day"]);
    assert!(
        ok && out.contains(&format!("removed {before} usage records")),
        "{out}"
    );
    assert_eq!(pg.usage_totals(&all).await.unwrap().requests, 0);
}
