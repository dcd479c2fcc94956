"""Errors in FastAPI's own 422 shape (``loc``, ``msg``, ``type``), so every client parses one format."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException

from core.contracts import validate_user_id


def invalid(loc: list[Any], msg: str, kind: str) -> HTTPException:
    return HTTPException(422, [{"loc": loc, "msg": msg, "type": kind}])


def check_user_id(user_id: str, loc: list[Any] | None = None) -> str:
    """The stream's own user-id rule (length and characters) before the id becomes a Redis key."""
    bad = validate_user_id(user_id)
    if bad is not None:
        raise invalid(loc or ["path", "user_id"], bad.detail, bad.reason)
    return user_id
