-- Usage units beyond tokens (issue 13): what the forwarded endpoints are billed by. Seconds of
-- audio transcribed or translated, characters spoken (text to speech), images generated or
-- edited, rerank's documents and the search units an upstream reports. Zero when a request
-- used none of them (every chat record).
ALTER TABLE usage_records ADD COLUMN audio_seconds REAL NOT NULL DEFAULT 0;
ALTER TABLE usage_records ADD COLUMN characters BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_records ADD COLUMN images BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_records ADD COLUMN documents BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_records ADD COLUMN search_units BIGINT NOT NULL DEFAULT 0;
