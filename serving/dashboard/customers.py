"""The customer pages: RFM segments (with the recommendations' click-through by variant) and behavioural clusters.

Both read ClickHouse (``user_segments_latest`` joined with the champion's latest scores, ``recommendation_feedback``)
and, for the clusters' profiles, the current clusters version in the registry.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request

from features.rfm import SEGMENTS
from models.clusters import COLUMNS, Clusters
from models.registry import ModelRejected
from serving.dashboard.access import ViewerDep
from serving.dashboard.pages import clickhouse, render
from serving.dashboard.panels import Page, chart
from serving.dashboard.queries import run
from serving.deps import ServicesDep, SettingsDep

router = APIRouter(prefix="/dashboard", include_in_schema=False)


def risk(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return {"mean churn score": [r["churn"] for r in rows], "mean purchase score": [r["purchase"] for r in rows]}


def segments_panel(client: Any) -> Page:
    rows = {r["segment"]: r for r in run(client, "segments_now")}
    ordered = [rows[s] for s in SEGMENTS if s in rows]  # the named segments from best to worst
    total = sum(r["users"] for r in ordered) or 1
    latest, checked = run(client, "demand_latest"), {r["category"]: r for r in run(client, "demand_checked")}
    series = {
        f"expected, next 30 days from {latest[0]['day']}" if latest else "expected": [r["expected"] for r in latest]
    }
    if checked:
        day = next(iter(checked.values()))["day"]
        series[f"expected from {day}"] = [checked.get(r["category"], {}).get("expected") for r in latest]
        series[f"buyers in the 30 days from {day}"] = [checked.get(r["category"], {}).get("realised") for r in latest]
    return {
        "kpis": {"segmented": sum(r["users"] for r in ordered)},
        "tables": {
            "segments": [r | {"share": round(r["users"] / total, 4)} for r in ordered],
            "feedback": run(client, "recommendation_feedback"),
        },
        "charts": {
            "segment_sizes": chart("bar", [r["segment"] for r in ordered], {"users": [r["users"] for r in ordered]}),
            "segment_risk": chart("bar", [r["segment"] for r in ordered], risk(ordered)),
            "demand": chart("bar", [r["category"] for r in latest], series),
        },
    }


def clusters_panel(client: Any, clusters: Clusters | None) -> Page:
    rows = sorted(run(client, "clusters_now"), key=lambda r: r["cluster"])
    profiles = {p["cluster"]: p for p in clusters.profiles} if clusters else {}
    labels = [f"cluster {r['cluster']}" if r["cluster"] >= 0 else "none yet" for r in rows]
    return {
        "kpis": {"k": clusters.k if clusters else None, "silhouette": clusters.silhouette if clusters else None},
        "tables": {
            "clusters": [r | {"profile": profiles.get(r["cluster"], {}).get("means", {})} for r in rows],
            "columns": list(COLUMNS),
            "version": clusters.version if clusters else None,
        },
        "charts": {
            "cluster_sizes": chart("bar", labels, {"users": [r["users"] for r in rows]}),
            "cluster_risk": chart("bar", labels, risk(rows)),
        },
    }


def current_clusters(services: Any) -> Clusters | None:
    try:
        return Clusters.load_current(services.settings.registry_dir() / "clusters")
    except ModelRejected:
        return None


@router.get("/segments")
async def segments_page(request: Request, viewer: ViewerDep, services: ServicesDep, settings: SettingsDep) -> Any:
    data = await asyncio.to_thread(segments_panel, await clickhouse(services))
    return render(request, "segments", viewer, settings, data=data)


@router.get("/clusters")
async def clusters_page(request: Request, viewer: ViewerDep, services: ServicesDep, settings: SettingsDep) -> Any:
    data = await asyncio.to_thread(clusters_panel, await clickhouse(services), current_clusters(services))
    return render(request, "clusters", viewer, settings, data=data)
