-- Dead letters as the dashboard and BI read them: one row per dead-lettered source record, written by the worker
-- with the batch's insert deduplication token after the letter reached the Kafka DLQ topic (which stays the record
-- of truth, with the original bytes). A batch redone after a failure may write a row again: count letters by
-- their source coordinates, uniqExact(topic, partition, offset).
CREATE TABLE IF NOT EXISTS dead_letters
(
    topic      LowCardinality(String),
    partition  UInt16,
    offset     UInt64,
    reason     LowCardinality(String),
    detail     String,
    sent_at    DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(sent_at)
PARTITION BY toYYYYMM(sent_at)
ORDER BY (topic, partition, offset)
SETTINGS non_replicated_deduplication_window = 10000;
