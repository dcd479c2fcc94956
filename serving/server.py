"""Processes that serve the API: alone (`churnstream api`, with a ClickHouse server) or beside the worker in
one process (`churnstream run`, required with embedded chDB, which allows one process per data path)."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

import uvicorn

from churnstream.settings import Settings
from serving.app import create_app


def server(settings: Settings, access_log: bool = False) -> uvicorn.Server:
    config = uvicorn.Config(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        loop="uvloop",
        http="httptools",
        access_log=access_log,
        log_level=settings.log_level.lower(),
        limit_concurrency=2048,
        timeout_graceful_shutdown=5,
    )
    return uvicorn.Server(config)


def run_api(settings: Settings) -> None:
    """The API alone, until SIGINT/SIGTERM."""
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.embedded_clickhouse:
        logging.getLogger(__name__).warning(
            "embedded chDB allows one process per data path: with a worker running, use `churnstream run` "
            "(worker and API in one process) or a ClickHouse server DSN"
        )
    server(settings).run()


def run_with_worker(settings: Settings) -> None:
    """Worker (main thread, owns the signals) and API (its own thread and event loop) in one process."""
    from streams.app import run_worker

    api = server(settings)
    # A thread waits up to the switch interval for the GIL (5 ms by default): shorter, so that a busy worker
    # thread delays an API request by at most about a millisecond.
    sys.setswitchinterval(0.001)

    def serve() -> None:
        try:
            api.run()
        finally:
            if not api.should_exit:  # the API died on its own (e.g. port taken): stop the worker too
                logging.getLogger(__name__).error("the API stopped; stopping the worker")
                os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=serve, name="api", daemon=True)  # uvicorn skips signals off the main thread
    thread.start()
    try:
        run_worker(settings, loglevel=settings.log_level)
    finally:
        api.should_exit = True
        thread.join(timeout=10)
