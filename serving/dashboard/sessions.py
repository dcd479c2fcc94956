"""Dashboard logins: an API key with ``read`` scope is exchanged once for a session cookie.

The cookie holds a random token (256 bits); Redis holds only its SHA-256, mapped to the key id, with a TTL
(:func:`core.keys.session_key`), so every API process of a deployment sees the same sessions and a logout ends
the session everywhere. A session ends when its key is revoked: each request checks that the key still exists.
The cookie is ``HttpOnly`` (no script reads it) and ``SameSite=Strict`` (no other site sends it); customer data
never goes in a URL.

>>> token = new_token()
>>> len(token) >= 43 and digest(token) != token
True
"""

from __future__ import annotations

import hashlib
import secrets

import redis.asyncio as aioredis

from core.keys import session_key
from serving.keys import KeyRecord, KeyStore

COOKIE = "cs_dashboard"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Sessions:
    def __init__(self, redis: aioredis.Redis, keys: KeyStore, ttl_s: int) -> None:
        self.redis, self.keys, self.ttl_s = redis, keys, ttl_s

    async def open(self, api_key: str) -> str | None:
        """A new session's token for a valid key with ``read`` scope; None otherwise."""
        record = await self.keys.verify(api_key.strip())
        if record is None or not record.allows("read"):
            return None
        token = new_token()
        await self.redis.set(session_key(digest(token)), record.key_id, ex=self.ttl_s)
        return token

    async def viewer(self, token: str | None) -> KeyRecord | None:
        """The key behind a session cookie, if the session and the key are both still valid."""
        if not token or len(token) > 100:
            return None
        key_id: bytes | None = await self.redis.get(session_key(digest(token)))  # type: ignore[assignment]
        if key_id is None:
            return None
        return await self.keys.get(key_id.decode())

    async def close(self, token: str | None) -> None:
        if token and len(token) <= 100:
            await self.redis.delete(session_key(digest(token)))
