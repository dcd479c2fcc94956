"""The dashboard in a real headless Chromium (Debian's, driven by Selenium through Debian's chromedriver), served by
``churnstream run`` on the real stack after a short generated stream: real Kafka, Redis and a ClickHouse of this
module's own (embedded chDB allows one process per path, so the numbers shown are checked against the named
queries run directly while the process is stopped). Nothing is mocked.

``CHURNSTREAM_SCREENSHOTS=docs/img`` makes the page test save its screenshots there (the README shows them).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import redis
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from core.days import DAY_MS
from core.keys import DRIFT_DONE, log_key
from features import offline
from features.compute import FEATURE_NAMES
from infra import clickhouse_db
from infra import stack as infra_stack
from infra.processes import ManagedProcess, free_port
from models import drift
from models.comparison import auc, from_bins
from models.experiments import Experiments
from models.registry import Registry
from models.train import fit_clusters
from serving.dashboard.queries import run
from simulation.generator import arrivals, make_users, simulate
from streams.produce import produce_records
from tests.conftest import StackHandle
from tests.integration.support import new_key, promote_trained

START = 1_785_000_000_000 // DAY_MS * DAY_MS
DAYS = 100
PAGES = {
    "overview": "",
    "at_risk": "/at-risk",
    "segments": "/segments",
    "clusters": "/clusters",
    "retention": "/retention",
    "quality": "/quality",
    "drift": "/drift",
    "experiments": "/experiments",
    "health": "/health",
}
THRESHOLDS = {"low": 0.3, "high": 0.7}  # the settings' default risk bands


@dataclass
class Dash:
    stack: StackHandle
    port: int
    keys: dict[str, str]
    prefix: str
    proc: ManagedProcess

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/dashboard"

    def start(self, **more: str) -> None:
        env = {"CHURNSTREAM_API_PORT": str(self.port), "CHURNSTREAM_DASHBOARD_REFRESH_S": "1", **more}
        env["CHURNSTREAM_ONLINE_CHECKPOINT_S"] = "1"  # resolved scores reach ClickHouse with each checkpoint
        env["CHURNSTREAM_DRIFT_SAMPLE"] = "0.5"  # a live sample of some 85 users for the drift page
        env["CHURNSTREAM_DRIFT_CHECK_S"] = "1"
        env["CHURNSTREAM_DAILY_JOBS_GAP_S"] = "0"  # demand by category after every cut, as the page shows it
        self.proc = self.stack.spawn_worker("dashboard", command="run", **env)
        self.proc.wait_http(f"http://127.0.0.1:{self.port}/healthz", 90, self.stack.settings.home / "logs")

    def stopped_query(self) -> Any:
        """Stop the process (it holds the embedded chDB path) and open ClickHouse here; call :meth:`start` after."""
        self.proc.stop()
        return clickhouse_db.connect(self.stack.settings.clickhouse_dsn)


@pytest.fixture(scope="module")
def dash(module_stack: StackHandle) -> Iterator[Dash]:
    dsn = infra_stack.clickhouse_beside(module_stack.settings, f"dash{time.time_ns() % 10**7}")
    own = StackHandle(
        module_stack.settings.model_copy(update={"clickhouse_dsn": dsn}),
        module_stack.env | {"CHURNSTREAM_CLICKHOUSE_DSN": dsn},
    )
    keys = {scope: new_key(own, scope) for scope in ("read", "write")}
    prefix = f"dash{time.time_ns() % 10**6}-"
    users = make_users(150, DAYS, 51, prefix=prefix, start_ms=START)
    gone = make_users(20, 30, 53, prefix=f"{prefix}gone-", start_ms=START)  # quiet after day 30: lapsed at the end
    events = simulate(users, DAYS, 51, start_ms=START) + simulate(gone, 30, 53, start_ms=START)
    registry = Registry(own.settings.registry_dir())
    promote_trained(registry, events, every_days=5)  # the challenger: trained on fewer rows
    challenger = registry.champion("churn")
    promote_trained(registry, events)
    fit_clusters(offline.accept((e["type"], orjson.dumps(e)) for e in events), registry)  # as churnstream train does
    assert challenger is not None and challenger != registry.champion("churn")
    Experiments(registry.root).start(challenger, 0.5, "served")  # runs throughout the stream
    produce_records(own.settings, arrivals(sorted(events, key=lambda e: e["ts"]), 51, malformed=0.02))
    handle = Dash(own, free_port(), keys, prefix, ManagedProcess("dashboard", own.settings.dir("run") / "x.pid"))
    handle.start()
    try:
        own.wait_consumed(worker=handle.proc)
        labels_written(own)
        drift_computed(own)
        yield handle
    finally:
        handle.proc.stop()


def drift_computed(stack: StackHandle, quiet_s: float = 3.0) -> None:
    """Wait until the daily drift job has marked a day done for both champions and marks no more for ``quiet_s``."""
    r = redis.Redis.from_url(stack.settings.redis_url)
    deadline, last, since = time.monotonic() + 120, None, time.monotonic()
    try:
        while time.monotonic() < deadline:
            marks = r.hgetall(DRIFT_DONE)
            if marks != last:
                last, since = marks, time.monotonic()
            elif len(marks) == 2 and time.monotonic() - since >= quiet_s:  # type: ignore[arg-type]
                return
            time.sleep(0.2)
        raise AssertionError(f"the drift job did not finish its days: {last}")
    finally:
        r.close()


def labels_written(stack: StackHandle, quiet_s: float = 3.0) -> None:
    """Wait until the label logs stay empty for ``quiet_s``: every label resolved so far, by the stream's events or by
    the watermark's expiry ticks, is in a checkpoint, and so its scores are in ``resolved_scores``."""
    r = redis.Redis.from_url(stack.settings.redis_url)
    deadline, empty_since = time.monotonic() + 120, None
    try:
        while time.monotonic() < deadline:
            if sum(int(r.xlen(log_key(p))) for p in range(stack.settings.partitions)):  # type: ignore[arg-type]
                empty_since = None
            elif empty_since is None:
                empty_since = time.monotonic()
            elif time.monotonic() - empty_since >= quiet_s:
                return
            time.sleep(0.2)
        raise AssertionError("the online checkpoints did not take in the resolved labels")
    finally:
        r.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def login(browser: WebDriver, dash: Dash, key: str) -> None:
    """Log in afresh; the console's earlier messages (a refused login's 401 in another test) are dropped."""
    browser.get_log("browser")  # type: ignore[no-untyped-call]
    browser.delete_all_cookies()
    browser.get(f"{dash.base}/login")
    browser.find_element(By.ID, "api_key").send_keys(key)
    browser.find_element(By.CSS_SELECTOR, "form button").click()
    # the answer has loaded: the overview (logged in) or the login page again with its alert (refused)
    WebDriverWait(browser, 30, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda b: b.current_url == dash.base or b.find_elements(By.CSS_SELECTOR, "[role=alert]")
    )


