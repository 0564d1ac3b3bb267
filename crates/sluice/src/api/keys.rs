//! Seed 004's API keys: `GET/POST /api/api-keys`, `GET/PUT/DELETE /api/api-keys/:id`,
//! `PUT /api/api-keys/:id/toggle`. A user sees and changes only their own keys (an admin may
//! reach any key by id); others' keys are "not found".

use std::sync::Arc;

use axum::extract::{Path, State};
use bytes::Bytes;
use chrono::{NaiveDate, NaiveDateTime};
use http::HeaderMap;
use serde_json::{Map, Value, json};

use super::session::{Session, session};
use super::{ApiResult, iso, json_object, parse_id, store_error, success};
use crate::error::{GatewayError, Lang};
use crate::gateway::AppState;
use crate::store::{
    ApiKey, Ceilings, KeyUpdate, Nanos, NewApiKey, Status, nanos_to_usd, usd_to_nanos,
};

/// Largest `rate_limit` and `daily_limit` accepted.
const MAX_COUNT_LIMIT: i64 = 1_000_000_000;
/// Largest `monthly_quota` accepted (USD).
const MAX_QUOTA: f64 = 1e9;

/// A key as seed 004 shows it (never the key or its hash).
pub fn key_json(key: &ApiKey) -> Value {
    json!({
        "id": key.id,
        "name": key.name,
        "key_prefix": key.key_prefix,
        "status": key.status,
        "allowed_platforms": key.allowed_platforms,
        "allowed_models": key.allowed_models,
        "rate_limit": key.rate_limit,
        "daily_limit": key.daily_limit,
        "monthly_quota": nanos_to_usd(key.monthly_quota),
        "used_tokens": key.used_tokens,
        "used_cost": nanos_to_usd(key.used_cost),
        "request_count": key.request_count,
        "last_used_at": key.last_used_at.map(iso),
        "expires_at": key.expires_at.map(iso),
        "created_at": iso(key.created_at),
    })
}

/// The key `raw_id` if `session` may see it.
pub async fn owned_key(
    app: &AppState,
    session: &Session,
    raw_id: &str,
) -> Result<ApiKey, GatewayError> {
    let id = parse_id(raw_id, "API key")?;
    let key = app
        .accounts
        .store
        .key_by_id(id)
        .await
        .map_err(|e| store_error(e, &format!("API key {id}")))?;
    if key.user_id != session.user_id && !session.is_admin() {
        return Err(GatewayError::not_found(format!("API key {id} not found")));
    }
    Ok(key)
}

/// The validated fields of a create or update body.
#[derive(Debug, Default)]
struct Fields {
    update: KeyUpdate,
    /// Which fields the body set (for the update answer).
    given: Vec<&'static str>,
}

fn name_list(field: &'static str, value: &str) -> Result<String, GatewayError> {
    let mut names = Vec::new();
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(GatewayError::invalid_field(
                field,
                format!(
                    "{field} must be a comma-separated list of names; `{name}` contains spaces"
                ),
            ));
        }
        names.push(name);
    }
    Ok(names.join(","))
}

fn integer(field: &'static str, value: &Value) -> Result<i64, GatewayError> {
    value
        .as_i64()
        .filter(|n| (0..=MAX_COUNT_LIMIT).contains(n))
        .ok_or_else(|| {
            GatewayError::invalid_field(
                field,
                format!("{field} must be a whole number from 0 to {MAX_COUNT_LIMIT}"),
            )
        })
}

/// Parses `expires_at`: RFC 3339, or a local date-time / date in the configured time zone
/// (a bare date means the end of that day).
fn expiry(app: &AppState, value: &str) -> Result<i64, GatewayError> {
    let bad = || {
        GatewayError::invalid_field(
            "expires_at",
            "expires_at must be an ISO 8601 time like 2025-12-31T23:59:59Z",
        )
    };
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(value) {
        return Ok(t.timestamp_millis());
    }
    let calendar = &app.accounts.calendar;
    let local = |naive: NaiveDateTime| -> Option<i64> {
        let start = calendar.start_of(naive.date())?;
        let offset = naive - naive.date().and_hms_opt(0, 0, 0)?;
        Some(start + offset.num_milliseconds())
    };
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(value, format) {
            return local(naive).ok_or_else(bad);
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        let end = date.and_hms_milli_opt(23, 59, 59, 999).ok_or_else(bad)?;
        return local(end).ok_or_else(bad);
    }
    Err(bad())
}

