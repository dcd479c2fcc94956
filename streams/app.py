"""The Faust app and the worker's entry point; the worker itself is :class:`streams.worker.Worker`."""

from __future__ import annotations

import asyncio
import gc
import logging

import faust

from churnstream.settings import Settings
from streams.monitor import LeanMonitor


def make_app(settings: Settings) -> faust.App:
    """The Faust app of the worker: group membership, rebalances, flow control and offset commits.

    Consumption is at-least-once: the :class:`~streams.worker.Worker` takes records unacked and acks them only
    after every effect succeeded, so a failure leaves their offsets uncommitted and they are delivered again; the
    effects are idempotent, so redelivery changes nothing.
    """
    return faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        # the same aiokafka consumer, with a drain loop that hands messages to the conductor without a task each
        broker_consumer=f"churnstream-kafka://{settings.kafka_bootstrap}",
        store="memory://",
        datadir=str(settings.dir("faust") / "{conf.name}"),  # faust's default is `<appid>-data` in the cwd
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.partitions,
        web_enabled=False,
        autodiscover=False,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.session_timeout_s / 5,
        # on shutdown, do not wait for held (unacked) records: they are redelivered, and effects are idempotent
        stream_wait_empty=False,
        Monitor=LeanMonitor,  # no per-event bookkeeping for faust's web views (off); Prometheus has ours
    )


def run_worker(settings: Settings, loglevel: str = "WARNING") -> None:
    """Run the Faust worker until SIGTERM/SIGINT; metrics on ``settings.metrics_port`` (0 = off)."""
    from faust.worker import Worker
    from prometheus_client import start_http_server

    logging.basicConfig(level=loglevel, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr="127.0.0.1")
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())  # before faust creates its loop
    from streams.worker import Worker as StreamWorker

    app = make_app(settings)
    StreamWorker(settings, app)  # registers its agent, timers and rebalance callback: the app holds it through them
    gc.collect()
    gc.freeze()  # imported libraries live as long as the process: keep them out of full GC passes
    Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()
