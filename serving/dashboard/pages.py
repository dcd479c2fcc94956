"""The dashboard's routes: server-rendered pages at ``/dashboard``, one per concern, and the overview's data as JSON
for its live refresh. Filters may go in URLs; a user id never does (the drill-down is a POST).

A new panel is a named query (:mod:`serving.dashboard.queries`), a few lines in :mod:`serving.dashboard.panels`,
and a block in its page's template.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Undefined

from features.compute import features
from serving.dashboard import health, panels
from serving.dashboard.access import SessionsDep, ViewerDep
from serving.dashboard.queries import SORTS
from serving.dashboard.sessions import COOKIE
from serving.deps import CatalogDep, ServicesDep, SettingsDep, StoreDep
from serving.errors import check_user_id
from serving.status import cached_scores

HERE = Path(__file__).parent
VENDOR = HERE / "assets" / "node_modules" / "chart.js" / "dist"
templates = Jinja2Templates(directory=HERE / "templates")


def show(value: Any, kind: str = "number") -> str:
    """A number as the page shows it first (``static/dashboard.js`` ``format`` does the same on refresh).

    >>> show(1234567), show(12.345, "money"), show(None), show(200000, "duration"), show(3.25, "rate")
    ('1,234,567', '12.35', '-', '2.3 d', '3.2/s')
    >>> show(1_785_000_000_000, "date")  # epoch milliseconds, as the UTC day
    '2026-07-25'
    """
    if value is None or value == "" or isinstance(value, Undefined):  # Undefined: a metric the model lacks
        return "-"
    if kind == "text":
        return str(value)
    n = float(value)
    if kind == "duration":
        for limit, unit, div in ((120, "s", 1), (7200, "min", 60), (172800, "h", 3600)):
            if n < limit:
                return f"{n / div:.1f} {unit}"
        return f"{n / 86400:.1f} d"
    if kind == "date":
        return dt.datetime.fromtimestamp(n / 1000, dt.UTC).date().isoformat()
    if kind == "ms":
        return f"{n:,.1f} ms"
    if kind == "rate":
        return f"{n:,.1f}/s"
    if kind in ("money", "decimal"):
        return f"{n:,.2f}"
    if kind == "decimal4":
        return f"{n:.4f}"
    return f"{int(n):,}" if n == int(n) else f"{n:,.2f}"


templates.env.filters["show"] = show
router = APIRouter(prefix="/dashboard", include_in_schema=False)
PAGES = (("overview", "Overview"), ("at-risk", "At risk"), ("segments", "Segments"), ("clusters", "Clusters"),
         ("retention", "Retention"), ("quality", "Model quality"), ("drift", "Drift"), ("experiments", "Experiments"),
         ("health", "Pipeline health"))  # fmt: skip
PAGE_SIZE = 50


def mount_static(app: Any) -> None:
    """Our stylesheet and script, and Chart.js from node_modules (installed by ``make setup``, never a CDN)."""
    app.mount("/dashboard/static", StaticFiles(directory=HERE / "static"), name="dashboard-static")
    app.mount("/dashboard/vendor", StaticFiles(directory=VENDOR, check_dir=False), name="dashboard-vendor")


def render(request: Request, page: str, viewer: Any, settings: Any, **context: Any) -> HTMLResponse:
    response = templates.TemplateResponse(
        request,
        f"{page}.html",
        {"pages": PAGES, "page": page, "viewer": viewer, "open_reads": settings.api_open_reads, **context},
    )
    response.headers["Content-Security-Policy"] = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"
    response.headers["Cache-Control"] = "no-store"
    return response


async def clickhouse(services: Any) -> Any:
    return await asyncio.to_thread(services.clickhouse)


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, settings: SettingsDep) -> HTMLResponse:
    return render(request, "login", None, settings, error=None)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, sessions: SessionsDep, settings: SettingsDep, api_key: str = Form("")) -> Response:
    token = await sessions.open(api_key)
    if token is None:
        response = render(request, "login", None, settings, error="That key is unknown, revoked or lacks `read`.")
        response.status_code = 401
        return response
    redirect = RedirectResponse("/dashboard", status_code=303)
    redirect.set_cookie(
        COOKIE, token, max_age=settings.dashboard_session_s, httponly=True, samesite="strict", path="/dashboard",
        secure=request.url.scheme == "https",
    )  # fmt: skip
    return redirect


@router.post("/logout")
async def logout(request: Request, sessions: SessionsDep) -> Response:
    await sessions.close(request.cookies.get(COOKIE))
    redirect = RedirectResponse("/dashboard/login", status_code=303)
    redirect.delete_cookie(COOKIE, path="/dashboard")
    return redirect


@router.get("", response_class=HTMLResponse)
async def overview_page(request: Request, viewer: ViewerDep, services: ServicesDep, settings: SettingsDep) -> Any:
    data = await asyncio.to_thread(panels.overview, await clickhouse(services), settings.api_risk_thresholds)
    return render(request, "overview", viewer, settings, data=data, refresh_s=settings.dashboard_refresh_s)


@router.get("/data/overview")
async def overview_data(viewer: ViewerDep, services: ServicesDep, settings: SettingsDep) -> JSONResponse:
    data = await asyncio.to_thread(panels.overview, await clickhouse(services), settings.api_risk_thresholds)
    return JSONResponse(data, headers={"Cache-Control": "no-store"})


@dataclass
class AtRiskQuery:
    """The at-risk list's filters and order, from the query string (none of them names a customer)."""

    task: Literal["churn", "purchase"] = "churn"
    band: Literal["all", "low", "medium", "high"] = "high"
    sort: Literal["score", "score_asc", "last_event", "quiet", "as_of"] = "score"
    min_quiet: int = Query(0, ge=0, le=100_000)
    max_quiet: int = Query(60, ge=0, le=100_000)

    def filters(self, thresholds: tuple[float, float], limit: int, offset: int) -> dict[str, Any]:
        """Parameters of the ``at_risk_*`` queries; a band is a score range (``high``: at or above the second
        threshold).

        >>> AtRiskQuery("churn", "medium", "score", 0, 60).filters((0.3, 0.7), 50, 0)["min_score"]
        0.3
        """
        low, high = thresholds
        lo, hi = {"all": (0.0, 2.0), "low": (0.0, low), "medium": (low, high), "high": (high, 2.0)}[self.band]
        return {"task": self.task, "min_score": lo, "max_score": hi, "min_quiet": self.min_quiet,
                "max_quiet": self.max_quiet, "limit": limit, "offset": offset}  # fmt: skip


