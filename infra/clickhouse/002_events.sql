-- Bronze table: every valid, applied event, as BI and retraining read it.
-- Rows are keyed by (user_id, ts, event_id): a batch written again after a retry or redelivery collapses at merge
-- time; read with FINAL (or GROUP BY event_id) for exact counts.
CREATE TABLE IF NOT EXISTS events
(
    event_id    String,
    user_id     String,
    event_type  LowCardinality(String),
    ts          DateTime64(3, 'UTC'),
    session_id  String DEFAULT '',
    page_type   LowCardinality(String) DEFAULT '',
    product_id  String DEFAULT '',
    category    LowCardinality(String) DEFAULT '',
    action      LowCardinality(String) DEFAULT '',
    quantity    Int32 DEFAULT 0,
    price       Float64 DEFAULT 0,
    order_id    String DEFAULT '',
    amount      Float64 DEFAULT 0,
    currency    LowCardinality(String) DEFAULT '',
    items       String DEFAULT '',
    topic       LowCardinality(String),
    partition   UInt16,
    offset      UInt64,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(ts)
ORDER BY (user_id, ts, event_id);

-- The smoke pipeline's table is replaced by the feature pipeline.
DROP TABLE IF EXISTS smoke_page_views;
