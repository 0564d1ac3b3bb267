-- Users, their API keys (seed 004) and one usage record per proxied request.
-- Written in the SQL that both SQLite and PostgreSQL run: BIGINT ids handed out from the
-- `sequences` table (no AUTOINCREMENT / SERIAL), times as BIGINT unix milliseconds (UTC),
-- money as BIGINT nano-dollars (exact sums), booleans as BOOLEAN.

CREATE TABLE sequences (
    name TEXT PRIMARY KEY,
    last_id BIGINT NOT NULL
);
INSERT INTO sequences (name, last_id) VALUES ('users', 0);
INSERT INTO sequences (name, last_id) VALUES ('api_keys', 0);

CREATE TABLE users (
    id BIGINT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id BIGINT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    key_prefix TEXT NOT NULL,
    status TEXT NOT NULL,
    allowed_platforms TEXT NOT NULL,
    allowed_models TEXT NOT NULL,
    rate_limit BIGINT NOT NULL,
    daily_limit BIGINT NOT NULL,
    monthly_quota_nanos BIGINT NOT NULL,
    used_tokens BIGINT NOT NULL DEFAULT 0,
    used_cost_nanos BIGINT NOT NULL DEFAULT 0,
    request_count BIGINT NOT NULL DEFAULT 0,
    last_used_at BIGINT,
    expires_at BIGINT,
    created_at BIGINT NOT NULL,
    -- Bumped by every change of the key's settings (not by its counters): the key cache of every
    -- gateway instance polls for rows changed since its last look.
    updated_at BIGINT NOT NULL,
    -- Deleted keys stay as rows so their usage keeps its owner.
    deleted_at BIGINT
);
CREATE INDEX api_keys_user ON api_keys (user_id);
CREATE INDEX api_keys_updated ON api_keys (updated_at);

CREATE TABLE usage_records (
    request_id TEXT NOT NULL,
    time_ms BIGINT NOT NULL,
    -- The calendar day (YYYY-MM-DD) of time_ms in the gateway's configured time zone.
    day TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    user_id BIGINT,
    api_key_id BIGINT,
    key_label TEXT,
    provider TEXT,
    credential TEXT,
    platform TEXT,
    model_requested TEXT,
    model_served TEXT,
    stream BOOLEAN NOT NULL,
    status BIGINT NOT NULL,
    error TEXT,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cache_read_tokens BIGINT NOT NULL,
    cache_write_tokens BIGINT NOT NULL,
    reasoning_tokens BIGINT NOT NULL,
    cost_nanos BIGINT NOT NULL,
    estimated BOOLEAN NOT NULL,
    latency_ms DOUBLE PRECISION NOT NULL,
    ttft_ms DOUBLE PRECISION
);
CREATE INDEX usage_records_day ON usage_records (day);
CREATE INDEX usage_records_key_day ON usage_records (api_key_id, day);
CREATE INDEX usage_records_user_day ON usage_records (user_id, day);
