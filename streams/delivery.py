"""Batch delivery: a faust topic whose agent receives whole micro-batches of :class:`faust.types.Message`.

The stock path builds one :class:`faust.Event` per record and runs the :class:`faust.Stream` loop (sensors,
processors, context variables, one ``await`` per record). :class:`BatchTopic` keeps everything faust does around
the consumer -- group membership, rebalance callbacks, flow control, the conductor's per-partition handlers with
their buffer pressure signals, and the commit machinery -- and replaces only the last step: the conductor puts the
raw ``Message`` itself on the channel's queue (``decode`` returns it unchanged), and :func:`batches` takes up to
``max_records`` of them at a time.

Rules the caller keeps (they are what ``Stream`` does for each event):

- a message fetched before a rebalance is never handed over after it: :func:`batches` drops it, without ack, when
  ``message.generation_id != app.consumer_generation_id`` or while flow control is suspended (the consumer seeks
  back to the committed offset after the rebalance and fetches it again);
- each handed-over message is tracked as unacked (``consumer.track_message``) so graceful shutdown waits for it;
- the caller acks each message it has processed with ``message.ack(app.consumer)`` (or :func:`ack_all`): faust
  then commits the contiguous acked offsets (``Consumer._new_offset``). Ack each partition's messages in offset
  order: faust commits past a *single* unacked message right after the committed offset
  (``tests/unit/test_faust_internals.py``);
- across a rebalance faust is at-least-once, as for the stock agent: on revocation it waits for the tracked
  messages to be acked and commits, but what was not committed by then is handed over again by the new owner,
  from the committed offset on. Effects must be idempotent per ``(topic, partition, offset)``.

Wiring (``streams/transport.py`` adds the consumer whose drain loop does not spawn tasks per message)::

    import faust
    from streams.delivery import BatchTopic, ack_all, batches

    app = faust.App("group", broker="kafka://127.0.0.1:9092", broker_consumer="churnstream-kafka://127.0.0.1:9092",
                    value_serializer="raw", key_serializer="raw")
    source = BatchTopic(app, topics=["page_views", "cart_events", "purchases"])

    @app.agent(source)
    async def work(stream):
        async for batch in batches(stream, max_records=2000, within_s=0.05):
            ...                         # batch: list[faust.types.Message] (tp, offset, timestamp, key, value)
            ack_all(app, batch)          # or message.ack(app.consumer) for each processed message

The agent must not iterate ``stream`` itself: :func:`batches` reads the stream's channel directly.

>>> import faust
>>> app = faust.App("doc", broker="kafka://127.0.0.1:1", autodiscover=False)
>>> topic = BatchTopic(app, topics=["a", "b"])
>>> import asyncio
>>> from faust.types import Message
>>> m = Message("a", 0, 7, 0.0, 0, None, b"k", b"v", None)
>>> asyncio.run(topic.decode(m, propagate=True)) is m
True
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any, cast

import faust
from faust.types import AppT, Message, StreamT

__all__ = ["BatchTopic", "ack_all", "batches", "take"]


class BatchTopic(faust.Topic):
    """A :class:`faust.Topic` whose queue holds the consumer's :class:`Message` objects instead of Events.

    Construct it directly (``BatchTopic(app, topics=[...])``) rather than with ``app.topic``, so the rest of the
    app keeps faust's own ``Topic``. Keys and values stay the raw bytes the consumer fetched.
    """

    def _compile_decode(self) -> None:
        # faust.Topic.__init__ replaces ``decode`` with the schema's compiled decoder; keep ours
        pass

    async def decode(self, message: Message, *, propagate: bool = False) -> Any:
        """The conductor's handler calls this for each message; the message itself goes on the queue."""
        return message


def take(queue: asyncio.Queue[Any], into: list[Any], max_records: int) -> None:
    """Move up to ``max_records - len(into)`` items that are already in ``queue`` into ``into``, without waiting.

    >>> q: asyncio.Queue[int] = asyncio.Queue()
    >>> for i in range(5):
    ...     q.put_nowait(i)
    >>> got = [9]
    >>> take(q, got, 3)
    >>> got, q.qsize()
    ([9, 0, 1], 3)
    """
    get = queue.get_nowait
    for _ in range(min(max_records - len(into), queue.qsize())):
        into.append(get())


async def batches(stream: StreamT, max_records: int = 2000, within_s: float = 0.05) -> AsyncIterator[list[Message]]:
    """Micro-batches of the current generation's messages from an agent's ``stream`` over a :class:`BatchTopic`.

    Waits for the first message, then keeps collecting until ``max_records`` are in hand or ``within_s`` seconds
    have passed since the first one arrived. Stale messages (fetched before the latest rebalance, or while flow
    is suspended) are dropped without ack. Each yielded message is tracked as unacked; ack it when done.
    """
    if not isinstance(stream.channel, BatchTopic):
        raise TypeError(f"batches() needs a stream over a BatchTopic, not {stream.channel!r}")
    app: AppT = stream.app
    channel = cast(BatchTopic, aiter(stream.channel))  # registers the iterator clone with the conductor
    queue = channel.queue
    consumer = app.consumer
    track = consumer.track_message
    flow_control = app.flow_control
    loop = asyncio.get_running_loop()
    try:
        while not stream.should_stop:
            try:
                got: list[Message] = [await queue.get()]
            except StopAsyncIteration:  # faust's Actor.cancel() throws it into the channel: the agent is stopping
                return
            take(queue, got, max_records)
            deadline = loop.time() + within_s
            while len(got) < max_records:
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    got.append(await asyncio.wait_for(queue.get(), left))
                except TimeoutError:
                    break
                take(queue, got, max_records)
            generation = app.consumer_generation_id
            if not flow_control.is_active():
                continue
            batch = [m for m in got if m.generation_id == generation]
            for message in batch:
                if not message.tracked:  # as Stream does: pending ack, and the sensors' message-in
                    message.tracked = True
                    track(message)
            if batch:
                yield batch
    finally:
        channel.on_stop_iteration()


def ack_all(app: AppT, messages: Iterable[Message]) -> int:
    """Ack each message with faust's per-message ack; returns how many became committable.

    >>> import faust
    >>> app = faust.App("doc-ack", broker="kafka://127.0.0.1:1", autodiscover=False)
    >>> ack_all(app, [])
    0
    """
    n = 0
    for message in messages:
        n += bool(message.ack(app.consumer))
    return n
