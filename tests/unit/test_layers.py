"""The silver table's columns are the feature vector's: the migration lists them by hand, so a feature added to
``features.compute.FEATURE_NAMES`` without a column (or a column renamed) fails here, not in a worker's insert."""

from __future__ import annotations

import re

from infra.clickhouse_db import MIGRATIONS
from streams.rescore import SILVER_COLUMNS


def table_columns(sql: str, table: str) -> list[str]:
    body = sql.split(f"CREATE TABLE IF NOT EXISTS {table}\n(", 1)[1].split("\n)", 1)[0]
    return [m.group(1) for m in re.finditer(r"^\s+(\w+)\s+\w", body, re.MULTILINE)]


def test_user_features_daily_has_a_column_per_feature_and_week_in_order() -> None:
    sql = (MIGRATIONS / "017_layers.sql").read_text()
    columns = [c for c in table_columns(sql, "user_features_daily") if c != "day"]  # `day` is computed
    assert columns == list(SILVER_COLUMNS)
    assert len(columns) == 2 + 57 + 8
