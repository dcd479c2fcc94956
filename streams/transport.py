"""A faust transport driver (``churnstream-kafka://``) whose drain loop skips mode's ``wait_first`` when it can.

faust's ``Consumer._drain_messages`` hands every fetched message to the conductor through
``self.wait_first(callback(message), self.suspend_flow.wait())``: four asyncio tasks and an ``asyncio.wait`` per
message, so that a delivery blocked on a full buffer or on flow control can be abandoned when a rebalance
suspends the flow. The conductor's ``on_message`` then takes ``_tp_to_callback_lock`` per message to find the
partition's compiled handler.

:class:`Consumer` keeps that loop line for line (read offsets, gaps, ``commit_every``, yields to the loop) and
changes one step: when the delivery **cannot block** it awaits the partition's handler directly. It cannot block
when flow control is active and the flow is not suspended (``acquire`` returns at once), the producer buffer is
within ``max_messages`` (``wait_until_ebb`` returns at once), no channel queue of that partition is full (the
handler only ``put_nowait``s) and the conductor's lock is free (its mapping is not being rebuilt, and nothing
awaits between the check and the lookup). Otherwise it takes faust's own path. Messages, offsets, acks and commits
are the same objects and calls as faust's.

The driver is registered under the ``faust.transports`` entry point ``churnstream-kafka`` (``pyproject.toml``), so
faust resolves it by URL like its own drivers::

    app = faust.App("group", broker="kafka://127.0.0.1:9092", broker_consumer="churnstream-kafka://127.0.0.1:9092")

It relies on faust internals and is pinned to :data:`FAUST_VERSION`; ``tests/unit/test_faust_internals.py``
fails when an upgrade changes what it relies on.

>>> from faust.transport.drivers import by_url
>>> by_url("churnstream-kafka://127.0.0.1:9092") is Transport
True
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, ClassVar, cast

import faust
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka
from faust.types import ConsumerT
from mode import Service, ServiceT

__all__ = ["FAUST_VERSION", "Consumer", "Transport"]

#: the faust-streaming release whose internals this driver was written against
FAUST_VERSION = "0.15.3"
if faust.__version__ != FAUST_VERSION:  # pragma: no cover - an upgrade must re-check the internals first
    raise ImportError(f"streams.transport is pinned to faust-streaming {FAUST_VERSION}, found {faust.__version__}")


class Consumer(aiokafka.Consumer):
    """faust's aiokafka consumer with a drain loop that awaits the conductor directly when it cannot block."""

    def last_poll_ms(self, tp: Any) -> int | None:
        """When (wall-clock ms) a fetch response last gave ``tp``'s high watermark; None before the first.

        A partition whose fetched records wait to be handed over is not fetched again, so its
        :meth:`highwater` can be much older than the records of other partitions (aiokafka's
        ``last_poll_timestamp``).
        """
        consumer = cast(Any, self._thread)._ensure_consumer()
        return cast("int | None", consumer.last_poll_timestamp(tp))

    async def _drain_messages(self, fetcher: ServiceT) -> None:  # pragma: no cover - runs against a broker
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set

        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for

        # what the direct path needs: the conductor's handlers and lock, flow control, the producer buffer
        conductor: Any = self.app.topics
        handlers = conductor._tp_to_callback
        channels_of = conductor._tp_index
        lock_held = conductor._tp_to_callback_lock.locked
        flow_active = self.app.flow_control.is_active
        suspended = self.suspend_flow.is_set
        buffer = self.app.producer.buffer
        ebb = buffer.max_messages
        # ProducerBuffer.size reads app.conf.producer_threaded on every call; read it once here
        pending: Any = None if self.app.conf.producer_threaded else cast(Any, buffer.pending)._queue  # deque it counts

        yield_every = 100
        num_since_yield = 0
        sleep = asyncio.sleep

        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(CONSUMER_FETCHING)
                ait = cast(AsyncIterator, getmany(timeout=1.0))
                await self.sleep(0)
                if not self.should_stop:
                    async for tp, message in ait:
                        num_since_yield += 1
                        if num_since_yield > yield_every:
                            await sleep(0)
                            num_since_yield = 0

                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is None or offset >= r_offset:
                            gap = offset - (r_offset or 0)
                            if gap > 1 and r_offset and acks_enabled_for(message.topic):
                                await self._add_gap(tp, r_offset + 1, offset)
                            if commit_every is not None and self._n_acked >= commit_every:
                                self._n_acked = 0
                                await self.commit()
                            # the direct path: only when nothing in the conductor's handler can wait
                            handler = None
                            if (
                                flow_active()
                                and not suspended()
                                and not lock_held()
                                and (len(pending) if pending is not None else buffer.size) <= ebb
                            ):
                                handler = handlers.get(tp)
                                if handler is not None and any(ch.queue.full() for ch in channels_of.get(tp, ())):
                                    handler = None
                            if handler is not None:
                                await handler(message)
                            else:
                                await self.wait_first(callback(message), self.suspend_flow.wait())
                            set_read_offset(tp, offset)
                        else:
                            self.log.dev("DROPPED MESSAGE ROFF %r: k=%r v=%r", offset, message.key, message.value)
                    unset_flag(CONSUMER_FETCHING)

        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(CONSUMER_FETCHING)


class Transport(aiokafka.Transport):
    """faust's aiokafka transport with :class:`Consumer`; resolved by faust from ``churnstream-kafka://`` URLs."""

    Consumer: ClassVar[type[ConsumerT]] = Consumer
