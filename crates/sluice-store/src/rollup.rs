//! What the dashboard reads instead of raw usage rows: per-minute and per-hour rollups with
//! fixed latency / TTFT histogram buckets (percentiles come from the histograms), every
//! upstream attempt of a request, and credential probes ("test now"), which are never usage.
//!
//! The rollups are written in the same transaction as the records they sum (from exactly the
//! rows inserted: a replayed batch adds nothing), so they always equal the records.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{Nanos, UsageRow};

/// Upper bounds (ms) of the first 15 histogram buckets; the 16th is everything above.
pub const BUCKET_BOUNDS_MS: [f64; 15] = [
    50.0, 100.0, 200.0, 300.0, 500.0, 750.0, 1000.0, 1500.0, 2000.0, 3000.0, 5000.0, 7500.0,
    10000.0, 20000.0, 40000.0,
];
/// Histogram buckets.
pub const BUCKETS: usize = 16;
/// Minute rollups are kept this long.
pub const MINUTE_RETENTION_MS: i64 = 26 * 3600 * 1000;

/// The bucket a duration falls in.
pub fn bucket_of(ms: f64) -> usize {
    BUCKET_BOUNDS_MS
        .iter()
        .position(|bound| ms <= *bound)
        .unwrap_or(BUCKETS - 1)
}

/// The `q` quantile (0..1) of a histogram, as the upper bound of the bucket it falls in (the
/// last bucket reports twice the last bound). `None` for an empty histogram.
pub fn quantile(hist: &[i64; BUCKETS], q: f64) -> Option<f64> {
    let total: i64 = hist.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = (q * total as f64).ceil().max(1.0) as i64;
    let mut seen = 0;
    for (i, n) in hist.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return Some(BUCKET_BOUNDS_MS.get(i).copied().unwrap_or(80_000.0));
        }
    }
    Some(80_000.0)
}

/// Sums over a set of requests, histograms included.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counts {
    pub requests: i64,
    /// Succeeded after at least one failed attempt.
    pub failover_saved: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub reasoning_tokens: i64,
    pub cost_nanos: Nanos,
    pub latency_sum_ms: f64,
    /// Requests with a time to first token.
    pub ttft_count: i64,
    pub latency: [i64; BUCKETS],
    pub ttft: [i64; BUCKETS],
}

impl Counts {
    pub fn add_row(&mut self, r: &UsageRow) {
        // Saturating: a hostile upstream can report counts near `i64::MAX`, and a sum that
        // overflows would panic in debug builds and wrap to a negative total in release.
        self.requests = self.requests.saturating_add(1);
        if r.status < 400 && r.attempts > 1 {
            self.failover_saved = self.failover_saved.saturating_add(1);
        }
        self.input_tokens = self.input_tokens.saturating_add(r.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(r.output_tokens);
        self.cache_read_tokens = self.cache_read_tokens.saturating_add(r.cache_read_tokens);
        self.cache_write_tokens = self.cache_write_tokens.saturating_add(r.cache_write_tokens);
        self.reasoning_tokens = self.reasoning_tokens.saturating_add(r.reasoning_tokens);
        self.cost_nanos = self.cost_nanos.saturating_add(r.cost_nanos);
        self.latency_sum_ms += r.latency_ms;
        self.latency[bucket_of(r.latency_ms)] += 1;
        if let Some(ttft) = r.ttft_ms {
            self.ttft_count += 1;
            self.ttft[bucket_of(ttft)] += 1;
        }
    }

    pub fn merge(&mut self, o: &Counts) {
        self.requests = self.requests.saturating_add(o.requests);
        self.failover_saved = self.failover_saved.saturating_add(o.failover_saved);
        self.input_tokens = self.input_tokens.saturating_add(o.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(o.output_tokens);
        self.cache_read_tokens = self.cache_read_tokens.saturating_add(o.cache_read_tokens);
        self.cache_write_tokens = self.cache_write_tokens.saturating_add(o.cache_write_tokens);
        self.reasoning_tokens = self.reasoning_tokens.saturating_add(o.reasoning_tokens);
        self.cost_nanos = self.cost_nanos.saturating_add(o.cost_nanos);
        self.latency_sum_ms += o.latency_sum_ms;
        self.ttft_count = self.ttft_count.saturating_add(o.ttft_count);
        for i in 0..BUCKETS {
            self.latency[i] = self.latency[i].saturating_add(o.latency[i]);
            self.ttft[i] = self.ttft[i].saturating_add(o.ttft[i]);
        }
    }

    pub fn tokens(&self) -> i64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

/// HTTP status class of a record: 2 (and 1/3), 4, 5; 0 when none was sent.
pub fn status_class(status: i64) -> i64 {
    match status {
        400..=499 => 4,
        500..=599 => 5,
        s if s > 0 => 2,
        _ => 0,
    }
}

/// The dimensions a rollup row is kept by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct RollupKey {
    pub bucket_ms: i64,
    pub key_label: String,
    pub user_id: i64,
    pub model: String,
    pub provider: String,
    pub credential: String,
    pub status_class: i64,
}

/// The rollup tables: per minute and per hour by every dimension, and per hour by model,
/// provider, credential and status class only (`HourTotal`: everyone's traffic, a few rows an
/// hour however many keys there are). Queries name `Minute` or `Hour`; [`query_sql`] reads an
/// hourly query from `HourTotal` whenever it neither groups by key or user nor filters by user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grain {
    Minute,
    Hour,
    HourTotal,
}

impl Grain {
    pub fn table(self) -> &'static str {
        match self {
            Grain::Minute => "usage_rollup_minute",
            Grain::Hour => "usage_rollup_hour",
            Grain::HourTotal => "usage_rollup_hour_total",
        }
    }

