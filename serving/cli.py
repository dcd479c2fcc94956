"""The API key commands: ``churnstream keys create|revoke|list`` (keys stored hashed in Redis by
:class:`serving.keys.KeyStore`). ``churnstream/cli.py`` registers :data:`keys_app` as the ``keys`` group.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from churnstream.console import console
from churnstream.settings import get_settings

if TYPE_CHECKING:
    from serving.keys import KeyStore

keys_app = typer.Typer(help="API keys: stored hashed in Redis, shown once.", no_args_is_help=True)


def _keys() -> KeyStore:
    import redis.asyncio as aioredis

    from serving.keys import KeyStore

    return KeyStore(aioredis.Redis.from_url(get_settings().redis_url))


@keys_app.command("create")
def keys_create(
    name: str = typer.Option(..., help="who or what uses the key, e.g. crm-export"),
    scope: list[str] = typer.Option(["read"], help="read, write or admin (admin implies all); repeat for several"),
) -> None:
    """Create a key and print it once (only its SHA-256 hash is stored)."""
    try:
        token = asyncio.run(_keys().create(name, tuple(scope)))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    console.print(f"key for [bold]{name}[/] ({', '.join(scope)}); store it now, it is not shown again:")
    print(token)


@keys_app.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., help="the id (second part of cs_<id>_<secret>)")) -> None:
    """Revoke a key; API processes stop accepting it within CHURNSTREAM_API_KEY_CACHE_S seconds."""
    from serving.keys import parse

    parsed = parse(key_id)
    if not asyncio.run(_keys().revoke(parsed[0] if parsed else key_id)):
        console.print(f"[red]no key with id {key_id}[/]")
        raise typer.Exit(1)
    console.print(f"revoked {key_id}")


@keys_app.command("list")
def keys_list() -> None:
    """Key ids, names, scopes and creation times (never the keys)."""
    table = Table("id", "name", "scopes", "created")
    for r in asyncio.run(_keys().list()):
        created = dt.datetime.fromtimestamp(r.created_ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        table.add_row(r.key_id, r.name, ",".join(r.scopes), created)
    console.print(table)
