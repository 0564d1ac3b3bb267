//! Sluice's durable state and its counters, behind traits the gateway depends on.
//!
//! [`Store`] holds users, their API keys and usage records; [`sqlite::SqliteStore`] implements
//! it on SQLite in the data directory. The schema (`crates/sluice-store/migrations/`) and every
//! query are written in SQL that PostgreSQL runs too, so a PostgreSQL implementation is a second
//! impl of the same trait. [`limits::Limiter`] counts per-key requests and spend;
//! [`limits::memory::MemoryLimiter`] keeps them in this process.
//!
//! This crate knows nothing of HTTP, dialects or the gateway's application state: the gateway
//! serves keys from its in-memory cache and writes usage through a background sink built on
//! [`Store::insert_usage`], so nothing on the proxy request path awaits the store.
#![forbid(unsafe_code)]

pub mod limits;
pub mod postgres;
pub mod private;
pub mod redis;
pub mod rollup;
mod rows;
pub mod shared;
mod sql;
pub mod sqlite;
pub mod testing;
pub mod ui;

use async_trait::async_trait;
use serde::Serialize;

/// Money in the store: nano-dollars (10⁻⁹ USD), so sums are exact.
pub type Nanos = i64;

/// Nano-dollars in a dollar.
pub const NANOS_PER_USD: f64 = 1e9;

/// Dollars → nano-dollars, rounded.
pub fn usd_to_nanos(usd: f64) -> Nanos {
    (usd * NANOS_PER_USD).round() as Nanos
}

/// Nano-dollars → dollars.
pub fn nanos_to_usd(nanos: Nanos) -> f64 {
    nanos as f64 / NANOS_PER_USD
}

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness or limit rule refused the write; the message says which.
    #[error("{0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Manages users and sees every key and all usage.
    Admin,
    /// Manages their own keys and sees their own usage.
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "user" => Some(Role::User),
            _ => None,
        }
    }
}

/// Whether a user or key may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Active,
    Disabled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "active" => Some(Status::Active),
            "disabled" => Some(Status::Disabled),
            _ => None,
        }
    }
}

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub username: String,
    /// Argon2 PHC string.
    pub password_hash: String,
    pub role: Role,
    pub status: Status,
    pub created_at: i64,
    pub ceilings: Ceilings,
}

/// Ceilings an admin set on a user's keys; `None`: no ceiling. A key's own limits (which its
/// owner sets) never exceed them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ceilings {
    /// The most `rate_limit` any of the user's keys may have.
    pub max_rate_limit: Option<i64>,
    /// The most `daily_limit` any of the user's keys may have.
    pub max_daily_limit: Option<i64>,
    /// The most `monthly_quota` any of the user's keys may have.
    pub max_monthly_quota: Option<Nanos>,
    /// What the monthly quotas of all the user's keys may add up to.
    pub monthly_budget: Option<Nanos>,
}

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub password_hash: String,
    pub role: Role,
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    pub password_hash: Option<String>,
    pub role: Option<Role>,
    pub status: Option<Status>,
    /// All four ceilings at once (`None` inside removes one).
    pub ceilings: Option<Ceilings>,
}

/// A stored API key (never the key itself: its SHA-256 digest and its display prefix).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    /// Lowercase hex SHA-256 of the whole key.
    pub key_hash: String,
    /// `sk-a1b2c3d4...`
    pub key_prefix: String,
    pub status: Status,
    /// `all`, or comma-separated platform labels.
    pub allowed_platforms: String,
    /// Empty (all), or comma-separated model names.
    pub allowed_models: String,
    /// Requests per minute; 0 = unlimited.
    pub rate_limit: i64,
    /// Requests per day; 0 = unlimited.
    pub daily_limit: i64,
    /// Cost per calendar month; 0 = unlimited.
    pub monthly_quota: Nanos,
    pub used_tokens: i64,
    pub used_cost: Nanos,
    pub request_count: i64,
    /// Unix milliseconds.
    pub last_used_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Set when deleted; deleted keys are kept for their usage history but never served.
    pub deleted_at: Option<i64>,
}

/// A key to create.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub user_id: i64,
    pub name: String,
    pub key_hash: String,
    pub key_prefix: String,
    pub allowed_platforms: String,
    pub allowed_models: String,
    pub rate_limit: i64,
    pub daily_limit: i64,
    pub monthly_quota: Nanos,
    pub expires_at: Option<i64>,
}

/// Changes to a key; `None` leaves a field as it is (`expires_at: Some(None)` clears it).
#[derive(Debug, Clone, Default)]
pub struct KeyUpdate {
    pub name: Option<String>,
    pub allowed_platforms: Option<String>,
    pub allowed_models: Option<String>,
    pub rate_limit: Option<i64>,
    pub daily_limit: Option<i64>,
    pub monthly_quota: Option<Nanos>,
    pub expires_at: Option<Option<i64>>,
    pub status: Option<Status>,
    /// A new secret (rotation): its SHA-256 (hex) and display prefix. The old secret stops
    /// matching the moment the row changes.
    pub secret: Option<(String, String)>,
}

