"""Who may call what: ``read`` (lookups, scoring, exports), ``write`` (events) and ``admin`` (promotion).

A key goes in ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. Reads may be left open with
``CHURNSTREAM_API_OPEN_READS=true``; writes and admin always need a key. No key (or an unknown one) is a
401, a key without the scope a 403.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Depends, HTTPException
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from serving.deps import KeyStoreDep, SettingsDep
from serving.keys import KeyRecord

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer cs_...`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="`X-API-Key: cs_...`")


def require(scope: str) -> Callable[..., Awaitable[KeyRecord | None]]:
    async def check(
        keys: KeyStoreDep,
        settings: SettingsDep,
        bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),
        header: str | None = Depends(_header),
    ) -> KeyRecord | None:
        token = header or (bearer.credentials if bearer else None)
        if not token:
            if scope == "read" and settings.api_open_reads:
                return None
            raise HTTPException(
                401,
                "missing API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`",
                headers={"WWW-Authenticate": "Bearer"},
            )
        record: KeyRecord | None = await keys.verify(token)
        if record is None:
            raise HTTPException(401, "invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"})
        if not record.allows(scope):
            raise HTTPException(403, f"this key lacks the `{scope}` scope")
        return record

    return check
