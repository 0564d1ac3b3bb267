//! [`Store`] on SQLite: one file in the data directory, WAL mode, migrations embedded in the
//! binary and applied at open. The SQL is the portable subset PostgreSQL also runs (`$n`
//! parameters, `RETURNING`, no SQLite-only functions).

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use super::*;

/// The database file inside the data directory.
pub const DB_FILE: &str = "sluice.db";

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// One connection of its own for the usage writer's batches: every pooled connection
    /// prepares each statement shape it runs once (the multi-row inserts cost ~180,000
    /// instructions to prepare), so a writer rotating over the pool's four connections paid
    /// that four times per shape. SQLite runs one writer at a time anyway.
    usage_writer: SqlitePool,
}

pub(crate) const USER_COLUMNS: &str = "id, username, password_hash, role, status, created_at, \
    max_rate_limit, max_daily_limit, max_monthly_quota_nanos, monthly_budget_nanos";
pub(crate) const KEY_COLUMNS: &str = "id, user_id, name, key_hash, key_prefix, status, allowed_platforms, \
    allowed_models, rate_limit, daily_limit, monthly_quota_nanos, used_tokens, used_cost_nanos, \
    request_count, last_used_at, expires_at, created_at, updated_at, deleted_at";
pub(crate) const USAGE_COLUMNS: &str = "request_id, time_ms, day, endpoint, user_id, api_key_id, key_label, \
    provider, credential, platform, model_requested, model_served, stream, status, error, \
    input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, \
    cost_nanos, estimated, latency_ms, ttft_ms, record_id, attempts, upstream_dialect, \
    audio_seconds, characters, images, documents, search_units";
const TOTALS: &str = "COUNT(*), \
    COALESCE(SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), 0), \
    COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0), \
    COALESCE(SUM(cache_read_tokens), 0), COALESCE(SUM(cache_write_tokens), 0), \
    COALESCE(SUM(reasoning_tokens), 0), COALESCE(SUM(cost_nanos), 0), \
    CAST(COALESCE(SUM(audio_seconds), 0) AS REAL), COALESCE(SUM(characters), 0), \
    COALESCE(SUM(images), 0), COALESCE(SUM(documents), 0), COALESCE(SUM(search_units), 0)";

impl SqliteStore {
    /// Opens (creating if needed, mode 0600) `<data_dir>/sluice.db` and applies pending
    /// migrations.
    pub async fn open(data_dir: &Path) -> StoreResult<SqliteStore> {
        // Created empty with mode 0600 before SQLite opens it: SQLite gives the `-wal` and
        // `-shm` files the database file's mode, so all three stay private.
        let path = data_dir.join(DB_FILE);
        crate::private::create_file(&path)
            .map_err(|e| StoreError::Conflict(format!("cannot create {}: {e}", path.display())))?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        let usage_writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        Ok(SqliteStore { pool, usage_writer })
    }

    async fn next_id(tx: &mut sqlx::SqliteConnection, table: &str) -> StoreResult<i64> {
        let row = sqlx::query(
            "UPDATE sequences SET last_id = last_id + 1 WHERE name = $1 RETURNING last_id",
        )
        .bind(table)
        .fetch_one(&mut *tx)
        .await?;
        Ok(row.try_get(0)?)
    }
}

crate::rows::decoders!(sqlx::sqlite::SqliteRow);

/// `WHERE` clause of a usage filter; parameters `$1`..`$4` are bound by [`bind_filter`].
const FILTER: &str = "WHERE day >= $1 AND day <= $2 \
    AND ($3 IS NULL OR user_id = $3) AND ($4 IS NULL OR api_key_id = $4)";

fn bind_filter<'q>(
    query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    filter: &'q UsageFilter,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    query
        .bind(&filter.start_day)
        .bind(&filter.end_day)
        .bind(filter.user_id)
        .bind(filter.api_key_id)
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

crate::ui::ui_store!(SqliteStore);

#[async_trait]
impl Store for SqliteStore {
    fn ui(&self) -> &dyn crate::ui::UiStore {
        self
    }

