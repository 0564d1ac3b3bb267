//! Sign-in: `POST /api/auth/login` checks a password (argon2) and issues an HS256 session
//! token; every other `/api` call presents it as `Authorization: Bearer <token>`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::State;
use http::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ApiResult, iso, json_object, store_error, success};
use crate::config::Config;
use crate::error::GatewayError;
use crate::gateway::AppState;
use crate::store::{Role, Status, StoreError, User};

/// Issues and checks session tokens.
pub struct Sessions {
    encoding: EncodingKey,
    decoding: DecodingKey,
    expiry: Duration,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("expiry", &self.expiry)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// The user id.
    sub: String,
    role: String,
    iat: i64,
    exp: i64,
}

/// A signed-in caller of the `/api` surface.
#[derive(Debug, Clone)]
pub struct Session {
    pub user_id: i64,
    pub username: String,
    pub role: Role,
}

impl Session {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

impl Sessions {
    /// Signs with `auth.jwt-secret`, or the secret generated once into the data directory.
    pub fn new(config: &Config) -> anyhow::Result<Sessions> {
        let secret = match &config.auth.jwt_secret {
            Some(secret) => secret.clone(),
            None => crate::accounts::jwt_secret_file(&config.data_path())
                .context("auth.jwt-secret is unset and the generated one is unusable")?,
        };
        Ok(Sessions {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            expiry: config.auth.jwt_expiry,
        })
    }

    /// A token for `user`, and when it expires (unix ms). Tokens live in real time (the
    /// signature check reads the system clock), whatever clock the limits follow.
    pub fn issue(&self, user: &User) -> Result<(String, i64), GatewayError> {
        let iat = chrono::Utc::now().timestamp();
        let exp = iat + i64::try_from(self.expiry.as_secs()).unwrap_or(i64::MAX / 2);
        let claims = Claims {
            sub: user.id.to_string(),
            role: user.role.as_str().to_string(),
            iat,
            exp,
        };
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
                .map_err(|e| GatewayError::internal(format!("cannot sign a session token: {e}")))?;
        Ok((token, exp * 1000))
    }

    /// Whether `token` is a session token this gateway signed (expired or not): such a token
    /// is never taken for a caller's own upstream token, so it never leaves for an upstream.
    pub fn is_ours(&self, token: &str) -> bool {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).is_ok()
    }

    fn verify(&self, token: &str) -> Result<i64, GatewayError> {
        let data = jsonwebtoken::decode::<Claims>(
            token,
            &self.decoding,
            &Validation::new(Algorithm::HS256),
        )
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                GatewayError::unauthenticated("the session token has expired; sign in again")
            }
            _ => GatewayError::unauthenticated("invalid session token; sign in again"),
        })?;
        data.claims
            .sub
            .parse()
            .map_err(|_| GatewayError::unauthenticated("invalid session token; sign in again"))
    }
}

/// The signed-in user of a request: a valid token of a user that still exists and is active.
pub async fn session(app: &AppState, headers: &HeaderMap) -> Result<Session, GatewayError> {
    let token = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            GatewayError::unauthenticated(
                "sign in first: send `Authorization: Bearer <token>` from POST /api/auth/login",
            )
        })?;
    let accounts = &app.accounts;
    let user_id = accounts.sessions.verify(token)?;
    let user = match accounts.store.user_by_id(user_id).await {
        Ok(user) => user,
        Err(StoreError::NotFound) => {
            return Err(GatewayError::unauthenticated(
                "this session's user no longer exists",
            ));
        }
        Err(e) => return Err(store_error(e, "user")),
    };
    if user.status != Status::Active {
        return Err(GatewayError::forbidden("this user is disabled"));
    }
    Ok(Session {
        user_id: user.id,
        username: user.username,
        role: user.role,
    })
}

/// The session of an admin, or 403.
pub async fn admin(app: &AppState, headers: &HeaderMap) -> Result<Session, GatewayError> {
    let session = session(app, headers).await?;
    if !session.is_admin() {
        return Err(GatewayError::forbidden("this needs an admin"));
    }
    Ok(session)
}