fn parse_fields(
    app: &AppState,
    body: &Map<String, Value>,
    updating: bool,
) -> Result<Fields, GatewayError> {
    let mut f = Fields::default();
    for (field, value) in body {
        // `null` leaves a field as it is, except `expires_at`, where it means "never".
        if value.is_null() && field != "expires_at" {
            continue;
        }
        let text = |field: &'static str| -> Result<&str, GatewayError> {
            value.as_str().ok_or_else(|| {
                GatewayError::invalid_field(field, format!("{field} must be a string"))
            })
        };
        match field.as_str() {
            "name" => {
                let name = text("name")?.trim();
                if name.is_empty() || name.chars().count() > 100 {
                    return Err(GatewayError::invalid_field(
                        "name",
                        "name must be 1 to 100 characters",
                    ));
                }
                f.update.name = Some(name.to_string());
                f.given.push("name");
            }
            "allowed_platforms" => {
                let list = name_list("allowed_platforms", text("allowed_platforms")?)?;
                f.update.allowed_platforms =
                    Some(if list.is_empty() { "all".into() } else { list });
                f.given.push("allowed_platforms");
            }
            "allowed_models" => {
                f.update.allowed_models =
                    Some(name_list("allowed_models", text("allowed_models")?)?);
                f.given.push("allowed_models");
            }
            "rate_limit" => {
                f.update.rate_limit = Some(integer("rate_limit", value)?);
                f.given.push("rate_limit");
            }
            "daily_limit" => {
                f.update.daily_limit = Some(integer("daily_limit", value)?);
                f.given.push("daily_limit");
            }
            "monthly_quota" => {
                let quota = value
                    .as_f64()
                    .filter(|q| q.is_finite() && (0.0..=MAX_QUOTA).contains(q))
                    .ok_or_else(|| {
                        GatewayError::invalid_field(
                            "monthly_quota",
                            "monthly_quota must be a number of dollars, 0 or more (0 = unlimited)",
                        )
                    })?;
                f.update.monthly_quota = Some(usd_to_nanos(quota));
                f.given.push("monthly_quota");
            }
            "expires_at" => {
                let at = match value {
                    Value::Null => None,
                    Value::String(s) if s.trim().is_empty() => None,
                    Value::String(s) => Some(expiry(app, s.trim())?),
                    _ => {
                        return Err(GatewayError::invalid_field(
                            "expires_at",
                            "expires_at must be an ISO 8601 time like 2025-12-31T23:59:59Z, or null",
                        ));
                    }
                };
                if !updating && at.is_some_and(|at| at <= app.accounts.now_ms()) {
                    return Err(GatewayError::invalid_field(
                        "expires_at",
                        "expires_at must be in the future",
                    ));
                }
                f.update.expires_at = Some(at);
                f.given.push("expires_at");
            }
            "status" if updating => {
                let status = Status::parse(text("status")?).ok_or_else(|| {
                    GatewayError::invalid_field("status", "status must be `active` or `disabled`")
                })?;
                f.update.status = Some(status);
                f.given.push("status");
            }
            _ => {}
        }
    }
    Ok(f)
}

/// A key's three limits (0 = unlimited), as the owner's ceilings see them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub rate_limit: i64,
    pub daily_limit: i64,
    pub monthly_quota: Nanos,
}

impl Limits {
    pub fn of(key: &ApiKey) -> Self {
        Self {
            rate_limit: key.rate_limit,
            daily_limit: key.daily_limit,
            monthly_quota: key.monthly_quota,
        }
    }
}

/// Whether `value` (0 = unlimited) is above `ceiling`.
fn above(value: i64, ceiling: i64) -> bool {
    value == 0 || value > ceiling
}

