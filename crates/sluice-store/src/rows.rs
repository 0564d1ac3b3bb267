//! Rows → the store's types, for any sqlx row type (SQLite's and PostgreSQL's decode the same
//! columns the same way).

/// Defines `user_from`, `key_from`, `usage_from` and `totals_from` over one row type.
macro_rules! decoders {
    ($row:ty) => {
        pub(crate) fn user_from(row: &$row) -> StoreResult<User> {
            let role: String = row.try_get("role")?;
            let status: String = row.try_get("status")?;
            Ok(User {
                id: row.try_get("id")?,
                username: row.try_get("username")?,
                password_hash: row.try_get("password_hash")?,
                role: Role::parse(&role).unwrap_or(Role::User),
                status: Status::parse(&status).unwrap_or(Status::Disabled),
                created_at: row.try_get("created_at")?,
                ceilings: Ceilings {
                    max_rate_limit: row.try_get("max_rate_limit")?,
                    max_daily_limit: row.try_get("max_daily_limit")?,
                    max_monthly_quota: row.try_get("max_monthly_quota_nanos")?,
                    monthly_budget: row.try_get("monthly_budget_nanos")?,
                },
            })
        }

        pub(crate) fn key_from(row: &$row) -> StoreResult<ApiKey> {
            let status: String = row.try_get("status")?;
            Ok(ApiKey {
                id: row.try_get("id")?,
                user_id: row.try_get("user_id")?,
                name: row.try_get("name")?,
                key_hash: row.try_get("key_hash")?,
                key_prefix: row.try_get("key_prefix")?,
                status: Status::parse(&status).unwrap_or(Status::Disabled),
                allowed_platforms: row.try_get("allowed_platforms")?,
                allowed_models: row.try_get("allowed_models")?,
                rate_limit: row.try_get("rate_limit")?,
                daily_limit: row.try_get("daily_limit")?,
                monthly_quota: row.try_get("monthly_quota_nanos")?,
                used_tokens: row.try_get("used_tokens")?,
                used_cost: row.try_get("used_cost_nanos")?,
                request_count: row.try_get("request_count")?,
                last_used_at: row.try_get("last_used_at")?,
                expires_at: row.try_get("expires_at")?,
                created_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
                deleted_at: row.try_get("deleted_at")?,
            })
        }

        pub(crate) fn usage_from(row: &$row) -> StoreResult<UsageRow> {
            Ok(UsageRow {
                request_id: row.try_get("request_id")?,
                time_ms: row.try_get("time_ms")?,
                day: row.try_get("day")?,
                endpoint: row.try_get("endpoint")?,
                user_id: row.try_get("user_id")?,
                api_key_id: row.try_get("api_key_id")?,
                key_label: row.try_get("key_label")?,
                provider: row.try_get("provider")?,
                credential: row.try_get("credential")?,
                platform: row.try_get("platform")?,
                model_requested: row.try_get("model_requested")?,
                model_served: row.try_get("model_served")?,
                stream: row.try_get("stream")?,
                status: row.try_get("status")?,
                error: row.try_get("error")?,
                input_tokens: row.try_get("input_tokens")?,
                output_tokens: row.try_get("output_tokens")?,
                cache_read_tokens: row.try_get("cache_read_tokens")?,
                cache_write_tokens: row.try_get("cache_write_tokens")?,
                reasoning_tokens: row.try_get("reasoning_tokens")?,
                cost_nanos: row.try_get("cost_nanos")?,
                estimated: row.try_get("estimated")?,
                latency_ms: row.try_get("latency_ms")?,
                ttft_ms: row.try_get("ttft_ms")?,
                record_id: row
                    .try_get::<Option<String>, _>("record_id")?
                    .unwrap_or_default(),
                attempts: row.try_get("attempts")?,
                upstream_dialect: row.try_get("upstream_dialect")?,
                units: crate::UsageUnits {
                    audio_seconds: row.try_get("audio_seconds")?,
                    characters: row.try_get("characters")?,
                    images: row.try_get("images")?,
                    documents: row.try_get("documents")?,
                    search_units: row.try_get("search_units")?,
                },
                attempt_log: Vec::new(),
            })
        }

        pub(crate) fn totals_from(row: &$row, offset: usize) -> StoreResult<UsageTotals> {
            Ok(UsageTotals {
                requests: row.try_get(offset)?,
                errors: row.try_get(offset + 1)?,
                input_tokens: row.try_get(offset + 2)?,
                output_tokens: row.try_get(offset + 3)?,
                cache_read_tokens: row.try_get(offset + 4)?,
                cache_write_tokens: row.try_get(offset + 5)?,
                reasoning_tokens: row.try_get(offset + 6)?,
                cost_nanos: row.try_get(offset + 7)?,
                units: crate::UsageUnits {
                    audio_seconds: row.try_get(offset + 8)?,
                    characters: row.try_get(offset + 9)?,
                    images: row.try_get(offset + 10)?,
                    documents: row.try_get(offset + 11)?,
                    search_units: row.try_get(offset + 12)?,
                },
            })
        }
    };
}

pub(crate) use decoders;
