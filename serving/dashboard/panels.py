"""What each dashboard page shows, built from the named queries (:mod:`serving.dashboard.queries`).

A page's data is ``{"kpis": {name: value}, "charts": {name: chart}, "tables": {name: rows}}``. A chart is a small
JSON spec (``type``, ``labels``, ``datasets`` of ``{label, data}``) that ``static/dashboard.js`` hands to Chart.js;
the numbers in it are the queries' numbers, unrounded beyond what the query rounds.

>>> chart("bar", ["a", "b"], {"users": [1, 2]})["datasets"]
[{'label': 'users', 'data': [1, 2]}]
>>> pivot([{"d": "x", "k": "a", "v": 1}, {"d": "y", "k": "b", "v": 2}], "d", "k", "v")
(['x', 'y'], {'a': [1, 0], 'b': [0, 2]})
"""

from __future__ import annotations

from typing import Any

from serving.dashboard.queries import run

Page = dict[str, Any]
BANDS = ("low", "medium", "high")
TASKS = ("churn", "purchase")


def chart(kind: str, labels: list[Any], series: dict[str, list[Any]], **options: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "labels": labels,
        "datasets": [{"label": k, "data": v} for k, v in series.items()],
        **options,
    }


def pivot(
    rows: list[dict[str, Any]], x: str, key: str, value: str, default: Any = 0
) -> tuple[list[Any], dict[str, list[Any]]]:
    """Long rows to one series per ``key`` over the sorted ``x`` values (``default`` where a pair has no row)."""
    xs = sorted({r[x] for r in rows})
    at = {v: i for i, v in enumerate(xs)}
    series: dict[str, list[Any]] = {}
    for r in rows:
        series.setdefault(str(r[key]), [default] * len(xs))[at[r[x]]] = r[value]
    return xs, series


def series_name(kind: str, model: str) -> str:
    """A live-metrics series' legend: the model kind, and the model when it says more.

    >>> series_name("pretrained", "pretrained"), series_name("online", "online:logreg")
    ('pretrained', 'online logreg')
    """
    name = model.removeprefix(f"{kind}:")
    return kind if name in (kind, "") else f"{kind} {name}"


def overview(client: Any, thresholds: tuple[float, float]) -> Page:
    low, high = thresholds
    bands = run(client, "risk_bands", low=low, high=high)[0]
    trend = run(client, "risk_trend", low=low, high=high)
    today = run(client, "users_scored_today")
    fresh = run(client, "freshness")[0]
    revenue = run(client, "revenue_at_risk", low=low, high=high)[0]
    expected = run(client, "expected_purchases")[0]
    return {
        "kpis": {
            "events_per_s": run(client, "events_per_second")[0]["events_per_s"],
            "users_scored_today": today[0]["users"] if today else 0,
            "scored_day": today[0]["day"] if today else None,
            "revenue_at_risk": revenue["revenue"],
            "revenue_buyers": revenue["buyers"],
            "expected_purchases": expected["expected"],
            "expected_users": expected["users"],
            "freshness_s": fresh["seconds"],
            **{f"band_{b}": bands[b] for b in BANDS},
        },
        "charts": {
            "risk_bands": chart("doughnut", list(BANDS), {"users": [bands[b] for b in BANDS]}),
            "risk_trend": chart(
                "line", [r["day"] for r in trend], {b: [r[b] for r in trend] for b in BANDS}, stacked=True
            ),
        },
    }


def retention(client: Any) -> Page:
    cohorts = run(client, "retention_cohorts")
    curve = run(client, "retention_curve")
    weekly = run(client, "active_churned_weekly")
    sizes = {r["cohort_week"]: r["users"] for r in cohorts if r["week_n"] == 0}
    matrix: dict[str, list[float | None]] = {}
    width = max((r["week_n"] for r in cohorts), default=-1) + 1
    for r in cohorts:
        row = matrix.setdefault(r["cohort_week"], [None] * width)
        row[r["week_n"]] = round(r["users"] / sizes[r["cohort_week"]], 4) if sizes.get(r["cohort_week"]) else None
    return {
        "tables": {
            "cohorts": [{"cohort": c, "users": sizes.get(c, 0), "weeks": w} for c, w in sorted(matrix.items())],
            "width": width,
        },
        "charts": {
            "retention_curve": chart(
                "line", [r["day_n"] for r in curve], {"retained share": [r["share"] for r in curve]}
            ),
            "active_churned": chart(
                "bar",
                [r["week"] for r in weekly],
                {"active": [r["active"] for r in weekly], "churned": [r["churned"] for r in weekly]},
            ),
        },
    }