/// Fits a key's limits under its owner's ceilings. A limit the caller set (`given`) above a
/// ceiling is refused with 403 naming the ceiling; one left to its default (or unchanged) is
/// lowered to the ceiling. `others` is the sum of the monthly quotas of the owner's other keys,
/// which share the monthly budget. Without ceilings nothing changes.
pub fn fit_ceilings(
    ceilings: &Ceilings,
    limits: &mut Limits,
    given: &[&str],
    others: Nanos,
) -> Result<(), GatewayError> {
    let shown = |field: &str, v: i64| -> String {
        match (field, v) {
            (_, 0) => "0 (unlimited)".into(),
            ("monthly_quota", v) => format!("${}", nanos_to_usd(v)),
            (_, v) => v.to_string(),
        }
    };
    let per_key = [
        (
            "rate_limit",
            &mut limits.rate_limit,
            ceilings.max_rate_limit,
            "max_rate_limit",
        ),
        (
            "daily_limit",
            &mut limits.daily_limit,
            ceilings.max_daily_limit,
            "max_daily_limit",
        ),
        (
            "monthly_quota",
            &mut limits.monthly_quota,
            ceilings.max_monthly_quota,
            "max_monthly_quota",
        ),
    ];
    for (field, value, ceiling, name) in per_key {
        let Some(ceiling) = ceiling.filter(|c| above(*value, *c)) else {
            continue;
        };
        if given.contains(&field) {
            return Err(GatewayError::above_ceiling(
                field,
                format!(
                    "{field} {} is above this account's ceiling {name} = {} set by an administrator",
                    shown(field, *value),
                    shown(field, ceiling)
                ),
            )
            .with_chinese(format!(
                "{field} {} 超过了管理员为该账户设置的上限 {name} = {}",
                shown(field, *value),
                shown(field, ceiling)
            )));
        }
        *value = ceiling;
    }
    if let Some(budget) = ceilings.monthly_budget {
        let room = budget - others;
        if above(limits.monthly_quota, room) {
            if given.contains(&"monthly_quota") || room <= 0 {
                return Err(GatewayError::above_ceiling(
                    "monthly_quota",
                    format!(
                        "monthly_quota {} does not fit this account's monthly_budget of ${} set by an administrator: its other keys' quotas take ${}, leaving ${}",
                        shown("monthly_quota", limits.monthly_quota),
                        nanos_to_usd(budget),
                        nanos_to_usd(others),
                        nanos_to_usd(room.max(0))
                    ),
                )
                .with_chinese(format!(
                    "monthly_quota {} 超出了管理员为该账户设置的月度预算 monthly_budget ${}：其他 Key 的配额已占用 ${}，剩余 ${}",
                    shown("monthly_quota", limits.monthly_quota),
                    nanos_to_usd(budget),
                    nanos_to_usd(others),
                    nanos_to_usd(room.max(0))
                )));
            }
            limits.monthly_quota = room;
        }
    }
    Ok(())
}

/// The owner's ceilings, and the monthly quotas of their keys other than `except`.
async fn ceilings_of(
    app: &AppState,
    user_id: i64,
    except: Option<i64>,
) -> Result<(Ceilings, Nanos), GatewayError> {
    let store = &app.accounts.store;
    let user = store
        .user_by_id(user_id)
        .await
        .map_err(|e| store_error(e, &format!("user {user_id}")))?;
    if user.ceilings.monthly_budget.is_none() {
        return Ok((user.ceilings, 0));
    }
    let keys = store
        .keys_of_user(user_id)
        .await
        .map_err(|e| store_error(e, "API keys"))?;
    let others = keys
        .iter()
        .filter(|k| Some(k.id) != except)
        .map(|k| k.monthly_quota)
        .sum();
    Ok((user.ceilings, others))
}

