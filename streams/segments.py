"""RFM segments beside the scores: the worker's :class:`Segmenter` turns the feature vectors it scores into
segments (:mod:`features.rfm`), for the Redis score cache (field ``segment:rfm`` of :func:`core.keys.score_key`) and
the ClickHouse ``user_segments`` history.

It segments with the boundaries a :class:`streams.segment_watch.SegmentWatch` last adopted; before any exist (a new
deployment's first events) it segments no one. With behavioural clusters trained (:mod:`models.clusters`), each row
also gets its cluster (else -1).

>>> from features.compute import FEATURE_NAMES
>>> from features.rfm import Boundaries
>>> s = Segmenter(Boundaries("v1", 0, 5, (2.0, 6.0, 12.0, 25.0), (0.0, 1.0, 2.0, 4.0), (0.0, 20.0, 40.0, 90.0)))
>>> cache, rows = s.segment([("u1", 0, "event", [0.0] * len(FEATURE_NAMES))], latest={"u1"})
>>> orjson.loads(cache["u1"])["segment"], rows.rows()[0][:7], rows.rows()[0][-2:]
('New', ('u1', 0, 'event', 'New', 5, 1, 1), (-1, ''))
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import msgspec
import numpy as np
import orjson

from features.rfm import Boundaries, of_vector
from models.clusters import Clusters
from streams.sinks import Columns

SEGMENT_FIELD = "segment:rfm"  # the score cache's field of the latest segment
SEGMENT_COLUMNS = (
    "user_id",
    "as_of",
    "trigger",
    "segment",
    "r",
    "f",
    "m",
    "recency_days",
    "frequency",
    "monetary",
    "rfm_version",
    "cluster",
    "clusters_version",
)

Pick = tuple[str, int, str, Sequence[float]]  # (user, as_of ms, trigger, feature vector)


class Segmenter:
    def __init__(self, boundaries: Boundaries | None = None, clusters: Clusters | None = None) -> None:
        self.boundaries, self.clusters = boundaries, clusters  # clusters: the behavioural ones (-1 without)

    def segment(self, picks: Sequence[Pick], latest: Collection[str]) -> tuple[dict[str, bytes], Columns]:
        """The ``user_segments`` rows of ``picks`` and, for the users in ``latest``, their last pick's cache
        entry."""
        b = self.boundaries
        columns = Columns.empty(len(SEGMENT_COLUMNS))
        cache: dict[str, bytes] = {}
        if b is None or not picks:
            return cache, columns
        data, c = columns.data, self.clusters
        clusters = c.assign(np.array([p[3] for p in picks])).tolist() if c is not None else [-1] * len(picks)
        version = c.version if c is not None else ""
        for (user, as_of, trigger, x), cluster in zip(picks, clusters, strict=True):
            s = of_vector(b, x, as_of, trigger)
            row = (user, as_of, trigger, s.segment, s.r, s.f, s.m, s.recency_days, s.frequency, s.monetary, b.version)
            for i, value in enumerate((*row, cluster, version)):
                data[i].append(value)
            if user in latest:
                extra = {"code": s.code, "cluster": cluster, "clusters_version": version}
                cache[user] = orjson.dumps(msgspec.to_builtins(s) | extra)
        return cache, columns
