"""What a BI tool may ask ClickHouse through the API (:mod:`serving.routes.clickhouse_http`): one read-only
statement over the documented tables, within limits.

ClickHouse itself judges each statement, so the check follows its grammar rather than a regular expression:

1. one statement (no ``;`` inside), its kind from ``EXPLAIN AST``: a ``SELECT`` (with ``UNION``, ``WITH``,
   subqueries), ``DESCRIBE TABLE`` or ``SHOW TABLES``; no ``SETTINGS`` clause anywhere;
2. every table it reads, from ``EXPLAIN QUERY TREE`` (subqueries, joins and ``IN`` lists included), is one of
   :data:`TABLES` or :data:`SYSTEM_TABLES`; no table function but ``numbers``;
3. it runs with ClickHouse's own ``readonly = 1`` and limits on result rows, bytes and time
   (``CHURNSTREAM_BI_MAX_ROWS``, ``CHURNSTREAM_BI_MAX_BYTES``, ``CHURNSTREAM_BI_MAX_SECONDS``).

>>> split_format("SELECT 1 FORMAT JSONEachRow;")
('SELECT 1', 'JSONEachRow')
>>> split_format("select 1")
('select 1', None)
>>> tables_read("    TABLE id: 5, alias: __table2, table_name: default.predictions\\n"
...             "    TABLE_FUNCTION id: 7, alias: __table3, table_function_name: file\\n")
(['default.predictions'], ['file'])
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# the tables docs/warehouse.md documents for analysts
TABLES = frozenset(
    f"default.{name}"
    for name in (
        "events", "predictions", "latest_scores", "user_scores_daily", "model_metrics", "dead_letters",
        "resolved_scores", "daily_features", "drift", "alerts", "user_segments", "user_segments_latest",
        "rfm_boundaries", "recommendation_feedback", "category_demand", "category_demand_check", "scores_now",
        "scored_users_daily", "user_activity", "purchases", "user_features_daily", "customer_360", "exports",
    )
)  # fmt: skip
# what clients and BI tools read to connect and to list tables and columns
SYSTEM_TABLES = frozenset(
    f"system.{name}"
    for name in ("one", "settings", "tables", "columns", "databases", "functions", "data_type_families", "numbers")
)
TABLE_FUNCTIONS = frozenset({"numbers"})
KINDS = ("SelectWithUnionQuery", "DescribeQuery", "ShowTables")

_FORMAT = re.compile(r"\s+FORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
_TABLE = re.compile(r"^\s*TABLE id: \d+.*?table_name: ([^\s,]+)", re.MULTILINE)
_FUNCTION = re.compile(r"^\s*TABLE_FUNCTION id: \d+.*?table_function_name: (\w+)", re.MULTILINE)


class Refused(Exception):
    """A statement the endpoint does not run; ``code`` is ClickHouse's error code for the same refusal."""

    def __init__(self, code: int, name: str, message: str) -> None:
        super().__init__(message)
        self.code, self.name = code, name


READONLY = (164, "READONLY")
UNKNOWN_TABLE = (60, "UNKNOWN_TABLE")
MULTI_STATEMENT = (62, "SYNTAX_ERROR")


def split_format(sql: str) -> tuple[str, str | None]:
    """The statement without a trailing ``FORMAT name`` clause (and ``;``), and that name."""
    sql = sql.strip()
    match = _FORMAT.search(sql)
    if match:
        return sql[: match.start()].strip(), match.group(1)
    return sql.rstrip(";").rstrip(), None


_ESCAPES = {"b": "\b", "f": "\f", "r": "\r", "n": "\n", "t": "\t", "0": "\0"}


def unescape(value: str) -> str:
    r"""A query parameter's value as ClickHouse's HTTP interface receives it (``param_<name>``, backslash-escaped
    like TabSeparated text) to the value itself.

    >>> unescape(r"it\'s\ta\\b") == "it's\ta\\b"
    True
    """
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), value, flags=re.DOTALL)


def tables_read(query_tree: str) -> tuple[list[str], list[str]]:
    """The tables and table functions an ``EXPLAIN QUERY TREE`` output reads."""
    return _TABLE.findall(query_tree), _FUNCTION.findall(query_tree)


@dataclass(frozen=True)
class Limits:
    max_rows: int
    max_bytes: int
    max_seconds: int

    def settings_clause(self) -> str:
        return (
            f" SETTINGS readonly = 1, max_result_rows = {self.max_rows}, max_result_bytes = {self.max_bytes}, "
            f"result_overflow_mode = 'throw', max_execution_time = {self.max_seconds}"
        )


def _text(client: Any, sql: str, params: dict[str, str]) -> str:
    out: bytes = client.raw_query(sql, parameters=params or None, fmt="TabSeparatedRaw")
    return out.decode(errors="replace")


def check(client: Any, statement: str, params: dict[str, str] | None = None) -> str:
    """Raise :class:`Refused` unless ``statement`` (without its FORMAT clause; with the values of its
    ``{name:Type}`` parameters) may run; returns its kind."""
    params = params or {}
    if ";" in statement:
        raise Refused(*MULTI_STATEMENT, "one statement per request: `;` is not allowed inside a query")
    ast = _text(client, f"EXPLAIN AST {statement}", params)
    kind = ast.split(" ", 1)[0].strip()
    if kind not in KINDS:
        raise Refused(
            *READONLY, f"only SELECT, DESCRIBE and SHOW TABLES run here (read-only), not {kind or 'this statement'}"
        )
    if re.search(r"^\s*Set\b", ast, re.MULTILINE):
        raise Refused(*READONLY, "SETTINGS clauses are not allowed: the endpoint sets the limits")
    if kind == "DescribeQuery":
        names = re.findall(r"^\s*TableIdentifier (\S+)", ast, re.MULTILINE)
        tables = [n if "." in n else f"default.{n}" for n in names]
        functions = re.findall(r"^\s*Function (\w+)", ast, re.MULTILINE)
    elif kind == "ShowTables":
        tables, functions = [], []
    else:
        tables, functions = tables_read(_text(client, f"EXPLAIN QUERY TREE {statement}", params))
    for table in tables:
        if table not in TABLES and table not in SYSTEM_TABLES:
            raise Refused(*UNKNOWN_TABLE, f"table {table} is not open to BI queries (docs/warehouse.md lists them)")
    for function in functions:
        if function not in TABLE_FUNCTIONS:
            raise Refused(*READONLY, f"table function {function}() is not allowed here")
    return kind
