-- The live population, for drift (models/drift.py): the feature vector of a deterministic sample of users
-- (CHURNSTREAM_DRIFT_SAMPLE of them, chosen by a hash of the user id) at each day end they are scored by time, so
-- one row per sampled active user and day. The worker's rescorer writes it before the `predictions` time rows of the
-- same step; a step redone writes the same rows again: read with FINAL. PSI per feature compares a day's rows with
-- the bins of the champion's training rows kept in its meta.json.
CREATE TABLE IF NOT EXISTS daily_features
(
    day     Date MATERIALIZED toDate(as_of),
    user_id String,
    as_of   DateTime64(3, 'UTC'),
    x       Array(Float64)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (day, user_id)
SETTINGS non_replicated_deduplication_window = 10000;
