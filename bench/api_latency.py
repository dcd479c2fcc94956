"""`churnstream bench api`: score-lookup latency of one API process at a fixed offered load.

The load generator (``bench/api_load.js``, Node's http module) is open loop: request i is due at start + i/rate
and its latency runs from that due time, so a stalled server cannot hide behind a waiting generator. It cycles
through the ids of users whose events the worker has just scored.
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

from rich.console import Console

from bench.report import update_json, update_section
from churnstream.settings import Settings
from infra import stack
from infra.processes import ManagedProcess, free_port
from streams import generator
from streams.demo import create_key, ensure_models
from streams.lag import group_lag
from streams.produce import produce_records

LOAD_JS = Path(__file__).with_name("api_load.js")
COMMAND = "churnstream bench api --rate {rate} --seconds {seconds}"


def load(base: str, key: str, rate: int, seconds: int, ids: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["node", str(LOAD_JS), base, key, str(rate), str(seconds), str(ids)],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def run(settings: Settings, console: Console, rate: int = 1000, seconds: int = 30) -> dict[str, Any]:
    with console.status("stack up"):
        stack.up(settings)
    ensure_models(settings, console, users=1000)
    key = create_key(settings)
    prefix = f"bapi{uuid.uuid4().hex[:5]}"
    users = generator.make_users(3000, 30, 3, prefix=prefix, start_ms=int(time.time() * 1000) - 30 * 86_400_000)
    events = generator.simulate(users, 30, 3, start_ms=users[0].signup_ms - users[0].signup_ms % 86_400_000)
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
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            scored = sorted({e["user_id"] for e in events})
            f.write("\n".join(scored))
            ids = Path(f.name)
        with console.status("warming up"):
            load(base, key, rate // 2, 5, ids)
        with console.status(f"{rate:,} req/s for {seconds}s"):
            result = load(base, key, rate, seconds, ids)
        ids.unlink()
    finally:
        proc.stop()
    console.print(result)
    figures = {"api_p50_ms_at_1k": result["p50_ms"], "api_p99_ms_at_1k": result["p99_ms"]} if rate == 1000 else {}
    if figures:
        update_json(figures)
    md = [
        "## API score lookups (one API process)",
        "",
        f"Command: `{COMMAND.format(rate=rate, seconds=seconds)}`. `GET /v1/users/{{id}}/scores` with an API key, "
        f"cycling through {len(scored):,} users just scored by the worker; `bench/api_load.js`, open loop at "
        f"{rate:,} requests/s (latency from each request's due time) over up to 64 keep-alive connections for "
        f"{seconds} s on loopback, after a 5 s warm-up at half the rate. The API runs in "
        "`churnstream run` (beside an idle worker), as in embedded mode.",
        "",
        "| offered load | achieved | requests | non-2xx | p50 | p90 | p99 | max |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {rate:,}/s | {result['rps']:,.0f}/s | {result['requests']:,} | {result['non2xx']} | {result['p50_ms']} ms "
        f"| {result['p90_ms']} ms | **{result['p99_ms']} ms** | {result['max_ms']} ms |",
        "",
        "Target: p99 <= 5 ms at 1,000 requests/s. The generator's 1 ms timer adds up to about 1 ms to each figure.",
    ]
    update_section("api", "\n".join(md))
    return result
