//! [`Store`] on PostgreSQL, for several gateways sharing one database (`store: postgres://…`).
//!
//! The same tables and queries as the SQLite store (`migrations-postgres/` is the twin of
//! `migrations/`), with what many concurrent writers need:
//! - ids from identity columns (no shared `sequences` row to queue on);
//! - usage records unique by (request id, time): a batch replayed after a crash inserts
//!   nothing, and the keys' counters are bumped only by the rows the same transaction actually
//!   inserted (`INSERT … ON CONFLICT DO NOTHING RETURNING`);
//! - key rows updated in ascending id order, so two instances' batches never deadlock;
//! - `usage_records` range-partitioned by UTC month on `time_ms`: partitions are created as a
//!   month's first records arrive (under an advisory lock), and retention drops whole
//!   partitions ([`Store::prune_usage`]) instead of deleting rows.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{Datelike, TimeZone, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Row};

use super::*;
use crate::sqlite::{KEY_COLUMNS, USAGE_COLUMNS, USER_COLUMNS};

crate::rows::decoders!(sqlx::postgres::PgRow);

/// Sums over usage records; PostgreSQL's `SUM(bigint)` is `numeric`, hence the casts.
const TOTALS: &str = "COUNT(*), \
    CAST(COALESCE(SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), 0) AS BIGINT), \
    CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT), CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT), \
    CAST(COALESCE(SUM(cache_read_tokens), 0) AS BIGINT), CAST(COALESCE(SUM(cache_write_tokens), 0) AS BIGINT), \
    CAST(COALESCE(SUM(reasoning_tokens), 0) AS BIGINT), CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT), \
    CAST(COALESCE(SUM(audio_seconds), 0) AS DOUBLE PRECISION), CAST(COALESCE(SUM(characters), 0) AS BIGINT), \
    CAST(COALESCE(SUM(images), 0) AS BIGINT), CAST(COALESCE(SUM(documents), 0) AS BIGINT), \
    CAST(COALESCE(SUM(search_units), 0) AS BIGINT)";

/// `WHERE` clause of a usage filter; parameters `$1`..`$4`.
const FILTER: &str = "WHERE day >= $1 AND day <= $2 \
    AND ($3::BIGINT IS NULL OR user_id = $3) AND ($4::BIGINT IS NULL OR api_key_id = $4)";

/// Records per insert statement (32 parameters each, far below PostgreSQL's 65 535).
const INSERT_CHUNK: usize = 500;

/// Advisory lock key serialising partition creation and dropping across instances.
const PARTITION_LOCK: i64 = 0x51ce_0001;

/// The PostgreSQL store.
#[derive(Debug)]
pub struct PgStore {
    pool: PgPool,
    /// UTC month numbers (year × 12 + month0) whose partition is known to exist.
    partitions: Mutex<HashSet<i64>>,
}

/// A UTC month number of a unix-ms instant.
fn month_of(ms: i64) -> i64 {
    let t = Utc.timestamp_millis_opt(ms).single().unwrap_or_default();
    i64::from(t.year()) * 12 + i64::from(t.month0())
}

/// Unix ms of the first instant of a UTC month number.
fn month_start_ms(month: i64) -> i64 {
    let year = i32::try_from(month.div_euclid(12)).unwrap_or(1970);
    let month0 = u32::try_from(month.rem_euclid(12)).unwrap_or(0);
    Utc.with_ymd_and_hms(year, month0 + 1, 1, 0, 0, 0)
        .single()
        .map_or(0, |t| t.timestamp_millis())
}

fn partition_name(month: i64) -> String {
    format!(
        "usage_records_y{:04}m{:02}",
        month.div_euclid(12),
        month.rem_euclid(12) + 1
    )
}

impl PgStore {
    /// Connects and applies pending migrations (concurrent starts are serialised by sqlx's
    /// migration lock).
    pub async fn open(url: &str) -> StoreResult<PgStore> {
        let options: PgConnectOptions = url.parse()?;
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations-postgres").run(&pool).await?;
        Ok(PgStore {
            pool,
            partitions: Mutex::default(),
        })
    }

