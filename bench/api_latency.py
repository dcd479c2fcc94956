"""`churnstream bench api`: score-lookup latency of one API process at a fixed offered load.

The load generator (``bench/api_load.js``, Node's http module) is open loop: request i is due at start + i/rate
and its latency runs from that due time, so a stalled server cannot hide behind a waiting generator. It cycles
through the ids of users whose events the worker has just scored.

Every answer is counted by status code, and the first non-2xx answers are kept in the run record with their
bodies. A 5xx answer, or a request that got no answer, is a defect: the run is recorded as failed and the command
exits non-zero. Percentiles come from every request's recorded latency (HDR histogram, ``bench/latency.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import redis
import typer
from rich.console import Console

from bench.latency import read_micros, summary
from bench.records import Run
from bench.report import update_section
from churnstream.demo import create_key, ensure_models
from churnstream.settings import Settings
from core.keys import state_key
from infra import stack
from infra.processes import ManagedProcess, free_port
from simulation import generator
from streams.lag import group_lag
from streams.produce import produce_records

LOAD_JS = Path(__file__).with_name("api_load.js")
COMMAND = "churnstream bench api --rate {rate} --seconds {seconds}"


ENDPOINTS = {"scores": "/v1/users/{id}/scores", "recommendations": "/v1/users/{id}/recommendations?k=10"}


def load(base: str, key: str, rate: int, seconds: int, ids: Path, path: str = ENDPOINTS["scores"]) -> dict[str, Any]:
    """One open-loop load: the generator's counts and samples, and percentiles from every request's latency."""
    with tempfile.NamedTemporaryFile(suffix=".us") as lat:
        out = subprocess.run(
            ["node", str(LOAD_JS), base, key, str(rate), str(seconds), str(ids), lat.name, path],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 60,
        )
        result = dict(json.loads(out.stdout.strip().splitlines()[-1]))
        result["latency"] = summary(read_micros(Path(lat.name)))
    return result


def history_start(now_ms: int | None = None) -> int:
    """Midnight (UTC) 31 days ago: 30 simulated days from there end before today, none in the future.

    The history used to start on the first user's signup day, so it ran up to 21 days past now; the worker
    dead-letters events more than a day ahead of the broker clock (``ts_in_future``), and a user with only such
    events was never processed: each lookup of that user was a 404 (7 of 20,000 requests in one run).

    >>> history_start(31 * 86_400_000 + 5)
    0
    """
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    return now_ms - now_ms % 86_400_000 - 31 * 86_400_000


def wait_recommender(settings: Settings, deadline: float, quiet_s: float = 25.0) -> str:
    """Until the worker's recommender job has made a version current and made no other for ``quiet_s`` (more than
    two segment ticks): the daily jobs that follow the backlog's last cuts are done, so the load measures lookups,
    not lookups beside a fit in the same process (it runs once a day). Returns the version."""
    from models.recommend_store import current_version

    root = settings.registry_dir() / "recommender"
    last, since = current_version(root), time.monotonic()
    while last is None or time.monotonic() - since < quiet_s:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the recommender job did not settle (version {last})")
        time.sleep(1)
        if (now := current_version(root)) != last:
            last, since = now, time.monotonic()
    return last


def unprocessed(settings: Settings, user_ids: list[str]) -> list[str]:
    """The users among ``user_ids`` of whom Redis holds no state (the worker applied none of their events)."""
    r = redis.Redis.from_url(settings.redis_url)
    with r.pipeline(transaction=False) as pipe:
        for u in user_ids:
            pipe.exists(state_key(u))
        found = pipe.execute()
    return [u for u, n in zip(user_ids, found, strict=True) if not n]


def defects(result: dict[str, Any]) -> list[str]:
    """What fails the run: 5xx answers and requests without an answer.

    >>> defects({"statuses": {"200": 9, "404": 1}, "errors": 0})
    []
    >>> defects({"statuses": {"200": 9, "503": 2}, "errors": 1, "error_kinds": {"ECONNRESET": 1}})
    ['2 answers 503', "1 requests got no answer ({'ECONNRESET': 1})"]
    """
    out = [f"{n} answers {code}" for code, n in sorted(result["statuses"].items()) if int(code) >= 500]
    if result["errors"]:
        out.append(f"{result['errors']} requests got no answer ({result.get('error_kinds')})")
    return out


def run(
    settings: Settings, console: Console, rate: int = 1000, seconds: int = 30, endpoint: str = "scores"
) -> dict[str, Any]:
    record = Run.start("api" if endpoint == "scores" else f"api-{endpoint}", sys.argv)
    record.sizes = {"rate": rate, "seconds": seconds, "users": 3000, "days": 30, "warm_up": f"{rate // 2}/s for 5 s"}
    with console.status("stack up"):
        stack.up(settings)
    ensure_models(settings, console, users=1000)
    key = create_key(settings)
    prefix = f"bapi{uuid.uuid4().hex[:5]}"
    users = generator.make_users(3000, 30, 3, prefix=prefix, start_ms=(start_ms := history_start()))
    events = generator.simulate(users, 30, 3, start_ms=start_ms)
    port = free_port()
    proc = ManagedProcess("bench-api", settings.dir("run") / "bench-api.pid")
    proc.spawn(
        [sys.executable, "-m", "churnstream.cli", "run"],
        settings.dir("logs") / "bench-api.log",
        env=os.environ
        | {
            "CHURNSTREAM_HOME": str(settings.home),
            "CHURNSTREAM_API_PORT": str(port),
            "CHURNSTREAM_METRICS_PORT": "0",
            "CHURNSTREAM_DAILY_JOBS_GAP_S": "0",  # the recommender after every cut, as a day of live traffic has
        },
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with console.status(f"scoring {len(events):,} events of {len(users):,} users"):
            produce_records(settings, generator.arrivals(events, 3))
            deadline = time.monotonic() + 600
            while group_lag(settings) > 0 and time.monotonic() < deadline:
                time.sleep(1)
            proc.wait_http(
                base + "/healthz", max(1.0, deadline - time.monotonic()), settings.home / "logs" / "bench-api.log"
            )
        scored = sorted({e["user_id"] for e in events})
        if unknown := unprocessed(settings, scored):
            # every id the load asks for must be a user the worker applied events of: a 404 then is the API's
            record.details["unprocessed_users"] = unknown[:20]
            path = record.save(outcome=f"failed: {len(unknown)} of the bench's users were never processed")
            console.print(f"[red]bench api failed:[/] {len(unknown)} users never processed: {unknown[:5]} ({path})")
            raise typer.Exit(1)
        if endpoint == "recommendations":  # the recommender job runs after the worker's first RFM cut
            with console.status("waiting for the recommender jobs to settle"):
                record.details["recommender_version"] = wait_recommender(settings, deadline + 300)
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            f.write("\n".join(scored))
            ids = Path(f.name)
        with console.status("warming up"):
            warm = load(base, key, rate // 2, 5, ids, ENDPOINTS[endpoint])
        with console.status(f"{rate:,} req/s for {seconds}s"):
            result = load(base, key, rate, seconds, ids, ENDPOINTS[endpoint])
        ids.unlink()
    finally:
        proc.stop()
    console.print(result)
    lat = result["latency"]
    at = "1k" if rate == 1000 else f"{rate}rps"
    name = "api" if endpoint == "scores" else "recommend"
    record.figures = {
        f"{name}_requests_at_{at}": result["requests"],
        f"{name}_non2xx_at_{at}": result["non2xx"],
        f"{name}_p50_ms_at_{at}": lat["p50_ms"],
        f"{name}_p95_ms_at_{at}": lat["p95_ms"],
        f"{name}_p99_ms_at_{at}": lat["p99_ms"],
        f"{name}_max_ms_at_{at}": lat["max_ms"],
    }
    if endpoint == "recommendations":  # a job run during the load would show here
        from models.recommend_store import current_version

        record.details["recommender_version_after"] = current_version(settings.registry_dir() / "recommender")
    record.details |= {
        "measured": {k: v for k, v in result.items() if not k.endswith("_ms")},
        "warm_up": {k: v for k, v in warm.items() if not k.endswith("_ms")},
        "generator_percentiles_ms_unpublished": {k: v for k, v in result.items() if k.endswith("_ms")},
    }
    failures = defects(result) + [f"warm-up: {d}" for d in defects(warm)]
    if failures:
        path = record.save(outcome="failed: " + "; ".join(failures))
        console.print(f"[red]bench api failed:[/] {'; '.join(failures)} (record: {path})")
        for sample in result["non2xx_samples"] + warm["non2xx_samples"]:
            console.print(sample)
        raise typer.Exit(1)
    path = record.save()
    statuses = ", ".join(f"{code}: {n:,}" for code, n in sorted(result["statuses"].items()))
    what, target = ("score lookups", 5) if endpoint == "scores" else ("recommendation lookups", 10)
    command = COMMAND.format(rate=rate, seconds=seconds) + ("" if endpoint == "scores" else f" --endpoint {endpoint}")
    md = [
        f"## API {what} (one API process)",
        "",
        f"Command: `{command}`. `GET {ENDPOINTS[endpoint]}` with an API key, "
        f"cycling through {len(scored):,} users just scored by the worker; `bench/api_load.js`, open loop at "
        f"{rate:,} requests/s (latency from each request's due time) over up to 64 keep-alive connections for "
        f"{seconds} s on loopback, after a 5 s warm-up at half the rate. The API runs in "
        "`churnstream run` (beside an idle worker), as in embedded mode. Run record: "
        f"[`{record.run_id}`](benchmark-runs/{record.run_id}.json) (commit `{record.commit[:7]}`"
        f"{', with uncommitted changes' if record.dirty else ''}, {record.started_utc}). Percentiles from every "
        "request's recorded latency (HDR histogram).",
        "",
        "| offered load | achieved | requests | answers by status | p50 | p95 | p99 | max |",
        "|---:|---:|---:|---|---:|---:|---:|---:|",
        f"| {rate:,}/s | {result['rps']:,.0f}/s | {result['requests']:,} | {statuses} | {lat['p50_ms']} ms "
        f"| {lat['p95_ms']} ms | **{lat['p99_ms']} ms** | {lat['max_ms']} ms |",
        "",
        f"Target: p99 <= {target} ms at 1,000 requests/s. The generator's 1 ms timer adds up to about 1 ms to each "
        "figure. Any 5xx answer, or a request without an answer, fails the run.",
    ]
    update_section("api" if endpoint == "scores" else f"api-{endpoint}", "\n".join(md))
    console.print(f"run record: {path}")
    return result
