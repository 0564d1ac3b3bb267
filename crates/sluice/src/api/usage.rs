//! Usage queries: `GET /api/api-keys/:id/usage` and `GET /api/usage/summary|daily|models`.
//! Users see their own usage; admins see everyone's, optionally narrowed by `user_id` or
//! `api_key_id`. Ranges are `start` and `end` days (`YYYY-MM-DD`, inclusive, in the configured
//! time zone); the default is the last 30 days.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use chrono::NaiveDate;
use http::HeaderMap;
use serde_json::{Value, json};

use super::keys::owned_key;
use super::session::{Session, session};
use super::{ApiResult, store_error, success};
use crate::error::GatewayError;
use crate::gateway::AppState;
use crate::store::StoreResult;
use crate::store::{UsageFilter, UsageRow, UsageTotals, nanos_to_usd};

/// Days a range covers when `start` is not given.
const DEFAULT_DAYS: i64 = 30;

/// Sums as `/api` shows them.
pub fn totals_json(t: &UsageTotals) -> Value {
    json!({
        "requests": t.requests,
        "errors": t.errors,
        "input_tokens": t.input_tokens,
        "output_tokens": t.output_tokens,
        "cache_read_tokens": t.cache_read_tokens,
        "cache_write_tokens": t.cache_write_tokens,
        "reasoning_tokens": t.reasoning_tokens,
        "total_tokens": t.input_tokens.saturating_add(t.output_tokens),
        "cost": nanos_to_usd(t.cost_nanos),
        "audio_seconds": t.units.audio_seconds,
        "characters": t.units.characters,
        "images": t.units.images,
        "documents": t.units.documents,
        "search_units": t.units.search_units,
    })
}

/// One record as `/api` and `sluice usage export` show it.
pub fn record_json(r: &UsageRow) -> Value {
    json!({
        "request_id": r.request_id,
        "time": chrono::DateTime::from_timestamp_millis(r.time_ms)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "day": r.day,
        "endpoint": r.endpoint,
        "user_id": r.user_id,
        "api_key_id": r.api_key_id,
        "key": r.key_label,
        "provider": r.provider,
        "credential": r.credential,
        "platform": r.platform,
        "model_requested": r.model_requested,
        "model_served": r.model_served,
        "stream": r.stream,
        "status": r.status,
        "error": r.error,
        "input_tokens": r.input_tokens,
        "output_tokens": r.output_tokens,
        "cache_read_tokens": r.cache_read_tokens,
        "cache_write_tokens": r.cache_write_tokens,
        "reasoning_tokens": r.reasoning_tokens,
        "audio_seconds": r.units.audio_seconds,
        "characters": r.units.characters,
        "images": r.units.images,
        "documents": r.units.documents,
        "search_units": r.units.search_units,
        "cost": nanos_to_usd(r.cost_nanos),
        "estimated": r.estimated,
        "latency_ms": r.latency_ms,
        "ttft_ms": r.ttft_ms,
        "record_id": r.record_id,
    })
}

fn day_param(
    params: &HashMap<String, String>,
    field: &str,
) -> Result<Option<NaiveDate>, GatewayError> {
    params
        .get(field)
        .filter(|v| !v.is_empty())
        .map(|v| {
            NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| {
                GatewayError::invalid_field(field, format!("{field} must be a day like 2025-12-31"))
            })
        })
        .transpose()
}

fn id_param(params: &HashMap<String, String>, field: &str) -> Result<Option<i64>, GatewayError> {
    params
        .get(field)
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
                GatewayError::invalid_field(field, format!("{field} must be a positive number"))
            })
        })
        .transpose()
}