/// A user as `/api` shows it (never the password hash).
pub fn user_json(user: &User) -> serde_json::Value {
    json!({
        "id": user.id,
        "username": user.username,
        "role": user.role,
        "status": user.status,
        "created_at": iso(user.created_at),
        "max_rate_limit": user.ceilings.max_rate_limit,
        "max_daily_limit": user.ceilings.max_daily_limit,
        "max_monthly_quota": user.ceilings.max_monthly_quota.map(crate::store::nanos_to_usd),
        "monthly_budget": user.ceilings.monthly_budget.map(crate::store::nanos_to_usd),
    })
}

fn string_field<'a>(
    body: &'a serde_json::Map<String, serde_json::Value>,
    field: &str,
) -> Result<&'a str, GatewayError> {
    match body.get(field) {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Ok(s),
        _ => Err(GatewayError::invalid_field(
            field,
            format!("{field} is required and must be a non-empty string"),
        )),
    }
}

/// Who failed to sign in: the client's address, and the user name tried.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LoginSource {
    Addr(std::net::IpAddr),
    User(String),
}

/// Largest sign-in body read.
const MAX_LOGIN_BODY: usize = 64 * 1024;

/// `POST /api/auth/login` `{"username", "password"}` → a session token. Throttled like the
/// management key (`management-ban`): every attempt counts as a failure per address and per
/// user name before the password hash is checked, a success forgives both, and a source at the
/// limit is refused with 429 for the ban's duration.
pub async fn login(State(app): State<Arc<AppState>>, request: axum::extract::Request) -> ApiResult {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, MAX_LOGIN_BODY)
        .await
        .map_err(|_| GatewayError::invalid("the body could not be read (at most 64 KiB)"))?;
    let body = json_object(&body)?;
    let username = string_field(&body, "username")?.to_string();
    let password = string_field(&body, "password")?.to_string();
    let config = app.runtime.load().config.clone();
    let policy = &config.management_ban;
    let mut sources = vec![LoginSource::User(username.clone())];
    if let Some(client) =
        crate::peer::client_addr(&parts.extensions, &parts.headers, &config.trusted_proxies)
    {
        sources.push(LoginSource::Addr(client.ip));
    }
    let bans = &app.login_bans;
    for source in &sources {
        bans.begin(source, policy)
            .map_err(GatewayError::too_many_sign_ins)?;
    }
    let accounts = &app.accounts;
    let user = match accounts.store.user_by_name(&username).await {
        Ok(user) => Some(user),
        Err(StoreError::NotFound) => None,
        Err(e) => return Err(store_error(e, "user").into()),
    };
    // Verify against something even for unknown users, so timing does not reveal which exist.
    let phc = user
        .as_ref()
        .map_or_else(|| DUMMY_HASH.to_string(), |u| u.password_hash.clone());
    let matches =
        tokio::task::spawn_blocking(move || crate::accounts::verify_password(&password, &phc))
            .await
            .unwrap_or(false);
    let user = match user {
        Some(user) if matches => user,
        _ => {
            for source in &sources {
                if bans.failed(source, policy) {
                    tracing::warn!(
                        source = ?source,
                        ban = %humantime::format_duration(policy.duration),
                        "sign-in: too many failed attempts; refused until the ban ends"
                    );
                }
            }
            return Err(GatewayError::unauthenticated("wrong username or password").into());
        }
    };
    for source in &sources {
        bans.clear(source);
    }
    if user.status != Status::Active {
        return Err(GatewayError::forbidden("this user is disabled").into());
    }
    let (token, expires_at) = accounts.sessions.issue(&user)?;
    Ok(success(
        "success",
        Some(json!({
            "token": token,
            "token_type": "Bearer",
            "expires_at": iso(expires_at),
            "user": user_json(&user),
        })),
    ))
}

/// An argon2id hash of a random password nobody knows.
pub(crate) const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2x1aWNlZHVtbXlzYWx0$ZCaTm2CJx2jOHVDBt8UOsSBZjGCB6bJ0Fw/ZvwyVZ2E";

/// `GET /api/auth/me`: the signed-in user.
pub async fn me(State(app): State<Arc<AppState>>, headers: HeaderMap) -> ApiResult {
    let session = session(&app, &headers).await?;
    let user = app
        .accounts
        .store
        .user_by_id(session.user_id)
        .await
        .map_err(|e| store_error(e, "user"))?;
    Ok(success("success", Some(user_json(&user))))
}
