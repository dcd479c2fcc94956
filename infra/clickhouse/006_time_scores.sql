-- Scores that follow time (issue 14). A prediction row is either triggered by an event (`trigger` = 'event', its
-- `event_id`) or by time (`trigger` = 'time', `event_id` empty): a user rescored at the end of a UTC day with no
-- new event. `as_of` is the event time the features were computed at; `event_ts` is the triggering event's time, or
-- for a time row the user's latest event at `as_of`. The sorting key starts with the user, so a user's history is
-- one range, and holds one row per (user, task, model kind, as_of, event): time rows once per as_of.
DROP VIEW IF EXISTS latest_scores_mv;
CREATE TABLE IF NOT EXISTS predictions_v2
(
    user_id       String,
    task          LowCardinality(String),
    model_kind    LowCardinality(String),
    as_of         DateTime64(3, 'UTC'),
    event_id      String,
    trigger       LowCardinality(String),
    event_ts      DateTime64(3, 'UTC'),
    scored_at     DateTime64(3, 'UTC'),
    model         LowCardinality(String),
    model_version String,
    score         Float64
)
ENGINE = ReplacingMergeTree(scored_at)
PARTITION BY toYYYYMM(as_of)
ORDER BY (user_id, task, model_kind, as_of, event_id)
SETTINGS non_replicated_deduplication_window = 10000;
INSERT INTO predictions_v2 (user_id, task, model_kind, as_of, event_id, trigger, event_ts, scored_at, model, model_version, score)
SELECT user_id, task, model_kind, event_ts, event_id, 'event', event_ts, scored_at, model, model_version, score FROM predictions;
RENAME TABLE predictions TO predictions_v1, predictions_v2 TO predictions;
DROP TABLE predictions_v1;

-- The latest score per (user, task, model kind) by `as_of` (not by when it was written): read with FINAL.
CREATE TABLE IF NOT EXISTS latest_scores_v2
(
    user_id       String,
    task          LowCardinality(String),
    model_kind    LowCardinality(String),
    as_of         DateTime64(3, 'UTC'),
    trigger       LowCardinality(String),
    event_id      String,
    event_ts      DateTime64(3, 'UTC'),
    scored_at     DateTime64(3, 'UTC'),
    model         LowCardinality(String),
    model_version String,
    score         Float64
)
ENGINE = ReplacingMergeTree(as_of)
ORDER BY (user_id, task, model_kind)
SETTINGS non_replicated_deduplication_window = 10000;
INSERT INTO latest_scores_v2 (user_id, task, model_kind, as_of, trigger, event_id, event_ts, scored_at, model, model_version, score)
SELECT user_id, task, model_kind, event_ts, 'event', event_id, event_ts, scored_at, model, model_version, score FROM latest_scores;
RENAME TABLE latest_scores TO latest_scores_v1, latest_scores_v2 TO latest_scores;
DROP TABLE latest_scores_v1;
CREATE MATERIALIZED VIEW IF NOT EXISTS latest_scores_mv TO latest_scores AS
SELECT user_id, task, model_kind, as_of, trigger, event_id, event_ts, scored_at, model, model_version, score
FROM predictions;

-- How each user's risk evolved: the day's latest score per (user, task, model kind, UTC day of as_of), for BI.
CREATE TABLE IF NOT EXISTS user_scores_daily
(
    user_id       String,
    task          LowCardinality(String),
    model_kind    LowCardinality(String),
    day           Date,
    as_of         DateTime64(3, 'UTC'),
    trigger       LowCardinality(String),
    last_event_ts DateTime64(3, 'UTC'),
    model         LowCardinality(String),
    model_version String,
    score         Float64
)
ENGINE = ReplacingMergeTree(as_of)
PARTITION BY toYYYYMM(day)
ORDER BY (user_id, task, model_kind, day)
SETTINGS non_replicated_deduplication_window = 10000;
CREATE MATERIALIZED VIEW IF NOT EXISTS user_scores_daily_mv TO user_scores_daily AS
SELECT user_id, task, model_kind, toDate(as_of) AS day, as_of, trigger,
       if(trigger = 'time', event_ts, as_of) AS last_event_ts, model, model_version, score
FROM predictions;
INSERT INTO user_scores_daily (user_id, task, model_kind, day, as_of, trigger, last_event_ts, model, model_version, score)
SELECT user_id, task, model_kind, toDate(as_of), as_of, trigger, if(trigger = 'time', event_ts, as_of), model, model_version, score
FROM predictions;
