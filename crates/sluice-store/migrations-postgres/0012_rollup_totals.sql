-- Issue 10, the dashboard at scale: hourly rollups of everyone's traffic, kept by model,
-- provider, credential and status class but not by key or user (`key_label` is always '' and
-- `user_id` 0, so the rollup code writes and reads them like the other tables). With many keys
-- the keyed hourly table holds about one row per request (1,000,000 rows for 1,000,000
-- requests over 1,000 keys), so a month-to-date total summed there scanned a month of rows;
-- here a month is at most hours x models x credentials x 3 rows. Written in the same
-- transaction as the records (`ui::write_dashboard!`); `rollup::query_sql` reads it for every
-- hourly query that is neither grouped by key or user nor one user's.
-- SQLite twin: migrations/0012_rollup_totals.sql.
CREATE TABLE usage_rollup_hour_total (
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

-- The hours already rolled up.
INSERT INTO usage_rollup_hour_total (bucket_ms, key_label, user_id, model, provider, credential, status_class, requests, failover_saved, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_nanos, latency_sum_ms, ttft_count, lat_b00, lat_b01, lat_b02, lat_b03, lat_b04, lat_b05, lat_b06, lat_b07, lat_b08, lat_b09, lat_b10, lat_b11, lat_b12, lat_b13, lat_b14, lat_b15, ttft_b00, ttft_b01, ttft_b02, ttft_b03, ttft_b04, ttft_b05, ttft_b06, ttft_b07, ttft_b08, ttft_b09, ttft_b10, ttft_b11, ttft_b12, ttft_b13, ttft_b14, ttft_b15)
SELECT bucket_ms, '', 0, model, provider, credential, status_class,
       CAST(SUM(requests) AS BIGINT),
       CAST(SUM(failover_saved) AS BIGINT),
       CAST(SUM(input_tokens) AS BIGINT),
       CAST(SUM(output_tokens) AS BIGINT),
       CAST(SUM(cache_read_tokens) AS BIGINT),
       CAST(SUM(cache_write_tokens) AS BIGINT),
       CAST(SUM(reasoning_tokens) AS BIGINT),
       CAST(SUM(cost_nanos) AS BIGINT),
       SUM(latency_sum_ms),
       CAST(SUM(ttft_count) AS BIGINT),
       CAST(SUM(lat_b00) AS BIGINT),
       CAST(SUM(lat_b01) AS BIGINT),
       CAST(SUM(lat_b02) AS BIGINT),
       CAST(SUM(lat_b03) AS BIGINT),
       CAST(SUM(lat_b04) AS BIGINT),
       CAST(SUM(lat_b05) AS BIGINT),
       CAST(SUM(lat_b06) AS BIGINT),
       CAST(SUM(lat_b07) AS BIGINT),
       CAST(SUM(lat_b08) AS BIGINT),
       CAST(SUM(lat_b09) AS BIGINT),
       CAST(SUM(lat_b10) AS BIGINT),
       CAST(SUM(lat_b11) AS BIGINT),
       CAST(SUM(lat_b12) AS BIGINT),
       CAST(SUM(lat_b13) AS BIGINT),
       CAST(SUM(lat_b14) AS BIGINT),
       CAST(SUM(lat_b15) AS BIGINT),
       CAST(SUM(ttft_b00) AS BIGINT),
       CAST(SUM(ttft_b01) AS BIGINT),
       CAST(SUM(ttft_b02) AS BIGINT),
       CAST(SUM(ttft_b03) AS BIGINT),
       CAST(SUM(ttft_b04) AS BIGINT),
       CAST(SUM(ttft_b05) AS BIGINT),
       CAST(SUM(ttft_b06) AS BIGINT),
       CAST(SUM(ttft_b07) AS BIGINT),
       CAST(SUM(ttft_b08) AS BIGINT),
       CAST(SUM(ttft_b09) AS BIGINT),
       CAST(SUM(ttft_b10) AS BIGINT),
       CAST(SUM(ttft_b11) AS BIGINT),
       CAST(SUM(ttft_b12) AS BIGINT),
       CAST(SUM(ttft_b13) AS BIGINT),
       CAST(SUM(ttft_b14) AS BIGINT),
       CAST(SUM(ttft_b15) AS BIGINT)
FROM usage_rollup_hour
GROUP BY bucket_ms, model, provider, credential, status_class;
