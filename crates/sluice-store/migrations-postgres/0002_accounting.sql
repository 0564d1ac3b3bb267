-- Accounting (issue 9), the twin of SQLite's 0002.
--
-- Every usage record carries an id the gateway generated for it, unique: a batch written again
-- (a retry after a commit whose answer was lost) inserts nothing, and two requests that share a
-- client-chosen X-Request-Id (the old uniqueness, request id and time, merged them) are still
-- two records. The partition key must be part of a unique index, hence (record_id, time_ms); a
-- replay carries the same time. Records written before this migration get an id of their own.
ALTER TABLE usage_records ADD COLUMN record_id TEXT;
UPDATE usage_records SET record_id = 'legacy-' || request_id || '@' || time_ms;
DROP INDEX usage_records_request;
CREATE UNIQUE INDEX usage_records_record ON usage_records (record_id, time_ms);

-- Ceilings an admin sets on a user's keys (NULL: none): the most `rate_limit`, `daily_limit`
-- and `monthly_quota` any of the user's keys may have, and a monthly budget the quotas of all
-- the user's keys together may not exceed.
ALTER TABLE users ADD COLUMN max_rate_limit BIGINT;
ALTER TABLE users ADD COLUMN max_daily_limit BIGINT;
ALTER TABLE users ADD COLUMN max_monthly_quota_nanos BIGINT;
ALTER TABLE users ADD COLUMN monthly_budget_nanos BIGINT;
