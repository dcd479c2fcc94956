"""Per-event latencies recorded in HDR histograms, for the benchmarks (``CHURNSTREAM_LATENCY_LOG``).

The worker's Prometheus histograms only say which bucket a latency fell in, so a p99 read from them is a bucket
bound (1 s, 30 s), not a measurement. When ``CHURNSTREAM_LATENCY_LOG`` names a file, the worker also records every
event's produce-to-visible latency, in microseconds, into one HDR histogram per metric, and appends the histogram
of each interval (about a second) to that file as one JSON line: ``{"name", "start", "end", "count", "hdr"}``, with
``hdr`` the histogram in HdrHistogram's standard compressed encoding. ``bench/latency.py`` reads the lines of a
time window back and merges them. When the setting is unset (the default) :func:`record` does nothing.
"""

from __future__ import annotations

import atexit
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import orjson
from hdrh.histogram import HdrHistogram
from prometheus_client import Histogram

from churnstream.settings import get_settings
from streams.metrics import EVENT_TO_CLICKHOUSE_SECONDS, EVENT_TO_SCORE_SECONDS

#: the worker's latency metrics and their names in the log
NAMES = {EVENT_TO_SCORE_SECONDS: "event_to_score", EVENT_TO_CLICKHOUSE_SECONDS: "event_to_clickhouse"}
LOWEST_US, HIGHEST_US, DIGITS = 1, 3_600_000_000, 3  # 1 us to 1 h, 3 significant digits


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)


class LatencyLog:
    """HDR histograms per metric name, written to ``path`` as one JSON line per name and interval."""

    def __init__(self, path: Path, interval_s: float = 1.0) -> None:
        self.path, self.interval_s = path, interval_s
        self.lock = threading.Lock()
        self.current: dict[str, HdrHistogram] = {}
        self.started = time.time()

    def record(self, name: str, seconds: np.ndarray) -> None:
        """Record latencies given in seconds (clamped to the histogram's range)."""
        micros = np.clip(np.rint(seconds * 1e6), LOWEST_US, HIGHEST_US).astype(np.int64)
        with self.lock:
            histogram = self.current.get(name)
            if histogram is None:
                histogram = self.current[name] = new_histogram()
            for value in micros.tolist():
                histogram.record_value(value)

    def flush(self) -> None:
        """Append the histograms of the interval that ends now, then start the next interval."""
        with self.lock:
            current, self.current = self.current, {}
            start, self.started = self.started, time.time()
        end = self.started
        lines = [
            orjson.dumps({"name": n, "start": start, "end": end, "count": h.total_count, "hdr": h.encode().decode()})
            for n, h in sorted(current.items())
            if h.get_total_count()
        ]
        if lines:
            with self.path.open("ab") as f:
                f.write(b"\n".join(lines) + b"\n")

    def run_flusher(self) -> None:
        """Flush every ``interval_s`` in a daemon thread, and once more at exit."""

        def loop() -> None:
            while True:
                time.sleep(self.interval_s)
                self.flush()

        threading.Thread(target=loop, name="latency-log", daemon=True).start()
        atexit.register(self.flush)


_log: LatencyLog | None = None
_enabled: bool | None = None


def record(histogram: Histogram, seconds: np.ndarray) -> None:
    """Record the latencies observed into ``histogram`` in the latency log, if one is configured."""
    global _log, _enabled
    if _enabled is None:
        path = get_settings().latency_log
        _enabled = path is not None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            _log = LatencyLog(path)
            _log.run_flusher()
    if _log is not None and histogram in NAMES:
        _log.record(NAMES[histogram], seconds)


def observe_since(histogram: Histogram, produced_ms: Sequence[int | None]) -> None:
    """Observe, for each record, the seconds from its broker timestamp (produce time) to now.

    One bucket increment per bucket rather than one ``observe`` per record (about 4 us each): the records of a
    batch become visible at the same moment, so their latencies are bucketed together with numpy.
    """
    known = np.fromiter((ts for ts in produced_ms if ts is not None), dtype=np.float64)
    if not len(known):
        return
    seconds = np.maximum(0.0, time.time() * 1000 - known) / 1000
    record(histogram, seconds)  # per-event values for the benchmarks (streams/latency.py)
    bounds, buckets, total = (getattr(histogram, a, None) for a in ("_upper_bounds", "_buckets", "_sum"))
    if bounds is None or buckets is None or total is None:  # prometheus_client changed its internals
        for x in seconds.tolist():
            histogram.observe(x)
        return
    counts = np.bincount(np.searchsorted(bounds, seconds, side="left"), minlength=len(bounds))
    for i in np.flatnonzero(counts).tolist():
        buckets[i].inc(int(counts[i]))
    total.inc(float(seconds.sum()))
