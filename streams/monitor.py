"""A faust monitor without per-event bookkeeping.

Faust's default monitor records timings and counters for every message and stream event, for its web views
(which churnstream turns off). The worker exports its own Prometheus metrics, so these hooks do nothing here.
"""

from __future__ import annotations

from collections.abc import Iterable
from time import monotonic
from typing import Any

from faust.sensors.monitor import Monitor


class LeanMonitor(Monitor):
    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> dict | None:
        # the one thing faust itself reads: without it, it logs "Stream has not started processing" errors
        self.stream_inbound_time[tp] = monotonic()
        return None

    def on_stream_event_out(self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None) -> None:
        return None

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        return None

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        return None

    def on_batch_in(self, tps: Iterable[Any]) -> None:
        """A micro-batch of these partitions reached the worker (batch delivery has no stream events): faust's
        slow-processing check reads the time, and would otherwise report the partitions as idle."""
        now = monotonic()
        for tp in tps:
            self.stream_inbound_time[tp] = now
