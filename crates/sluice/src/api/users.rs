//! Users, for admins: `GET/POST /api/users`, `PUT /api/users/:id` (status, role, password,
//! ceilings on the user's keys), `GET /api/users/:id/api-keys`.

use std::sync::Arc;

use axum::extract::{Path, State};
use bytes::Bytes;
use http::HeaderMap;
use serde_json::Value;

use super::keys::{Limits, fit_ceilings, key_json};
use super::session::{admin, user_json};
use super::{ApiResult, json_object, parse_id, store_error, success};
use crate::accounts::{check_password, check_username, hash_password};
use crate::error::GatewayError;
use crate::gateway::AppState;
use crate::store::{Ceilings, KeyUpdate, NewUser, Role, Status, UserUpdate, usd_to_nanos};

/// Largest count ceiling accepted (as `rate_limit` / `daily_limit`).
const MAX_COUNT: i64 = 1_000_000_000;
/// Largest money ceiling accepted (USD).
const MAX_USD: f64 = 1e9;

/// The ceilings a `PUT /api/users/:id` body sets on top of `current`: a number sets one,
/// `null` removes it, an absent field leaves it. `None` when the body names none.
fn ceilings_field(
    body: &serde_json::Map<String, Value>,
    current: Ceilings,
) -> Result<Option<Ceilings>, GatewayError> {
    let mut c = current;
    let mut given = false;
    for field in ["max_rate_limit", "max_daily_limit"] {
        let Some(value) = body.get(field) else {
            continue;
        };
        given = true;
        let parsed = match value {
            Value::Null => None,
            v => Some(v.as_i64().filter(|n| (1..=MAX_COUNT).contains(n)).ok_or_else(|| {
                GatewayError::invalid_field(
                    field,
                    format!("{field} must be a whole number from 1 to {MAX_COUNT}, or null (no ceiling)"),
                )
            })?),
        };
        *if field == "max_rate_limit" {
            &mut c.max_rate_limit
        } else {
            &mut c.max_daily_limit
        } = parsed;
    }
    for field in ["max_monthly_quota", "monthly_budget"] {
        let Some(value) = body.get(field) else {
            continue;
        };
        given = true;
        let parsed = match value {
            Value::Null => None,
            v => Some(
                v.as_f64()
                    .filter(|usd| usd.is_finite() && *usd > 0.0 && *usd <= MAX_USD)
                    .map(usd_to_nanos)
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        GatewayError::invalid_field(
                            field,
                            format!(
                                "{field} must be a number of dollars above 0, or null (no ceiling)"
                            ),
                        )
                    })?,
            ),
        };
        *if field == "max_monthly_quota" {
            &mut c.max_monthly_quota
        } else {
            &mut c.monthly_budget
        } = parsed;
    }
    Ok(given.then_some(c))
}

fn role_field(value: Option<&Value>) -> Result<Option<Role>, GatewayError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Role::parse(s)
            .map(Some)
            .ok_or_else(|| GatewayError::invalid_field("role", "role must be `admin` or `user`")),
        Some(_) => Err(GatewayError::invalid_field(
            "role",
            "role must be `admin` or `user`",
        )),
    }
}

async fn password_field(value: Option<&Value>) -> Result<Option<String>, GatewayError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(p)) => {
            check_password(p).map_err(|e| GatewayError::invalid_field("password", e))?;
            let password = p.clone();
            let hash = tokio::task::spawn_blocking(move || hash_password(&password))
                .await
                .map_err(|e| GatewayError::internal(format!("password hashing failed: {e}")))?
                .map_err(|e| GatewayError::internal(e.to_string()))?;
            Ok(Some(hash))
        }
        Some(_) => Err(GatewayError::invalid_field(
            "password",
            "password must be a string",
        )),
    }
}

/// `GET /api/users`.
pub async fn list(State(app): State<Arc<AppState>>, headers: HeaderMap) -> ApiResult {
    admin(&app, &headers).await?;
    let users = app
        .accounts
        .store
        .list_users()
        .await
        .map_err(|e| store_error(e, "users"))?;
    Ok(success(
        "success",
        Some(Value::Array(users.iter().map(user_json).collect())),
    ))
}

/// `POST /api/users` `{"username", "password", "role"?}`.
pub async fn create(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    admin(&app, &headers).await?;
    let body = json_object(&body)?;
    let user = create_user(&app, &body).await?;
    Ok(success("created", Some(user_json(&user))))
}

/// Creates a user from a `POST /api/users` body; `/api/users` and the dashboard's Users page
/// both go through this.
pub async fn create_user(
    app: &AppState,
    body: &serde_json::Map<String, Value>,
) -> Result<crate::store::User, GatewayError> {
    let username = match body.get("username") {
        Some(Value::String(u)) => u.trim().to_string(),
        _ => {
            return Err(GatewayError::invalid_field(
                "username",
                "username is required",
            ));
        }
    };
    check_username(&username).map_err(|e| GatewayError::invalid_field("username", e))?;
    let Some(password_hash) = password_field(body.get("password")).await? else {
        return Err(GatewayError::invalid_field(
            "password",
            "password is required",
        ));
    };
    let role = role_field(body.get("role"))?.unwrap_or(Role::User);
    let accounts = &app.accounts;
    let user = accounts
        .store
        .create_user(
            NewUser {
                username,
                password_hash,
                role,
            },
            accounts.now_ms(),
        )
        .await
        .map_err(|e| store_error(e, "user"))?;
    tracing::info!(user_id = user.id, role = user.role.as_str(), "user created");
    Ok(user)
}

