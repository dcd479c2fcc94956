"""`churnstream demo` as a new user meets it: models trained when missing, the live line, and the printed curl
commands answered by the running API (run through bash, exactly as printed)."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx

from core.tasks import TASKS
from infra.processes import free_port
from models.registry import Registry
from tests.conftest import StackHandle


def test_demo_reaches_the_live_line_and_answers_its_curl_commands(module_stack: StackHandle) -> None:
    port = free_port()
    env = module_stack.env | {"CHURNSTREAM_API_PORT": str(port), "CHURNSTREAM_METRICS_PORT": str(free_port())}
    registry = Registry(module_stack.settings.registry_dir())
    assert not any(registry.champion(t) for t in TASKS)  # the module's own registry is empty: the demo must train
    proc = subprocess.Popen(
        [sys.executable, "-m", "churnstream.cli", "demo", "--duration", "45", "--train-users", "800", "--rate", "300"],
        env=env | {"COLUMNS": "400"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    answered: dict[str, str] = {}
    login_answer: dict[str, str] = {}
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("dashboard key "):  # log in as a user would, while the demo runs
                key = line.split()[2]
                reply = httpx.post(f"http://127.0.0.1:{port}/dashboard/login", data={"api_key": key}, timeout=30)
                login_answer = {"status": str(reply.status_code), "location": reply.headers.get("location", "")}
            if line.startswith("curl -s"):
                out = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=30)
                answered[line.split("127.0.0.1:" + str(port), 1)[1].split()[0].strip("'")] = out.stdout
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = "".join(lines)
    assert proc.returncode == 0, text[-3000:]
    assert "trained churn" in text and "trained purchase" in text
    assert "events/s scored" in text and "p99 event-to-score" in text
    # the dashboard's address and a login key come first, before the live line and the curl commands
    first = next(i for i, line in enumerate(lines) if line.startswith("Dashboard: "))
    assert lines[first].split()[1] == f"http://127.0.0.1:{port}/dashboard"
    assert first < min(i for i, line in enumerate(lines) if "events/s scored" in line or line.startswith("curl -s"))
    assert login_answer.get("location") == "/dashboard", login_answer
    assert all(registry.champion(t) for t in TASKS)
    scores = next(v for k, v in answered.items() if k.endswith("/scores"))
    assert {s["model_kind"] for s in json.loads(scores)["scores"]["churn"]} == {"pretrained", "online"}
    assert "features" in json.loads(next(v for k, v in answered.items() if k.endswith("/features")))
    assert len(json.loads(answered["/v1/score"])["results"]) == 2
    assert set(json.loads(answered["/v1/models"])) == {"churn", "purchase"}
    assert answered["/v1/at-risk?task=purchase&min_score=0.8&limit=20&format=csv"].startswith("user_id,task,")
    assert ",ok" in answered["/v1/batch-score?model=logreg"]
    assert json.loads(answered["/v1/events"])["accepted"] == ["curl-1"]
    assert json.loads(answered["/readyz"])["ready"] is True
    assert "churnstream_event_to_score_seconds_bucket" in answered["/metrics"]
