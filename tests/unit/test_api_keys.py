"""API keys: only a SHA-256 of the secret is stored, and a presented key is compared in constant time."""

from __future__ import annotations

import asyncio
import hmac
from typing import Any

import pytest

from serving import keys
from serving.keys import KeyStore


class HashOnly:
    """The two Redis hash commands the key store uses, in memory."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    async def hset(self, _name: str, field: str, value: bytes) -> int:
        self.data[field] = value
        return 1

    async def hget(self, _name: str, field: str) -> bytes | None:
        return self.data.get(field)


def test_secret_stored_as_sha256_and_compared_with_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    redis = HashOnly()
    store = KeyStore(redis, cache_s=0)  # type: ignore[arg-type]
    token = asyncio.run(store.create("crm", ("read",)))
    _, key_id, secret = token.split("_", 2)
    assert secret.encode() not in redis.data[key_id]
    assert keys.digest(secret).encode() in redis.data[key_id]

    compared: list[tuple[Any, Any]] = []
    constant_time = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return constant_time(a, b)

    monkeypatch.setattr(keys.hmac, "compare_digest", spy)
    assert asyncio.run(store.verify(token)) is not None
    assert asyncio.run(store.verify(f"cs_{key_id}_wrong")) is None
    assert len(compared) == 2  # both answers came from the constant-time comparison of digests
    assert all(len(a) == len(b) == 64 for a, b in compared)