def errors(browser: WebDriver) -> list[dict[str, Any]]:
    """The console's errors since the last call."""
    return [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]  # type: ignore[no-untyped-call]


def drawn(browser: WebDriver) -> None:
    """Wait until the page's script has drawn its charts (a page being replaced may go stale meanwhile)."""
    WebDriverWait(browser, 20, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-drawn")
    )


def open_page(browser: WebDriver, url: str, dash: Dash | None = None) -> None:
    browser.get(url)
    try:
        drawn(browser)
    except TimeoutException:
        log = dash.stack.worker_log("dashboard") if dash else ""
        raise AssertionError(f"{url} did not draw:\n{browser.page_source[:3000]}\n{log}") from None


def kpis(browser: WebDriver) -> dict[str, str]:
    return {
        e.get_attribute("data-kpi"): e.get_attribute("data-value")
        for e in browser.find_elements(By.CSS_SELECTOR, "[data-kpi]")
    }  # type: ignore[misc]


def charts(browser: WebDriver) -> dict[str, Any]:
    return orjson.loads(browser.find_element(By.ID, "charts").get_attribute("textContent") or "{}")


def test_a_wrong_key_or_one_without_read_is_refused_and_nothing_shows_without_a_login(
    dash: Dash, browser: WebDriver
) -> None:
    browser.delete_all_cookies()
    browser.get(dash.base)
    assert browser.current_url == f"{dash.base}/login"
    for key in ("cs_nope_nope", dash.keys["write"]):
        login(browser, dash, key)
        assert browser.current_url == f"{dash.base}/login"
        assert "unknown, revoked or lacks" in browser.find_element(By.CSS_SELECTOR, "[role=alert]").text
    with httpx.Client(base_url=dash.base) as client:
        assert client.get("/data/overview").status_code == 401
        assert client.post("/login", data={"api_key": "cs_nope_nope"}).status_code == 401
        ok = client.post("/login", data={"api_key": dash.keys["read"]})
        assert ok.status_code == 303 and ok.headers["location"] == "/dashboard"
        cookie = ok.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/dashboard" in cookie
        assert dash.keys["read"].lower() not in cookie  # the key is exchanged, not stored in the browser
        assert client.get("/data/overview").status_code == 200
        # the CSV is the whole filtered list: as many rows as the page says match
        page = client.get("/at-risk", params={"task": "churn", "band": "all", "max_quiet": 1000}).text
        total = int(page.split('data-kpi="total" data-value="', 1)[1].split('"', 1)[0])
        listed = client.get("/at-risk.csv", params={"task": "churn", "band": "all", "max_quiet": 1000})
        assert listed.headers["content-type"].startswith("text/csv")
        lines = listed.text.splitlines()
        assert lines[0].startswith("user_id,score,band,") and len(lines) - 1 == total > 50  # more than a page
        client.post("/logout")
        assert client.get("/data/overview").status_code == 401


