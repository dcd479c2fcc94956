"""Faust settings that cut the framework's own per-event cost on the do-nothing agent (see docs/benchmarks.md):
uvloop, larger fetches and stream buffers, and a monitor that keeps no per-event stats.

Not used by the worker yet: with them, a 1M-record backlog run starved one partition for minutes (faust's
"has not started processing" warning) and the event-time alignment then released 4.7% of the events as
``too_late``. Measured here so the effect is on record; see the notes in docs/benchmarks.md."""

from __future__ import annotations

import asyncio
from typing import Any

from faust.sensors.monitor import Monitor


class LeanMonitor(Monitor):
    """Faust's monitor records per-event timings and counters for its web views; the worker exports its own
    Prometheus metrics, so the per-event hooks do nothing here."""

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> dict | None:
        return None

    def on_stream_event_out(self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None) -> None:
        return None

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        return None

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        return None


APP_SETTINGS: dict[str, Any] = {
    "broker_max_poll_records": 5000,
    "stream_buffer_maxsize": 65536,
    "Monitor": LeanMonitor,
}


def use_uvloop() -> None:
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
