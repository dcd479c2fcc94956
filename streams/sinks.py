"""Sinks behind a small interface: buffer with ``add``, write with ``flush``; callers ack only after a good flush."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from infra import clickhouse_db
from streams.retry import until_done

log = logging.getLogger(__name__)


class Sink(Protocol):
    def add(self, row: Sequence[Any]) -> None: ...

    def extend(self, rows: list[Sequence[Any]]) -> None: ...

    async def flush(self) -> int: ...


class ListSink:
    """Keeps rows in memory; for unit tests of the code that feeds a sink."""

    def __init__(self) -> None:
        self.rows: list[Sequence[Any]] = []
        self._buffer: list[Sequence[Any]] = []

    def add(self, row: Sequence[Any]) -> None:
        self._buffer.append(row)

    def extend(self, rows: list[Sequence[Any]]) -> None:
        self._buffer.extend(rows)

    async def flush(self) -> int:
        n = len(self._buffer)
        self.rows.extend(self._buffer)
        self._buffer.clear()
        return n


class ClickHouseSink:
    """Batched inserts into one ClickHouse table, retried with backoff until they succeed.

    The client is synchronous (chDB has no async client), so inserts run on one dedicated thread: calls are
    serialised per client and the event loop keeps serving Kafka heartbeats meanwhile.
    """

    def __init__(self, dsn: str, table: str, columns: Sequence[str]) -> None:
        self.dsn, self.table, self.columns = dsn, table, list(columns)
        self._buffer: list[Sequence[Any]] = []
        self._client: Any = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"ch-{table}")

    def add(self, row: Sequence[Any]) -> None:
        self._buffer.append(row)

    def extend(self, rows: list[Sequence[Any]]) -> None:
        self._buffer.extend(rows)

    def _insert(self, rows: list[Sequence[Any]]) -> None:
        if self._client is None:
            self._client = clickhouse_db.connect(self.dsn)
        self._client.insert(self.table, rows, column_names=self.columns)

    async def flush(self) -> int:
        if not self._buffer:
            return 0
        rows, self._buffer = self._buffer, []
        loop = asyncio.get_running_loop()
        await until_done(loop.run_in_executor, self._thread, self._insert, rows, log=log, dependency="clickhouse")
        return len(rows)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self._thread.shutdown(wait=False)
