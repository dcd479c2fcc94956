"""The daily RFM cut: quintile boundaries of the active population from ClickHouse, versioned, shared by every worker.

Every worker ticks (``CHURNSTREAM_SEGMENTS_CHECK_S``). A tick adopts the boundaries in Redis (``cs:rfm``) for its
:class:`~streams.segments.Segmenter`, and cuts new ones when a day has completed since they were cut (the drift
job's notion of complete: every partition's rescoring has passed the day end, so the day's events are all in). A
deployment's first cut does not wait for a whole day: it is taken as of the latest event applied, so the first
users are segmented within a tick.

The cut reads ClickHouse ``events`` (:data:`POPULATION`): each user with an event in the 60 days up to the cut, with
their days since the last event, lifetime purchases and lifetime revenue then; the same three measures the features
give the worker. It is written to ClickHouse ``rfm_boundaries`` under its version and set in Redis only if it is
newer than the boundaries there, so two workers cutting the same day agree on one. With embedded chDB, each worker
reads only its own partitions' events: the cut is then taken over that share of the users (a sample); a ClickHouse
server gives every worker the whole population.

Each tick also adopts the behavioural clusters ``churnstream train`` made current (``<registry>/clusters``). After
a cut it makes, a worker runs the daily jobs that follow it: the recommender (:mod:`streams.recommend_job`) and
demand by category (:mod:`streams.demand_job`), at most once per ``CHURNSTREAM_DAILY_JOBS_GAP_S`` of wall time: a
backlog replayed fast completes a day of event time every tick, and fitting the recommender each time would slow
its catching up for nothing; the cuts themselves (a scan of `events`) follow the same gap once boundaries exist. The
first run of the jobs also waits a gap after the worker starts (a worker that just joined the
group is taking over partitions). A cut whose jobs wait is remembered; the jobs then run for the latest such cut,
so the last day of a backlog gets them at most one gap later; `churnstream recommend fit` runs the recommender at
once.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any, cast

import redis.asyncio as aioredis

from churnstream.settings import Settings
from core.days import DAY_MS, LAPSE_DAYS
from core.keys import RFM_BOUNDARIES, WATERMARKS
from features.rfm import Boundaries
from models.clusters import Clusters, current_version
from models.recommend_store import RecommendationStore
from models.registry import ModelRejected
from streams.demand_job import DEMAND_COLUMNS, DemandJob
from streams.recommend_job import RecommenderJob, read_interactions
from streams.segments import Segmenter
from streams.sinks import ClickHouseSink, Sink

log = logging.getLogger(__name__)

BOUNDARY_COLUMNS = ("version", "as_of", "users", "recency", "frequency", "monetary")

# each event once (a batch written again before a merge), then per user; `as_of` and `since` in epoch ms
POPULATION = """
SELECT ({as_of:Int64} - toUnixTimestamp64Milli(max(ts))) / 86400000 AS recency,
       countIf(event_type = 'purchase') AS frequency,
       sumIf(amount, event_type = 'purchase') AS monetary
