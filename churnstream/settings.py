"""The one settings object. Environment variables (prefix ``CHURNSTREAM_``) are read here and nowhere else.

>>> s = Settings(home="/tmp/cs-doc", kafka_port=29092, redis_port=26379)
>>> s.kafka_bootstrap, s.redis_url, s.clickhouse_dsn
('127.0.0.1:29092', 'redis://127.0.0.1:26379/0', 'chdb:///tmp/cs-doc/clickhouse')
>>> s.input_topics
('page_views', 'cart_events', 'purchases')
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from croniter import croniter
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Typed, frozen configuration for every churnstream process."""

    model_config = SettingsConfigDict(env_prefix="CHURNSTREAM_", frozen=True, extra="ignore")

    home: Path = Field(Path(".churnstream"), description="Root of all local data: broker, Redis, chDB, pids, logs")
    cache_dir: Path = Field(
        Path.home() / ".cache" / "churnstream",
        description="Shared download cache (Kafka jars); safe to share between stacks",
    )

    # Kafka
    kafka_port: int = Field(19092, description="Local broker's client port (127.0.0.1)")
    kafka_controller_port: int = Field(19093, description="Local broker's KRaft controller port")
    kafka_bootstrap: str = Field("", description="Bootstrap servers; default `127.0.0.1:<kafka_port>`")
    kafka_heap: str = Field("512m", description="Local broker JVM heap (-Xmx)")
    partitions: int = Field(4, ge=1, description="Partitions of every topic (inputs are co-partitioned)")
    topic_page_views: str = Field("page_views", description="Page-view events topic")
    topic_cart: str = Field("cart_events", description="Cart events topic")
    topic_purchases: str = Field("purchases", description="Purchase events topic")
    topic_dlq: str = Field("events.dlq", description="Dead-letter topic")
    topic_alerts: str = Field("alerts", description="Drift alerts topic (also ClickHouse `alerts`), keyed by alert id")
    app_id: str = Field("churnstream", description="Faust app id = Kafka consumer group")

    # Redis
    redis_port: int = Field(16379, description="Local Redis port (127.0.0.1)")
    redis_url: str = Field("", description="Redis URL; default `redis://127.0.0.1:<redis_port>/0`")

    # ClickHouse
    clickhouse_dsn: str = Field(
        "",
        description="ClickHouse DSN: `chdb:///abs/path` (embedded, default `<home>/clickhouse`) or `http://host:8123`",
    )

    log_level: str = Field(
        "WARNING",
        pattern="^(DEBUG|INFO|WARNING|ERROR)$",
        description="Log level of the worker and the API; keys and event payloads are never logged at INFO",
    )

    models_dir: Path | None = Field(None, description="The model registry's directory; default `<home>/models`")

    # Worker
    batch_size: int = Field(1000, ge=1, description="Max events per micro-batch")
    batch_within_s: float = Field(0.2, gt=0, description="Max seconds to wait to fill a micro-batch")
    session_timeout_s: float = Field(
        10.0,
        ge=6,
        le=300,
        description="Kafka group session timeout: how soon the partitions of a worker that died move to the others",
    )

    align_max_buffered: int = Field(
        200_000, ge=1, description="Last-resort cap on records held to restore arrival order across topics"
    )
    align_max_wait_s: float = Field(
        2.0, gt=0, description="Longest an idle partition (behind, but delivering nothing) may hold the others back"
    )
    align_grace_s: float = Field(
        0.2,
        ge=0,
        description="Live, how long a record waits for records produced just before it to other topics that the "
        "consumer has not fetched yet, so a user's events apply in the order a replay applies them",
    )
    model_reload_s: float = Field(2.0, gt=0, description="How often the worker checks for a newly promoted champion")
    online_model: str = Field(
        "logreg",
        pattern="^(logreg|arf|off)$",
        description="Online model per task: `logreg` (scaler + logistic regression), `arf` (adaptive random "
        "forest) or `off`",
    )
    label_lateness_s: float = Field(
        86_400,
        ge=0,
        le=432_000,
        description="Event-time slack before a snapshot's horizon, or a day end to rescore at, counts as passed "
        "(at most 5 days)",
    )
    rescore_every_s: int = Field(
        86_400,
        ge=86_400,
        multiple_of=86_400,
        description="Rescore every user active in the last 60 days at the end of each period of this many seconds of "
        "event time (whole days: scores are taken as of day ends)",
    )
    rescore_batch: int = Field(
        5000,
        ge=1,
        description="Users, and at most about as many day-end rows, rescored by time per step between event batches",
    )
    drift_sample: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Share of users (a stable hash of the id) whose day-end feature vectors go to ClickHouse "
        "`daily_features`, the live population that drift (PSI) compares with the training rows",
    )
    drift_check_s: float = Field(
        10.0,
        gt=0,
        description="How often a worker looks for days whose drift can be computed (every partition rescored past "
        "the day end); one worker at a time runs the job",
    )
    segments_check_s: float = Field(
        10.0,
        gt=0,
        description="How often a worker adopts the shared RFM segment boundaries, cutting new ones from ClickHouse "
        "`events` when a day has completed since the last cut",
    )
    daily_jobs_gap_s: float = Field(
        3600.0,
        ge=0,
        description="Least wall time between two runs of the jobs after a daily RFM cut (recommender, demand by "
        "category), and before the first after the worker starts: a fast backlog completes a day of event time every "
        "few seconds",
    )
    category_half_life_days: float = Field(
        30.0,
        gt=0,
        description="Half-life, in days of event time, of a user's interest in a category (priority categories)",
    )
    rescore_share: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Largest share of the worker's time that rescoring by time takes while events flow (1: no limit; "
        "on a quiet stream rescoring takes all the time)",
    )
    clock: str = Field(
        "event",
        pattern="^(event|wall)$",
        description="What advances the rescoring watermark: `event` (event time only: a replay gives the same rows) "
        "or `wall` (also the wall clock, less the lateness, while a partition is caught up: for quiet live streams)",
    )
    retrain_every_s: int = Field(
        0, ge=0, description="The worker starts `churnstream retrain` in a separate process this often (0: never)"
    )
    retrain_on_alert: bool = Field(
        False, description="The worker also starts a retraining after a drift alert (level `alert`, PSI or ADWIN)"
    )
    retrain_alert_gap_s: int = Field(
        86_400, ge=0, description="Retraining on alert: at least this long after the last retraining started"
    )
    retrain_auc_margin: float = Field(
        0.005, ge=0, description="Retraining: the ROC-AUC a new model must gain on the recent holdout (champion)"
    )
    retrain_calibration_slack: float = Field(
        0.01, ge=0, description="Retraining: how much worse its calibration error may be than the champion's"
    )
    retrain_holdout_days: int = Field(
        30, ge=1, description="Retraining: the recent holdout, in days before the labelled window ends"
    )
    retrain_share: float = Field(
        0.1, gt=0, lt=1, description="Retraining: the share of users a new model failing the guardrails is served"
    )
    online_metrics_s: float = Field(
        10.0, gt=0, description="How often live model quality goes to ClickHouse `model_metrics`"
    )
    online_checkpoint_s: float = Field(30.0, gt=0, description="How often online models are checkpointed to Redis")
    checkpoint_key: str = Field(
        "", description="HMAC key that signs online-model checkpoints; default: a random key in `<home>/run`"
    )
    metrics_port: int = Field(9109, ge=0, description="Worker's Prometheus metrics port on 127.0.0.1 (0 = off)")
    latency_log: Path | None = Field(None, description="Benchmarks: append per-event latency HDR histograms here")

    # API
    api_host: str = Field("127.0.0.1", description="API bind address")
    api_port: int = Field(8000, description="API port")
    api_open_reads: bool = Field(
        False, description="Let read endpoints answer without a key (writes and admin always need one)"
    )
    api_key_cache_s: float = Field(5.0, ge=0, description="How long an API process caches a key (revocation delay)")
    api_risk_thresholds: tuple[float, float] = Field(
        (0.3, 0.7), description="Scores at or above these are `medium` and `high` risk, below the first `low`"
    )
    api_prices: dict[str, float] = Field(
        {"logreg": 1.0, "online": 1.0, "xgboost": 2.0, "svm": 4.0, "random_forest": 20.0},
        description="Cost units per scored row by model (JSON), shown by /v1/score and /v1/models",
    )
    dashboard_session_s: int = Field(43_200, ge=60, description="How long a dashboard login lasts (seconds)")
    dashboard_refresh_s: float = Field(5.0, ge=1, description="How often the dashboard's overview refreshes itself")
    api_max_body_bytes: int = Field(1_048_576, ge=1024, description="Largest accepted body of `POST /v1/events`")
    api_max_events: int = Field(1000, ge=1, description="Most events in one `POST /v1/events`")
    api_max_upload_bytes: int = Field(
        64 * 1_048_576, ge=1024, description="Largest CSV accepted by `POST /v1/batch-score`"
    )

    api_max_import_bytes: int = Field(2 * 1024**3, ge=1024, description="Largest file accepted by `POST /v1/imports`")
    export_cron: str = Field(
        "",
        description="Export the at-risk list on this cron schedule (5 fields, or 6 with "
        "seconds last), from the API process; empty: never",
    )
    export_dir: Path | None = Field(
        None, description="Where scheduled exports go (`at-risk-<task>.csv`; default `<home>/exports`)"
    )
    export_topic: str = Field("", description="Scheduled exports also go to this Kafka topic (empty: files only)")
    export_task: Literal["churn", "purchase"] = Field("churn", description="The task of scheduled exports")
    export_min_score: float = Field(0.7, ge=0, le=1, description="The lowest score in scheduled exports")
    bi_max_rows: int = Field(1_000_000, ge=1, description="BI endpoint (`/clickhouse`): most rows in a result")
    bi_max_bytes: int = Field(256 * 1_048_576, ge=1024, description="BI endpoint: largest result, in bytes")
    bi_max_seconds: int = Field(30, ge=1, description="BI endpoint: longest run time of a query, in seconds")

    @model_validator(mode="after")
    def _derive_defaults(self) -> Settings:
        home = self.home.expanduser().resolve()
        object.__setattr__(self, "home", home)
        object.__setattr__(self, "cache_dir", self.cache_dir.expanduser().resolve())
        if not self.kafka_bootstrap:
            object.__setattr__(self, "kafka_bootstrap", f"127.0.0.1:{self.kafka_port}")
        if not self.redis_url:
            object.__setattr__(self, "redis_url", f"redis://127.0.0.1:{self.redis_port}/0")
        if not self.clickhouse_dsn:
            object.__setattr__(self, "clickhouse_dsn", f"chdb://{home / 'clickhouse'}")
        object.__setattr__(self, "models_dir", (self.models_dir or home / "models").expanduser().resolve())
        if self.export_cron and not croniter.is_valid(self.export_cron):
            raise ValueError(f"export_cron is not a cron expression: {self.export_cron!r}")
        low, high = self.api_risk_thresholds
        if not 0 <= low <= high <= 1:
            raise ValueError("api_risk_thresholds must be two scores with 0 <= low <= high <= 1")
        return self

    @property
    def input_topics(self) -> tuple[str, str, str]:
        return (self.topic_page_views, self.topic_cart, self.topic_purchases)

    @property
    def all_topics(self) -> tuple[str, ...]:
        return (
            *self.input_topics,
            self.topic_dlq,
            self.topic_alerts,
            *([self.export_topic] if self.export_topic else []),
        )

    @property
    def embedded_clickhouse(self) -> bool:
        return self.clickhouse_dsn.startswith("chdb:")

    def checkpoint_secret(self) -> bytes:
        """The key that signs online-model checkpoints (all workers of a deployment must share it)."""
        if self.checkpoint_key:
            return self.checkpoint_key.encode()
        path = self.dir("run") / "checkpoint.key"
        if not path.exists():
            import secrets

            path.write_text(secrets.token_hex(32))
            path.chmod(0o600)
        return path.read_text().strip().encode()

    def registry_dir(self) -> Path:
        """The model registry's directory (created on demand)."""
        assert self.models_dir is not None  # set by the validator
        self.models_dir.mkdir(parents=True, exist_ok=True)
        return self.models_dir

    def dir(self, name: str) -> Path:
        """A subdirectory of ``home`` (created on demand)."""
        path = self.home / name
        path.mkdir(parents=True, exist_ok=True)
        return path


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
