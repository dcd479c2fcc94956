"""Faust settings measured on the do-nothing agent (see docs/benchmarks.md).

The worker uses uvloop and the monitor without per-event stats (``streams/monitor.py``). It does not use the
larger fetches and stream buffers below: with them, a 1M-record backlog run starved one partition for minutes
(faust's "has not started processing" warning) and the event-time alignment then released 4.7% of the events
as ``too_late``. They are measured here so the effect is on record."""

from __future__ import annotations

import asyncio
from typing import Any

from streams.monitor import LeanMonitor

APP_SETTINGS: dict[str, Any] = {
    "broker_max_poll_records": 5000,
    "stream_buffer_maxsize": 65536,
    "Monitor": LeanMonitor,
}


def use_uvloop() -> None:
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