/// The filter of a request: its range and scope.
fn filter(
    app: &AppState,
    session: &Session,
    params: &HashMap<String, String>,
) -> Result<UsageFilter, GatewayError> {
    let accounts = &app.accounts;
    let today = accounts.calendar.date(accounts.now_ms());
    let end = day_param(params, "end")?.unwrap_or(today);
    let start = day_param(params, "start")?
        .unwrap_or_else(|| end - chrono::Duration::days(DEFAULT_DAYS - 1));
    if start > end {
        return Err(GatewayError::invalid_field(
            "start",
            "start must not be after end",
        ));
    }
    let (user_id, api_key_id) = if session.is_admin() {
        (
            id_param(params, "user_id")?,
            id_param(params, "api_key_id")?,
        )
    } else {
        (Some(session.user_id), id_param(params, "api_key_id")?)
    };
    Ok(UsageFilter {
        user_id,
        api_key_id,
        start_day: start.format("%Y-%m-%d").to_string(),
        end_day: end.format("%Y-%m-%d").to_string(),
    })
}

fn range_json(f: &UsageFilter) -> Value {
    json!({"start": f.start_day, "end": f.end_day})
}

/// `GET /api/usage/summary`: totals over the range.
pub async fn summary(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult {
    let session = session(&app, &headers).await?;
    let f = filter(&app, &session, &params)?;
    let totals = app
        .accounts
        .store
        .usage_totals(&f)
        .await
        .map_err(|e| store_error(e, "usage"))?;
    let mut data = totals_json(&totals);
    data["start"] = json!(f.start_day);
    data["end"] = json!(f.end_day);
    Ok(success("success", Some(data)))
}

fn grouped(rows: &[(String, UsageTotals)], label: &str) -> Value {
    Value::Array(
        rows.iter()
            .map(|(name, totals)| {
                let mut v = totals_json(totals);
                v[label] = json!(name);
                v
            })
            .collect(),
    )
}

/// `GET /api/usage/daily`: totals per day.
pub async fn daily(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult {
    let session = session(&app, &headers).await?;
    let f = filter(&app, &session, &params)?;
    let rows = app.accounts.store.usage_by_day(&f).await;
    grouped_reply(rows, "date")
}

/// `GET /api/usage/models`: totals per model (as served).
pub async fn models(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult {
    let session = session(&app, &headers).await?;
    let f = filter(&app, &session, &params)?;
    let rows = app.accounts.store.usage_by_model(&f).await;
    grouped_reply(rows, "model")
}

/// A grouped report in the envelope, each group's name under `label`.
fn grouped_reply(rows: StoreResult<Vec<(String, UsageTotals)>>, label: &str) -> ApiResult {
    let rows = rows.map_err(|e| store_error(e, "usage"))?;
    Ok(success("success", Some(grouped(&rows, label))))
}

/// `GET /api/api-keys/:id/usage`: one key's totals, per day, per model, and its latest
/// records (`limit`, default 20, at most 1000).
pub async fn key_usage(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(mut params): Query<HashMap<String, String>>,
) -> ApiResult {
    let session = session(&app, &headers).await?;
    let key = owned_key(&app, &session, &id).await?;
    let limit = match params.get("limit").filter(|v| !v.is_empty()) {
        None => 20,
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                GatewayError::invalid_field("limit", "limit must be a number from 1 to 1000")
            })?,
    };
    params.remove("user_id");
    let mut f = filter(&app, &session, &params)?;
    f.user_id = None;
    f.api_key_id = Some(key.id);
    let store = &app.accounts.store;
    let totals = store
        .usage_totals(&f)
        .await
        .map_err(|e| store_error(e, "usage"))?;
    let days = store
        .usage_by_day(&f)
        .await
        .map_err(|e| store_error(e, "usage"))?;
    let models = store
        .usage_by_model(&f)
        .await
        .map_err(|e| store_error(e, "usage"))?;
    let recent = store
        .usage_records(&f, limit)
        .await
        .map_err(|e| store_error(e, "usage"))?;
    let mut data = totals_json(&totals);
    data["api_key_id"] = json!(key.id);
    data["range"] = range_json(&f);
    data["daily"] = grouped(&days, "date");
    data["models"] = grouped(&models, "model");
    data["records"] = Value::Array(recent.iter().map(record_json).collect());
    Ok(success("success", Some(data)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn total_tokens_saturate_on_hostile_counts() {
        let t = UsageTotals {
            input_tokens: i64::MAX,
            output_tokens: 5,
            ..UsageTotals::default()
        };
        assert_eq!(totals_json(&t)["total_tokens"], json!(i64::MAX));
    }
}
