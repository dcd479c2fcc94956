"""The drift alert thresholds in Redis: what ``PUT /v1/admin/drift-thresholds`` writes and every worker's drift watch
(:mod:`streams.drift_watch`) reads at each tick, so a change applies everywhere within seconds."""

from __future__ import annotations

import redis.asyncio as aioredis

from core.keys import DRIFT_THRESHOLDS
from models.alerts import Thresholds


class ThresholdStore:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def get(self) -> Thresholds:
        """The thresholds in force (the defaults for any not set)."""
        return Thresholds.from_fields(await self.redis.hgetall(DRIFT_THRESHOLDS))

    async def set(self, thresholds: Thresholds) -> Thresholds:
        await self.redis.hset(DRIFT_THRESHOLDS, mapping=thresholds.to_fields())
        return thresholds