/// One usage record as stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UsageRow {
    pub request_id: String,
    /// Unix milliseconds.
    pub time_ms: i64,
    /// Calendar day (`YYYY-MM-DD`) in the configured time zone.
    pub day: String,
    pub endpoint: String,
    pub user_id: Option<i64>,
    pub api_key_id: Option<i64>,
    /// `key:<id>`, `config:<hash prefix>`, or none (anonymous).
    pub key_label: Option<String>,
    pub provider: Option<String>,
    pub credential: Option<String>,
    pub platform: Option<String>,
    pub model_requested: Option<String>,
    pub model_served: Option<String>,
    pub stream: bool,
    pub status: i64,
    pub error: Option<String>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub reasoning_tokens: i64,
    pub cost_nanos: Nanos,
    /// Tokens were counted by the gateway because the upstream reported none.
    pub estimated: bool,
    pub latency_ms: f64,
    pub ttft_ms: Option<f64>,
    /// The gateway's own id of this record, unique: what makes writing it idempotent (the
    /// request id is the client's to choose and may repeat).
    pub record_id: String,
    /// Upstream attempts made (0: none, e.g. refused before routing).
    pub attempts: i64,
    /// The dialect the upstream was spoken to in (`openai_chat`, `anthropic`, …).
    pub upstream_dialect: Option<String>,
    /// What the request used besides tokens (the forwarded endpoints).
    pub units: UsageUnits,
    /// Every upstream attempt, the last included (stored in `usage_attempts`; read back with
    /// `UiStore::attempts_of`, empty in rows read from `usage_records`).
    #[serde(skip)]
    pub attempt_log: Vec<rollup::AttemptRow>,
}

/// Which usage a query covers. Days are `YYYY-MM-DD`, both ends included.
#[derive(Debug, Clone, Default)]
pub struct UsageFilter {
    pub user_id: Option<i64>,
    pub api_key_id: Option<i64>,
    pub start_day: String,
    pub end_day: String,
}

/// What a request used besides tokens: the units the forwarded endpoints are billed by.
/// Zero for chat and embeddings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct UsageUnits {
    /// Seconds of audio transcribed or translated.
    pub audio_seconds: f64,
    /// Characters of text spoken (text to speech).
    pub characters: i64,
    /// Images generated or edited.
    pub images: i64,
    /// Documents a rerank request ranked.
    pub documents: i64,
    /// Search units an upstream billed a rerank request (Cohere's `billed_units`).
    pub search_units: i64,
}

impl UsageUnits {
    /// Whether the request used none of them.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Sums over a set of usage records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct UsageTotals {
    pub requests: i64,
    pub errors: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub reasoning_tokens: i64,
    pub cost_nanos: Nanos,
    pub units: UsageUnits,
}

/// What the limiter needs to resume after a restart: per key, requests counted today and cost
/// spent this month.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeySpend {
    pub requests_today: i64,
    pub cost_this_month: Nanos,
}

/// Error codes of requests that limits refused; they do not count against the limits.
pub const REFUSED_CODES: [&str; 7] = [
    "rate_limit_exceeded",
    "daily_limit_exceeded",
    "monthly_quota_exceeded",
    "platform_not_allowed",
    "model_not_allowed",
    "api_key_disabled",
    "api_key_expired",
];

