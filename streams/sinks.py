"""Sinks behind a small interface: ``write(rows, token)`` writes one batch of rows as one insert; it either succeeds or
raises, and holds nothing between calls, so the worker can redo a whole batch after a failure.

``token`` becomes the ClickHouse insert deduplication token: the tables keep a deduplication window
(``infra/clickhouse/005_insert_dedup.sql``), so a batch written again under the same token, after a redo of the
same source offsets, adds no row.

>>> import asyncio
>>> sink = ListSink()
>>> asyncio.run(sink.write([("e1", 0.5), ("e2", 0.25)], "batch-1"))
2
>>> asyncio.run(sink.write([("e1", 0.5), ("e2", 0.25)], "batch-1"))  # the same batch again: dropped, as ClickHouse does
0
>>> len(sink.rows), sink.tokens
(2, ['batch-1'])
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from infra import clickhouse_db

T = TypeVar("T")


class Columns:
    """Rows as columns: one list per column, in the sink's column order. Built with list operations (a value
    repeated, a list concatenated) instead of a tuple per row, and inserted column-oriented as they are.

    >>> block = Columns([["e1", "e2"], [0.5, 0.25]])
    >>> len(block), block.rows()
    (2, [('e1', 0.5), ('e2', 0.25)])
    """

    def __init__(self, data: list[list[Any]]) -> None:
        if len({len(c) for c in data}) > 1:
            raise ValueError(f"columns of different lengths: {[len(c) for c in data]}")
        self.data = data

    @classmethod
    def empty(cls, width: int) -> Columns:
        return cls([[] for _ in range(width)])

    def __len__(self) -> int:
        return len(self.data[0]) if self.data else 0

    def rows(self) -> list[tuple[Any, ...]]:
        return list(zip(*self.data, strict=True))


Rows = Sequence[Sequence[Any]] | Columns


class Sink(Protocol):
    async def write(self, rows: Rows, token: str | None = None) -> int:
        """Write ``rows`` as one insert (none: nothing happens); a repeated ``token`` means the same rows again."""
        ...


class ListSink:
    """Keeps rows in memory, dropping a write whose token it has seen (as ClickHouse's deduplication window does);
    for unit tests of the code that feeds a sink."""

    def __init__(self) -> None:
        self.rows: list[Sequence[Any]] = []
        self.tokens: list[str | None] = []  # one per write, as ClickHouse would see them

    async def write(self, rows: Rows, token: str | None = None) -> int:
        if not len(rows) or (token is not None and token in self.tokens):
            return 0
        self.rows.extend(rows.rows() if isinstance(rows, Columns) else rows)
        self.tokens.append(token)
        return len(rows)


class ClickHouseSink:
    """Batched inserts into one ClickHouse table. A failed insert raises: the worker redoes the batch.

    The client is synchronous (chDB has no async client), so inserts run on one dedicated thread: calls are
    serialised per client and the event loop keeps serving Kafka heartbeats meanwhile.
    """

    def __init__(self, dsn: str, table: str, columns: Sequence[str]) -> None:
        self.dsn, self.table, self.columns = dsn, table, list(columns)
        self._client: Any = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"ch-{table}")

    def _connected(self) -> Any:
        if self._client is None:
            self._client = clickhouse_db.connect(self.dsn)
        return self._client

    def _insert(self, rows: Rows, token: str | None) -> None:
        settings = {"insert_deduplication_token": token} if token else None
        if isinstance(rows, Columns):
            self._connected().insert(
                self.table, rows.data, column_names=self.columns, settings=settings, column_oriented=True
            )
        else:
            self._connected().insert(self.table, rows, column_names=self.columns, settings=settings)

    async def write(self, rows: Rows, token: str | None = None) -> int:
        if not len(rows):
            return 0
        await asyncio.get_running_loop().run_in_executor(self._thread, self._insert, rows, token)
        return len(rows)

    async def query(self, sql: str, parameters: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Rows of a query on this sink's client and thread (calls stay serialised per client)."""

        def run(client: Any) -> list[tuple[Any, ...]]:
            return [tuple(r) for r in client.query(sql, parameters=parameters).result_rows]

        return await self.call(run)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(client, *args)`` on this sink's client and thread: for readers written for a synchronous client."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, lambda: fn(self._connected(), *args))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self._thread.shutdown(wait=False)
