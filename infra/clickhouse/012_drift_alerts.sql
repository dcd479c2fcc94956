-- The daily drift job's results (streams/drift_watch.py): once every partition's rescoring has passed a day end,
-- the PSI of the day's live sample (`daily_features`) per feature, and of the champion's time-row scores
-- (feature ''), against the champion's training profile. One insert per (champion, day) under a deduplication token
-- named after them: a job redone after a crash writes nothing twice. The dashboard's drift page reads this table.
CREATE TABLE IF NOT EXISTS drift
(
    day         Date,
    task        LowCardinality(String),
    model       String,
    version     String,
    feature     String,
    psi         Float64,
    rows        UInt64,
    level       LowCardinality(String),
    computed_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (task, model, version, day, feature)
SETTINGS non_replicated_deduplication_window = 10000;

-- Alerts: a PSI at or above a threshold (statistic `psi`, `feature` empty for the score), or an ADWIN change in a
-- model's progressive-validation log loss (statistic `adwin`, `threshold` its delta). The same alerts go to the Kafka
-- topic `alerts` (CHURNSTREAM_TOPIC_ALERTS), keyed by alert_id. window_start..window_end is the span of event time
-- the statistic covers.
CREATE TABLE IF NOT EXISTS alerts
(
    alert_id     String,
    raised_at    DateTime64(3, 'UTC'),
    task         LowCardinality(String),
    model        String,
    version      String,
    feature      String,
    statistic    LowCardinality(String),
    value        Float64,
    threshold    Float64,
    level        LowCardinality(String),
    window_start DateTime64(3, 'UTC'),
    window_end   DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (alert_id)
SETTINGS non_replicated_deduplication_window = 10000;