/// The store's interface. Every method is one transaction.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    async fn create_user(&self, user: NewUser, now: i64) -> StoreResult<User>;
    async fn user_by_id(&self, id: i64) -> StoreResult<User>;
    async fn user_by_name(&self, username: &str) -> StoreResult<User>;
    async fn list_users(&self) -> StoreResult<Vec<User>>;
    async fn update_user(&self, id: i64, update: UserUpdate, now: i64) -> StoreResult<User>;
    /// The oldest active admin, the owner of config-file keys.
    async fn first_admin(&self) -> StoreResult<Option<User>>;

    /// Creates a key unless the user already has `max_per_user` (not deleted) keys.
    async fn create_key(&self, key: NewApiKey, max_per_user: i64, now: i64) -> StoreResult<ApiKey>;
    /// A key that is not deleted.
    async fn key_by_id(&self, id: i64) -> StoreResult<ApiKey>;
    /// A user's keys that are not deleted, oldest first.
    async fn keys_of_user(&self, user_id: i64) -> StoreResult<Vec<ApiKey>>;
    async fn update_key(&self, id: i64, update: KeyUpdate, now: i64) -> StoreResult<ApiKey>;
    async fn delete_key(&self, id: i64, now: i64) -> StoreResult<()>;
    /// Keys changed (settings, status, deletion) at or after `since`, deleted ones included;
    /// `since = 0` gives every key.
    async fn keys_changed_since(&self, since: i64) -> StoreResult<Vec<ApiKey>>;
    /// Users changed at or after `since`.
    async fn users_changed_since(&self, since: i64) -> StoreResult<Vec<User>>;

    /// Writes a batch of usage records and adds them to their keys' counters, atomically.
    async fn insert_usage(&self, rows: &[UsageRow]) -> StoreResult<()>;
    async fn usage_totals(&self, filter: &UsageFilter) -> StoreResult<UsageTotals>;
    async fn usage_by_day(&self, filter: &UsageFilter) -> StoreResult<Vec<(String, UsageTotals)>>;
    async fn usage_by_model(&self, filter: &UsageFilter)
    -> StoreResult<Vec<(String, UsageTotals)>>;
    /// Records, newest first, at most `limit` (0 = all).
    async fn usage_records(&self, filter: &UsageFilter, limit: i64) -> StoreResult<Vec<UsageRow>>;
    /// Per key: admitted requests on `today` and cost since `month_start` (days, inclusive).
    async fn key_spend(&self, today: &str, month_start: &str) -> StoreResult<Vec<(i64, KeySpend)>>;

    // --- Scale-out and moving stores (issue 14) ---

    /// [`Store::key_spend`] of one key (a shared limiter reseeding a key it lost).
    async fn key_spend_of(
        &self,
        key_id: i64,
        today: &str,
        month_start: &str,
    ) -> StoreResult<KeySpend> {
        Ok(self
            .key_spend(today, month_start)
            .await?
            .into_iter()
            .find(|(id, _)| *id == key_id)
            .map(|(_, spend)| spend)
            .unwrap_or_default())
    }

    /// Writes users and keys as they are in another store, keeping their ids, with the keys'
    /// counters at zero (copying the usage records then adds them up); rows whose id exists
    /// are left alone. Later ids continue after the highest.
    async fn restore_accounts(&self, users: &[User], keys: &[ApiKey]) -> StoreResult<()>;

    /// Up to `limit` records after `after` (time, request id) in that order, oldest first: a
    /// cursor over every record, for copying a store.
    async fn usage_after(
        &self,
        after: Option<(i64, String)>,
        limit: i64,
    ) -> StoreResult<Vec<UsageRow>>;

    /// Credentials disabled on any instance (credential, reason). Only stores shared by several
    /// instances keep them; the default keeps none.
    async fn credential_disables(&self) -> StoreResult<Vec<(String, String)>> {
        Ok(Vec::new())
    }

    /// Records (`Some(reason)`) or clears (`None`) a credential's disable.
    async fn set_credential_disabled(
        &self,
        _credential: &str,
        _reason: Option<&str>,
        _now: i64,
    ) -> StoreResult<()> {
        Ok(())
    }

    /// Retention: removes the records older than `before_ms` that can go (PostgreSQL drops
    /// whole monthly partitions that end by then; SQLite deletes the rows). The number removed.
    async fn prune_usage(&self, before_ms: i64) -> StoreResult<u64>;

    /// The web dashboard's state in this store (issue 10).
    fn ui(&self) -> &dyn ui::UiStore;
}

/// Where the store lives: the `store:` setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `sluice.db` in this directory (the default: the config's `data-dir`).
    Sqlite(std::path::PathBuf),
    /// A PostgreSQL connection URL.
    Postgres(String),
}

impl Location {
    /// `postgres://…` / `postgresql://…`, `sqlite://<dir>` (the directory holding `sluice.db`).
    pub fn parse(url: &str) -> Result<Location, String> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Location::Postgres(url.to_string()))
        } else if let Some(dir) = url.strip_prefix("sqlite://") {
            if dir.is_empty() {
                return Err(
                    "sqlite:// needs the data directory, e.g. sqlite:///var/lib/sluice".into(),
                );
            }
            Ok(Location::Sqlite(dir.into()))
        } else {
            Err("must start with postgres://, postgresql:// or sqlite://".into())
        }
    }

    /// The location without its password, for logs and messages.
    pub fn redacted(&self) -> String {
        match self {
            Location::Sqlite(dir) => format!("sqlite://{}", dir.display()),
            Location::Postgres(url) => redact_url(url),
        }
    }
}

/// A URL with any password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// Opens the store at a location (creating the SQLite directory), applying pending migrations.
pub async fn open(location: &Location) -> StoreResult<std::sync::Arc<dyn Store>> {
    Ok(match location {
        Location::Sqlite(dir) => {
            private::create_dir(dir).map_err(|e| {
                StoreError::Conflict(format!("cannot create {}: {e}", dir.display()))
            })?;
            std::sync::Arc::new(sqlite::SqliteStore::open(dir).await?)
        }
        Location::Postgres(url) => std::sync::Arc::new(postgres::PgStore::open(url).await?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_and_never_show_a_password() {
        assert_eq!(
            Location::parse("postgres://u:secret@db:5432/s").map(|l| l.redacted()),
            Ok("postgres://u:***@db:5432/s".to_string())
        );
        assert_eq!(
            redact_url("redis://:pw@127.0.0.1:6379/0"),
            "redis://:***@127.0.0.1:6379/0"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(
            Location::parse("sqlite:///var/lib/sluice"),
            Ok(Location::Sqlite("/var/lib/sluice".into()))
        );
        assert!(Location::parse("mysql://x").is_err());
        assert!(Location::parse("sqlite://").is_err());
    }
}
