"""What the API talks to, created once per process in the app's lifespan: the state store (Redis), ClickHouse,
Kafka, models, keys. Routes get them through :mod:`serving.deps`."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from churnstream.settings import Settings
from features.store import RedisStateStore, StateStore
from models.recommend_store import RecommendationStore
from serving.catalog import ModelCatalog
from serving.import_jobs import ImportJobs
from serving.ingest import KafkaIngest
from serving.keys import KeyStore
from serving.recommendations import RecommendationService


@dataclass
class Services:
    settings: Settings
    redis: aioredis.Redis
    store: StateStore  # users' states and latest scores, on ``redis``
    catalog: ModelCatalog
    keys: KeyStore
    recommendations: RecommendationService
    _ingest: KafkaIngest | None = None
    _clickhouse: Any = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @classmethod
    def create(cls, settings: Settings) -> Services:
        redis = aioredis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=2)
        catalog = ModelCatalog(
            settings.registry_dir(),
            redis,
            settings.checkpoint_secret(),
            settings.online_model if settings.online_model != "off" else "logreg",
            interval_s=settings.model_reload_s,
        )
        store = RedisStateStore(redis)
        recommendations = RecommendationService(
            settings.registry_dir() / "recommender",
            RecommendationStore(redis),
            store,
            settings.category_half_life_days,
            reload_s=settings.model_reload_s,
        )
        return cls(settings, redis, store, catalog, KeyStore(redis, settings.api_key_cache_s), recommendations)

    @property
    def imports(self) -> ImportJobs:
        return ImportJobs(self.settings, self.redis)

    @property
    def ingest(self) -> KafkaIngest:
        if self._ingest is None:
            self._ingest = KafkaIngest(self.settings)
        return self._ingest

    def clickhouse(self) -> Any:
        """A ClickHouse client (clickhouse-connect; embedded chDB or a server), created on first use."""
        if self._clickhouse is None:
            from infra import clickhouse_db

            self._clickhouse = clickhouse_db.connect(self.settings.clickhouse_dsn)
        return self._clickhouse

    def reset_clickhouse(self) -> None:
        """Drop the client after a failure, so the next use reconnects."""
        client, self._clickhouse = self._clickhouse, None
        if client is not None:
            with contextlib.suppress(Exception):  # closing a broken connection may fail too
                client.close()

    async def close(self) -> None:
        if self._ingest is not None:
            await asyncio.to_thread(self._ingest.close)
        if self._clickhouse is not None:
            self._clickhouse.close()
        await self.redis.aclose()
