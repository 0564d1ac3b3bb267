//! SQL text and bindings both stores share (the portable subset: `$n` parameters, `RETURNING`,
//! `ON CONFLICT`), generic over the sqlx database.

use sqlx::{Database, Encode, QueryBuilder, Type};

use crate::{ApiKey, UsageRow, User, UserUpdate};

/// `UPDATE users …` for [`update_user`], answering `columns`.
pub(crate) fn update_user_sql(columns: &str) -> String {
    format!(
        "UPDATE users SET password_hash = COALESCE($2, password_hash), \
         role = COALESCE($3, role), status = COALESCE($4, status), updated_at = $5, \
         max_rate_limit = CASE WHEN $6 THEN $7 ELSE max_rate_limit END, \
         max_daily_limit = CASE WHEN $6 THEN $8 ELSE max_daily_limit END, \
         max_monthly_quota_nanos = CASE WHEN $6 THEN $9 ELSE max_monthly_quota_nanos END, \
         monthly_budget_nanos = CASE WHEN $6 THEN $10 ELSE monthly_budget_nanos END \
         WHERE id = $1 RETURNING {columns}"
    )
}

/// A user's changes (`sql` from [`update_user_sql`]); ceilings change only when given.
pub(crate) fn update_user<'q, DB>(
    sql: &'q str,
    id: i64,
    u: &'q UserUpdate,
    now: i64,
) -> sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>
where
    DB: Database,
    i64: Encode<'q, DB> + Type<DB>,
    bool: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB> + Type<DB>,
    Option<&'q str>: Encode<'q, DB> + Type<DB>,
{
    let c = u.ceilings.unwrap_or_default();
    sqlx::query::<DB>(sql)
        .bind(id)
        .bind(u.password_hash.as_deref())
        .bind(u.role.map(crate::Role::as_str))
        .bind(u.status.map(crate::Status::as_str))
        .bind(now)
        .bind(u.ceilings.is_some())
        .bind(c.max_rate_limit)
        .bind(c.max_daily_limit)
        .bind(c.max_monthly_quota)
        .bind(c.monthly_budget)
}

/// A user copied from another store, id and ceilings kept.
pub(crate) fn restore_user<'q, DB>(
    u: &'q User,
) -> sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>
where
    DB: Database,
    i64: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB> + Type<DB>,
    &'q str: Encode<'q, DB> + Type<DB>,
{
    sqlx::query::<DB>(
        "INSERT INTO users (id, username, password_hash, role, status, created_at, updated_at, \
         max_rate_limit, max_daily_limit, max_monthly_quota_nanos, monthly_budget_nanos) \
         VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING",
    )
    .bind(u.id)
    .bind(u.username.as_str())
    .bind(u.password_hash.as_str())
    .bind(u.role.as_str())
    .bind(u.status.as_str())
    .bind(u.created_at)
    .bind(u.ceilings.max_rate_limit)
    .bind(u.ceilings.max_daily_limit)
    .bind(u.ceilings.max_monthly_quota)
    .bind(u.ceilings.monthly_budget)
}

/// Records after a (time, request id) cursor, oldest first; `$1` time, `$2` id, `$3` limit.
pub(crate) const USAGE_AFTER: &str = "SELECT request_id, time_ms, day, endpoint, user_id, \
    api_key_id, key_label, provider, credential, platform, model_requested, model_served, stream, \
    status, error, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, \
    reasoning_tokens, cost_nanos, estimated, latency_ms, ttft_ms, record_id, attempts, \
    upstream_dialect, audio_seconds, characters, images, documents, search_units \
    FROM usage_records \
    WHERE time_ms > $1 OR (time_ms = $1 AND request_id > $2) \
    ORDER BY time_ms, request_id LIMIT $3";

/// A key copied from another store, id kept, counters zero (the copied records add up to them).
pub(crate) fn restore_key<'q, DB>(
    k: &'q ApiKey,
) -> sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>
where
    DB: Database,
    i64: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB> + Type<DB>,
    &'q str: Encode<'q, DB> + Type<DB>,
{
    sqlx::query::<DB>(
        "INSERT INTO api_keys (id, user_id, name, key_hash, key_prefix, status, \
         allowed_platforms, allowed_models, rate_limit, daily_limit, monthly_quota_nanos, \
         expires_at, created_at, updated_at, deleted_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(k.id)
    .bind(k.user_id)
    .bind(k.name.as_str())
    .bind(k.key_hash.as_str())
    .bind(k.key_prefix.as_str())
    .bind(k.status.as_str())
    .bind(k.allowed_platforms.as_str())
    .bind(k.allowed_models.as_str())
    .bind(k.rate_limit)
    .bind(k.daily_limit)
    .bind(k.monthly_quota)
    .bind(k.expires_at)
    .bind(k.created_at)
    .bind(k.updated_at)
    .bind(k.deleted_at)
}

/// `VALUES (…), (…)` of a multi-row usage insert, in the column order of `USAGE_COLUMNS`.
/// `rows` in chunks for multi-row statements of at most `max` rows, each chunk's length `max`
/// or a power of two: the SQL text depends on the row count, and every distinct text is one
/// more statement each pooled connection must prepare (SQLite: ~180,000 instructions for a
/// 31-row insert), so a batch of any size uses only a handful of shapes, all cached.
pub(crate) fn statement_chunks<T>(rows: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    let max = max.max(1);
    let mut rest = rows;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let take = if rest.len() >= max {
            max
        } else {
            1 << rest.len().ilog2()
        };
        let (chunk, tail) = rest.split_at(take);
        rest = tail;
        Some(chunk)
    })
}