/// `PUT /api/users/:id` `{"status"?, "role"?, "password"?}`.
pub async fn update(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let session = admin(&app, &headers).await?;
    let id = parse_id(&id, "user")?;
    let body = json_object(&body)?;
    let user = update_user(&app, &session, id, &body).await?;
    Ok(success("success", Some(user_json(&user))))
}

/// Applies a `PUT /api/users/:id` body for the admin `session` (status, role, password,
/// ceilings — lowering the user's keys to fit —; a new password ends the user's dashboard
/// sessions). `/api/users` and the dashboard's Users page both go through this.
pub async fn update_user(
    app: &AppState,
    session: &crate::api::session::Session,
    id: i64,
    body: &serde_json::Map<String, Value>,
) -> Result<crate::store::User, GatewayError> {
    let status = match body.get("status") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(Status::parse(s).ok_or_else(|| {
            GatewayError::invalid_field("status", "status must be `active` or `disabled`")
        })?),
        Some(_) => {
            return Err(GatewayError::invalid_field(
                "status",
                "status must be `active` or `disabled`",
            ));
        }
    };
    let role = role_field(body.get("role"))?;
    if id == session.user_id && (status == Some(Status::Disabled) || role == Some(Role::User)) {
        return Err(GatewayError::invalid(
            "an admin cannot disable or demote themselves; ask another admin",
        ));
    }
    let password_hash = password_field(body.get("password")).await?;
    let password_changed = password_hash.is_some();
    let accounts = &app.accounts;
    let _writing = accounts.key_writes.lock().await;
    let current = accounts
        .store
        .user_by_id(id)
        .await
        .map_err(|e| store_error(e, &format!("user {id}")))?;
    let ceilings = ceilings_field(body, current.ceilings)?;
    let lowered = match &ceilings {
        Some(c) => lower_keys(app, id, c).await?,
        None => Vec::new(),
    };
    let user = accounts
        .store
        .update_user(
            id,
            UserUpdate {
                password_hash,
                role,
                status,
                ceilings,
            },
            accounts.now_ms(),
        )
        .await
        .map_err(|e| store_error(e, &format!("user {id}")))?;
    for (key_id, limits) in lowered {
        let key = accounts
            .store
            .update_key(
                key_id,
                KeyUpdate {
                    rate_limit: Some(limits.rate_limit),
                    daily_limit: Some(limits.daily_limit),
                    monthly_quota: Some(limits.monthly_quota),
                    ..Default::default()
                },
                accounts.now_ms(),
            )
            .await
            .map_err(|e| store_error(e, &format!("API key {key_id}")))?;
        accounts.keys.apply_key(&key);
    }
    accounts.keys.apply_user(&user);
    accounts.announce_keys().await;
    if password_changed {
        // A new password ends every dashboard session of the user.
        accounts
            .store
            .ui()
            .delete_ui_sessions_of(user.id)
            .await
            .map_err(|e| store_error(e, &format!("user {id}")))?;
    }
    Ok(user)
}

/// The user's keys whose limits new ceilings lower, with their lowered limits. A monthly budget
/// below what the keys' quotas (after the per-key ceilings) add up to is refused: the admin
/// lowers those quotas first, or sets `max_monthly_quota`.
async fn lower_keys(
    app: &AppState,
    user_id: i64,
    ceilings: &Ceilings,
) -> Result<Vec<(i64, Limits)>, GatewayError> {
    let keys = app
        .accounts
        .store
        .keys_of_user(user_id)
        .await
        .map_err(|e| store_error(e, "API keys"))?;
    let per_key = Ceilings {
        monthly_budget: None,
        ..*ceilings
    };
    let mut lowered = Vec::new();
    let mut total = 0;
    for key in &keys {
        let mut limits = Limits::of(key);
        fit_ceilings(&per_key, &mut limits, &[], 0)?;
        if let Some(budget) = ceilings.monthly_budget
            && (limits.monthly_quota == 0 || total + limits.monthly_quota > budget)
        {
            return Err(GatewayError::invalid_field(
                "monthly_budget",
                format!(
                    "monthly_budget ${} is below what this user's keys may spend a month: key {} (`{}`) {}; lower its monthly_quota first, or set max_monthly_quota",
                    crate::store::nanos_to_usd(budget),
                    key.id,
                    key.name,
                    if limits.monthly_quota == 0 {
                        "has no quota".to_string()
                    } else {
                        format!(
                            "brings the keys' quotas to ${}",
                            crate::store::nanos_to_usd(total + limits.monthly_quota)
                        )
                    }
                ),
            ));
        }
        total += limits.monthly_quota;
        if limits != Limits::of(key) {
            lowered.push((key.id, limits));
        }
    }
    Ok(lowered)
}

/// `GET /api/users/:id/api-keys`: any user's keys.
pub async fn keys_of(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    admin(&app, &headers).await?;
    let id = parse_id(&id, "user")?;
    let store = &app.accounts.store;
    store
        .user_by_id(id)
        .await
        .map_err(|e| store_error(e, &format!("user {id}")))?;
    let keys = store
        .keys_of_user(id)
        .await
        .map_err(|e| store_error(e, "API keys"))?;
    Ok(success(
        "success",
        Some(Value::Array(keys.iter().map(key_json).collect())),
    ))
}
