//! What the web dashboard (`sluice-web`) keeps in and reads from the store: its sign-in
//! sessions, the rollups and attempts written with every usage batch ([`write_dashboard!`]),
//! and credential probes. Both stores run the same SQL, so the implementation is written once
//! ([`ui_store!`]) and instantiated for each.

use async_trait::async_trait;

use crate::StoreResult;
use crate::rollup::{AttemptRow, ProbeRow, RollupPoint, RollupQuery};

/// A dashboard session as stored: never the cookie's id, only its SHA-256 (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiSession {
    pub id_hash: String,
    pub user_id: i64,
    /// The synchronizer token unsafe requests of this session must carry.
    pub csrf_token: String,
    /// Unix milliseconds.
    pub created_at: i64,
    pub last_seen_at: i64,
}

/// The request list's filters and page (newest first; keyset pagination: the page after the
/// row `before`).
#[derive(Debug, Clone, Default)]
pub struct RequestQuery {
    /// `[since_ms, until_ms)`.
    pub since_ms: i64,
    pub until_ms: i64,
    /// `key:<id>` / `config:<hash>`.
    pub key_label: Option<String>,
    /// Requested or served.
    pub model: Option<String>,
    pub provider: Option<String>,
    /// 2, 4 or 5.
    pub status_class: Option<i64>,
    pub stream: Option<bool>,
    /// Only requests with more than one upstream attempt.
    pub failover: bool,
    pub user_id: Option<i64>,
    /// The credential that answered.
    pub credential: Option<String>,
    /// Only requests whose time to first token was above this (ms).
    pub ttft_above_ms: Option<f64>,
    /// The last row of the previous page: (time_ms, request_id).
    pub before: Option<(i64, String)>,
    pub limit: i64,
}

/// Dashboard sessions.
#[async_trait]
pub trait UiStore: Send + Sync {
    /// Usage records for the request list (see [`RequestQuery`]).
    async fn requests(&self, q: &RequestQuery) -> StoreResult<Vec<crate::UsageRow>>;
    /// One record by request id and time.
    async fn request(&self, request_id: &str, time_ms: i64)
    -> StoreResult<Option<crate::UsageRow>>;
    async fn create_ui_session(&self, session: &UiSession) -> StoreResult<()>;
    async fn ui_session(&self, id_hash: &str) -> StoreResult<Option<UiSession>>;
    /// Records activity (the idle timeout counts from it).
    async fn touch_ui_session(&self, id_hash: &str, now: i64) -> StoreResult<()>;
    /// Sign-out.
    async fn delete_ui_session(&self, id_hash: &str) -> StoreResult<()>;
    /// Every session of a user (password change, disable, role change). How many went.
    async fn delete_ui_sessions_of(&self, user_id: i64) -> StoreResult<u64>;
    /// Sessions idle since before `idle_before` or created before `created_before`.
    async fn expire_ui_sessions(&self, idle_before: i64, created_before: i64) -> StoreResult<u64>;

    /// Sums from the rollup tables (never the raw records).
    async fn rollup(&self, q: &RollupQuery) -> StoreResult<Vec<RollupPoint>> {
        self.rollup_groups(q, None).await
    }
    /// As [`UiStore::rollup`], for only the `n` groups of `q.by` with the most requests in the
    /// range (all of `q` when it is not grouped).
    async fn rollup_top(&self, q: &RollupQuery, n: usize) -> StoreResult<Vec<RollupPoint>> {
        self.rollup_groups(q, Some(n)).await
    }
    /// Both of the above: `top` limits the groups.
    async fn rollup_groups(
        &self,
        q: &RollupQuery,
        top: Option<usize>,
    ) -> StoreResult<Vec<RollupPoint>>;
    /// The upstream attempts of one record, in order.
    async fn attempts_of(&self, request_id: &str, time_ms: i64) -> StoreResult<Vec<AttemptRow>>;
    /// Records a "test now" probe (never a usage record).
    async fn insert_probe(&self, probe: &ProbeRow) -> StoreResult<()>;
    /// A credential's latest probes, newest first.
    async fn probes_of(&self, credential: &str, limit: i64) -> StoreResult<Vec<ProbeRow>>;
}

