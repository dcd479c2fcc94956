-- Smoke pipeline: one row per consumed page view, deduplicated per source record (topic, partition, offset).
CREATE TABLE IF NOT EXISTS smoke_page_views
(
    topic      LowCardinality(String),
    partition  UInt16,
    offset     UInt64,
    user_id    String,
    event_id   String,
    ts         DateTime64(3, 'UTC'),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (topic, partition, offset);
