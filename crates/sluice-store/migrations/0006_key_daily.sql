-- Issue 10, the dashboard at scale: per key and calendar day, the requests that count against
-- the daily limit (refused ones do not) and the cost. Written in the same transaction as the
-- usage records (`ui::write_dashboard!`, from exactly the rows inserted), so it always equals
-- them; `Store::key_spend` (the limiter's resume, the Keys page's and Overview's meters) reads
-- at most a month of days per key here instead of a month of usage records.
-- PostgreSQL twin: migrations-postgres/0006_key_daily.sql.
CREATE TABLE key_daily (
    api_key_id BIGINT NOT NULL,
    day TEXT NOT NULL,
    requests BIGINT NOT NULL,
    cost_nanos BIGINT NOT NULL,
    PRIMARY KEY (api_key_id, day)
);
CREATE INDEX key_daily_day ON key_daily (day);

-- The records already stored.
INSERT INTO key_daily (api_key_id, day, requests, cost_nanos)
SELECT api_key_id, day,
       SUM(CASE WHEN error IS NULL OR error NOT IN ('rate_limit_exceeded', 'daily_limit_exceeded',
           'monthly_quota_exceeded', 'platform_not_allowed', 'model_not_allowed',
           'api_key_disabled', 'api_key_expired') THEN 1 ELSE 0 END),
       SUM(cost_nanos)
FROM usage_records WHERE api_key_id IS NOT NULL
GROUP BY api_key_id, day;