/// Inside `insert_usage`'s transaction `$tx`: adds the records `$rows` (an iterator of
/// `&UsageRow`, exactly the ones inserted) to the minute and hour rollups and to their keys'
/// per-day counts (`key_daily`, what [`crate::Store::key_spend`] reads), stores their
/// attempts, and drops minute rollups past their retention.
macro_rules! write_dashboard {
    ($tx:ident, $rows:expr) => {{
        use $crate::rollup::{Grain, MINUTE_RETENTION_MS, deltas, upsert_sql};
        let inserted: Vec<&$crate::UsageRow> = $rows.collect();
        let mut newest = i64::MIN;
        for grain in [Grain::Minute, Grain::Hour, Grain::HourTotal] {
            let sql = upsert_sql(grain);
            for (k, c) in deltas(inserted.iter().copied(), grain) {
                newest = newest.max(k.bucket_ms);
                let mut q = sqlx::query(sql)
                    .bind(k.bucket_ms)
                    .bind(&k.key_label)
                    .bind(k.user_id)
                    .bind(&k.model)
                    .bind(&k.provider)
                    .bind(&k.credential)
                    .bind(k.status_class)
                    .bind(c.requests)
                    .bind(c.failover_saved)
                    .bind(c.input_tokens)
                    .bind(c.output_tokens)
                    .bind(c.cache_read_tokens)
                    .bind(c.cache_write_tokens)
                    .bind(c.reasoning_tokens)
                    .bind(c.cost_nanos)
                    .bind(c.latency_sum_ms)
                    .bind(c.ttft_count);
                for n in c.latency.iter().chain(c.ttft.iter()) {
                    q = q.bind(*n);
                }
                q.execute(&mut *$tx).await?;
            }
        }
        // Every attempt of the batch in a few multi-row statements, not one per attempt:
        // each statement is a round trip to SQLite's worker thread.
        let attempts: Vec<(&$crate::UsageRow, i64, &$crate::rollup::AttemptRow)> = inserted
            .iter()
            .flat_map(|r| {
                r.attempt_log
                    .iter()
                    .enumerate()
                    .map(move |(seq, a)| (*r, seq as i64, a))
            })
            .collect();
        for chunk in
            $crate::sql::statement_chunks(&attempts, $crate::rollup::ATTEMPTS_PER_STATEMENT)
        {
            let mut insert = sqlx::QueryBuilder::new(
                "INSERT INTO usage_attempts (request_id, time_ms, seq, provider, credential, \
                 model, status, error, latency_ms, cooldown_until_ms) ",
            );
            insert.push_values(chunk, |mut row, (r, seq, a)| {
                row.push_bind(r.request_id.as_str())
                    .push_bind(r.time_ms)
                    .push_bind(*seq)
                    .push_bind(a.provider.as_str())
                    .push_bind(a.credential.as_str())
                    .push_bind(a.model.as_str())
                    .push_bind(a.status)
                    .push_bind(a.error.as_deref())
                    .push_bind(a.latency_ms)
                    .push_bind(a.cooldown_until_ms);
            });
            insert.push(" ON CONFLICT DO NOTHING");
            insert.build().execute(&mut *$tx).await?;
        }
        // Per key and day: requests that count against the daily limit, and cost.
        let mut daily: std::collections::BTreeMap<(i64, &str), (i64, i64)> = Default::default();
        for r in &inserted {
            if let Some(key) = r.api_key_id {
                let e = daily.entry((key, r.day.as_str())).or_default();
                if r.error
                    .as_deref()
                    .is_none_or(|c| !$crate::REFUSED_CODES.contains(&c))
                {
                    e.0 += 1;
                }
                e.1 += r.cost_nanos;
            }
        }
        for ((key, day), (requests, cost)) in daily {
            sqlx::query(
                "INSERT INTO key_daily (api_key_id, day, requests, cost_nanos) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (api_key_id, day) DO UPDATE SET \
                 requests = key_daily.requests + excluded.requests, \
                 cost_nanos = key_daily.cost_nanos + excluded.cost_nanos",
            )
            .bind(key)
            .bind(day)
            .bind(requests)
            .bind(cost)
            .execute(&mut *$tx)
            .await?;
        }
        if newest > i64::MIN {
            sqlx::query("DELETE FROM usage_rollup_minute WHERE bucket_ms < $1")
                .bind(newest - MINUTE_RETENTION_MS)
                .execute(&mut *$tx)
                .await?;
        }
    }};
}
pub(crate) use write_dashboard;

