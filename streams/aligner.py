"""Event-time alignment across partitions: records are released in broker-timestamp order.

Kafka orders records within a partition only. When a worker catches up on a backlog, a small topic
(``purchases``) is consumed far ahead of a large one (``page_views``), and a user's clock would jump ahead:
older events still waiting in the large topic would then be wrongly ``too_late``. Like Kafka Streams'
timestamp synchronisation, the aligner holds records and releases the one with the smallest broker timestamp
next, but only while every assigned partition either has buffered records or is caught up (nothing more to
fetch). A backlog is then processed in the order it arrived, the same order as in real time, so the
results do not depend on how fast or how late the worker consumes.

A partition that is behind but delivers nothing (empty, not caught up) may hold the others back for at most
``max_wait_s`` (such a *forced* release is counted in ``forced``: the order, and with it each event's score, may
then differ from a replay's); a partition that is merely *ahead* is never released early. ``max_buffered`` bounds
memory: past it, records are released in timestamp order without waiting. Fetching is not paused per partition:
faust drops the records of a partition paused while it iterates a fetched batch and then skips their
offsets as a gap, which loses them (found in a 1M-record backlog run, 12,792 records).

>>> a = EventTimeAligner()
>>> a.add([("cart", 0, 50, "c@50"), ("pv", 0, 10, "p@10")])
>>> a.release({"pv", "cart"}, caught_up=lambda tp: False)  # pv has more to fetch: cart@50 must wait
['p@10']
>>> a.add([("pv", 1, 60, "p@60")])
>>> a.release({"pv", "cart"}, caught_up=lambda tp: True)
['c@50', 'p@60']

Live, a partition whose end the consumer has reached may still have a record on its way: with a grace, the
young records wait that long while some partition has nothing held.

>>> a = EventTimeAligner(grace_ms=200)
>>> a.add([("pv", 0, 1_000, "p@1000"), ("pv", 1, 1_150, "p@1150")])
>>> a.release({"pv", "cart"}, caught_up=lambda tp: True, now_ms=1_300)  # cart may have one from 1100 coming
['p@1000']

"Caught up" means: everything up to the high watermark of the partition's *last fetch* has arrived. That fetch
may be old: while processing was held back (an outage), the consumer kept the fetched records of every partition
and fetched none of them again, each at a different time. With ``seen_ms`` (when each partition's end was last
seen), a record is released only while it is no younger than that for every partition with nothing held; else
it waits for the next fetch, which tells what was produced meanwhile.

>>> a = EventTimeAligner()
>>> a.add([("cart", 7, 5_000, "c@5000")])
>>> seen = {"pv": 3_000, "cart": 5_100}  # pv's end was last seen at 3000: its records from 3000..5000 are unknown
>>> a.release({"pv", "cart"}, caught_up=lambda tp: True, seen_ms=seen.get)
[]
>>> seen["pv"] = 5_100  # pv fetched again: nothing new
>>> a.release({"pv", "cart"}, caught_up=lambda tp: True, seen_ms=seen.get)
['c@5000']
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from typing import Any

# (partition, offset, broker timestamp ms, item) or (partition, offset, broker timestamp ms, tie, item): records
# with the same broker timestamp (the producer's clock has milliseconds) are released by ``tie`` (the event time)
Entry = tuple[Hashable, int, int, Any] | tuple[Hashable, int, int, int, Any]


class EventTimeAligner:
    def __init__(self, max_buffered: int = 200_000, max_wait_s: float = 2.0, grace_ms: int = 0) -> None:
        self.max_buffered, self.max_wait_s, self.grace_ms = max_buffered, max_wait_s, grace_ms
        self._queues: dict[Hashable, deque[tuple[int, int, int, Any]]] = {}  # (ts, tie, offset, item)
        self.last_offset: dict[Hashable, int] = {}
        self.size = 0
        self.forced = 0  # records released without waiting for an idle partition or past max_buffered
        self._blocked_since: float | None = None

    def add(self, entries: Iterable[Entry]) -> None:
        for tp, offset, ts, *rest in entries:
            tie, item = rest if len(rest) == 2 else (0, rest[0])
            q = self._queues.get(tp)
            if q is None:
                q = self._queues[tp] = deque()
            q.append((ts, tie, offset, item))
            self.last_offset[tp] = offset
            self.size += 1

    def _blocked(self, blocked: bool) -> bool:
        """Track how long an idle partition has held the others back; True once that exceeds ``max_wait_s``."""
        if not blocked:
            self._blocked_since = None
            return False
        now = time.monotonic()
        if self._blocked_since is None:
            self._blocked_since = now
        return now - self._blocked_since >= self.max_wait_s

    def release(
        self,
        assigned: Iterable[Hashable],
        caught_up: Callable[[Hashable], bool],
        now_ms: int | None = None,
        seen_ms: Callable[[Hashable], int | None] | None = None,
    ) -> list[Any]:
        """Items that are safe to process now, in broker-timestamp order; equal timestamps by ``tie``, then offset.

        With ``grace_ms``, an item younger than that (by its broker timestamp against ``now_ms``) waits while some
        partition has nothing held: that partition counts as caught up, but a record produced to it just before
        may still be on its way (the consumer's view of its end lags by a fetch).

        With ``seen_ms(tp)`` (when the consumer last learned ``tp``'s end; None if never), an item also waits while
        it is younger than that for some partition with nothing held. Such a wait counts toward ``max_wait_s``.
        """
        assigned = list(assigned)
        idle = any(not self._queues.get(tp) and not caught_up(tp) for tp in assigned)
        heap = [(q[0][0], q[0][1], q[0][2], i, tp) for i, (tp, q) in enumerate(self._queues.items()) if q]
        heapq.heapify(heap)
        known = self._known_until([tp for tp in assigned if not self._queues.get(tp)], seen_ms)
        stale = bool(heap) and heap[0][0] > known
        forced = self._blocked(idle or stale) or self.size >= self.max_buffered
        if (idle or stale) and not forced:
            return []
        order = {tp: i for i, tp in enumerate(self._queues)}
        out: list[Any] = []
        young = None if forced or not self.grace_ms or now_ms is None else now_ms - self.grace_ms
        while heap:
            if not forced and heap[0][0] > known:
                break
            if young is not None and heap[0][0] > young and any(not self._queues.get(tp) for tp in assigned):
                break
            *_, tp = heapq.heappop(heap)
            q = self._queues[tp]
            out.append(q.popleft()[3])
            self.size -= 1
            if q:
                heapq.heappush(heap, (q[0][0], q[0][1], q[0][2], order[tp], tp))
            elif not forced and not caught_up(tp):
                break
            elif tp in assigned:
                known = min(known, self._known_until([tp], seen_ms))
        if forced and (idle or stale):
            self.forced += len(out)
        return out

    @staticmethod
    def _known_until(empty: list[Hashable], seen_ms: Callable[[Hashable], int | None] | None) -> float:
        """The broker time up to which the ends of the ``empty`` partitions are known (inf without ``seen_ms``)."""
        if seen_ms is None or not empty:
            return float("inf")
        seen = [seen_ms(tp) for tp in empty]
        return float("-inf") if None in seen else min(s for s in seen if s is not None)

    def held(self, tp: Hashable) -> int:
        """How many records of ``tp`` are held."""
        q = self._queues.get(tp)
        return len(q) if q else 0

    def drop(self, tps: Iterable[Hashable]) -> int:
        """Forget buffered records of revoked partitions (they are redelivered to their new owner)."""
        dropped = 0
        for tp in tps:
            q = self._queues.pop(tp, None)
            if q:
                dropped += len(q)
            self.last_offset.pop(tp, None)
        self.size -= dropped
        return dropped

    def discard(self, stale: Callable[[Any], bool]) -> int:
        """Forget buffered items for which ``stale(item)`` holds, e.g. records fetched before a rebalance.

        After a rebalance the consumer fetches again from the committed offsets, so a record fetched before it
        comes again. Processing the old copy could apply a later offset of a partition before an earlier one,
        and the per-user offset guard would then take the earlier record for a replay and skip it.

        >>> a = EventTimeAligner()
        >>> a.add([("pv", 7, 10, ("gen1", 7)), ("pv", 8, 11, ("gen2", 8))])
        >>> a.discard(lambda item: item[0] != "gen2"), a.size, a.last_offset
        (1, 1, {'pv': 8})
        """
        dropped = 0
        for tp, q in self._queues.items():
            keep = deque(entry for entry in q if not stale(entry[3]))
            if len(keep) != len(q):
                dropped += len(q) - len(keep)
                self._queues[tp] = keep
                if keep:
                    self.last_offset[tp] = keep[-1][2]
                else:
                    self.last_offset.pop(tp, None)
        self.size -= dropped
        return dropped

    def drain(self) -> list[Any]:
        """Everything buffered, in timestamp order (shutdown)."""
        return self.release((), caught_up=lambda tp: True)
