"""The offline builder's file sources agree with the in-memory records."""

from __future__ import annotations

import csv
from pathlib import Path

import orjson

from features import offline
from simulation.generator import TOPIC_OF, arrivals, make_users, simulate, write_jsonl

KIND_OF = {v: k for k, v in TOPIC_OF.items()}


def test_jsonl_and_csv_files_give_the_same_history(tmp_path: Path) -> None:
    events = simulate(make_users(40, 30, seed=5), 30, seed=5)
    now = events[-1]["ts"] + 10**9
    records = arrivals(events, 5, duplicates=0.05, malformed=0.03, now_ms=now)

    def ids(accepted: offline.Accepted) -> dict[str, list[str]]:
        return {u: [e.event_id for e in v] for u, v in accepted.items()}

    # a file has no broker time, so the file and the records without one agree
    write_jsonl(records, tmp_path / "h.jsonl")
    from_jsonl = offline.accept(offline.read_jsonl(tmp_path / "h.jsonl"))
    assert ids(from_jsonl) == ids(offline.accept((KIND_OF[r.topic], r.value, None) for r in records))

    # with the broker time, only the generated events survive: the same as a clean CSV of them
    expected = offline.accept((KIND_OF[r.topic], r.value, now) for r in records)

    fields = [
        "type",
        "event_id",
        "user_id",
        "ts",
        "session_id",
        "page_type",
        "product_id",
        "category",
        "action",
        "quantity",
        "price",
        "order_id",
        "amount",
        "currency",
        "items",
    ]
    with open(tmp_path / "h.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fields)
        w.writeheader()
        for e in events:
            w.writerow({k: orjson.dumps(v).decode() if k == "items" else v for k, v in e.items()})
    from_csv = offline.accept(offline.read_csv(tmp_path / "h.csv"))
    assert ids(from_csv) == ids(expected)
    queries = [(u, v[-1].ts_ms) for u, v in expected.items()]
    assert offline.build(from_csv, queries) == offline.build(expected, queries)


def test_queries_accept_ms_and_iso(tmp_path: Path) -> None:
    (tmp_path / "q.csv").write_text("user_id,as_of\nu1,1000\nu2,1970-01-01T00:00:02Z\n")
    assert offline.read_queries(tmp_path / "q.csv") == [("u1", 1000), ("u2", 2000)]