def test_with_open_reads_the_pages_show_without_a_login(dash: Dash) -> None:
    """``CHURNSTREAM_API_OPEN_READS=true`` opens the dashboard (and the read endpoints); the default does not."""
    dash.proc.stop()
    dash.start(CHURNSTREAM_API_OPEN_READS="true")
    try:
        with httpx.Client(base_url=dash.base) as client:
            assert client.get("/data/overview").status_code == 200
            for path in PAGES.values():
                page = client.get(dash.base + path)
                assert page.status_code == 200 and "<main" in page.text and 'name="api_key"' not in page.text, path
            assert httpx.get(f"http://127.0.0.1:{dash.port}/v1/alerts").status_code == 200
    finally:
        dash.proc.stop()
        dash.start()
    with httpx.Client(base_url=dash.base) as client:  # back to the default: a login first
        assert client.get("/data/overview").status_code == 401
        home = client.get(dash.base)
        assert home.is_redirect and home.headers["location"].endswith("/login"), home.headers


def test_every_page_opens_with_data_in_every_chart_no_console_error_at_1280_and_390_px(
    dash: Dash, browser: WebDriver
) -> None:
    login(browser, dash, dash.keys["read"])
    errors(browser)
    shots = Path(os.environ.get("CHURNSTREAM_SCREENSHOTS") or dash.stack.settings.dir("screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    for width in (1280, 390):
        browser.set_window_size(width, 1000)
        for page, path in PAGES.items():
            open_page(browser, dash.base + path, dash)
            canvases = browser.find_elements(By.CSS_SELECTOR, "canvas")
            points = {c.get_attribute("data-chart"): c.get_attribute("data-points") for c in canvases}
            assert all(int(n or 0) > 0 for n in points.values()), (page, points)
            assert not errors(browser), page
            overflow = browser.execute_script("return document.documentElement.scrollWidth")
            assert overflow <= width, (page, width, overflow)  # wide tables scroll in their own box
            height = int(browser.execute_script("return document.documentElement.scrollHeight"))
            browser.set_window_size(width, height + 200)  # the window's own chrome takes some of its height
            browser.save_screenshot(
                str(shots / f"dashboard-{page.replace('_', '-')}{'' if width == 1280 else '-390'}.png")
            )
            browser.set_window_size(width, 1000)

    # the drill-down: a POST with the user id in its body, never in the URL
    browser.set_window_size(1280, 1000)
    open_page(browser, dash.base + PAGES["at_risk"])
    user = browser.find_element(By.CSS_SELECTOR, "#at-risk tbody tr td").text
    browser.find_element(By.CSS_SELECTOR, "#at-risk tbody button").click()
    WebDriverWait(browser, 20).until(lambda b: b.current_url == f"{dash.base}/user")
    drawn(browser)
    assert user.startswith(dash.prefix) and user not in browser.current_url
    assert (
        int(browser.find_element(By.CSS_SELECTOR, "canvas[data-chart=history]").get_attribute("data-points") or 0) > 0
    )
    assert len(browser.find_elements(By.CSS_SELECTOR, "#events tbody tr")) > 0
    assert len(browser.find_elements(By.CSS_SELECTOR, "#features tbody tr")) == len(FEATURE_NAMES)
    assert browser.find_elements(By.CSS_SELECTOR, "#scores tbody tr")
    assert not errors(browser)
    browser.save_screenshot(str(shots / "dashboard-user.png"))


def test_the_overview_updates_itself_without_a_reload(dash: Dash, browser: WebDriver) -> None:
    login(browser, dash, dash.keys["read"])
    open_page(browser, dash.base)
    browser.execute_script("window.stayed = 42")
    before = kpis(browser)
    more = make_users(30, 2, 52, prefix=f"{dash.prefix}late-", start_ms=START + (DAYS - 1) * DAY_MS)
    produce_records(dash.stack.settings, arrivals(simulate(more, 1, 52, start_ms=START + (DAYS - 1) * DAY_MS), 52))
    deadline = time.monotonic() + 90
    while kpis(browser)["users_scored_today"] == before["users_scored_today"]:
        assert time.monotonic() < deadline, f"the overview did not change: {kpis(browser)}"
        time.sleep(0.5)
    assert browser.execute_script("return window.stayed") == 42  # the same page: no reload
    assert int(browser.find_element(By.TAG_NAME, "body").get_attribute("data-refreshes") or 0) >= 1
    assert not errors(browser)
    dash.stack.wait_consumed(worker=dash.proc)


def test_the_numbers_shown_equal_the_named_queries_run_directly(dash: Dash, browser: WebDriver) -> None:
    dash.stack.wait_consumed(worker=dash.proc)
    login(browser, dash, dash.keys["read"])
    open_page(browser, dash.base)
    overview, overview_charts = kpis(browser), charts(browser)
    open_page(browser, f"{dash.base}/at-risk?task=churn&band=high&sort=score")
    at_risk_total = kpis(browser)["total"]
    trs = browser.find_elements(By.CSS_SELECTOR, "#at-risk tbody tr")
    table = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")[:2]] for tr in trs]
    open_page(browser, f"{dash.base}/segments")
    trs = browser.find_elements(By.CSS_SELECTOR, "#segments tbody tr")
    segments = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")[:2]] for tr in trs]
    demand_chart = charts(browser)["demand"]
    open_page(browser, f"{dash.base}/clusters")
    clusters = charts(browser)
    open_page(browser, f"{dash.base}/retention")
    retention = charts(browser)
    open_page(browser, f"{dash.base}/quality")
    quality = charts(browser)
    open_page(browser, f"{dash.base}/drift")
    drift_charts = charts(browser)
    open_page(browser, f"{dash.base}/experiments")
    experiment_charts = charts(browser)
    trs = browser.find_elements(By.CSS_SELECTOR, "table.experiment tbody tr")
    variant_rows = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")[:4]] for tr in trs]

    client = dash.stopped_query()
    try:
        bands = run(client, "risk_bands", **THRESHOLDS)[0]
        assert {k: int(overview[f"band_{k}"]) for k in bands} == bands
        # the same bands counted another way, from the raw rows: each active user's latest champion churn score
        raw = client.query(
            "SELECT user_id, argMax(score, as_of), max(event_ts), (SELECT max(as_of) FROM predictions) FROM predictions"
            " WHERE task = 'churn' AND model_kind = 'pretrained' GROUP BY user_id"
        ).result_rows
        active = [s for _, s, last, latest in raw if (latest - last).total_seconds() < 60 * 86400]
        assert 0 < len(active) < len(raw)  # lapsed users are in the rows, and left out of the bands
        assert bands == {
            "low": sum(s < 0.3 for s in active),
            "medium": sum(0.3 <= s < 0.7 for s in active),
            "high": sum(s >= 0.7 for s in active),
        }
        (today,) = run(client, "users_scored_today")
        assert int(overview["users_scored_today"]) == today["users"] > 0
        ((day, users),) = client.query(  # the raw rows: distinct users with a score on the latest as-of day
            "SELECT toString(toDate(max(as_of))), (SELECT uniqExact(user_id) FROM predictions"
            " WHERE toDate(as_of) = (SELECT toDate(max(as_of)) FROM predictions)) FROM predictions"
        ).result_rows
        assert (today["day"], today["users"]) == (day, users)
        assert float(overview["revenue_at_risk"]) == run(client, "revenue_at_risk", **THRESHOLDS)[0]["revenue"]
        assert float(overview["expected_purchases"]) == run(client, "expected_purchases")[0]["expected"]
        trend = run(client, "risk_trend", **THRESHOLDS)
        assert overview_charts["risk_trend"]["labels"] == [r["day"] for r in trend]
        assert overview_charts["risk_trend"]["datasets"][2]["data"] == [r["high"] for r in trend]

        filters = {"task": "churn", "min_score": 0.7, "max_score": 2.0, "min_quiet": 0, "max_quiet": 60}
        assert int(at_risk_total) == run(client, "at_risk_count", **filters)[0]["users"]
        rows = run(client, "at_risk_page", low=0.3, high=0.7, limit=50, offset=0, **filters)
        assert table == [[r["user_id"], str(r["score"])] for r in rows]

        # segments and clusters: the page's rows are the query's, and the query counts each user's latest row once
        by_segment = {r["segment"]: r["users"] for r in run(client, "segments_now")}
        assert {name: int(n.replace(",", "")) for name, n in segments} == by_segment
        latest = client.query(  # raw: each user's last user_segments row by as_of
            "SELECT argMax(segment, as_of), argMax(cluster, as_of) FROM user_segments GROUP BY user_id"
        ).result_rows
        assert sum(by_segment.values()) == len(latest) > 100
        per_cluster = [r["users"] for r in sorted(run(client, "clusters_now"), key=lambda r: r["cluster"])]
        assert clusters["cluster_sizes"]["datasets"][0]["data"] == per_cluster
        assert sorted(per_cluster) == sorted(np.unique([c for _, c in latest], return_counts=True)[1].tolist())
        assert all(c >= 0 for _, c in latest)  # every user assigned a trained cluster
        demand = run(client, "demand_latest")
        assert demand_chart["labels"] == [r["category"] for r in demand] and len(demand) == 8
        assert demand_chart["datasets"][0]["data"] == [r["expected"] for r in demand]

        curve = run(client, "retention_curve")
        assert retention["retention_curve"]["datasets"][0]["data"] == [r["share"] for r in curve]
        weekly = run(client, "active_churned_weekly")
        assert retention["active_churned"]["datasets"][0]["data"] == [r["active"] for r in weekly]

        registry = Registry(dash.stack.settings.registry_dir())
        exp = Experiments(registry.root).running("churn")
        assert exp is not None
        variants, cal = from_bins(run(client, "experiment_bins", task="churn", experiment=exp.experiment_id))
        quality_rows = [{"variant": v, **q} for v, q in variants.items()]
        # the same figures from the raw rows, each variant's scores of the same labels
        raw = client.query(
            "SELECT model_kind, groupArray(score), groupArray(label) FROM resolved_scores FINAL"
            " WHERE experiment = {e:String} GROUP BY model_kind",
            parameters={"e": exp.experiment_id},
        ).result_rows
        for variant, scores, labels in raw:
            assert abs(variants[variant]["roc_auc"] - auc(np.array(labels), np.array(scores))) < 1e-3, variant
        shown = [
            [r["variant"], f"{r['labels']:,}", f"{r['roc_auc']:.4f}", f"{r['log_loss']:.4f}"] for r in quality_rows
        ]
        assert sorted(shown) == sorted(variant_rows) and [r[0] for r in variant_rows] == ["champion", "challenger"]
        assert len(variant_rows) == 2 and quality_rows[0]["labels"] == quality_rows[1]["labels"] > 50  # paired
        shown_cal = experiment_charts["calibration_churn"]["datasets"]
        assert [p["y"] for p in shown_cal[1]["data"]] == [r["observed"] for r in cal if r["variant"] == "challenger"]
        for task in ("churn", "purchase"):  # each charted PSI, recomputed here from the raw sample with numpy
            ref = registry.champion(task)
            assert ref is not None
            prof = drift.Profile.from_json(registry.meta(ref)["drift"])  # type: ignore[arg-type]
            shown = drift_charts[f"drift_{task}"]
            computed = client.query(
                "SELECT DISTINCT toString(day) FROM drift WHERE model = {m:String} AND version = {v:String}",
                parameters={"m": ref.model, "v": ref.version},
            ).result_rows
            days = [dt.date.fromisoformat(d) for (d,) in sorted(computed)]
            assert days == [days[0] + dt.timedelta(days=i) for i in range(len(days))], "every day once, no gap"
            assert shown["labels"] == [str(d) for d in days if d > days[-1] - dt.timedelta(days=30)]
            for day in shown["labels"]:
                X = [x for (x,) in client.query(f"SELECT x FROM daily_features FINAL WHERE day = '{day}'").result_rows]
                assert X, f"{day}: computed before its day-end rows were written"
                counts = drift.bin_counts(prof, np.array(X, dtype=np.float64).reshape(len(X), len(prof.features)))
                for series in shown["datasets"]:
                    name, got = series["label"], series["data"][shown["labels"].index(day)]
                    assert got == drift.psi(prof.features[name].share, counts[name]), (day, name)
            lift = run(client, f"lift_{task}")
            assert len(quality[f"lift_{task}"]["labels"]) == len(lift) == 10
            calibration = run(client, f"calibration_{task}")
            assert [p["y"] for p in quality[f"calibration_{task}"]["datasets"][0]["data"]] == [
                r["observed"] for r in calibration
            ]
    finally:
        client.close()
        dash.start()
