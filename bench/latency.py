"""Percentiles from recorded latencies (HDR histograms), never from Prometheus bucket bounds.

Two sources: the worker's latency log (``streams/latency.py``: one JSON line per metric and second, with the
interval's HDR histogram) and the API load generator's per-request latencies (one number per line, microseconds).

>>> h = histogram_of(range(1, 1001))  # 1..1000 us
>>> summary(h)
{'count': 1000, 'p50_ms': 0.5, 'p95_ms': 0.95, 'p99_ms': 0.99, 'max_ms': 1.0}
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import orjson
from hdrh.histogram import HdrHistogram

from streams.latency import new_histogram

PERCENTILES = (50, 95, 99)


def histogram_of(micros: Iterable[int]) -> HdrHistogram:
    """An HDR histogram of latencies in microseconds."""
    h = new_histogram()
    for value in micros:
        h.record_value(max(1, int(value)))
    return h


def summary(h: HdrHistogram) -> dict[str, float | int]:
    """Count, p50/p95/p99 and max in milliseconds (HDR values: within 0.1% of the recorded ones)."""
    out: dict[str, float | int] = {"count": h.get_total_count()}
    for p in PERCENTILES:
        out[f"p{p}_ms"] = round(h.get_value_at_percentile(p) / 1000, 3)
    out["max_ms"] = round(h.get_max_value() / 1000, 3)
    return out


def read_log(path: Path, since: float, until: float = float("inf")) -> dict[str, HdrHistogram]:
    """Merge, per metric name, the intervals of the worker's latency log that end within ``(since, until]``."""
    merged: dict[str, HdrHistogram] = {}
    if not path.exists():
        return merged
    for line in path.read_bytes().splitlines():
        entry = orjson.loads(line)
        if since < entry["end"] <= until:
            h = merged.setdefault(entry["name"], new_histogram())
            h.decode_and_add(entry["hdr"])
    return merged


def read_micros(path: Path) -> HdrHistogram:
    """The histogram of a file with one latency in microseconds per line."""
    return histogram_of(int(line) for line in path.read_text().split())