    async fn create_user(&self, user: NewUser, now: i64) -> StoreResult<User> {
        let mut tx = self.pool.begin().await?;
        let id = Self::next_id(&mut tx, "users").await?;
        let inserted = sqlx::query(&format!(
            "INSERT INTO users (id, username, password_hash, role, status, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 'active', $5, $5) RETURNING {USER_COLUMNS}"
        ))
        .bind(id)
        .bind(&user.username)
        .bind(&user.password_hash)
        .bind(user.role.as_str())
        .bind(now)
        .fetch_one(&mut *tx)
        .await;
        let row = match inserted {
            Ok(row) => row,
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict(format!(
                    "a user named `{}` already exists",
                    user.username
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let created = user_from(&row)?;
        tx.commit().await?;
        Ok(created)
    }

    async fn user_by_id(&self, id: i64) -> StoreResult<User> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        user_from(&row)
    }

    async fn user_by_name(&self, username: &str) -> StoreResult<User> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        user_from(&row)
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        let rows = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(user_from).collect()
    }

    async fn update_user(&self, id: i64, update: UserUpdate, now: i64) -> StoreResult<User> {
        let sql = crate::sql::update_user_sql(USER_COLUMNS);
        let row = crate::sql::update_user(&sql, id, &update, now)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        user_from(&row)
    }

    async fn first_admin(&self) -> StoreResult<Option<User>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE role = 'admin' AND status = 'active' \
             ORDER BY id LIMIT 1"
        ))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_from).transpose()
    }

    async fn create_key(&self, key: NewApiKey, max_per_user: i64, now: i64) -> StoreResult<ApiKey> {
        let mut tx = self.pool.begin().await?;
        // The sequence row is written first: it serialises key creation (SQLite's write lock,
        // PostgreSQL's row lock), so the count below cannot race another creation.
        let id = Self::next_id(&mut tx, "api_keys").await?;
        let count: i64 =
            sqlx::query("SELECT COUNT(*) FROM api_keys WHERE user_id = $1 AND deleted_at IS NULL")
                .bind(key.user_id)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
        if count >= max_per_user {
            return Err(StoreError::Conflict(format!(
                "API key limit reached: each user may have at most {max_per_user} keys; delete one first"
            )));
        }
        let row = sqlx::query(&format!(
            "INSERT INTO api_keys (id, user_id, name, key_hash, key_prefix, status, \
             allowed_platforms, allowed_models, rate_limit, daily_limit, monthly_quota_nanos, \
             expires_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 'active', $6, $7, $8, $9, $10, $11, $12, $12) \
             RETURNING {KEY_COLUMNS}"
        ))
        .bind(id)
        .bind(key.user_id)
        .bind(&key.name)
        .bind(&key.key_hash)
        .bind(&key.key_prefix)
        .bind(&key.allowed_platforms)
        .bind(&key.allowed_models)
        .bind(key.rate_limit)
        .bind(key.daily_limit)
        .bind(key.monthly_quota)
        .bind(key.expires_at)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let created = key_from(&row)?;
        tx.commit().await?;
        Ok(created)
    }

    async fn key_by_id(&self, id: i64) -> StoreResult<ApiKey> {
        let row = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1 AND deleted_at IS NULL"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        key_from(&row)
    }

    async fn keys_of_user(&self, user_id: i64) -> StoreResult<Vec<ApiKey>> {
        let rows = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE user_id = $1 AND deleted_at IS NULL ORDER BY id"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key_from).collect()
    }

    async fn update_key(&self, id: i64, update: KeyUpdate, now: i64) -> StoreResult<ApiKey> {
        let (set_expiry, expires_at) = match update.expires_at {
            Some(value) => (true, value),
            None => (false, None),
        };
        let row = sqlx::query(&format!(
            "UPDATE api_keys SET name = COALESCE($2, name), \
             allowed_platforms = COALESCE($3, allowed_platforms), \
             allowed_models = COALESCE($4, allowed_models), \
             rate_limit = COALESCE($5, rate_limit), daily_limit = COALESCE($6, daily_limit), \
             monthly_quota_nanos = COALESCE($7, monthly_quota_nanos), \
             expires_at = CASE WHEN $8 THEN $9 ELSE expires_at END, \
             status = COALESCE($10, status), updated_at = $11, \
             key_hash = COALESCE($12, key_hash), key_prefix = COALESCE($13, key_prefix) \
             WHERE id = $1 AND deleted_at IS NULL RETURNING {KEY_COLUMNS}"
        ))
        .bind(id)
        .bind(update.name)
        .bind(update.allowed_platforms)
        .bind(update.allowed_models)
        .bind(update.rate_limit)
        .bind(update.daily_limit)
        .bind(update.monthly_quota)
        .bind(set_expiry)
        .bind(expires_at)
        .bind(update.status.map(Status::as_str))
        .bind(now)
        .bind(update.secret.as_ref().map(|(hash, _)| hash.as_str()))
        .bind(update.secret.as_ref().map(|(_, prefix)| prefix.as_str()))
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        key_from(&row)
    }

    async fn delete_key(&self, id: i64, now: i64) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE api_keys SET deleted_at = $2, updated_at = $2 WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn keys_changed_since(&self, since: i64) -> StoreResult<Vec<ApiKey>> {
        let rows = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE updated_at >= $1 ORDER BY id"
        ))
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key_from).collect()
    }

    async fn users_changed_since(&self, since: i64) -> StoreResult<Vec<User>> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE updated_at >= $1 ORDER BY id"
        ))
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_from).collect()
    }

    async fn insert_usage(&self, rows: &[UsageRow]) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.usage_writer.begin().await?;
        // Counters grow by the records actually inserted: one already stored (same record id,
        // a replayed batch) changes nothing.
        let mut counters = crate::sql::Counters::new();
        // Multi-row inserts: one statement per chunk rather than per record, because every
        // statement is a round trip to SQLite's worker thread. 32 columns × 31 rows stays under
        // the smallest bound-variable limit SQLite builds use (999).
        // The records this transaction inserted (replays are skipped): only they go into the
        // dashboard's rollups and attempts.
        let mut inserted: std::collections::HashSet<String> = Default::default();
        for chunk in crate::sql::statement_chunks(rows, 31) {
            let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(format!(
                "INSERT INTO usage_records ({USAGE_COLUMNS}) "
            ));
            crate::sql::push_usage_values(&mut insert, chunk);
            insert.push(crate::sql::INSERTED);
            for row in insert.build().fetch_all(&mut *tx).await? {
                crate::sql::count_inserted(&mut counters, &row)?;
                inserted.insert(row.try_get::<String, _>(4)?);
            }
        }
        crate::ui::write_dashboard!(tx, rows.iter().filter(|r| inserted.contains(&r.record_id)));
        for (key, (tokens, cost, requests, last)) in counters {
            sqlx::query(
                "UPDATE api_keys SET used_tokens = used_tokens + $2, \
                 used_cost_nanos = used_cost_nanos + $3, request_count = request_count + $4, \
                 last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < $5 THEN $5 \
                 ELSE last_used_at END WHERE id = $1",
            )
            .bind(key)
            .bind(tokens)
            .bind(cost)
            .bind(requests)
            .bind(last)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn usage_totals(&self, filter: &UsageFilter) -> StoreResult<UsageTotals> {
        let sql = format!("SELECT {TOTALS} FROM usage_records {FILTER}");
        let row = bind_filter(sqlx::query(&sql), filter)
            .fetch_one(&self.pool)
            .await?;
        totals_from(&row, 0)
    }

    async fn usage_by_day(&self, filter: &UsageFilter) -> StoreResult<Vec<(String, UsageTotals)>> {
        let sql =
            format!("SELECT day, {TOTALS} FROM usage_records {FILTER} GROUP BY day ORDER BY day");
        let rows = bind_filter(sqlx::query(&sql), filter)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, totals_from(row, 1)?)))
            .collect()
    }

    async fn usage_by_model(
        &self,
        filter: &UsageFilter,
    ) -> StoreResult<Vec<(String, UsageTotals)>> {
        let sql = format!(
            "SELECT COALESCE(model_served, model_requested, '') AS model, {TOTALS} \
             FROM usage_records {FILTER} GROUP BY COALESCE(model_served, model_requested, '') \
             ORDER BY model"
        );
        let rows = bind_filter(sqlx::query(&sql), filter)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, totals_from(row, 1)?)))
            .collect()
    }

    async fn usage_records(&self, filter: &UsageFilter, limit: i64) -> StoreResult<Vec<UsageRow>> {
        let sql = format!(
            "SELECT {USAGE_COLUMNS} FROM usage_records {FILTER} ORDER BY time_ms DESC, request_id \
             LIMIT $5"
        );
        let limit = if limit <= 0 { i64::MAX } else { limit };
        let rows = bind_filter(sqlx::query(&sql), filter)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(usage_from).collect()
    }

    async fn key_spend(&self, today: &str, month_start: &str) -> StoreResult<Vec<(i64, KeySpend)>> {
        // From the per-day counts kept with every batch (at most a month of rows per key),
        // not from the records.
        let rows = sqlx::query(crate::sql::KEY_SPEND)
            .bind(today)
            .bind(month_start)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get(0)?,
                    KeySpend {
                        requests_today: row.try_get(1)?,
                        cost_this_month: row.try_get(2)?,
                    },
                ))
            })
            .collect()
    }

    async fn restore_accounts(&self, users: &[User], keys: &[ApiKey]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        for u in users {
            crate::sql::restore_user(u).execute(&mut *tx).await?;
        }
        for k in keys {
            crate::sql::restore_key(k).execute(&mut *tx).await?;
        }
        for (table, ids) in [
            ("users", users.iter().map(|u| u.id).max()),
            ("api_keys", keys.iter().map(|k| k.id).max()),
        ] {
            sqlx::query("UPDATE sequences SET last_id = MAX(last_id, $2) WHERE name = $1")
                .bind(table)
                .bind(ids.unwrap_or(0))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn usage_after(
        &self,
        after: Option<(i64, String)>,
        limit: i64,
    ) -> StoreResult<Vec<UsageRow>> {
        let (time, id) = after.unwrap_or((i64::MIN, String::new()));
        let rows = sqlx::query(crate::sql::USAGE_AFTER)
            .bind(time)
            .bind(id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(usage_from).collect()
    }

    async fn prune_usage(&self, before_ms: i64) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM usage_records WHERE time_ms < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    async fn store() -> (SqliteStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        (SqliteStore::open(dir.path()).await.unwrap(), dir)
    }

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

    fn row(key: Option<i64>, day: &str, tokens: i64, cost: Nanos) -> UsageRow {
        UsageRow {
            request_id: format!("r{tokens}{day}"),
            time_ms: 1000,
            day: day.into(),
            endpoint: "openai.chat".into(),
            user_id: Some(1),
            api_key_id: key,
            key_label: None,
            provider: Some("p".into()),
            credential: None,
            platform: Some("openai".into()),
            model_requested: Some("m".into()),
            model_served: Some("m".into()),
            stream: false,
            status: 200,
            error: None,
            input_tokens: tokens,
            output_tokens: 1,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            reasoning_tokens: 0,
            cost_nanos: cost,
            estimated: false,
            latency_ms: 1.5,
            ttft_ms: None,
            record_id: format!("rec-{tokens}{day}"),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn users_keys_and_usage_round_trip() {
        let (s, _dir) = store().await;
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
        assert_eq!(s.first_admin().await.unwrap().unwrap().id, 1);

        let a = s.create_key(new_key(1, "h1"), 2, 10).await.unwrap();
        let b = s.create_key(new_key(1, "h2"), 2, 11).await.unwrap();
        assert_eq!((a.id, b.id), (1, 2));
        assert!(matches!(
            s.create_key(new_key(1, "h3"), 2, 12).await,
            Err(StoreError::Conflict(_))
        ));
        s.delete_key(a.id, 13).await.unwrap();
        assert!(matches!(s.key_by_id(a.id).await, Err(StoreError::NotFound)));
        // A deleted key frees its slot, and ids are never reused.
        let c = s.create_key(new_key(1, "h3"), 2, 14).await.unwrap();
        assert_eq!(c.id, 3);
        let changed = s.keys_changed_since(13).await.unwrap();
        assert_eq!(changed.iter().map(|k| k.id).collect::<Vec<_>>(), vec![1, 3]);

        let updated = s
            .update_key(
                b.id,
                KeyUpdate {
                    rate_limit: Some(5),
                    expires_at: Some(Some(99)),
                    ..Default::default()
                },
                20,
            )
            .await
            .unwrap();
        assert_eq!((updated.rate_limit, updated.expires_at), (5, Some(99)));
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

        s.insert_usage(&[
            row(Some(b.id), "2025-01-01", 10, 7),
            row(Some(b.id), "2025-01-02", 20, 8),
            row(None, "2025-01-02", 5, 1),
        ])
        .await
        .unwrap();
        let key = s.key_by_id(b.id).await.unwrap();
        assert_eq!(
            (key.used_tokens, key.used_cost, key.request_count),
            (32, 15, 2)
        );
        let filter = UsageFilter {
            start_day: "2025-01-02".into(),
            end_day: "2025-01-31".into(),
            ..Default::default()
        };
        let totals = s.usage_totals(&filter).await.unwrap();
        assert_eq!(
            (totals.requests, totals.input_tokens, totals.cost_nanos),
            (2, 25, 9)
        );
        let by_key = UsageFilter {
            api_key_id: Some(b.id),
            start_day: "2025-01-01".into(),
            end_day: "2025-01-31".into(),
            ..Default::default()
        };
        let days = s.usage_by_day(&by_key).await.unwrap();
        assert_eq!(days.len(), 2);
        assert_eq!(s.usage_records(&by_key, 1).await.unwrap().len(), 1);
        let spend = s.key_spend("2025-01-02", "2025-01-01").await.unwrap();
        assert_eq!(
            spend,
            vec![(
                b.id,
                KeySpend {
                    requests_today: 1,
                    cost_this_month: 15
                }
            )]
        );
    }
}