pub(crate) fn push_usage_values<'q, DB>(insert: &mut QueryBuilder<'q, DB>, rows: &'q [UsageRow])
where
    DB: Database,
    i64: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB> + Type<DB>,
    &'q str: Encode<'q, DB> + Type<DB>,
    Option<&'q str>: Encode<'q, DB> + Type<DB>,
    bool: Encode<'q, DB> + Type<DB>,
    f64: Encode<'q, DB> + Type<DB>,
    Option<f64>: Encode<'q, DB> + Type<DB>,
{
    insert.push_values(rows, |mut row, r| {
        row.push_bind(r.request_id.as_str())
            .push_bind(r.time_ms)
            .push_bind(r.day.as_str())
            .push_bind(r.endpoint.as_str())
            .push_bind(r.user_id)
            .push_bind(r.api_key_id)
            .push_bind(r.key_label.as_deref())
            .push_bind(r.provider.as_deref())
            .push_bind(r.credential.as_deref())
            .push_bind(r.platform.as_deref())
            .push_bind(r.model_requested.as_deref())
            .push_bind(r.model_served.as_deref())
            .push_bind(r.stream)
            .push_bind(r.status)
            .push_bind(r.error.as_deref())
            .push_bind(r.input_tokens)
            .push_bind(r.output_tokens)
            .push_bind(r.cache_read_tokens)
            .push_bind(r.cache_write_tokens)
            .push_bind(r.reasoning_tokens)
            .push_bind(r.cost_nanos)
            .push_bind(r.estimated)
            .push_bind(r.latency_ms)
            .push_bind(r.ttft_ms)
            .push_bind(r.record_id.as_str())
            .push_bind(r.attempts)
            .push_bind(r.upstream_dialect.as_deref())
            .push_bind(r.units.audio_seconds)
            .push_bind(r.units.characters)
            .push_bind(r.units.images)
            .push_bind(r.units.documents)
            .push_bind(r.units.search_units);
    });
}

/// Per key, from the records a batch actually inserted: (tokens, cost, requests, last used).
pub(crate) type Counters = std::collections::BTreeMap<i64, (i64, crate::Nanos, i64, i64)>;

/// The `RETURNING` clause of a usage insert that skips records already stored; each returned
/// row goes to [`count_inserted`].
/// `Store::key_spend` for both stores: `$1` today, `$2` the month's first day; per key the
/// requests counted today and the cost since the month began, from `key_daily`.
pub(crate) const KEY_SPEND: &str = "SELECT api_key_id, \
     CAST(COALESCE(SUM(CASE WHEN day = $1 THEN requests ELSE 0 END), 0) AS BIGINT), \
     CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT) FROM key_daily WHERE day >= $2 \
     GROUP BY api_key_id";

/// `Store::key_spend_of`: `$1` the key, `$2` today, `$3` the month's first day.
pub(crate) const KEY_SPEND_OF: &str = "SELECT \
     CAST(COALESCE(SUM(CASE WHEN day = $2 THEN requests ELSE 0 END), 0) AS BIGINT), \
     CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT) FROM key_daily \
     WHERE api_key_id = $1 AND day >= $3";

pub(crate) const INSERTED: &str = " ON CONFLICT DO NOTHING \
    RETURNING api_key_id, input_tokens + output_tokens, cost_nanos, time_ms, record_id";

/// Adds one inserted record (a row of [`INSERTED`]) to its key's counters.
pub(crate) fn count_inserted<R>(counters: &mut Counters, row: &R) -> Result<(), sqlx::Error>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + Type<R::Database>,
    Option<i64>: for<'r> sqlx::Decode<'r, R::Database> + Type<R::Database>,
{
    let Some(key) = row.try_get::<Option<i64>, _>(0)? else {
        return Ok(());
    };
    let c = counters.entry(key).or_default();
    c.0 += row.try_get::<i64, _>(1)?;
    c.1 += row.try_get::<i64, _>(2)?;
    c.2 += 1;
    c.3 = c.3.max(row.try_get::<i64, _>(3)?);
    Ok(())
}

#[cfg(test)]
mod chunk_tests {
    use super::statement_chunks;

    #[test]
    fn chunks_cover_every_row_in_few_shapes() {
        let rows: Vec<u32> = (0..100).collect();
        let sizes: Vec<usize> = statement_chunks(&rows, 31).map(<[u32]>::len).collect();
        assert_eq!(sizes, vec![31, 31, 31, 4, 2, 1]);
        let again: Vec<u32> = statement_chunks(&rows, 31).flatten().copied().collect();
        assert_eq!(again, rows);
        let mut shapes = std::collections::BTreeSet::new();
        for n in 0..=500 {
            let rows: Vec<u32> = (0..n).collect();
            shapes.extend(statement_chunks(&rows, 31).map(<[u32]>::len));
        }
        assert_eq!(
            shapes.into_iter().collect::<Vec<_>>(),
            vec![1, 2, 4, 8, 16, 31]
        );
        assert_eq!(statement_chunks::<u32>(&[], 31).count(), 0);
    }
}