AtRiskDep = Annotated[AtRiskQuery, Depends()]


@router.get("/at-risk", response_class=HTMLResponse)
async def at_risk_page(
    request: Request,
    viewer: ViewerDep,
    services: ServicesDep,
    settings: SettingsDep,
    query: AtRiskDep,
    page: int = Query(1, ge=1, le=100_000),
) -> Any:
    thresholds = settings.api_risk_thresholds
    filters = query.filters(thresholds, PAGE_SIZE, (page - 1) * PAGE_SIZE)
    data = await asyncio.to_thread(panels.at_risk, await clickhouse(services), thresholds, filters, query.sort)
    return render(request, "at_risk", viewer, settings, data=data, query=asdict(query), page_n=page,
                  page_size=PAGE_SIZE, sorts=list(SORTS))  # fmt: skip


@router.get("/at-risk.csv")
async def at_risk_csv(viewer: ViewerDep, services: ServicesDep, settings: SettingsDep, query: AtRiskDep) -> Response:
    """The whole filtered list (every page) as CSV."""
    thresholds = settings.api_risk_thresholds
    filters = query.filters(thresholds, 10_000_000, 0)
    data = await asyncio.to_thread(panels.at_risk, await clickhouse(services), thresholds, filters, query.sort)
    rows = data["tables"]["rows"]
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    name = f"at-risk-{query.task}-{query.band}.csv"
    headers = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}
    return Response(out.getvalue(), media_type="text/csv", headers=headers)


@router.post("/user", response_class=HTMLResponse)
async def user_page(
    request: Request,
    viewer: ViewerDep,
    services: ServicesDep,
    settings: SettingsDep,
    store: StoreDep,
    catalog: CatalogDep,
    user_id: str = Form(...),
) -> Any:
    """One user's drill-down; the id comes in the form body, so it stays out of URLs, logs and history."""
    check_user_id(user_id)
    data = await asyncio.to_thread(panels.user, await clickhouse(services), user_id)
    (state,) = await store.read_states([user_id])
    (cached,) = await store.read_scores([user_id])
    vector = features(state, state.last_ms) if state is not None else {}
    scores = cached_scores(cached, settings.api_risk_thresholds) if cached else {}
    return render(request, "user", viewer, settings, data=data, user_id=user_id, vector=vector, scores=scores)


@router.get("/retention", response_class=HTMLResponse)
async def retention_page(request: Request, viewer: ViewerDep, services: ServicesDep, settings: SettingsDep) -> Any:
    data = await asyncio.to_thread(panels.retention, await clickhouse(services))
    return render(request, "retention", viewer, settings, data=data)


@router.get("/quality", response_class=HTMLResponse)
async def quality_page(
    request: Request, viewer: ViewerDep, services: ServicesDep, settings: SettingsDep, catalog: CatalogDep
) -> Any:
    training = {task: catalog.describe(task) for task in panels.TASKS}
    data = await asyncio.to_thread(panels.quality, await clickhouse(services), training)
    return render(request, "quality", viewer, settings, data=data)


@router.get("/drift", response_class=HTMLResponse)
async def drift_page(
    request: Request, viewer: ViewerDep, services: ServicesDep, settings: SettingsDep, catalog: CatalogDep
) -> Any:
    data = await asyncio.to_thread(panels.drift_panel, await clickhouse(services), catalog.champions())
    return render(request, "drift", viewer, settings, data=data)


@router.get("/experiments", response_class=HTMLResponse)
async def experiments_page(
    request: Request, viewer: ViewerDep, services: ServicesDep, settings: SettingsDep, catalog: CatalogDep
) -> Any:
    data = await asyncio.to_thread(panels.experiments_panel, await clickhouse(services), catalog.latest_experiments())
    data["tables"]["retrainings"] = catalog.retrainings()
    return render(request, "experiments", viewer, settings, data=data)


@router.get("/health", response_class=HTMLResponse)
async def health_page(request: Request, viewer: ViewerDep, services: ServicesDep, settings: SettingsDep) -> Any:
    state = request.app.state
    if getattr(state, "dashboard_sampler", None) is None:
        state.dashboard_sampler = health.Sampler(f"http://127.0.0.1:{settings.metrics_port}/metrics")
    data = await health.health(services, state.dashboard_sampler)
    return render(request, "health", viewer, settings, data=data)
