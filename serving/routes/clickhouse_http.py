"""ClickHouse's HTTP interface, read-only, at ``/clickhouse``: BI tools and ClickHouse clients query the warehouse
through the API, also in embedded mode, where chDB has no network endpoint of its own.

The protocol is ClickHouse's (``GET /clickhouse/ping``; a statement in the ``query`` parameter and/or the body;
the output format from its ``FORMAT`` clause or ``default_format``; errors as ``Code: N. DB::Exception: ...``),
so an unmodified client connects with the API's host and port and the path ``/clickhouse``::

    clickhouse_connect.get_client(host="127.0.0.1", port=8000, proxy_path="/clickhouse",
                                  username="bi", password="<API key with read scope>")

The password is an API key with the ``read`` scope (``Authorization: Basic``, or ``X-ClickHouse-Key``); the user
name is not checked. What may run: :mod:`serving.bi`.
"""

from __future__ import annotations

import base64
import re
import uuid
import zlib
from typing import Any

import lz4.frame
import orjson
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from serving import bi
from serving.deps import ClickHouseDep, KeyStoreDep, SettingsDep

router = APIRouter(prefix="/clickhouse", tags=["bi"], include_in_schema=False)

_CODE = re.compile(r"Code: (\d+)\.")
_STATUS = {164: 403, 60: 404, 62: 400, 516: 401, 497: 403}


def _error(code: int, name: str, message: str) -> Response:
    body = f"Code: {code}. DB::Exception: {message}. ({name}) (churnstream)\n"
    headers = {"X-ClickHouse-Exception-Code": str(code)}
    if code == 516:
        headers["WWW-Authenticate"] = 'Basic realm="churnstream"'
    return Response(body, status_code=_STATUS.get(code, 500), headers=headers, media_type="text/plain")


def _token(request: Request) -> str | None:
    if key := request.headers.get("x-clickhouse-key") or request.query_params.get("password"):
        return key
    auth = request.headers.get("authorization", "")
    if auth[:6].lower() == "basic ":
        try:
            return base64.b64decode(auth[6:]).decode().split(":", 1)[1] or None
        except (ValueError, IndexError):
            return None
    return None


async def _statement(request: Request) -> str:
    query = request.query_params.get("query", "")
    ctype = request.headers.get("content-type", "")
    if ctype.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        form = await request.form()
        body = str(form.get("query") or "")
    else:
        body = _decoded(await request.body(), request.headers.get("content-encoding", "")).decode()
    return f"{query}\n{body}" if query and body else query or body


def _decoded(body: bytes, encoding: str) -> bytes:
    """The body as sent before the client compressed it (clickhouse-connect compresses with lz4)."""
    encoding = encoding.strip().lower()
    if encoding in ("gzip", "deflate"):
        return zlib.decompress(body, wbits=47)  # gzip or zlib headers
    if encoding == "lz4":
        return bytes(lz4.frame.decompress(body))
    if encoding not in ("", "identity"):
        raise bi.Refused(1000, "UNKNOWN_CONTENT_ENCODING", f"content encoding {encoding!r} is not accepted")
    return body


def _run(client: Any, sql: str, params: dict[str, str], default_format: str, limits: bi.Limits) -> tuple[bytes, str]:
    statement, fmt = bi.split_format(sql)
    bi.check(client, statement, params)
    fmt = fmt or default_format
    out: bytes = client.raw_query(statement + limits.settings_clause(), parameters=params or None, fmt=fmt)
    return out, fmt


@router.get("/ping")
async def ping() -> Response:
    return Response("Ok.\n", media_type="text/plain")


@router.api_route("/", methods=["GET", "POST"])
async def query(request: Request, keys: KeyStoreDep, settings: SettingsDep, clickhouse: ClickHouseDep) -> Response:
    """Run one read-only statement, as ClickHouse's HTTP interface does."""
    token = _token(request)
    record = await keys.verify(token) if token else None
    if record is None:
        return _error(516, "AUTHENTICATION_FAILED", "an API key with the read scope is the password")
    if not record.allows("read"):
        return _error(497, "ACCESS_DENIED", "this key lacks the `read` scope")
    try:
        sql = await _statement(request)
    except (bi.Refused, ValueError, RuntimeError) as bad:  # an encoding we do not read, a body that is not text
        return _error(27, "CANNOT_PARSE_INPUT", f"cannot read the request body as a statement: {bad}")
    if not sql.strip():
        return Response("Ok.\n", media_type="text/plain")
    if request.query_params.get("database", "default") != "default":
        return _error(81, "UNKNOWN_DATABASE", "only the database `default` is served")
    limits = bi.Limits(settings.bi_max_rows, settings.bi_max_bytes, settings.bi_max_seconds)
    default_format = request.query_params.get("default_format", "TabSeparated")
    params = {k[6:]: bi.unescape(v) for k, v in request.query_params.items() if k.startswith("param_")}  # {p:Type}
    try:
        body, fmt = await run_in_threadpool(_run, clickhouse, sql, params, default_format, limits)
    except bi.Refused as refused:
        return _error(refused.code, refused.name, str(refused))
    except Exception as exc:  # ClickHouse's own answer, passed on as the server would
        message = str(exc)
        match = _CODE.search(message)
        code = int(match.group(1)) if match else 1000
        text = message[match.start() :] if match else f"Code: 1000. DB::Exception: {message}"
        return Response(text.rstrip() + "\n", status_code=_STATUS.get(code, 500), media_type="text/plain",
                        headers={"X-ClickHouse-Exception-Code": str(code)})  # fmt: skip
    headers = {
        "X-ClickHouse-Format": fmt,
        "X-ClickHouse-Timezone": "UTC",
        "X-ClickHouse-Query-Id": request.query_params.get("query_id") or str(uuid.uuid4()),
        "X-ClickHouse-Summary": orjson.dumps({"read_rows": "0", "written_rows": "0"}).decode(),
    }
    return Response(body, headers=headers, media_type="application/octet-stream" if fmt == "Native" else "text/plain")
