"""Prometheus metrics of the worker (served on ``CHURNSTREAM_METRICS_PORT``)."""

from prometheus_client import Counter, Histogram

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