def quality(client: Any, training: dict[str, list[dict[str, Any]]]) -> Page:
    live = run(client, "live_metrics")
    dist = run(client, "score_distribution")
    charts: dict[str, Any] = {}
    tables: dict[str, Any] = {"training": training, "live_latest": {}}
    for task in TASKS:
        rows = [r | {"series": series_name(r["model_kind"], r["model"])} for r in live if r["task"] == task]
        times, auc = pivot(rows, "ts", "series", "roc_auc", default=None)
        charts[f"live_{task}"] = chart("line", times, auc, span_gaps=True)
        for r in rows:  # the latest row of each model kind (rows are in time order)
            tables["live_latest"][f"{task} {r['model_kind']}"] = r
        d = [r for r in dist if r["task"] == task]
        charts[f"scores_{task}"] = chart("bar", [r["bin"] for r in d], {"users": [r["users"] for r in d]})
        lift = run(client, f"lift_{task}")
        total_pos = sum(r["positives"] for r in lift) or 1
        rate = total_pos / (sum(r["rows"] for r in lift) or 1)
        gains, acc = [], 0
        for r in lift:
            acc += r["positives"]
            gains.append(round(acc / total_pos, 4))
        charts[f"lift_{task}"] = chart(
            "bar",
            [r["decile"] for r in lift],
            {
                "lift": [round(r["positives"] / r["rows"] / rate, 4) if rate else 0 for r in lift],
                "cumulative gain": gains,
            },
        )
        cal = run(client, f"calibration_{task}")
        charts[f"calibration_{task}"] = chart(
            "scatter",
            [],
            {
                "observed rate": [{"x": r["predicted"], "y": r["observed"]} for r in cal],
                "perfect": [{"x": 0, "y": 0}, {"x": 1, "y": 1}],
            },
            show_line=True,
            x_title="mean predicted probability",
        )
    return {"charts": charts, "tables": tables}


def at_risk(client: Any, thresholds: tuple[float, float], filters: dict[str, Any], sort: str) -> Page:
    low, high = thresholds
    rows = run(client, "at_risk_page", sort=sort, low=low, high=high, **filters)
    count_filters = {k: v for k, v in filters.items() if k not in ("limit", "offset")}
    (total,) = run(client, "at_risk_count", **count_filters)
    return {"tables": {"rows": rows}, "kpis": {"total": total["users"]}}


def user(client: Any, user_id: str) -> Page:
    history = run(client, "user_score_history", user_id=user_id)
    days, series = pivot(history, "day", "task", "score")
    return {
        "tables": {"events": run(client, "user_recent_events", user_id=user_id), "history": history},
        "charts": {"history": chart("line", days, series)},
    }


def drift_panel(client: Any, champions: dict[str, Any], show: int = 6) -> Page:
    """Per task: the PSI of each feature of the live sample against the champion's training profile, day by day
    over 30 days, as the daily drift job wrote it (ClickHouse ``drift``); the chart draws the ``show`` features
    that moved most (trending ones apart), the table the score and every feature on the latest day. Then the
    latest alerts."""
    from models.drift import TRENDING

    charts: dict[str, Any] = {}
    tables: dict[str, Any] = {"latest": {}, "champion": {}}
    for task, ref in champions.items():
        if ref is None:
            continue
        rows = run(client, "drift_psi", task=task, model=ref.model, version=ref.version)
        days = sorted({r["date"] for r in rows})
        values = {(r["date"], r["feature"]): r["psi"] for r in rows}
        names = sorted({r["feature"] for r in rows if r["feature"] and r["feature"] not in TRENDING})
        worst = {n: max(values.get((d, n), 0.0) for d in days) for n in names}
        moving = sorted(worst, key=lambda n: (-worst[n], n))[:show]
        charts[f"drift_{task}"] = chart(
            "line", days, {n: [values.get((d, n)) for d in days] for n in moving}, show_line=True, span_gaps=True
        )
        latest = [r for r in rows if days and r["date"] == days[-1]]
        tables["latest"][task] = [
            {"feature": r["feature"] or "(score)", "psi": r["psi"], "level": r["level"]}
            for r in sorted(latest, key=lambda r: (r["feature"] != "", -r["psi"]))
        ]
        tables["champion"][task] = {"model": str(ref), "day": days[-1] if days else None}
    tables["alerts"] = run(client, "alerts_recent")
    return {"charts": charts, "tables": tables}


def experiments_panel(client: Any, experiments: dict[str, Any]) -> Page:
    """Per task: its running (or latest) experiment, each variant's quality on the same resolved labels, whether
    the difference is significant, and both variants' calibration."""
    from serving.experiment_report import report

    charts: dict[str, Any] = {}
    tables: dict[str, Any] = {}
    for task, exp in experiments.items():
        if exp is None:
            continue
        rep = report(client, exp)
        tables[task] = rep
        series: dict[str, list[Any]] = {
            v: [{"x": r["predicted"], "y": r["observed"]} for r in rep["calibration"] if r["variant"] == v]
            for v in ("champion", "challenger")
        }
        series["perfect"] = [{"x": 0, "y": 0}, {"x": 1, "y": 1}]
        axis = "mean predicted probability"
        charts[f"calibration_{task}"] = chart("scatter", [], series, show_line=True, x_title=axis)
    return {"charts": charts, "tables": tables}
