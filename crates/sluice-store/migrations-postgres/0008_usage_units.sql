-- Usage units beyond tokens (issue 13), the twin of the SQLite migration: seconds of audio
-- transcribed or translated, characters spoken, images generated or edited, rerank's documents
-- and search units. Added on the partitioned table, so every month's partition has them.
ALTER TABLE usage_records ADD COLUMN audio_seconds DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE usage_records ADD COLUMN characters BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_records ADD COLUMN images BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_records ADD COLUMN documents BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_records ADD COLUMN search_units BIGINT NOT NULL DEFAULT 0;
