"""API keys: created once, shown once, stored only as a SHA-256 hash in Redis, checked in constant time.

A key looks like ``cs_<key id>_<secret>``. Redis holds, per key id, the hash of the secret, its name and its
scopes (hash :data:`core.keys.API_KEYS`), so every API process of a deployment sees the same keys. The secret has
256 bits of entropy, so a plain SHA-256 (as for GitHub or Stripe tokens) is enough; no password hashing is needed.

>>> key = new_key()
>>> key.token.startswith("cs_"), parse(key.token) == (key.key_id, key.secret)
(True, True)
>>> parse("not-a-key") is None
True
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import orjson
import redis.asyncio as aioredis

from core.keys import API_KEYS

SCOPES = ("read", "write", "admin")


@dataclass(frozen=True)
class NewKey:
    key_id: str
    secret: str

    @property
    def token(self) -> str:
        return f"cs_{self.key_id}_{self.secret}"


@dataclass(frozen=True)
class KeyRecord:
    key_id: str
    name: str
    scopes: tuple[str, ...]
    created_ms: int
    digest: str

    def allows(self, scope: str) -> bool:
        """``admin`` implies every scope."""
        return scope in self.scopes or "admin" in self.scopes


def new_key() -> NewKey:
    return NewKey(secrets.token_hex(6), secrets.token_urlsafe(32))


def parse(token: str) -> tuple[str, str] | None:
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != "cs" or not parts[1] or not parts[2] or len(token) > 200:
        return None
    return parts[1], parts[2]


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyStore:
    """Keys in Redis, with a short in-process cache so that a request costs no Redis round trip.

    A revoked key stops working within ``cache_s`` seconds on every API process.
    """

    def __init__(self, redis: aioredis.Redis, cache_s: float = 5.0) -> None:
        self.redis, self.cache_s = redis, cache_s
        self._cache: dict[str, tuple[float, KeyRecord | None]] = {}

    async def create(self, name: str, scopes: tuple[str, ...]) -> str:
        bad = set(scopes) - set(SCOPES)
        if bad or not scopes:
            raise ValueError(f"scopes must be among {', '.join(SCOPES)}; got {', '.join(sorted(bad)) or 'none'}")
        key = new_key()
        record = {"name": name, "scopes": list(scopes), "created_ms": int(time.time() * 1000)}
        await self.redis.hset(API_KEYS, key.key_id, orjson.dumps(record | {"sha256": digest(key.secret)}))
        return key.token

    async def revoke(self, key_id: str) -> bool:
        self._cache.pop(key_id, None)
        return bool(await self.redis.hdel(API_KEYS, key_id))

    async def list(self) -> list[KeyRecord]:
        raw: dict[bytes, bytes] = await self.redis.hgetall(API_KEYS)  # type: ignore[assignment]
        return sorted((self._record(k.decode(), v) for k, v in raw.items()), key=lambda r: r.created_ms)

    async def get(self, key_id: str) -> KeyRecord | None:
        """The record of a key id (no secret checked: for sessions opened with the key)."""
        blob: bytes | None = await self.redis.hget(API_KEYS, key_id)  # type: ignore[assignment]
        return self._record(key_id, blob) if blob else None

    @staticmethod
    def _record(key_id: str, blob: bytes) -> KeyRecord:
        data = orjson.loads(blob)
        return KeyRecord(key_id, data["name"], tuple(data["scopes"]), data["created_ms"], data["sha256"])

    async def verify(self, token: str) -> KeyRecord | None:
        """The key's record if ``token`` is a valid, unrevoked key; else None."""
        parsed = parse(token)
        if parsed is None:
            return None
        key_id, secret = parsed
        now = time.monotonic()
        hit = self._cache.get(key_id)
        if hit is None or now - hit[0] > self.cache_s:
            blob: bytes | None = await self.redis.hget(API_KEYS, key_id)  # type: ignore[assignment]
            hit = (now, self._record(key_id, blob) if blob else None)
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key_id] = hit
        record = hit[1]
        if record is None or not hmac.compare_digest(digest(secret), record.digest):
            return None
        return record