    pub fn width_ms(self) -> i64 {
        match self {
            Grain::Minute => 60_000,
            Grain::Hour | Grain::HourTotal => 3_600_000,
        }
    }

    /// Whether rows of this table are kept by key and user.
    fn keyed(self) -> bool {
        self != Grain::HourTotal
    }
}

/// Per rollup row, what a batch of records adds.
pub(crate) fn deltas<'a>(
    rows: impl Iterator<Item = &'a UsageRow>,
    grain: Grain,
) -> BTreeMap<RollupKey, Counts> {
    let width = grain.width_ms();
    let mut out: BTreeMap<RollupKey, Counts> = BTreeMap::new();
    for r in rows {
        let (key_label, user_id) = match grain.keyed() {
            true => (
                r.key_label.clone().unwrap_or_default(),
                r.user_id.unwrap_or(0),
            ),
            false => (String::new(), 0),
        };
        let key = RollupKey {
            bucket_ms: r.time_ms.div_euclid(width) * width,
            key_label,
            user_id,
            model: r
                .model_served
                .clone()
                .or_else(|| r.model_requested.clone())
                .unwrap_or_default(),
            provider: r.provider.clone().unwrap_or_default(),
            credential: r.credential.clone().unwrap_or_default(),
            status_class: status_class(r.status),
        };
        out.entry(key).or_default().add_row(r);
    }
    out
}

const DIMENSIONS: &str = "bucket_ms, key_label, user_id, model, provider, credential, status_class";
const SUMS: [&str; 10] = [
    "requests",
    "failover_saved",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_nanos",
    "latency_sum_ms",
    "ttft_count",
];

fn histogram_columns() -> Vec<String> {
    let mut cols = Vec::with_capacity(2 * BUCKETS);
    for prefix in ["lat", "ttft"] {
        for i in 0..BUCKETS {
            cols.push(format!("{prefix}_b{i:02}"));
        }
    }
    cols
}

/// `INSERT … ON CONFLICT DO UPDATE` adding one delta to a rollup table ($1..$7 dimensions,
/// then the sums, then the histograms). Built once per grain: every usage batch runs it.
pub(crate) fn upsert_sql(grain: Grain) -> &'static str {
    static MINUTE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static HOUR: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static HOUR_TOTAL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let cell = match grain {
        Grain::Minute => &MINUTE,
        Grain::Hour => &HOUR,
        Grain::HourTotal => &HOUR_TOTAL,
    };
    cell.get_or_init(|| build_upsert_sql(grain))
}

fn build_upsert_sql(grain: Grain) -> String {
    let mut value_cols: Vec<String> = SUMS.iter().map(|s| s.to_string()).collect();
    value_cols.extend(histogram_columns());
    let n = 7 + value_cols.len();
    let placeholders: Vec<String> = (1..=n).map(|i| format!("${i}")).collect();
    let table = grain.table();
    let updates: Vec<String> = value_cols
        .iter()
        .map(|c| format!("{c} = {table}.{c} + excluded.{c}"))
        .collect();
    format!(
        "INSERT INTO {table} ({DIMENSIONS}, {}) VALUES ({}) ON CONFLICT ({DIMENSIONS}) \
         DO UPDATE SET {}",
        value_cols.join(", "),
        placeholders.join(", "),
        updates.join(", ")
    )
}

/// What to group a rollup query by (besides time and status class).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    Key,
    User,
    Model,
    Provider,
    Credential,
}

impl Dimension {
    fn column(self) -> &'static str {
        match self {
            Dimension::Key => "key_label",
            Dimension::User => "CAST(user_id AS TEXT)",
            Dimension::Model => "model",
            Dimension::Provider => "provider",
            Dimension::Credential => "credential",
        }
    }
}

/// A rollup query: `[since, until)` (the bucket holding `since` included whole) in steps of `step_ms` (a multiple of the grain's width;
/// 0 = one step for the whole range), optionally grouped, optionally one user's.
#[derive(Debug, Clone)]
pub struct RollupQuery {
    pub grain: Grain,
    pub since_ms: i64,
    pub until_ms: i64,
    pub step_ms: i64,
    pub by: Option<Dimension>,
    pub user_id: Option<i64>,
}