/// Implements [`UiStore`] for a store type with a `pool` field of the given sqlx pool.
macro_rules! ui_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::ui::UiStore for $store {
            async fn create_ui_session(
                &self,
                s: &$crate::ui::UiSession,
            ) -> $crate::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO ui_sessions (id_hash, user_id, csrf_token, created_at, \
                     last_seen_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&s.id_hash)
                .bind(s.user_id)
                .bind(&s.csrf_token)
                .bind(s.created_at)
                .bind(s.last_seen_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn ui_session(
                &self,
                id_hash: &str,
            ) -> $crate::StoreResult<Option<$crate::ui::UiSession>> {
                use sqlx::Row as _;
                let row = sqlx::query(
                    "SELECT id_hash, user_id, csrf_token, created_at, last_seen_at \
                     FROM ui_sessions WHERE id_hash = $1",
                )
                .bind(id_hash)
                .fetch_optional(&self.pool)
                .await?;
                let Some(row) = row else { return Ok(None) };
                Ok(Some($crate::ui::UiSession {
                    id_hash: row.try_get(0)?,
                    user_id: row.try_get(1)?,
                    csrf_token: row.try_get(2)?,
                    created_at: row.try_get(3)?,
                    last_seen_at: row.try_get(4)?,
                }))
            }

            async fn touch_ui_session(&self, id_hash: &str, now: i64) -> $crate::StoreResult<()> {
                sqlx::query("UPDATE ui_sessions SET last_seen_at = $2 WHERE id_hash = $1")
                    .bind(id_hash)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn delete_ui_session(&self, id_hash: &str) -> $crate::StoreResult<()> {
                sqlx::query("DELETE FROM ui_sessions WHERE id_hash = $1")
                    .bind(id_hash)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn delete_ui_sessions_of(&self, user_id: i64) -> $crate::StoreResult<u64> {
                let done = sqlx::query("DELETE FROM ui_sessions WHERE user_id = $1")
                    .bind(user_id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }

            async fn expire_ui_sessions(
                &self,
                idle_before: i64,
                created_before: i64,
            ) -> $crate::StoreResult<u64> {
                let done = sqlx::query(
                    "DELETE FROM ui_sessions WHERE last_seen_at < $1 OR created_at < $2",
                )
                .bind(idle_before)
                .bind(created_before)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected())
            }

            async fn rollup_groups(
                &self,
                q: &$crate::rollup::RollupQuery,
                top: Option<usize>,
            ) -> $crate::StoreResult<Vec<$crate::rollup::RollupPoint>> {
                use sqlx::Row as _;
                let sql = $crate::rollup::query_sql(q, top);

                // The bucket holding `since` counts whole.
                let width = q.grain.width_ms();
                let rows = sqlx::query(&sql)
                    .bind(q.since_ms.div_euclid(width) * width)
                    .bind(q.until_ms)
                    .bind(q.step_ms.max(1))
                    .bind(q.user_id)
                    .fetch_all(&self.pool)
                    .await?;
                let mut out = Vec::with_capacity(rows.len());
                for row in rows {
                    let mut c = $crate::rollup::Counts {
                        requests: row.try_get(3)?,
                        failover_saved: row.try_get(4)?,
                        input_tokens: row.try_get(5)?,
                        output_tokens: row.try_get(6)?,
                        cache_read_tokens: row.try_get(7)?,
                        cache_write_tokens: row.try_get(8)?,
                        reasoning_tokens: row.try_get(9)?,
                        cost_nanos: row.try_get(10)?,
                        latency_sum_ms: row.try_get(11)?,
                        ttft_count: row.try_get(12)?,
                        ..Default::default()
                    };
                    for i in 0..$crate::rollup::BUCKETS {
                        c.latency[i] = row.try_get(13 + i)?;
                        c.ttft[i] = row.try_get(13 + $crate::rollup::BUCKETS + i)?;
                    }
                    out.push($crate::rollup::RollupPoint {
                        bucket_ms: row.try_get(0)?,
                        group: row.try_get(1)?,
                        status_class: row.try_get(2)?,
                        counts: c,
                    });
                }
                Ok(out)
            }

            async fn requests(
                &self,
                q: &$crate::ui::RequestQuery,
            ) -> $crate::StoreResult<Vec<$crate::UsageRow>> {
                let (before_ms, before_id) = q
                    .before
                    .clone()
                    .unwrap_or((i64::MAX, String::new()));
                let sql = format!(
                    "SELECT {} FROM usage_records WHERE time_ms >= $1 AND time_ms < $2 \
                     AND ($3 IS NULL OR key_label = $3) \
                     AND ($4 IS NULL OR model_requested = $4 OR model_served = $4) \
                     AND ($5 IS NULL OR provider = $5) \
                     AND ($6 IS NULL OR (CASE WHEN status >= 500 THEN 5 WHEN status >= 400 THEN 4 ELSE 2 END) = $6) \
                     AND ($7 IS NULL OR stream = $7) \
                     AND ($8 = 0 OR attempts > 1) \
                     AND (time_ms < $9 OR (time_ms = $9 AND request_id > $10)) \
                     AND ($12 IS NULL OR user_id = $12) \
                     AND ($13 IS NULL OR credential = $13) \
                     AND ($14 IS NULL OR ttft_ms > $14) \
                     ORDER BY time_ms DESC, request_id LIMIT $11",
                    $crate::sqlite::USAGE_COLUMNS
                );
                let rows = sqlx::query(&sql)
                    .bind(q.since_ms)
                    .bind(q.until_ms)
                    .bind(q.key_label.as_deref())
                    .bind(q.model.as_deref())
                    .bind(q.provider.as_deref())
                    .bind(q.status_class)
                    .bind(q.stream)
                    .bind(i64::from(q.failover))
                    .bind(before_ms)
                    .bind(before_id)
                    .bind(q.limit.clamp(1, 10_000))
                    .bind(q.user_id)
                    .bind(q.credential.as_deref())
                    .bind(q.ttft_above_ms)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(usage_from).collect()
            }

            async fn request(
                &self,
                request_id: &str,
                time_ms: i64,
            ) -> $crate::StoreResult<Option<$crate::UsageRow>> {
                let sql = format!(
                    "SELECT {} FROM usage_records WHERE request_id = $1 AND time_ms = $2 LIMIT 1",
                    $crate::sqlite::USAGE_COLUMNS
                );
                let row = sqlx::query(&sql)
                    .bind(request_id)
                    .bind(time_ms)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(usage_from).transpose()
            }

            async fn attempts_of(
                &self,
                request_id: &str,
                time_ms: i64,
            ) -> $crate::StoreResult<Vec<$crate::rollup::AttemptRow>> {
                use sqlx::Row as _;
                let rows = sqlx::query(
                    "SELECT provider, credential, model, status, error, latency_ms, \
                     cooldown_until_ms FROM usage_attempts WHERE request_id = $1 AND time_ms = $2 \
                     ORDER BY seq",
                )
                .bind(request_id)
                .bind(time_ms)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok($crate::rollup::AttemptRow {
                            provider: row.try_get(0)?,
                            credential: row.try_get(1)?,
                            model: row.try_get(2)?,
                            status: row.try_get(3)?,
                            error: row.try_get(4)?,
                            latency_ms: row.try_get(5)?,
                            cooldown_until_ms: row.try_get(6)?,
                        })
                    })
                    .collect()
            }

            async fn insert_probe(
                &self,
                p: &$crate::rollup::ProbeRow,
            ) -> $crate::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO credential_probes (id, time_ms, user_id, provider, credential, \
                     model, status, error, latency_ms, ttft_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(&p.id)
                .bind(p.time_ms)
                .bind(p.user_id)
                .bind(&p.provider)
                .bind(&p.credential)
                .bind(&p.model)
                .bind(p.status)
                .bind(p.error.as_deref())
                .bind(p.latency_ms)
                .bind(p.ttft_ms)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn probes_of(
                &self,
                credential: &str,
                limit: i64,
            ) -> $crate::StoreResult<Vec<$crate::rollup::ProbeRow>> {
                use sqlx::Row as _;
                let rows = sqlx::query(
                    "SELECT id, time_ms, user_id, provider, credential, model, status, error, \
                     latency_ms, ttft_ms FROM credential_probes WHERE credential = $1 \
                     ORDER BY time_ms DESC LIMIT $2",
                )
                .bind(credential)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok($crate::rollup::ProbeRow {
                            id: row.try_get(0)?,
                            time_ms: row.try_get(1)?,
                            user_id: row.try_get(2)?,
                            provider: row.try_get(3)?,
                            credential: row.try_get(4)?,
                            model: row.try_get(5)?,
                            status: row.try_get(6)?,
                            error: row.try_get(7)?,
                            latency_ms: row.try_get(8)?,
                            ttft_ms: row.try_get(9)?,
                        })
                    })
                    .collect()
            }
        }
    };
}
pub(crate) use ui_store;
