"""Prometheus metrics of the worker (served on ``CHURNSTREAM_METRICS_PORT``)."""

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter("churnstream_events_total", "Input records by topic and outcome", ["topic", "outcome"])
DLQ = Counter("churnstream_dlq_total", "Records sent to the dead-letter topic, by reason", ["reason"])
BATCH_SECONDS = Histogram(
    "churnstream_batch_seconds",
    "Time to process one micro-batch, sinks included",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BATCH_SIZE = Histogram(
    "churnstream_batch_size", "Records per micro-batch", buckets=(1, 10, 50, 100, 250, 500, 1000, 5000)
)
SCORING_SECONDS = Histogram(
    "churnstream_scoring_seconds",
    "One batched model call over the users of a micro-batch",
    ["task", "model_kind"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)
EVENT_TO_SCORE_SECONDS = Histogram(
    "churnstream_event_to_score_seconds",
    "From the record's broker timestamp (produce time) to its score being visible in Redis",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
CONSUMER_LAG = Gauge("churnstream_consumer_lag", "Records not yet consumed on this worker's input partitions")
EVENT_TO_CLICKHOUSE_SECONDS = Histogram(
    "churnstream_event_to_clickhouse_seconds",
    "From the record's broker timestamp (produce time) to its prediction rows being inserted in ClickHouse",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
RESCORED = Counter("churnstream_rescored_users_total", "Users looked at by the time path (rescored at day ends)")
RESCORE_WATERMARK = Gauge(
    "churnstream_rescore_watermark_ms", "Per partition, day ends at or before this (epoch ms) are due", ["partition"]
)
ALIGNER_FORCED = Counter(
    "churnstream_aligner_forced_total",
    "Records released out of arrival order because an idle partition held the others back too long",
)
ALERTS = Counter("churnstream_alerts_total", "Drift alerts raised, by statistic and level", ["statistic", "level"])
DRIFT_DAYS = Counter("churnstream_drift_days_total", "Days whose drift the daily drift job computed, per champion")
DRIFT_THRESHOLD = Gauge("churnstream_drift_threshold", "Drift alert thresholds this worker applies now", ["name"])
