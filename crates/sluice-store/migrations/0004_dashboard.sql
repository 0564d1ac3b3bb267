-- Issue 10, the web dashboard: its sign-in sessions, every upstream attempt of a request, the
-- credential probes of "test now", and the rollups its charts read (so percentiles and charts
-- never scan raw usage rows). PostgreSQL twin: migrations-postgres/0004_dashboard.sql.

-- Dashboard sessions: the cookie holds a random id, the table only its SHA-256.
CREATE TABLE ui_sessions (
    id_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);
CREATE INDEX ui_sessions_user ON ui_sessions (user_id);

-- Upstream attempts made for a request (the last, whose answer the client got, included);
-- keyed by the record's (request id, time) and the attempt's position.
CREATE TABLE usage_attempts (
    request_id TEXT NOT NULL,
    time_ms BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    provider TEXT NOT NULL,
    credential TEXT NOT NULL,
    model TEXT NOT NULL,
    status BIGINT NOT NULL,
    error TEXT,
    latency_ms DOUBLE PRECISION NOT NULL,
    -- The cooldown window the failure opened on (credential, model), unix ms, if it opened one.
    cooldown_until_ms BIGINT,
    PRIMARY KEY (request_id, time_ms, seq)
);

-- The number of upstream attempts and the upstream's dialect, for the request list's badge and
-- "had failover" filter; an index for the newest-first keyset pagination.
ALTER TABLE usage_records ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_records ADD COLUMN upstream_dialect TEXT;
CREATE INDEX usage_records_time ON usage_records (time_ms, request_id);

-- "Test now": a real tiny request to one credential. Never a usage record: probes count
-- towards no key, limit, quota or bill.
CREATE TABLE credential_probes (
    id TEXT PRIMARY KEY,
    time_ms BIGINT NOT NULL,
    user_id BIGINT,
    provider TEXT NOT NULL,
    credential TEXT NOT NULL,
    model TEXT NOT NULL,
    status BIGINT NOT NULL,
    error TEXT,
    latency_ms DOUBLE PRECISION NOT NULL,
    ttft_ms DOUBLE PRECISION
);
CREATE INDEX credential_probes_credential ON credential_probes (credential, time_ms);

-- Rollups: one row per (bucket, key, user, model, provider, credential, status class), per
-- hour and per minute (the minute table keeps about a day). Latency and TTFT are counted in 16
-- fixed buckets whose upper bounds (ms) are 50, 100, 200, 300, 500, 750, 1000, 1500, 2000,
-- 3000, 5000, 7500, 10000, 20000, 40000 and infinity.
CREATE TABLE usage_rollup_hour (
    bucket_ms BIGINT NOT NULL,
    key_label TEXT NOT NULL,
    user_id BIGINT NOT NULL,
    model TEXT NOT NULL,
    provider TEXT NOT NULL,
    credential TEXT NOT NULL,
    status_class BIGINT NOT NULL,
    requests BIGINT NOT NULL,
    failover_saved BIGINT NOT NULL,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cache_read_tokens BIGINT NOT NULL,
    cache_write_tokens BIGINT NOT NULL,
    reasoning_tokens BIGINT NOT NULL,
    cost_nanos BIGINT NOT NULL,
    latency_sum_ms DOUBLE PRECISION NOT NULL,
    ttft_count BIGINT NOT NULL,
    lat_b00 BIGINT NOT NULL, lat_b01 BIGINT NOT NULL, lat_b02 BIGINT NOT NULL, lat_b03 BIGINT NOT NULL,
    lat_b04 BIGINT NOT NULL, lat_b05 BIGINT NOT NULL, lat_b06 BIGINT NOT NULL, lat_b07 BIGINT NOT NULL,
    lat_b08 BIGINT NOT NULL, lat_b09 BIGINT NOT NULL, lat_b10 BIGINT NOT NULL, lat_b11 BIGINT NOT NULL,
    lat_b12 BIGINT NOT NULL, lat_b13 BIGINT NOT NULL, lat_b14 BIGINT NOT NULL, lat_b15 BIGINT NOT NULL,
    ttft_b00 BIGINT NOT NULL, ttft_b01 BIGINT NOT NULL, ttft_b02 BIGINT NOT NULL, ttft_b03 BIGINT NOT NULL,
    ttft_b04 BIGINT NOT NULL, ttft_b05 BIGINT NOT NULL, ttft_b06 BIGINT NOT NULL, ttft_b07 BIGINT NOT NULL,
    ttft_b08 BIGINT NOT NULL, ttft_b09 BIGINT NOT NULL, ttft_b10 BIGINT NOT NULL, ttft_b11 BIGINT NOT NULL,
    ttft_b12 BIGINT NOT NULL, ttft_b13 BIGINT NOT NULL, ttft_b14 BIGINT NOT NULL, ttft_b15 BIGINT NOT NULL,
    PRIMARY KEY (bucket_ms, key_label, user_id, model, provider, credential, status_class)
);
CREATE TABLE usage_rollup_minute (
    bucket_ms BIGINT NOT NULL,
    key_label TEXT NOT NULL,
    user_id BIGINT NOT NULL,
    model TEXT NOT NULL,
    provider TEXT NOT NULL,
    credential TEXT NOT NULL,
    status_class BIGINT NOT NULL,
    requests BIGINT NOT NULL,
    failover_saved BIGINT NOT NULL,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cache_read_tokens BIGINT NOT NULL,
    cache_write_tokens BIGINT NOT NULL,
    reasoning_tokens BIGINT NOT NULL,
    cost_nanos BIGINT NOT NULL,
    latency_sum_ms DOUBLE PRECISION NOT NULL,
    ttft_count BIGINT NOT NULL,
    lat_b00 BIGINT NOT NULL, lat_b01 BIGINT NOT NULL, lat_b02 BIGINT NOT NULL, lat_b03 BIGINT NOT NULL,
    lat_b04 BIGINT NOT NULL, lat_b05 BIGINT NOT NULL, lat_b06 BIGINT NOT NULL, lat_b07 BIGINT NOT NULL,
    lat_b08 BIGINT NOT NULL, lat_b09 BIGINT NOT NULL, lat_b10 BIGINT NOT NULL, lat_b11 BIGINT NOT NULL,
    lat_b12 BIGINT NOT NULL, lat_b13 BIGINT NOT NULL, lat_b14 BIGINT NOT NULL, lat_b15 BIGINT NOT NULL,
    ttft_b00 BIGINT NOT NULL, ttft_b01 BIGINT NOT NULL, ttft_b02 BIGINT NOT NULL, ttft_b03 BIGINT NOT NULL,
    ttft_b04 BIGINT NOT NULL, ttft_b05 BIGINT NOT NULL, ttft_b06 BIGINT NOT NULL, ttft_b07 BIGINT NOT NULL,
    ttft_b08 BIGINT NOT NULL, ttft_b09 BIGINT NOT NULL, ttft_b10 BIGINT NOT NULL, ttft_b11 BIGINT NOT NULL,
    ttft_b12 BIGINT NOT NULL, ttft_b13 BIGINT NOT NULL, ttft_b14 BIGINT NOT NULL, ttft_b15 BIGINT NOT NULL,
    PRIMARY KEY (bucket_ms, key_label, user_id, model, provider, credential, status_class)
);
