"""Imports from a messy CRM export: the exact reject report and accepted events, mixed time zones on one clock, stable
ids, and the same events from CSV, JSONL and Parquet."""

from __future__ import annotations

import csv
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from churnstream.imports import normalise, parse_mapping, read_rows, write_rejects

MESSY = """client_id,created_at,kind,page,order,amount,currency,items
c1,2026-03-01 10:00:00,page_view,home,,,,
c1,2026-03-01T10:05:00+00:00,page_view,product,,,,
c2,2026-03-01 11:00:00,purchase,,o-1,19.90,EUR,BOOK
c2,2026-03-01 11:00:00,purchase,,o-1,19.90,EUR,BOOK
c3,not a date,page_view,home,,,,
,2026-03-01 12:00:00,page_view,home,,,,
c4,2026-03-01 12:00:00,purchase,,o-2,twelve,EUR,[]
c5,2026-03-01 12:00:00,refund,,,,,
c6,2026-03-01 13:00:00,purchase,,o-3,-5,EUR,TOY
c7,1772362800,page_view,category,,,,
""".replace("BOOK", '"[{""product_id"":""p1"",""category"":""books"",""quantity"":1,""price"":19.9}]"').replace(
    "TOY", '"[{""product_id"":""p2"",""category"":""toys"",""quantity"":1,""price"":5}]"'
)
MAPPING = "user_id=client_id,ts=created_at,type=kind,page_type=page,order_id=order"


@pytest.fixture
def messy(tmp_path: Path) -> Path:
    path = tmp_path / "crm.csv"
    path.write_text(MESSY)
    return path


def test_a_messy_export_gives_the_exact_reject_report_and_events(messy: Path, tmp_path: Path) -> None:
    out = normalise(read_rows(messy), mapping=parse_mapping(MAPPING), tz="Europe/Berlin")
    assert [(line, e["user_id"], e["type"], e["ts"]) for line, e in out.events] == [
        (2, "c1", "page_view", 1772355600000),  # 10:00 in Berlin (UTC+1) is 09:00 UTC
        (3, "c1", "page_view", 1772359500000),  # 10:05 with its own offset, UTC
        (4, "c2", "purchase", 1772359200000),
        (11, "c7", "page_view", 1772362800000),  # epoch seconds
    ]
    assert [r[:3] for r in out.rejects] == [
        (5, "event_id", "duplicate_row"),  # line 4 again
        (6, "ts", "invalid_ts"),
        (7, "user_id", "missing_user_id"),
        (8, "amount", "invalid_amount"),
        (9, "type", "unknown_type"),
        (10, "amount", "invalid_amount"),  # negative money: the stream's own contract says no
    ]
    report = tmp_path / "rejects.csv"
    assert write_rejects(out.rejects, report) == 6
    assert [r["reason"] for r in csv.DictReader(report.open())][:2] == ["duplicate_row", "invalid_ts"]


def test_the_same_file_gives_the_same_ids_and_another_row_another_id(messy: Path) -> None:
    once = normalise(read_rows(messy), mapping=parse_mapping(MAPPING))
    again = normalise(read_rows(messy), mapping=parse_mapping(MAPPING))
    ids = [e["event_id"] for _, e in once.events]
    assert ids == [e["event_id"] for _, e in again.events] and len(set(ids)) == len(ids)
    assert all(i.startswith("imp-") for i in ids)


def test_an_id_in_the_file_is_kept() -> None:
    rows = [{"event_id": "e-1", "user_id": "u", "ts": 5, "page_type": "home"}]
    assert normalise(rows, kind="page_view").events[0][1]["event_id"] == "e-1"


def test_csv_jsonl_and_parquet_give_the_same_events(messy: Path, tmp_path: Path) -> None:
    rows = list(read_rows(messy))
    jsonl = tmp_path / "crm.jsonl"
    jsonl.write_bytes(b"\n".join(orjson.dumps(r) for r in rows))
    parquet = tmp_path / "crm.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    got = [
        [e for _, e in normalise(read_rows(p), mapping=parse_mapping(MAPPING), tz="Europe/Berlin").events]
        for p in (messy, jsonl, parquet)
    ]
    assert got[0] == got[1] == got[2] and len(got[0]) == 4


def test_a_bad_mapping_is_refused() -> None:
    with pytest.raises(ValueError, match="field=column"):
        parse_mapping("user_id:client_id")
