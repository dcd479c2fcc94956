"""Which source partitions this worker may write effects for, right now.

The consumer's assignment is not enough. During a rebalance, aiokafka keeps listing the old assignment from the
moment the partitions are revoked until the group hands out the new one, and a batch under way keeps running
(``stream_wait_empty=False``). If ownership were read from the assignment alone, that batch could send dead letters
for a revoked partition while its next owner scans the DLQ, and the letters would be sent twice (seen in
``test_a_second_worker_joins_and_leaves``). So a partition revoked during generation ``g`` is not owned while the
consumer is still in ``g``.

Nor may ownership come back within a batch: a batch that skipped a partition's dead letters while it was revoked
must not then move its mark or ack its records because the new assignment gave the partition back (its letters
would be lost: the same test, once the first half was in). Ownership is therefore also tied to the generation of the
records in hand (``held``): once the consumer is in a newer generation, a batch of older records owns nothing; its
records are fetched again.

>>> assignment, generation, held = {("page_views", 0), ("page_views", 1)}, [7], [7]
>>> owns = Ownership(lambda: assignment, lambda: generation[0], lambda: held[0])
>>> owns(("page_views", 0))
True
>>> owns.revoke([("page_views", 0)])  # the rebalance starts: the assignment still lists the partition
>>> owns(("page_views", 0)), owns(("page_views", 1))
(False, True)
>>> generation[0] = 8  # the new assignment arrived, and it gives partition 0 back ...
>>> owns(("page_views", 0))  # ... but not to the batch of generation 7 records still running
False
>>> held[0] = 8  # the next batch holds records of generation 8
>>> owns(("page_views", 0))
True
>>> owns.close()  # the worker is stopping: leaving the group revokes nothing, so it gives everything up itself
>>> owns(("page_views", 0))
False
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import Any

from streams.ledger import Source


class Ownership:
    """``ownership(source)``: the partition is assigned, was not revoked in the consumer's current generation, and
    the records in hand are of that generation."""

    def __init__(
        self, assignment: Callable[[], Collection[Any]], generation: Callable[[], int], held: Callable[[], int]
    ) -> None:
        self._assignment, self._generation, self._held = assignment, generation, held
        self._revoked_in: dict[Source, int] = {}  # partition -> the generation during which it was revoked
        self._closed = False

    def revoke(self, sources: Iterable[Any]) -> None:
        """Call first thing when partitions are revoked (``(topic, partition)`` pairs or faust TPs)."""
        generation = self._generation()
        for topic, partition in sources:
            self._revoked_in[(topic, partition)] = generation

    def close(self) -> None:
        """The worker is stopping (before its consumer leaves the group): nothing is owned any more, so a batch
        under way acks nothing whose dead letters it skipped, and faust's last commit does not pass them."""
        self._closed = True

    def __call__(self, source: Any) -> bool:
        topic, partition = source
        generation = self._generation()
        if self._closed or generation != self._held() or self._revoked_in.get((topic, partition)) == generation:
            return False
        return (topic, partition) in self._assignment()  # faust's TP is a named tuple: equal to the plain pair
