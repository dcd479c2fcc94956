-- Live model quality from progressive validation: each resolved label first scores the prediction made when the
-- snapshot was taken, then trains the online model. Rolling figures over the last `window` labels.
CREATE TABLE IF NOT EXISTS model_metrics
(
    ts         DateTime64(3, 'UTC'),
    task       LowCardinality(String),
    model_kind LowCardinality(String),
    model      LowCardinality(String),
    labels     UInt64,
    window     UInt32,
    roc_auc    Nullable(Float64),
    log_loss   Float64,
    positive_rate Float64
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (task, model_kind, ts);
