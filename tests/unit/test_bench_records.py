"""The pure parts of the benchmarks: run records, sourced figures, percentiles from recorded latencies, the
generated markdown sections, what fails an API bench run."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from bench.api_latency import defects, history_start
from bench.latency import histogram_of, read_log, summary
from bench.records import DOCS, Run, check, publish
from bench.report import update_section
from simulation import generator
from streams.latency import LatencyLog


def make_run(docs: Path, bench: str = "demo") -> Run:
    run = Run.start(bench, ["churnstream", "bench", bench, "--users", "10"], docs=None)
    run.docs = docs
    return run


def test_a_run_record_holds_where_when_how_and_every_figure(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    run.figures.update(a_events_per_s=300, b_events_per_s=600)
    run.ratio("a_ratio", "a_events_per_s", "b_events_per_s")
    saved = json.loads(run.save().read_text())
    assert saved["command"] == "churnstream bench demo --users 10"
    assert saved["figures"] == {"a_events_per_s": 300, "b_events_per_s": 600, "a_ratio": 0.5}
    assert {"cores", "memory_gb", "cpu_model", "kernel", "load_average_at_start"} <= saved["machine"].keys()
    assert saved["outcome"] == "ok" and saved["started_utc"].endswith("Z") and saved["finished_utc"]
    published = json.loads((tmp_path / "benchmarks.json").read_text())["figures"]
    assert published["a_ratio"] == {"value": 0.5, "run": run.run_id}
    assert check(tmp_path / "benchmarks.json") == []


def test_a_ratio_is_only_taken_within_one_run(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    run.figures["features_events_per_s"] = 4095
    with pytest.raises(KeyError, match="faust_noop_events_per_s is not a figure of run"):
        run.ratio("features_ratio", "features_events_per_s", "faust_noop_events_per_s")


def test_check_finds_figures_without_a_source(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    run.figures["x_events_per_s"] = 10
    run.save()
    path = tmp_path / "benchmarks.json"
    data = json.loads(path.read_text())
    data["features_ratio"] = 0.685  # the old flat form: no run
    data["figures"]["y"] = {"value": 1, "run": "no-such-run"}
    data["figures"]["x_events_per_s"]["value"] = 11  # edited by hand
    path.write_text(json.dumps(data))
    problems = check(path)
    assert len(problems) == 3, problems
    assert any("features_ratio" in p for p in problems)
    assert any("no-such-run.json does not exist" in p for p in problems)
    assert any("11 here, 10 in run" in p for p in problems)


def test_a_failed_run_is_recorded_but_not_published(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    run.figures["api_p99_ms_at_1k"] = 3.0
    saved = json.loads(run.save(outcome="failed: 2 answers 503").read_text())
    assert saved["outcome"] == "failed: 2 answers 503"
    assert not (tmp_path / "benchmarks.json").exists()
    publish({"api_p99_ms_at_1k": 3.0}, run.run_id, tmp_path / "benchmarks.json")
    problem = f"api_p99_ms_at_1k: run {run.run_id} did not succeed ({saved['outcome']})"
    assert check(tmp_path / "benchmarks.json") == [problem]


def test_every_figure_in_docs_names_its_run_record() -> None:
    """The acceptance of issue 12, point 4: docs/benchmarks.json holds only figures of recorded runs."""
    assert check(DOCS / "benchmarks.json") == []
    assert json.loads((DOCS / "benchmarks.json").read_text())["figures"]


def test_percentiles_come_from_the_recorded_values() -> None:
    values = list(range(1, 10_001))  # 1 us .. 10 ms, one of each
    s = summary(histogram_of(values))
    assert s["count"] == 10_000
    # HDR keeps 3 significant digits: each percentile within 0.1% of the exact order statistic
    for p, exact in ((50, 5_000), (95, 9_500), (99, 9_900)):
        assert abs(s[f"p{p}_ms"] * 1000 - exact) <= exact * 0.001, (p, s)
    assert abs(s["max_ms"] - 10.0) <= 0.01
    # not a bucket bound: one slow outlier in 1,000 moves the max, not the p99
    s = summary(histogram_of([2_000] * 999 + [900_000]))
    assert s["p99_ms"] == pytest.approx(2.0, rel=1e-3) and s["max_ms"] == pytest.approx(900.0, rel=1e-3)


def test_the_latency_log_gives_back_the_window_it_is_asked_for(tmp_path: Path) -> None:
    log = LatencyLog(tmp_path / "latency.jsonl")
    log.record("event_to_score", np.full(100, 5.0))  # a warm-up of slow events
    log.flush()
    since = time.time()
    log.record("event_to_score", np.array([0.010, 0.020, 0.030]))
    log.record("event_to_clickhouse", np.array([0.5]))
    log.flush()
    window = read_log(tmp_path / "latency.jsonl", since)
    assert summary(window["event_to_score"]) == {
        "count": 3,
        "p50_ms": pytest.approx(20.0, rel=1e-3),
        "p95_ms": pytest.approx(30.0, rel=1e-3),
        "p99_ms": pytest.approx(30.0, rel=1e-3),
        "max_ms": pytest.approx(30.0, rel=1e-3),
    }
    assert window["event_to_clickhouse"].total_count == 1
    assert read_log(tmp_path / "latency.jsonl", 0)["event_to_score"].total_count == 103


def test_regenerating_a_section_keeps_the_prose_around_it(tmp_path: Path) -> None:
    path = tmp_path / "benchmarks.md"
    path.write_text(
        "# Benchmarks\n\nIntro.\n\n<!-- bench:api -->\nold table\n<!-- /bench:api -->\n\n"
        "Analysis of the API run: why p99 moved.\n\n<!-- bench:e2e -->\nold e2e\n<!-- /bench:e2e -->\nTail prose.\n"
    )
    update_section("api", "new table", path)
    update_section("latency", "appended", path)
    text = path.read_text()
    assert "<!-- bench:api -->\nnew table\n<!-- /bench:api -->" in text and "old table" not in text
    for prose in ("Intro.", "Analysis of the API run: why p99 moved.", "old e2e", "Tail prose."):
        assert text.count(prose) == 1, prose
    assert text.endswith("<!-- bench:latency -->\nappended\n<!-- /bench:latency -->\n")


def test_5xx_and_unanswered_requests_fail_the_api_bench() -> None:
    assert defects({"statuses": {"200": 19_993, "404": 7}, "errors": 0}) == []
    assert defects({"statuses": {"200": 19_990, "500": 7, "503": 3}, "errors": 0}) == ["7 answers 500", "3 answers 503"]
    assert defects({"statuses": {"200": 5}, "errors": 2, "error_kinds": {"ECONNRESET": 2}}) == [
        "2 requests got no answer ({'ECONNRESET': 2})"
    ]


def test_the_api_bench_history_has_no_event_in_the_future() -> None:
    """The API bench's users must all be processed: events a day ahead of the broker are dead-lettered."""
    now = int(time.time() * 1000)
    start = history_start(now)
    events = generator.simulate(generator.make_users(3000, 30, 3, prefix="b", start_ms=start), 30, 3, start_ms=start)
    assert events and max(e["ts"] for e in events) <= now