FROM (
    SELECT user_id, ts, event_type, amount FROM events
    WHERE ts <= fromUnixTimestamp64Milli({as_of:Int64}, 'UTC')
    LIMIT 1 BY user_id, event_id
)
GROUP BY user_id
HAVING max(ts) > fromUnixTimestamp64Milli({since:Int64}, 'UTC')
"""

# set the boundaries (ARGV[2]) unless those in KEYS[1] are as recent (as_of_ms ARGV[1]); returns those that hold
_NEWER = """
local cur = redis.call('GET', KEYS[1])
if cur and cjson.decode(cur)['as_of_ms'] >= tonumber(ARGV[1]) then return cur end
redis.call('SET', KEYS[1], ARGV[2])
return ARGV[2]
"""


def active_population(client: Any, as_of_ms: int) -> tuple[list[float], list[float], list[float]]:
    """(recency days, lifetime purchases, lifetime revenue) of each user active in the 60 days up to ``as_of_ms``."""
    params = {"as_of": as_of_ms, "since": as_of_ms - LAPSE_DAYS * DAY_MS}
    rows = client.query(POPULATION, parameters=params).result_rows
    return [float(r[0]) for r in rows], [float(r[1]) for r in rows], [float(r[2]) for r in rows]


def version_of(as_of_ms: int) -> str:
    """``rfm-`` and the cut's moment in UTC, to the second."""
    moment = dt.datetime.fromtimestamp(as_of_ms / 1000, dt.UTC)
    return "rfm-" + moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class SegmentWatch:
    def __init__(
        self,
        redis: aioredis.Redis,
        events: ClickHouseSink,
        table: Sink,
        segmenter: Segmenter,
        through: Callable[[], Awaitable[int | None]],
        on_cut: Callable[[int], Awaitable[Any]] | None = None,
        clusters_root: Path | None = None,
        jobs_gap_s: float = 0.0,
    ) -> None:
        self.redis, self.events, self.table, self.segmenter, self.through = redis, events, table, segmenter, through
        self.on_cut = on_cut  # after a cut this worker made is the one in force (the daily recommender job)
        self.clusters_root = clusters_root  # <registry>/clusters: the behavioural clusters, reloaded when replaced
        # the daily jobs at most once per gap of wall time, the first a gap after the worker starts: a worker that
        # just joined (or catches up a backlog) does not fit the recommender while it takes over partitions
        self.jobs_gap_s, self.jobs_at = jobs_gap_s, time.monotonic()
        self.pending: int | None = None  # the latest cut of this worker whose daily jobs have not run yet
        self.cut_at = -float("inf")  # when this worker last cut boundaries (the first cut does not wait)
        self._newer = redis.register_script(_NEWER)
        self.recorded: set[str] = set()  # versions in this worker's rfm_boundaries

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        redis: aioredis.Redis,
        table: ClickHouseSink,
        segmenter: Segmenter,
        through: Callable[[], Awaitable[int | None]],
    ) -> SegmentWatch:
        """The worker's: cuts read ``events`` on ``table``'s client (``rfm_boundaries``); after each cut this worker
        makes, the recommender job and demand by category run; the clusters come from the registry."""
        recommender = RecommenderJob(
            partial(table.call, read_interactions),
            RecommendationStore(redis),
            settings.registry_dir() / "recommender",
        )
        demand = DemandJob(
            ClickHouseSink(settings.clickhouse_dsn, "category_demand", DEMAND_COLUMNS), settings.category_half_life_days
        )

        async def daily(as_of_ms: int) -> None:
            await recommender.run(as_of_ms)
            await demand.run(as_of_ms)

        clusters = settings.registry_dir() / "clusters"
        return cls(redis, table, table, segmenter, through, daily, clusters, settings.daily_jobs_gap_s)

    async def tick(self) -> Boundaries | None:
        """Adopt the shared boundaries, cutting new ones first if a day completed since; a failure is logged and
        retried on the next tick."""
        try:
            self.reload_clusters()
            blob = await self.redis.get(RFM_BOUNDARIES)
            current = Boundaries.from_json(blob) if blob else None
            as_of = await self.due(current)
            if current is not None and time.monotonic() - self.cut_at < self.jobs_gap_s:
                as_of = None  # a day completed, but the last cut is recent (a backlog): cut again after the gap
            if as_of is not None and (cut := await self.cut(as_of)) is not None:
                self.cut_at = time.monotonic()
                current = Boundaries.from_json(await self._newer(keys=[RFM_BOUNDARIES], args=[as_of, cut.to_json()]))
                if current == cut:
                    self.pending = as_of  # this worker's cut: the daily jobs follow it
            if (
                self.pending is not None
                and self.on_cut is not None
                and time.monotonic() - self.jobs_at >= self.jobs_gap_s
            ):
                self.jobs_at, as_of, self.pending = time.monotonic(), self.pending, None
                await self.on_cut(as_of)
            if current is not None:
                await self.record(current)
                self.segmenter.boundaries = current
            return current
        except Exception:
            log.exception("the RFM cut failed; retrying on the next tick")
            return None

    def reload_clusters(self) -> None:
        """Adopt the current behavioural clusters if ``churnstream train`` made a new version current."""
        if self.clusters_root is None:
            return
        version, held = current_version(self.clusters_root), self.segmenter.clusters
        if version is not None and (held is None or held.version != version):
            try:
                self.segmenter.clusters = Clusters.load_current(self.clusters_root)
            except ModelRejected:
                log.exception("the current clusters are refused; keeping %s", held and held.version)

    async def due(self, current: Boundaries | None) -> int | None:
        """The moment to cut at now: the latest complete day end if newer than ``current``; with no boundaries yet,
        the latest event time applied; else None."""
        through = await self.through()
        if current is None:
            clocks = cast(list[tuple[bytes, float]], await self.redis.zrange(WATERMARKS, -1, -1, withscores=True))
            latest = int(clocks[0][1]) if clocks else None
            return max(through or 0, latest or 0) or None
        return through if through is not None and through > current.as_of_ms else None

    async def cut(self, as_of_ms: int) -> Boundaries | None:
        recency, frequency, monetary = await self.events.call(active_population, as_of_ms)
        if not recency:
            return None
        return Boundaries.fit(recency, frequency, monetary, version_of(as_of_ms), as_of_ms)

    async def record(self, b: Boundaries) -> None:
        """Write ``b`` to this worker's ``rfm_boundaries`` once (under its version as the token)."""
        if b.version not in self.recorded:
            row = (b.version, b.as_of_ms, b.users, list(b.recency), list(b.frequency), list(b.monetary))
            await self.table.write([row], b.version)
            self.recorded.add(b.version)
