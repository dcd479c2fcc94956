"""``churnstream recommend fit``: the daily recommender job by hand (a backfill, or a deployment without a worker).

With embedded ClickHouse, run it while no worker holds the data path.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
import typer

from churnstream.console import console
from churnstream.settings import get_settings
from models.recommend_store import RecommendationStore
from streams.recommend_job import RecommenderJob, Row, read_interactions

recommend_app = typer.Typer(help="The recommender: the daily job that fits item-to-item CF.", no_args_is_help=True)


@recommend_app.command("fit")
def fit(
    as_of_ms: int = typer.Option(0, help="Fit on the 90 days up to this moment (epoch ms); default: the latest event"),
) -> None:
    """Fit the item model on ClickHouse `events`, make it the version served, write every user's CF candidates."""
    from infra import clickhouse_db

    settings = get_settings()
    client = clickhouse_db.connect(settings.clickhouse_dsn)

    async def read(moment: int) -> list[Row]:
        return await asyncio.to_thread(read_interactions, client, moment)

    async def job() -> str | None:
        redis = aioredis.Redis.from_url(settings.redis_url)
        try:
            latest = client.query("SELECT toUnixTimestamp64Milli(max(ts)) FROM events").result_rows[0][0]
            root = settings.registry_dir() / "recommender"
            return await RecommenderJob(read, RecommendationStore(redis), root).run(as_of_ms or int(latest))
        finally:
            await redis.aclose()

    try:
        with console.status("fitting the recommender"):
            version = asyncio.run(job())
    finally:
        client.close()
    console.print(
        f"recommender version served: {version}" if version else "no interaction in the window: nothing fitted"
    )
