"""The import ledger: which event ids ``churnstream import`` has already sent, so importing a file again (or an
export that overlaps an earlier one) sends only what is new.

Per user, a Redis set of 8-byte hashes of the ids sent (:func:`core.keys.imported_key`, in the user's hash slot),
written once the producer has every record acknowledged. A crash between the acknowledgements and that write
leaves the ids out: the next import sends them again, and the worker drops them as repeats only among the user's
16 latest ids (docs/events.md). About 60 bytes per imported event in Redis.

>>> len(id_hash("imp-0123")), id_hash("a") == id_hash("a"), id_hash("a") == id_hash("b")
(8, True, False)
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from itertools import islice
from typing import Any

from core.keys import imported_key

USERS_PER_PIPELINE = 1000


def id_hash(event_id: str) -> bytes:
    return hashlib.blake2b(event_id.encode(), digest_size=8).digest()


def _by_user(events: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        out[str(e["user_id"])].append(e)
    return out


def _chunks(users: list[str], n: int = USERS_PER_PIPELINE) -> list[list[str]]:
    it = iter(users)
    return list(iter(lambda: list(islice(it, n)), []))


class ImportLedger:
    def __init__(self, redis: Any) -> None:
        self.redis = redis  # a synchronous redis-py client

    def unsent(self, events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """The events whose ids no earlier import sent, in their order."""
        by_user = _by_user(events)
        sent: set[int] = set()
        for users in _chunks(list(by_user)):
            with self.redis.pipeline(transaction=False) as pipe:
                for u in users:
                    pipe.smismember(imported_key(u), [id_hash(e["event_id"]) for e in by_user[u]])
                for u, flags in zip(users, pipe.execute(), strict=True):
                    sent.update(id(e) for e, f in zip(by_user[u], flags, strict=True) if f)
        return [e for e in events if id(e) not in sent]

    def remember(self, events: Sequence[dict[str, Any]]) -> None:
        """Record the events as sent (call once the producer has them all acknowledged)."""
        by_user = _by_user(events)
        for users in _chunks(list(by_user)):
            with self.redis.pipeline(transaction=False) as pipe:
                for u in users:
                    pipe.sadd(imported_key(u), *[id_hash(e["event_id"]) for e in by_user[u]])
                pipe.execute()
