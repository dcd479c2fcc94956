"""The API's own Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Histogram

REQUEST_SECONDS = Histogram(
    "churnstream_api_request_seconds",
    "API request latency by route template, method and status",
    ["route", "method", "status"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
)
