"""Scheduled exports of the at-risk list: ``CHURNSTREAM_EXPORT_CRON`` (five cron fields, or six with seconds last)
in the API process (``churnstream api`` or ``run``), which reads ClickHouse; set it on one API process only.

Each run writes ``<CHURNSTREAM_EXPORT_DIR>/at-risk-<task>.csv`` atomically (:func:`serving.exports_job.to_file`)
and, with ``CHURNSTREAM_EXPORT_TOPIC``, sends the list to that Kafka topic; each export is recorded in ClickHouse
``exports``. A failed run is logged and counted (``churnstream_exports_total{outcome="failed"}``); the next runs
at its time.

>>> next_run("0 6 * * *", 1_792_000_000_000)  # 2026-10-14T17:46:40Z -> 06:00 the next day
1792044000.0
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from croniter import croniter
from fastapi.concurrency import run_in_threadpool
from prometheus_client import Counter

from churnstream.settings import Settings
from serving.exports_job import ExportSpec, to_file, to_kafka

log = logging.getLogger(__name__)
EXPORTS = Counter("churnstream_exports", "Scheduled exports of the at-risk list", ["destination", "outcome"])


def next_run(cron: str, now_ms: int) -> float:
    """The epoch seconds of the next run after ``now_ms``."""
    return float(croniter(cron, now_ms / 1000).get_next(float))


class ExportSchedule:
    def __init__(self, settings: Settings, clickhouse: Callable[[], Any]) -> None:
        self.settings, self.clickhouse = settings, clickhouse
        self.spec = ExportSpec(settings.export_task, settings.export_min_score)

    def run_once(self) -> None:
        s, client = self.settings, self.clickhouse()
        path = s.dir("exports") if s.export_dir is None else s.export_dir
        path.mkdir(parents=True, exist_ok=True)
        for destination, export in (
            ("file", lambda: to_file(client, self.spec, s.api_risk_thresholds, path / f"at-risk-{s.export_task}.csv")),
            ("kafka", lambda: to_kafka(client, self.spec, s.api_risk_thresholds, s.kafka_bootstrap, s.export_topic)),
        ):
            if destination == "kafka" and not s.export_topic:
                continue
            try:
                rec = export()
            except Exception:
                EXPORTS.labels(destination, "failed").inc()
                log.exception("scheduled export to %s failed", destination)
                continue
            EXPORTS.labels(destination, "ok").inc()
            log.info("exported %d rows to %s (%s)", rec.rows, rec.destination, rec.export_id)

    async def run(self) -> None:
        """Run at every time of the schedule until cancelled."""
        while True:
            await asyncio.sleep(
                max(0.0, next_run(self.settings.export_cron, time.time_ns() // 1_000_000) - time.time())
            )
            await run_in_threadpool(self.run_once)
