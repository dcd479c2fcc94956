"""Where recommendations live between the daily job and the API.

- **The item model**, versioned on disk beside the model registry: ``<registry>/recommender/<version>/`` (numpy
  arrays and JSON, :meth:`models.recommend.ItemModel.save`) and a ``CURRENT`` file naming the version served,
  replaced atomically.
- **Each user's CF candidates** in Redis (:func:`core.keys.recs_key`, the user's slot), written by the job with a TTL
  of three days: a user who left the job's window stops getting stale ones.
- **The items bought from a recommendation since** (feedback ``bought``, :func:`core.keys.bought_key`).
- **The admin settings** (:data:`core.keys.RECOMMEND_SETTINGS`): the blend weight, the minimum score and the share of
  users served the popularity baseline instead (a holdout, for click-through by variant). Read on every request, so
  a change applies to the next answer.

>>> RecSettings.from_fields({b"min_score": b"0.2"})
RecSettings(alpha=0.95, min_score=0.2, popular_share=0.0)
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson
import redis.asyncio as aioredis

from core.keys import RECOMMEND_SETTINGS, bought_key, recs_key
from models.recommend import ItemModel

TTL_S = 3 * 86_400
CHUNK = 1000  # users per pipelined round trip


@dataclass(frozen=True)
class RecSettings:
    alpha: float = 0.95  # the blend's weight on CF (docs/models.md: chosen on a validation split)
    min_score: float = 0.0
    popular_share: float = 0.0

    @classmethod
    def from_fields(cls, fields: Mapping[bytes | str, bytes | str]) -> RecSettings:
        values = {(k.decode() if isinstance(k, bytes) else k): float(v) for k, v in fields.items()}
        return cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})

    def fields(self) -> dict[str, str]:
        return {k: repr(v) for k, v in asdict(self).items()}


class Candidates:
    """One user's CF candidates (item, score) and the items they bought, as of the job's version."""

    def __init__(self, version: str, items: Sequence[tuple[str, float]], bought: Sequence[str]) -> None:
        self.version, self.items, self.bought = version, list(items), list(bought)

    def encode(self) -> bytes:
        return orjson.dumps({"version": self.version, "items": self.items, "bought": self.bought})

    @classmethod
    def decode(cls, blob: bytes) -> Candidates:
        d = orjson.loads(blob)
        return cls(d["version"], [(i, s) for i, s in d["items"]], d["bought"])


class RecommendationStore:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def write(self, candidates: Mapping[str, Candidates], ttl_s: int = TTL_S) -> int:
        users = list(candidates)
        for start in range(0, len(users), CHUNK):
            async with self.redis.pipeline(transaction=False) as pipe:
                for u in users[start : start + CHUNK]:
                    pipe.set(recs_key(u), candidates[u].encode(), ex=ttl_s)
                await pipe.execute()
        return len(users)

    async def read(self, user_id: str) -> tuple[Candidates | None, set[str], RecSettings]:
        """The user's candidates (None: not in the job's window), the items bought since, and the settings: one
        round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(recs_key(user_id))
            pipe.smembers(bought_key(user_id))
            pipe.hgetall(RECOMMEND_SETTINGS)
            blob, bought, fields = await pipe.execute()
        since = {b.decode() if isinstance(b, bytes) else b for b in bought}
        return (Candidates.decode(blob) if blob else None), since, RecSettings.from_fields(fields)

    async def bought(self, user_id: str, item_id: str) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.sadd(bought_key(user_id), item_id)
            pipe.expire(bought_key(user_id), TTL_S)
            await pipe.execute()

    async def settings(self) -> RecSettings:
        return RecSettings.from_fields(await self.redis.hgetall(RECOMMEND_SETTINGS))

    async def set_settings(self, s: RecSettings) -> RecSettings:
        await self.redis.hset(RECOMMEND_SETTINGS, mapping=s.fields())  # type: ignore[arg-type]
        return s


# ---- the item model on disk -----------------------------------------------------------------------------------------
def save_current(root: Path, model: ItemModel) -> Path:
    """Save ``model`` as a new version under ``root`` and make it the one served."""
    path = model.save(root / model.version)
    tmp = root / f".CURRENT.{os.getpid()}"
    tmp.write_text(model.version)
    tmp.replace(root / "CURRENT")
    return path


def current_version(root: Path) -> str | None:
    try:
        return (root / "CURRENT").read_text().strip() or None
    except FileNotFoundError:
        return None


def load_current(root: Path) -> ItemModel | None:
    version = current_version(root)
    return ItemModel.load(root / version) if version else None