/// One answer row of a rollup query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RollupPoint {
    /// Start of the step (unix ms).
    pub bucket_ms: i64,
    /// The group's value ("" without grouping).
    pub group: String,
    pub status_class: i64,
    pub counts: Counts,
}

/// The table a query reads: an hourly query that needs neither keys nor users reads the
/// totals.
fn source(q: &RollupQuery) -> Grain {
    let per_key = matches!(q.by, Some(Dimension::Key | Dimension::User)) || q.user_id.is_some();
    match q.grain {
        Grain::Hour if !per_key => Grain::HourTotal,
        grain => grain,
    }
}

/// The query text; binds `$1` since, `$2` until, `$3` step, `$4` user id. With `top`, only
/// the `top` groups with the most requests in the whole range are answered (the Overview's
/// top keys, models and credentials: the sums of every other group are never built).
pub(crate) fn query_sql(q: &RollupQuery, top: Option<usize>) -> String {
    let step = if q.step_ms > 0 {
        "(bucket_ms / $3) * $3"
    } else {
        "$1 + 0 * $3"
    };
    let group = q.by.map(Dimension::column).unwrap_or("''");
    let mut sums: Vec<String> = SUMS
        .iter()
        .map(|c| {
            if *c == "latency_sum_ms" {
                format!("COALESCE(SUM({c}), 0)")
            } else {
                format!("CAST(COALESCE(SUM({c}), 0) AS BIGINT)")
            }
        })
        .collect();
    sums.extend(
        histogram_columns()
            .into_iter()
            .map(|c| format!("CAST(COALESCE(SUM({c}), 0) AS BIGINT)")),
    );
    let table = source(q).table();
    let within = "bucket_ms >= $1 AND bucket_ms < $2 AND ($4 IS NULL OR user_id = $4)";
    let only = match (top, q.by) {
        (Some(n), Some(_)) => format!(
            " AND {group} IN (SELECT {group} FROM {table} WHERE {within} \
             GROUP BY {group} ORDER BY SUM(requests) DESC, {group} LIMIT {n})"
        ),
        _ => String::new(),
    };
    format!(
        "SELECT {step} AS b, {group} AS g, status_class, {} FROM {table} \
         WHERE {within}{only} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        sums.join(", "),
    )
}

/// Attempts per multi-row `INSERT INTO usage_attempts`: 10 columns × 99 rows stays under the
/// smallest bound-variable limit SQLite builds use (999).
pub const ATTEMPTS_PER_STATEMENT: usize = 99;

/// One upstream attempt of a request, as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptRow {
    pub provider: String,
    pub credential: String,
    pub model: String,
    pub status: i64,
    pub error: Option<String>,
    pub latency_ms: f64,
    /// The end of the cooldown window this attempt's failure opened (unix ms), if it did.
    pub cooldown_until_ms: Option<i64>,
}

/// A "test now" probe of one credential: never a usage record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeRow {
    pub id: String,
    pub time_ms: i64,
    /// Who asked for it.
    pub user_id: Option<i64>,
    pub provider: String,
    pub credential: String,
    pub model: String,
    pub status: i64,
    pub error: Option<String>,
    pub latency_ms: f64,
    pub ttft_ms: Option<f64>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn buckets_and_quantiles() {
        assert_eq!(bucket_of(0.0), 0);
        assert_eq!(bucket_of(50.0), 0);
        assert_eq!(bucket_of(50.1), 1);
        assert_eq!(bucket_of(999_999.0), 15);
        let mut h = [0; BUCKETS];
        assert_eq!(quantile(&h, 0.5), None);
        h[bucket_of(80.0)] = 90;
        h[bucket_of(2500.0)] = 10;
        assert_eq!(quantile(&h, 0.5), Some(100.0));
        assert_eq!(quantile(&h, 0.9), Some(100.0));
        assert_eq!(quantile(&h, 0.95), Some(3000.0));
    }

    #[test]
    fn upsert_adds_every_column() {
        let sql = upsert_sql(Grain::Hour);
        assert!(sql.contains("$49)"), "{sql}");
        assert!(sql.contains("ttft_b15 = usage_rollup_hour.ttft_b15 + excluded.ttft_b15"));
    }

    #[test]
    fn sums_of_hostile_counts_saturate() {
        let row = UsageRow {
            input_tokens: i64::MAX - 1,
            output_tokens: i64::MAX,
            cache_read_tokens: i64::MAX,
            cost_nanos: i64::MAX,
            ..UsageRow::default()
        };
        let mut c = Counts::default();
        c.add_row(&row);
        c.add_row(&row);
        assert_eq!(c.input_tokens, i64::MAX);
        assert_eq!(c.output_tokens, i64::MAX);
        assert_eq!(c.cache_read_tokens, i64::MAX);
        assert_eq!(c.cost_nanos, i64::MAX);
        assert_eq!(c.tokens(), i64::MAX);
        let mut merged = c.clone();
        merged.merge(&c);
        assert_eq!(merged.output_tokens, i64::MAX);
        assert_eq!(merged.requests, 4);
    }
}
