-- Every export of the at-risk list (churnstream export at-risk, the CHURNSTREAM_EXPORT_CRON schedule, and
-- POST /v1/exports/at-risk): when, where to, what list (task, model kind, min score, limit), how many rows, the
-- list's as-of (the latest as-of among the task's scores), and for files the sha256 of the bytes written.
-- Written once each, after the file was renamed into place or the Kafka records were acknowledged.
CREATE TABLE IF NOT EXISTS exports
(
    export_id   String,
    kind        LowCardinality(String),
    destination String,
    task        LowCardinality(String),
    model_kind  LowCardinality(String),
    min_score   Float64,
    max_rows    UInt64,
    rows        UInt64,
    as_of       Nullable(DateTime64(3, 'UTC')),
    started_at  DateTime64(3, 'UTC'),
    finished_at DateTime64(3, 'UTC'),
    sha256      String
)
ENGINE = ReplacingMergeTree
ORDER BY (started_at, export_id)
SETTINGS non_replicated_deduplication_window = 10000;
