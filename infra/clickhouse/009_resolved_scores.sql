-- Scores with the label the stream resolved for them: the dashboard's lift, gains and calibration panels read this
-- instead of joining every prediction to the events after it. The online learner writes one row per model kind
-- (the champion `pretrained` and `online`) for each snapshot it resolves (one pending snapshot per user and task,
-- taken after a micro-batch, streams/online.py), before the checkpoint that lets it trim the label log: a crash
-- replays what it has not written. A label written again after a restart is the same row: read with FINAL.
--
-- horizon_end = as_of + the task's horizon. Every snapshot whose horizon_end is at or before the learner's
-- watermark (resolved_at: the latest event time less the label lateness) is resolved, one way or the other.
CREATE TABLE IF NOT EXISTS resolved_scores
(
    task        LowCardinality(String),
    model_kind  LowCardinality(String),
    user_id     String,
    as_of       DateTime64(3, 'UTC'),
    horizon_end DateTime64(3, 'UTC'),
    score       Float64,
    label       UInt8,
    resolved_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(horizon_end)
ORDER BY (task, model_kind, horizon_end, user_id)
SETTINGS non_replicated_deduplication_window = 10000;
