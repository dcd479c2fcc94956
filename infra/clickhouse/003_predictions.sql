-- One score per (event, task, model kind): a batch scored again after a retry collapses at merge time.
CREATE TABLE IF NOT EXISTS predictions
(
    event_id      String,
    user_id       String,
    event_ts      DateTime64(3, 'UTC'),
    scored_at     DateTime64(3, 'UTC'),
    task          LowCardinality(String),
    model_kind    LowCardinality(String),
    model         LowCardinality(String),
    model_version String,
    score         Float64
)
ENGINE = ReplacingMergeTree(scored_at)
PARTITION BY toYYYYMM(event_ts)
ORDER BY (event_id, task, model_kind);

-- The latest score per (user, task, model kind), for point lookups and BI: read with FINAL.
CREATE TABLE IF NOT EXISTS latest_scores
(
    user_id       String,
    task          LowCardinality(String),
    model_kind    LowCardinality(String),
    model         LowCardinality(String),
    model_version String,
    score         Float64,
    event_id      String,
    event_ts      DateTime64(3, 'UTC'),
    scored_at     DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(event_ts)
ORDER BY (user_id, task, model_kind);

CREATE MATERIALIZED VIEW IF NOT EXISTS latest_scores_mv TO latest_scores AS
SELECT user_id, task, model_kind, model, model_version, score, event_id, event_ts, scored_at FROM predictions;
