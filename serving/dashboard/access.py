"""Who sees the dashboard: a login with an API key of ``read`` scope (a session cookie), or everyone when
``CHURNSTREAM_API_OPEN_READS=true``. Pages redirect to the login page; the data endpoint answers 401."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from serving.dashboard.sessions import COOKIE, Sessions
from serving.deps import KeyStoreDep, ServicesDep, SettingsDep
from serving.keys import KeyRecord


async def get_sessions(services: ServicesDep, keys: KeyStoreDep, settings: SettingsDep) -> Sessions:
    return Sessions(services.redis, keys, settings.dashboard_session_s)


SessionsDep = Annotated[Sessions, Depends(get_sessions)]


class LoginRequired(HTTPException):
    def __init__(self) -> None:
        super().__init__(303, "log in first", headers={"Location": "/dashboard/login"})


async def viewer(request: Request, sessions: SessionsDep, settings: SettingsDep) -> KeyRecord | None:
    """The key behind the session; None when reads are open. Redirects to the login page otherwise."""
    record = await sessions.viewer(request.cookies.get(COOKIE))
    if record is None and not settings.api_open_reads:
        if request.url.path.startswith("/dashboard/data/"):
            raise HTTPException(401, "log in at /dashboard/login")
        raise LoginRequired()
    return record


ViewerDep = Annotated[KeyRecord | None, Depends(viewer)]
