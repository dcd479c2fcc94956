-- Recommendation feedback (POST /v1/recommendations/feedback): shown, clicked, ignored and bought, by variant
-- (`hybrid`, or the `popularity` holdout) and item model version. Each insert carries its feedback_id as the
-- deduplication token, so a client's retry adds no row; the sorting key collapses any other repeat at merge.
CREATE TABLE IF NOT EXISTS recommendation_feedback
(
    feedback_id   String,
    user_id       String,
    item_id       String,
    action        LowCardinality(String),
    variant       LowCardinality(String),
    model_version String,
    ts            DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (variant, action, feedback_id)
SETTINGS non_replicated_deduplication_window = 10000;