/// `GET /api/api-keys`: the caller's keys.
pub async fn list(State(app): State<Arc<AppState>>, headers: HeaderMap) -> ApiResult {
    let session = session(&app, &headers).await?;
    let keys = app
        .accounts
        .store
        .keys_of_user(session.user_id)
        .await
        .map_err(|e| store_error(e, "API keys"))?;
    Ok(success(
        "success",
        Some(Value::Array(keys.iter().map(key_json).collect())),
    ))
}

/// `POST /api/api-keys`: a new key, shown once.
pub async fn create(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let session = session(&app, &headers).await?;
    let body = json_object(&body)?;
    let (key, secret) = create_key(&app, &session, &body, Lang::for_seed004(&headers)).await?;
    Ok(success(
        "created",
        Some(json!({
            "id": key.id,
            "name": key.name,
            "key": secret,
            "key_prefix": key.key_prefix,
        })),
    ))
}

/// Creates a key for `session`'s user from a seed-004 body (validation, the user's ceilings,
/// the key cache): the key and its secret, which exists nowhere else. `/api/api-keys` and the
/// dashboard both create keys through this.
pub async fn create_key(
    app: &AppState,
    session: &Session,
    body: &Map<String, Value>,
    lang: Lang,
) -> Result<(ApiKey, String), GatewayError> {
    if !matches!(body.get("name"), Some(Value::String(_))) {
        return Err(GatewayError::invalid_field("name", "name is required"));
    }
    let Fields { update, given } = parse_fields(app, body, false)?;
    let accounts = &app.accounts;
    // One key write at a time: a budget shared by a user's keys is checked against them all.
    let _writing = accounts.key_writes.lock().await;
    let mut limits = Limits {
        rate_limit: update.rate_limit.unwrap_or(accounts.default_rate_limit),
        daily_limit: update.daily_limit.unwrap_or(0),
        monthly_quota: update.monthly_quota.unwrap_or(0),
    };
    let (ceilings, others) = ceilings_of(app, session.user_id, None).await?;
    fit_ceilings(&ceilings, &mut limits, &given, others).map_err(|e| e.localized(lang))?;
    let minted = crate::keys::mint();
    let key = accounts
        .store
        .create_key(
            NewApiKey {
                user_id: session.user_id,
                name: update.name.unwrap_or_default(),
                key_hash: minted.hash,
                key_prefix: minted.prefix.clone(),
                allowed_platforms: update.allowed_platforms.unwrap_or_else(|| "all".into()),
                allowed_models: update.allowed_models.unwrap_or_default(),
                rate_limit: limits.rate_limit,
                daily_limit: limits.daily_limit,
                monthly_quota: limits.monthly_quota,
                expires_at: update.expires_at.flatten(),
            },
            accounts.max_keys_per_user,
            accounts.now_ms(),
        )
        .await
        .map_err(|e| match e {
            crate::store::StoreError::Conflict(message) => GatewayError::invalid(message),
            other => store_error(other, "API key"),
        })?;
    accounts.keys.apply_key(&key);
    accounts.announce_keys().await;
    tracing::info!(
        key_id = key.id,
        user_id = session.user_id,
        "API key created"
    );
    Ok((key, minted.secret))
}

/// `GET /api/api-keys/:id`.
pub async fn get_one(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    let session = session(&app, &headers).await?;
    let key = owned_key(&app, &session, &id).await?;
    Ok(success("success", Some(key_json(&key))))
}

/// `PUT /api/api-keys/:id`: answers with the id and the fields it changed.
pub async fn update(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let session = session(&app, &headers).await?;
    let key = owned_key(&app, &session, &id).await?;
    let body = json_object(&body)?;
    let (key, given) = update_key(&app, key, &body, Lang::for_seed004(&headers)).await?;
    let full = key_json(&key);
    let mut data = Map::new();
    data.insert("id".into(), json!(key.id));
    for field in given {
        data.insert(field.into(), full[field].clone());
    }
    Ok(success("success", Some(Value::Object(data))))
}

