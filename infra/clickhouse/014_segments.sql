-- RFM segments (features/rfm.py, docs/segments.md).
-- rfm_boundaries: the quintile cuts of recency, frequency and monetary over the active population, one row per
-- version, cut once a day by a worker (streams/segment_watch.py); every segment names the version it used.
CREATE TABLE IF NOT EXISTS rfm_boundaries
(
    version     String,
    as_of       DateTime64(3, 'UTC'),
    users       UInt64,
    recency     Array(Float64),
    frequency   Array(Float64),
    monetary    Array(Float64),
    computed_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(computed_at)
ORDER BY version
SETTINGS non_replicated_deduplication_window = 10000;

-- user_segments: the history (with the behavioural cluster, -1 before any is trained), one row per user and moment the worker scored them (an event's row, the latest of a
-- batch per user; every day end of the time rescoring), written with the `predictions` rows of the same batch and
-- under the same token. A batch redone after a failed insert may write its rows again: the sorting key
-- (user, as_of, trigger) collapses them at merge, so read with FINAL or through user_segments_latest.
CREATE TABLE IF NOT EXISTS user_segments
(
    user_id      String,
    as_of        DateTime64(3, 'UTC'),
    trigger      LowCardinality(String),
    segment      LowCardinality(String),
    r            UInt8,
    f            UInt8,
    m            UInt8,
    recency_days Float64,
    frequency    Float64,
    monetary     Float64,
    rfm_version  String,
    cluster      Int16 DEFAULT -1,
    clusters_version String DEFAULT '',
    written_at   DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(written_at)
PARTITION BY toYYYYMM(as_of)
ORDER BY (user_id, as_of, trigger)
SETTINGS non_replicated_deduplication_window = 10000;

-- The latest segment of each user (by as_of), for BI and the dashboard.
CREATE VIEW IF NOT EXISTS user_segments_latest AS
SELECT
    user_id,
    max(t) AS as_of,
    argMax(segment, t) AS segment,
    argMax(r, t) AS r,
    argMax(f, t) AS f,
    argMax(m, t) AS m,
    argMax(rfm_version, t) AS rfm_version,
    argMax(cluster, t) AS cluster,
    argMax(clusters_version, t) AS clusters_version
FROM (SELECT user_id, as_of AS t, segment, r, f, m, rfm_version, cluster, clusters_version FROM user_segments)
GROUP BY user_id;