    /// The pool (tests and tools).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Creates the monthly partitions the records need and that are not known to exist.
    async fn ensure_partitions(&self, rows: &[UsageRow]) -> StoreResult<()> {
        let mut wanted: Vec<i64> = rows.iter().map(|r| month_of(r.time_ms)).collect();
        wanted.sort_unstable();
        wanted.dedup();
        {
            let known = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
            wanted.retain(|m| !known.contains(m));
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(PARTITION_LOCK)
            .execute(&mut *tx)
            .await?;
        for month in &wanted {
            let exists: Option<String> = sqlx::query("SELECT CAST(to_regclass($1) AS TEXT)")
                .bind(partition_name(*month))
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
            if exists.is_some() {
                continue;
            }
            let ddl = format!(
                "CREATE TABLE IF NOT EXISTS {} PARTITION OF usage_records \
                 FOR VALUES FROM ({}) TO ({})",
                partition_name(*month),
                month_start_ms(*month),
                month_start_ms(month + 1)
            );
            sqlx::query(&ddl).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        self.partitions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(wanted);
        Ok(())
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

fn bind_filter<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    filter: &'q UsageFilter,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    query
        .bind(&filter.start_day)
        .bind(&filter.end_day)
        .bind(filter.user_id)
        .bind(filter.api_key_id)
}

fn grouped(rows: &[sqlx::postgres::PgRow]) -> StoreResult<Vec<(String, UsageTotals)>> {
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, totals_from(row, 1)?)))
        .collect()
}

crate::ui::ui_store!(PgStore);

#[async_trait]
impl Store for PgStore {
    fn ui(&self) -> &dyn crate::ui::UiStore {
        self
    }