/// Changes `key` (already checked to be the caller's to change) from a seed-004 body: the key
/// as it is now and the fields the body set.
pub async fn update_key(
    app: &AppState,
    key: ApiKey,
    body: &Map<String, Value>,
    lang: Lang,
) -> Result<(ApiKey, Vec<&'static str>), GatewayError> {
    let Fields { mut update, given } = parse_fields(app, body, true)?;
    let accounts = &app.accounts;
    let _writing = accounts.key_writes.lock().await;
    let mut limits = Limits {
        rate_limit: update.rate_limit.unwrap_or(key.rate_limit),
        daily_limit: update.daily_limit.unwrap_or(key.daily_limit),
        monthly_quota: update.monthly_quota.unwrap_or(key.monthly_quota),
    };
    let (ceilings, others) = ceilings_of(app, key.user_id, Some(key.id)).await?;
    fit_ceilings(&ceilings, &mut limits, &given, others).map_err(|e| e.localized(lang))?;
    if limits != Limits::of(&key) {
        update.rate_limit = Some(limits.rate_limit);
        update.daily_limit = Some(limits.daily_limit);
        update.monthly_quota = Some(limits.monthly_quota);
    }
    let key = accounts
        .store
        .update_key(key.id, update, accounts.now_ms())
        .await
        .map_err(|e| store_error(e, &format!("API key {}", key.id)))?;
    accounts.keys.apply_key(&key);
    accounts.announce_keys().await;
    Ok((key, given))
}

/// `DELETE /api/api-keys/:id`: the key stops working at once.
pub async fn delete(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    let session = session(&app, &headers).await?;
    let key = owned_key(&app, &session, &id).await?;
    delete_key(&app, &session, &key).await?;
    Ok(success("success", None))
}

/// Deletes `key` (already checked to be the caller's): it stops working at once.
pub async fn delete_key(
    app: &AppState,
    session: &Session,
    key: &ApiKey,
) -> Result<(), GatewayError> {
    let accounts = &app.accounts;
    accounts
        .store
        .delete_key(key.id, accounts.now_ms())
        .await
        .map_err(|e| store_error(e, &format!("API key {}", key.id)))?;
    accounts.keys.remove_key(key.id);
    accounts.announce_keys().await;
    tracing::info!(
        key_id = key.id,
        user_id = session.user_id,
        "API key deleted"
    );
    Ok(())
}

/// `PUT /api/api-keys/:id/toggle`: active ↔ disabled.
pub async fn toggle(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    let session = session(&app, &headers).await?;
    let key = owned_key(&app, &session, &id).await?;
    let key = toggle_key(&app, &key).await?;
    Ok(success(
        "success",
        Some(json!({"id": key.id, "status": key.status})),
    ))
}

/// Flips `key` (already checked to be the caller's) between active and disabled.
pub async fn toggle_key(app: &AppState, key: &ApiKey) -> Result<ApiKey, GatewayError> {
    let status = match key.status {
        Status::Active => Status::Disabled,
        Status::Disabled => Status::Active,
    };
    let accounts = &app.accounts;
    let key = accounts
        .store
        .update_key(
            key.id,
            KeyUpdate {
                status: Some(status),
                ..Default::default()
            },
            accounts.now_ms(),
        )
        .await
        .map_err(|e| store_error(e, &format!("API key {}", key.id)))?;
    accounts.keys.apply_key(&key);
    accounts.announce_keys().await;
    Ok(key)
}

/// Gives `key` (already checked to be the caller's) a new secret, same settings: the old one
/// stops working at once (here at once, on other instances at their next key refresh or bus
/// event). The new secret, like a created key's, exists only in the answer.
pub async fn rotate_key(app: &AppState, key: &ApiKey) -> Result<(ApiKey, String), GatewayError> {
    let minted = crate::keys::mint();
    let accounts = &app.accounts;
    let key = accounts
        .store
        .update_key(
            key.id,
            KeyUpdate {
                secret: Some((minted.hash, minted.prefix)),
                ..Default::default()
            },
            accounts.now_ms(),
        )
        .await
        .map_err(|e| store_error(e, &format!("API key {}", key.id)))?;
    accounts.keys.apply_key(&key);
    accounts.announce_keys().await;
    tracing::info!(key_id = key.id, "API key rotated");
    Ok((key, minted.secret))
}
