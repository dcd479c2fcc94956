"""Reading a worker's Prometheus endpoint: what the demo's live line and the benchmarks report.

>>> s = Scrape.parse('churnstream_events_total{topic="a",outcome="applied"} 3.0\\n'
...                  'churnstream_events_total{topic="b",outcome="applied"} 2.0\\n'
...                  'churnstream_x_seconds_bucket{le="0.1"} 1.0\\nchurnstream_x_seconds_bucket{le="+Inf"} 4.0\\n')
>>> s.total("churnstream_events_total", outcome="applied"), s.buckets("churnstream_x_seconds")
(5.0, {0.1: 1.0, inf: 4.0})
>>> quantile({0.1: 1.0, float("inf"): 4.0}, {}, 0.25)
0.1
"""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


@dataclass(frozen=True)
class Scrape:
    samples: list[Sample]

    @classmethod
    def parse(cls, text: str) -> Scrape:
        return cls([s for family in text_string_to_metric_families(text) for s in family.samples])

    @classmethod
    def read(cls, url: str, timeout: float = 5.0) -> Scrape:
        return cls.parse(urllib.request.urlopen(url, timeout=timeout).read().decode())

    def total(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels``."""
        return sum(s.value for s in self.samples if s.name == name and labels.items() <= s.labels.items())

    def by_label(self, name: str, label: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for s in self.samples:
            if s.name == name:
                out[s.labels[label]] = out.get(s.labels[label], 0.0) + s.value
        return out

    def buckets(self, name: str) -> dict[float, float]:
        """Cumulative bucket counts of histogram ``name`` by upper bound (seconds)."""
        return {float(s.labels["le"]): s.value for s in self.samples if s.name == f"{name}_bucket"}


def quantile(after: dict[float, float], before: dict[float, float], q: float) -> float | None:
    """The q-quantile (upper bucket bound) of the observations made between two scrapes; None if there were none."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return None
    return next(b for b, n in zip(bounds, counts, strict=True) if n >= q * counts[-1])
