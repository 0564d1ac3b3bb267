//! Users, for admins: `GET/POST /api/users`, `PUT /api/users/:id` (status, role, password),
//! `GET /api/users/:id/api-keys`.

use std::sync::Arc;

use axum::extract::{Path, State};
use bytes::Bytes;
use http::HeaderMap;
use serde_json::Value;

use super::keys::key_json;
use super::session::{admin, user_json};
use super::{ApiResult, json_object, parse_id, store_error, success};
use crate::accounts::{check_password, check_username, hash_password};
use crate::error::GatewayError;
use crate::gateway::AppState;
use crate::store::{NewUser, Role, Status, UserUpdate};

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
    let username = match body.get("username") {
        Some(Value::String(u)) => u.trim().to_string(),
        _ => return Err(GatewayError::invalid_field("username", "username is required").into()),
    };
    check_username(&username).map_err(|e| GatewayError::invalid_field("username", e))?;
    let Some(password_hash) = password_field(body.get("password")).await? else {
        return Err(GatewayError::invalid_field("password", "password is required").into());
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
    Ok(success("created", Some(user_json(&user))))
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
    let status = match body.get("status") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(Status::parse(s).ok_or_else(|| {
            GatewayError::invalid_field("status", "status must be `active` or `disabled`")
        })?),
        Some(_) => {
            return Err(GatewayError::invalid_field(
                "status",
                "status must be `active` or `disabled`",
            )
            .into());
        }
    };
    let role = role_field(body.get("role"))?;
    if id == session.user_id && (status == Some(Status::Disabled) || role == Some(Role::User)) {
        return Err(GatewayError::invalid(
            "an admin cannot disable or demote themselves; ask another admin",
        )
        .into());
    }
    let password_hash = password_field(body.get("password")).await?;
    let accounts = &app.accounts;
    let user = accounts
        .store
        .update_user(
            id,
            UserUpdate {
                password_hash,
                role,
                status,
            },
            accounts.now_ms(),
        )
        .await
        .map_err(|e| store_error(e, &format!("user {id}")))?;
    accounts.keys.apply_user(&user);
    accounts.announce_keys().await;
    Ok(success("success", Some(user_json(&user))))
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
