"""Sinks behind a small interface: buffer with ``add``, write with ``flush``; callers ack only after a good flush.

``flush(token)`` writes the buffered rows as one insert carrying ``token`` as its ClickHouse insert deduplication
token: the tables keep a deduplication window (``infra/clickhouse/005_insert_dedup.sql``), so a batch written
again under the same token, after a retry or a redo of the same source offsets, adds no row.

>>> import asyncio
>>> sink = ListSink()
>>> sink.extend([("e1", 0.5), ("e2", 0.25)])
>>> asyncio.run(sink.flush("batch-1"))
2
>>> sink.extend([("e1", 0.5), ("e2", 0.25)])
>>> asyncio.run(sink.flush("batch-1"))  # the same batch again: dropped, as ClickHouse drops it
0
>>> len(sink.rows), sink.tokens
(2, ['batch-1'])
"""

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

    async def flush(self, token: str | None = None) -> int:
        """Write the buffered rows (none: nothing happens); a repeated ``token`` means the same rows again."""
        ...


class ListSink:
    """Keeps rows in memory, dropping a write whose token it has seen (as ClickHouse's deduplication window does);
    for unit tests of the code that feeds a sink."""

    def __init__(self) -> None:
        self.rows: list[Sequence[Any]] = []
        self.tokens: list[str | None] = []  # one per write, as ClickHouse would see them
        self._buffer: list[Sequence[Any]] = []

    def add(self, row: Sequence[Any]) -> None:
        self._buffer.append(row)

    def extend(self, rows: list[Sequence[Any]]) -> None:
        self._buffer.extend(rows)

    async def flush(self, token: str | None = None) -> int:
        rows, self._buffer = self._buffer, []
        if not rows or (token is not None and token in self.tokens):
            return 0
        self.rows.extend(rows)
        self.tokens.append(token)
        return len(rows)


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

    def _connected(self) -> Any:
        if self._client is None:
            self._client = clickhouse_db.connect(self.dsn)
        return self._client

    def _insert(self, rows: list[Sequence[Any]], token: str | None) -> None:
        settings = {"insert_deduplication_token": token} if token else None
        self._connected().insert(self.table, rows, column_names=self.columns, settings=settings)

    async def flush(self, token: str | None = None) -> int:
        if not self._buffer:
            return 0
        rows, self._buffer = self._buffer, []
        loop = asyncio.get_running_loop()
        await until_done(
            loop.run_in_executor, self._thread, self._insert, rows, token, log=log, dependency="clickhouse"
        )
        return len(rows)

    async def query(self, sql: str, parameters: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Rows of a query on this sink's client and thread (calls stay serialised per client)."""

        def run() -> list[tuple[Any, ...]]:
            return [tuple(r) for r in self._connected().query(sql, parameters=parameters).result_rows]

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, run)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self._thread.shutdown(wait=False)
