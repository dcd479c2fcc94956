"""What ``streams/transport.py`` and ``streams/delivery.py`` rely on inside faust-streaming (and mode).

An upgrade that changes any of it fails here first. Then: re-read the changed source, bring the driver's copy of
``_drain_messages`` (or the delivery's assumptions) in line, and update the pinned version and hashes below.
The last tests drive the real conductor handler and :func:`streams.delivery.batches` without a broker.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from importlib import metadata
from pathlib import Path
from typing import Any

import faust
import mode
import pytest
from aiokafka import AIOKafkaConsumer
from faust.agents import actor as faust_actor
from faust.transport import conductor as faust_conductor
from faust.transport import consumer as faust_consumer
from faust.transport import producer as faust_producer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.transport.drivers import by_url
from faust.types import TP, Message
from mode.utils import queues

from streams import delivery, transport

#: sha256 (first 16 hex digits) of the source of each faust/mode function whose behaviour the driver or the
#: delivery copies or depends on
SOURCES = {
    # copied line for line into streams.transport.Consumer._drain_messages (one step changed)
    "faust.transport.consumer.Consumer._drain_messages": "44a2500309e83c63",
    # the per-partition handler the driver awaits directly: its only waits are flow control, the producer
    # buffer and a full queue, which the driver checks before taking the direct path
    "faust.transport.conductor.ConductorCompiler.build": "837cf521368c1ee4",
    # the lock the driver checks instead of taking, and the mapping it reads
    "faust.transport.conductor.Conductor._compile_message_handler": "9fbc0538097aa4ec",
    "faust.transport.conductor.Conductor._update_indices": "619b3247b96ac7d5",
    "faust.transport.conductor.Conductor.on_partitions_assigned": "616e9729131cf0bb",
    # the driver measures the non-threaded buffer as ``len(pending._queue)``, as ``size`` does
    "faust.transport.producer.ProducerBuffer.__init__": "ab4d12a25b93044a",
    "faust.transport.producer.ProducerBuffer.size.fget": "b543a978fdece62e",
    "faust.transport.producer.ProducerBuffer.wait_until_ebb": "758dd5744044071b",
    "mode.utils.queues.FlowControlEvent.acquire": "ed0208e866e64d0b",
    # the delivery: decode is what the conductor puts on the queue; __aiter__ registers with the conductor
    "faust.topics.Topic.__init__": "bd061fdd4ea3bb17",
    "faust.topics.Topic.__aiter__": "838623ae001ec5d1",
    "faust.transport.consumer.Consumer.track_message": "217d7f1399a4cd8e",
    "faust.transport.consumer.Consumer.ack": "5fcf41cf45153475",
    "faust.types.tuples.Message.ack": "4751b72c4ed84153",
}

#: sha256 (first 16 hex digits) of faust/transport/_cython/conductor.pyx (ConductorHandler.__call__)
CONDUCTOR_PYX = "dde1f974267881cf"


def _obj(path: str) -> Any:
    obj: Any = __import__(path.partition(".")[0])
    for part in path.split(".")[1:]:
        obj = getattr(obj, part)
    return obj


def source_hash(path: str) -> str:
    return hashlib.sha256(inspect.getsource(_obj(path)).encode()).hexdigest()[:16]


def test_pinned_versions() -> None:
    assert faust.__version__ == metadata.version("faust-streaming") == transport.FAUST_VERSION == "0.15.3"
    assert metadata.version("mode-streaming") == "0.7.1"


@pytest.mark.parametrize("path", sorted(SOURCES))
def test_source_of_relied_on_internals_unchanged(path: str) -> None:
    assert source_hash(path) == SOURCES[path], f"{path} changed: re-check streams/transport.py and delivery.py"


def test_signatures_and_attributes_the_driver_uses() -> None:
    base = faust_consumer.Consumer
    sig = inspect.signature
    assert list(sig(base._drain_messages).parameters) == ["self", "fetcher"]
    assert list(sig(base.getmany).parameters) == ["self", "timeout"]
    assert list(sig(base._add_gap).parameters) == ["self", "tp", "offset_from", "offset_to"]
    assert list(sig(mode.Service.wait_first).parameters) == ["self", "coros", "timeout"]
    assert isinstance(faust_consumer.CONSUMER_FETCHING, str)
    init = inspect.getsource(base.__init__)
    for attr in ("self._read_offset =", "self.suspend_flow = Event()", "self._commit_every ="):
        assert attr in init, attr
    assert "self._n_acked = 0" in inspect.getsource(base)
    conductor_init = inspect.getsource(faust_conductor.Conductor.__init__)
    for attr in ("self._tp_to_callback = {}", "self._tp_index = defaultdict(set)", "asyncio.Lock()"):
        assert attr in conductor_init, attr
    # the compiled handler (faust/transport/_cython/conductor.pyx) is the one in use; it waits where
    # ConductorCompiler.build waits (flow control, producer buffer, a full queue)
    assert faust_conductor.ConductorHandler is not None
    pyx = Path(faust_conductor.__file__).parent / "_cython" / "conductor.pyx"
    assert hashlib.sha256(pyx.read_bytes()).hexdigest()[:16] == CONDUCTOR_PYX
    assert "max_messages" in dir(faust_producer.ProducerBuffer) and isinstance(
        faust_producer.ProducerBuffer.size, property
    )
    assert list(sig(queues.FlowControlEvent.is_active).parameters) == ["self"]


def test_driver_is_a_subclass_registered_by_entry_point() -> None:
    assert by_url("churnstream-kafka://127.0.0.1:9092") is transport.Transport
    assert issubclass(transport.Transport, faust_aiokafka.Transport)
    assert issubclass(transport.Consumer, faust_aiokafka.Consumer)
    assert transport.Transport.Consumer is transport.Consumer
    # the driver overrides exactly one method, with the same signature, and adds one reader (last_poll_ms) of the
    # aiokafka consumer behind faust's consumer thread
    own = {k for k, v in vars(transport.Consumer).items() if callable(v)}
    assert own == {"_drain_messages", "last_poll_ms"}
    assert not hasattr(faust_aiokafka.Consumer, "last_poll_ms")
    assert callable(faust_aiokafka.AIOKafkaConsumerThread._ensure_consumer)
    assert list(inspect.signature(AIOKafkaConsumer.last_poll_timestamp).parameters) == ["self", "partition"]
    own_sig = inspect.signature(transport.Consumer._drain_messages)
    assert list(own_sig.parameters) == list(inspect.signature(faust_consumer.Consumer._drain_messages).parameters)
    eps = [ep for ep in metadata.entry_points(group="faust.transports") if ep.name == "churnstream-kafka"]
    assert [ep.value for ep in eps] == ["streams.transport:Transport"]
    # faust builds the app's consumer (and so its drain loop) from broker_consumer
    app = faust.App("wiring", broker="kafka://127.0.0.1:1", broker_consumer="churnstream-kafka://127.0.0.1:1")
    assert type(app.consumer) is transport.Consumer
    assert type(faust.App("stock", broker="kafka://127.0.0.1:1").consumer) is faust_aiokafka.Consumer


def _message(offset: int, generation: int) -> Message:
    return faust_consumer.ConsumerMessage("t", 0, offset, 0.0, 0, None, b"k", b"v", None, generation_id=generation)


async def _deliver_and_take(messages: list[Message], generation: int) -> tuple[list[list[Message]], Any]:
    app = faust.App(f"internals-{id(messages)}", broker="kafka://127.0.0.1:1", autodiscover=False)
    app.consumer_generation_id = generation
    app.flow_control.resume()
    topic = delivery.BatchTopic(app, topics=["t"])
    stream = app.stream(topic)
    it = delivery.batches(stream, max_records=3, within_s=0.05)
    first = asyncio.ensure_future(it.__anext__())
    await asyncio.sleep(0)  # batches() has registered its iterator clone with the conductor
    (clone,) = [c for c in app.topics if isinstance(c, delivery.BatchTopic)]
    handler = app.topics._build_handler(TP("t", 0), {clone})
    for m in messages:
        await handler(m)  # faust's own per-partition conductor handler
    assert all(item is m for item, m in zip(list(clone.queue._queue), messages, strict=True))  # no Event
    got = [await first]
    while clone.queue.qsize():
        got.append(await it.__anext__())
    await it.aclose()
    return got, app


def test_conductor_puts_the_message_itself_and_batches_drop_stale_generations() -> None:
    messages = [_message(0, 1), _message(1, 2), _message(2, 2), _message(3, 2), _message(4, 2), _message(5, 1)]
    got, app = asyncio.run(_deliver_and_take(messages, generation=2))
    assert [[m.offset for m in batch] for batch in got] == [[1, 2], [3, 4]]  # 0 and 5 are stale: dropped
    handed = [m for batch in got for m in batch]
    assert all(m.tracked for m in handed) and not messages[0].tracked and not messages[5].tracked
    assert set(app.consumer.unacked) == set(handed)
    assert delivery.ack_all(app, handed) == 0  # topic "t" is not subscribed, so faust has nothing to commit
    assert all(m.acked for m in handed) and not messages[0].acked


async def _cancelled_while_waiting() -> list[list[Message]]:
    app = faust.App("internals-cancel", broker="kafka://127.0.0.1:1", autodiscover=False)
    app.flow_control.resume()
    stream = app.stream(delivery.BatchTopic(app, topics=["t"]))
    got: list[list[Message]] = []

    async def consume() -> None:
        async for batch in delivery.batches(stream, max_records=3, within_s=0.05):
            got.append(batch)

    task = asyncio.ensure_future(consume())
    await asyncio.sleep(0.01)  # waiting on an empty queue
    (clone,) = [c for c in app.topics if isinstance(c, delivery.BatchTopic)]
    clone._throw(StopAsyncIteration())  # what faust's Actor.cancel() does to the stream's channel on stop
    await asyncio.wait_for(task, 1)  # ends: no RuntimeError("async generator raised StopAsyncIteration")
    return got


def test_batches_end_when_faust_cancels_the_actor() -> None:
    assert "_throw(StopAsyncIteration())" in inspect.getsource(faust_actor.Actor.cancel)
    assert asyncio.run(_cancelled_while_waiting()) == []


def test_faust_commits_past_one_unacked_message_after_a_commit() -> None:
    """A hole in faust's commit machinery that the Worker must respect: ``Consumer._new_offset`` compares the first
    acked offset with the committed offset (the next offset to read) and tolerates a difference of one, so a single
    unacked message right after the committed offset is committed past when later ones are acked. Ack each
    partition's messages in offset order. (Found by the batch-delivery integration test: skipping the ack of
    offset 5 alone went unnoticed, skipping 5 and 6 stalled the commits.) If an upgrade fixes it, this fails."""
    app = faust.App("internals-new-offset", broker="kafka://127.0.0.1:1", autodiscover=False)
    consumer = app.consumer
    tp = TP("t", 0)
    consumer._committed_offset[tp] = 5  # offsets 0..4 committed: 5 is the next to read
    consumer._acked[tp] = [6, 7, 8]  # 5 not acked
    assert consumer._new_offset(tp) == 9  # 5 is committed past
    consumer._committed_offset[tp] = 5
    consumer._acked[tp] = [7, 8]  # 5 and 6 not acked: nothing to commit
    assert consumer._new_offset(tp) is None
