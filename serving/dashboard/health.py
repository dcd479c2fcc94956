"""The pipeline-health page: the worker's own metrics, Kafka's consumer lag, dependencies, and two ClickHouse panels.

The worker's Prometheus endpoint (``CHURNSTREAM_METRICS_PORT`` on 127.0.0.1; in ``churnstream run`` the same
process) is read at most once a second and the last :data:`KEEP` readings are kept, so throughput and the mean
event-to-score latency are differences between readings: what happened between two looks, not since start.
The p99 shown beside them is the upper bound of a Prometheus bucket and says so; measured percentiles are in
``docs/benchmarks.md``.

>>> s = Sampler("http://127.0.0.1:1/metrics")
>>> s.rates() == {"events_per_s": None, "mean_event_to_score_ms": None, "p99_bucket_ms": None}
True
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

from churnstream.settings import Settings
from serving.dashboard.panels import Page, chart, pivot
from serving.dashboard.queries import run
from serving.routes.ops import readiness
from streams.lag import group_lag
from streams.scrape import Scrape, quantile

KEEP = 120
LATENCY = "churnstream_event_to_score_seconds"


class Sampler:
    """Readings of the worker's metrics endpoint, newest last."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.readings: deque[tuple[float, Scrape]] = deque(maxlen=KEEP)

    def sample(self) -> bool:
        """Read the endpoint unless the last reading is under a second old; False if the worker does not answer."""
        if self.readings and time.monotonic() - self.readings[-1][0] < 1.0:
            return True
        try:
            self.readings.append((time.monotonic(), Scrape.read(self.url, timeout=2)))
        except OSError:
            return False
        return True

    def rates(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {"events_per_s": None, "mean_event_to_score_ms": None, "p99_bucket_ms": None}
        if len(self.readings) < 2:
            return out
        (t0, a), (t1, b) = self.readings[-2], self.readings[-1]
        name = "churnstream_events_total"
        out["events_per_s"] = round(
            (b.total(name, outcome="applied") - a.total(name, outcome="applied")) / (t1 - t0), 1
        )
        n = b.total(f"{LATENCY}_count") - a.total(f"{LATENCY}_count")
        if n > 0:
            out["mean_event_to_score_ms"] = round(1000 * (b.total(f"{LATENCY}_sum") - a.total(f"{LATENCY}_sum")) / n, 1)
            p99 = quantile(b.buckets(LATENCY), a.buckets(LATENCY), 0.99)
            out["p99_bucket_ms"] = None if p99 is None else 1000 * p99
        return out

    def dead_letters(self) -> dict[str, float]:
        return self.readings[-1][1].by_label("churnstream_dlq_total", "reason") if self.readings else {}


async def consumer_lag(settings: Settings) -> int | None:
    """Records the worker's consumer group has not committed yet (None when Kafka does not answer in 5 s)."""
    try:
        return await asyncio.wait_for(asyncio.to_thread(group_lag, settings), 5)
    except Exception:
        return None


async def health(services: Any, sampler: Sampler) -> Page:
    settings: Settings = services.settings
    worker_up = await asyncio.to_thread(sampler.sample)
    client = await asyncio.to_thread(services.clickhouse)
    throughput, letters = await asyncio.to_thread(lambda: (run(client, "throughput"), run(client, "dead_letters")))
    hours, by_reason = pivot(letters, "hour", "reason", "letters")
    return {
        "kpis": {
            "worker": "answering" if worker_up else "not answering",
            "consumer_lag": await consumer_lag(settings),
            **sampler.rates(),
        },
        "tables": {"dependencies": await readiness(services), "dlq_counter": sampler.dead_letters()},
        "charts": {
            "throughput": chart(
                "bar", [r["minute"] for r in throughput], {"events": [r["events"] for r in throughput]}
            ),
            "dead_letters": chart("bar", hours, by_reason, stacked=True),
        },
    }