    async fn create_user(&self, user: NewUser, now: i64) -> StoreResult<User> {
        let inserted = sqlx::query(&format!(
            "INSERT INTO users (username, password_hash, role, status, created_at, updated_at) \
             VALUES ($1, $2, $3, 'active', $4, $4) RETURNING {USER_COLUMNS}"
        ))
        .bind(&user.username)
        .bind(&user.password_hash)
        .bind(user.role.as_str())
        .bind(now)
        .fetch_one(&self.pool)
        .await;
        match inserted {
            Ok(row) => user_from(&row),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                "a user named `{}` already exists",
                user.username
            ))),
            Err(e) => Err(e.into()),
        }
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
        // The owner's row lock serialises this user's key creations (on every instance), so
        // the count below cannot race another creation.
        sqlx::query("SELECT id FROM users WHERE id = $1 FOR UPDATE")
            .bind(key.user_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
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
            "INSERT INTO api_keys (user_id, name, key_hash, key_prefix, status, \
             allowed_platforms, allowed_models, rate_limit, daily_limit, monthly_quota_nanos, \
             expires_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 'active', $5, $6, $7, $8, $9, $10, $11, $11) \
             RETURNING {KEY_COLUMNS}"
        ))
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
        self.ensure_partitions(rows).await?;
        let mut tx = self.pool.begin().await?;
        // Per key, from the rows actually inserted (a record id already stored is skipped).
        let mut counters = crate::sql::Counters::new();
        // The records this transaction inserted (replays are skipped by ON CONFLICT): only
        // they go into the dashboard's rollups and attempts.
        let mut inserted: std::collections::HashSet<String> = Default::default();
        for chunk in crate::sql::statement_chunks(rows, INSERT_CHUNK) {
            let mut insert = sqlx::QueryBuilder::<sqlx::Postgres>::new(format!(
                "INSERT INTO usage_records ({USAGE_COLUMNS}) "
            ));
            crate::sql::push_usage_values(&mut insert, chunk);
            insert.push(crate::sql::INSERTED);
            for row in insert.build().fetch_all(&mut *tx).await? {
                crate::sql::count_inserted(&mut counters, &row)?;
                inserted.insert(row.try_get::<String, _>(4)?);
            }
        }
        // Ascending key order (the BTreeMap's): every instance locks key rows in the same
        // order, so concurrent batches wait for each other instead of deadlocking.
        for (key, (tokens, cost, requests, last)) in counters {
            sqlx::query(
                "UPDATE api_keys SET used_tokens = used_tokens + $2, \
                 used_cost_nanos = used_cost_nanos + $3, request_count = request_count + $4, \
                 last_used_at = GREATEST(COALESCE(last_used_at, $5), $5) WHERE id = $1",
            )
            .bind(key)
            .bind(tokens)
            .bind(cost)
            .bind(requests)
            .bind(last)
            .execute(&mut *tx)
            .await?;
        }
        crate::ui::write_dashboard!(tx, rows.iter().filter(|r| inserted.contains(&r.record_id)));
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
        grouped(&rows)
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
        grouped(&rows)
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
        // From the per-day counts kept with every batch, not from the records.
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

    async fn key_spend_of(
        &self,
        key_id: i64,
        today: &str,
        month_start: &str,
    ) -> StoreResult<KeySpend> {
        let row = sqlx::query(crate::sql::KEY_SPEND_OF)
            .bind(key_id)
            .bind(today)
            .bind(month_start)
            .fetch_one(&self.pool)
            .await?;
        Ok(KeySpend {
            requests_today: row.try_get(0)?,
            cost_this_month: row.try_get(1)?,
        })
    }

    async fn restore_accounts(&self, users: &[User], keys: &[ApiKey]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        for u in users {
            crate::sql::restore_user(u).execute(&mut *tx).await?;
        }
        for k in keys {
            crate::sql::restore_key(k).execute(&mut *tx).await?;
        }
        // Identity columns continue after the highest id copied.
        for table in ["users", "api_keys"] {
            sqlx::query(&format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                 GREATEST((SELECT COALESCE(MAX(id), 0) FROM {table}), 1))"
            ))
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

    async fn credential_disables(&self) -> StoreResult<Vec<(String, String)>> {
        let rows =
            sqlx::query("SELECT credential, reason FROM credential_disables ORDER BY credential")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect()
    }

    async fn set_credential_disabled(
        &self,
        credential: &str,
        reason: Option<&str>,
        now: i64,
    ) -> StoreResult<()> {
        match reason {
            Some(reason) => {
                sqlx::query(
                    "INSERT INTO credential_disables (credential, reason, disabled_at) \
                     VALUES ($1, $2, $3) ON CONFLICT (credential) \
                     DO UPDATE SET reason = EXCLUDED.reason, disabled_at = EXCLUDED.disabled_at",
                )
                .bind(credential)
                .bind(reason)
                .bind(now)
                .execute(&self.pool)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM credential_disables WHERE credential = $1")
                    .bind(credential)
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }

    async fn prune_usage(&self, before_ms: i64) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(PARTITION_LOCK)
            .execute(&mut *tx)
            .await?;
        let parts = sqlx::query(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'usage_records' \
             AND c.relnamespace = p.relnamespace",
        )
        .fetch_all(&mut *tx)
        .await?;
        let mut removed = 0u64;
        let mut dropped = Vec::new();
        for part in parts {
            let name: String = part.try_get(0)?;
            let Some(month) = parse_partition(&name) else {
                continue;
            };
            if month_start_ms(month + 1) > before_ms {
                continue;
            }
            let count: i64 = sqlx::query(&format!("SELECT COUNT(*) FROM {name}"))
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
            sqlx::query(&format!("DROP TABLE {name}"))
                .execute(&mut *tx)
                .await?;
            removed += u64::try_from(count).unwrap_or(0);
            dropped.push(month);
        }
        tx.commit().await?;
        let mut known = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        for month in dropped {
            known.remove(&month);
        }
        Ok(removed)
    }
}

/// The month number of a partition named by [`partition_name`].
fn parse_partition(name: &str) -> Option<i64> {
    let rest = name.strip_prefix("usage_records_y")?;
    let (year, month) = rest.split_once('m')?;
    let year: i64 = year.parse().ok()?;
    let month: i64 = month.parse().ok()?;
    (1..=12).contains(&month).then_some(year * 12 + month - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_named_by_utc_month() {
        // 2026-12-31T23:59:59.999Z and the next millisecond.
        let end = 1_798_761_599_999;
        assert_eq!(partition_name(month_of(end)), "usage_records_y2026m12");
        assert_eq!(partition_name(month_of(end + 1)), "usage_records_y2027m01");
        assert_eq!(month_start_ms(month_of(end + 1)), end + 1);
        assert_eq!(
            parse_partition("usage_records_y2027m01"),
            Some(month_of(end + 1))
        );
        assert_eq!(parse_partition("usage_records_default"), None);
    }
}
