"""Events over HTTP: validated with the stream's own contracts, then produced to Kafka idempotently.

The producer has ``enable.idempotence`` on (acks=all, no duplicates from its own retries), and a request is
answered only once the broker has acknowledged every event of it, so a 202 means the events are durable.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import orjson
from confluent_kafka import KafkaError, KafkaException, Producer

from churnstream.settings import Settings
from core.contracts import KINDS, Event, Rejection, decode


def validate(items: list[Any]) -> tuple[list[tuple[str, Event, bytes]], list[dict[str, Any]]]:
    """(valid (kind, event, bytes), errors in FastAPI's shape: loc, msg, type = the DLQ reason code)."""
    valid, errors = [], []
    now_ms = int(time.time() * 1000)
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            errors.append({"loc": ["body", i], "msg": "an event must be a JSON object", "type": "invalid_type"})
            continue
        kind = item.get("type")
        if kind not in KINDS:
            msg = f"type must be one of {', '.join(KINDS)}"
            errors.append({"loc": ["body", i, "type"], "msg": msg, "type": "unknown_type"})
            continue
        payload = orjson.dumps(item)
        out = decode(str(kind), payload, broker_ts_ms=now_ms)
        if isinstance(out, Rejection):
            loc: list[Any] = ["body", i, *([out.field] if out.field else [])]
            errors.append({"loc": loc, "msg": out.detail, "type": out.reason})
        else:
            valid.append((str(kind), out, payload))
    return valid, errors


class KafkaIngest:
    """One idempotent producer per API process, polled by a background thread."""

    def __init__(self, settings: Settings) -> None:
        self.topics: dict[str, str] = dict(zip(KINDS, settings.input_topics, strict=True))
        self.producer = Producer(
            {
                "bootstrap.servers": settings.kafka_bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 2,
                "message.timeout.ms": 10_000,
                "log_level": 3,
            }
        )
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="kafka-ingest-poll", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(0.05)

    async def send(self, events: list[tuple[str, Event, bytes]]) -> None:
        """Produce and wait for the broker's acknowledgement of every event; raises KafkaException."""
        loop = asyncio.get_running_loop()
        futures = []
        for kind, event, payload in events:
            fut: asyncio.Future[None] = loop.create_future()

            def done(err: KafkaError | None, _msg: Any, fut: asyncio.Future[None] = fut) -> None:
                def settle() -> None:
                    if fut.done():
                        return
                    if err is None:
                        fut.set_result(None)
                    else:
                        fut.set_exception(KafkaException(err))

                loop.call_soon_threadsafe(settle)

            try:
                self.producer.produce(self.topics[kind], payload, key=event.user_id.encode(), on_delivery=done)
            except BufferError:
                await asyncio.sleep(0.05)
                self.producer.produce(self.topics[kind], payload, key=event.user_id.encode(), on_delivery=done)
            futures.append(fut)
        await asyncio.gather(*futures)

    def reachable(self, timeout_s: float = 2.0) -> bool:
        try:
            self.producer.list_topics(timeout=timeout_s)
        except KafkaException:
            return False
        return True

    def close(self) -> None:
        self._stop.set()
        self._poller.join(timeout=2)
        self.producer.flush(5)
