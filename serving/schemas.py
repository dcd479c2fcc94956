"""Request and response bodies, as they appear in the OpenAPI schema at /docs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from serving.status import Status, Trigger

Task = Literal["churn", "purchase"]
ModelChoice = Literal["logreg", "svm", "random_forest", "xgboost", "online"]
Risk = Literal["low", "medium", "high"]


class ModelScore(BaseModel):
    """One model's score and its risk band."""

    model_kind: Literal["pretrained", "online"]
    model: str
    version: str
    score: float
    risk: Risk


class Score(ModelScore):
    as_of_ms: int = Field(
        description="Event time (epoch ms) the features were computed at: the triggering event's time, a time "
        "rescoring's day end, or (on demand) the wall clock"
    )
    as_of: str = Field(description="The same instant in ISO-8601 UTC")
    trigger: Trigger = Field(description="What produced the score: an `event`, a `time` rescoring, or `on_demand`")
    last_event_ms: int = Field(description="The user's latest event (epoch ms) at the as-of")
    status: Status = Field(
        description="The user's status at the as-of: `lapsed` after 60 quiet days, else `at_risk` when the churn "
        "score of this model kind is at or above the high risk threshold, else `active`"
    )


class UserScores(BaseModel):
    user_id: str
    scores: dict[Task, list[Score]]


class DailyScore(BaseModel):
    """A user's latest score of one UTC day (ClickHouse ``user_scores_daily``)."""

    day: str = Field(description="UTC day, YYYY-MM-DD")
    as_of_ms: int
    as_of: str
    trigger: Literal["event", "time"]
    last_event_ms: int
    model: str
    version: str
    score: float
    risk: Risk
    status: Status


class UserHistory(BaseModel):
    user_id: str
    task: Task
    model_kind: Literal["pretrained", "online"]
    days: list[DailyScore] = Field(description="One row per UTC day with a score, oldest first")


class UserFeatures(BaseModel):
    user_id: str
    as_of_ms: int
    as_of: str
    features: dict[str, float]


class ScoreRequest(BaseModel):
    user_id: str | None = Field(None, description="Score this user's current features from Redis ...")
    features: dict[str, float] | None = Field(None, description="... or this feature vector (every feature name)")
    model: ModelChoice | None = Field(None, description="Default: each task's champion")
    tasks: list[Task] = Field(["churn", "purchase"], min_length=1, max_length=2)
    as_of_ms: int | None = Field(None, description="With user_id: features as of this time (>= the last event)")


class ScoreResult(ModelScore):
    task: Task
    took_ms: float = Field(description="Time to compute the score (the model call)")
    cost: float = Field(description="Cost units of this call, from CHURNSTREAM_API_PRICES")


class ScoreResponse(BaseModel):
    user_id: str | None
    as_of_ms: int | None
    results: list[ScoreResult]


class ModelInfo(BaseModel):
    name: str
    kind: Literal["pretrained", "online"]
    version: str
    champion: bool
    metrics: dict[str, float]
    latency_us: dict[str, float]
    cost: float
    size_bytes: int | None = None
    trained_at: str | None = None


class TaskModels(BaseModel):
    champion: str | None
    models: list[ModelInfo]
    experiment: dict[str, Any] | None = Field(None, description="The running champion/challenger experiment")
    retrainings: list[dict[str, Any]] = Field(
        [],
        description="The latest retrainings (`churnstream retrain`), newest first: data window, fingerprint, metrics, "
        "the decision (`champion`, `challenger`, `registered`) and its reason, or `failed`; `started` alone never "
        "finished",
    )


class Promote(BaseModel):
    model: Literal["logreg", "svm", "random_forest", "xgboost"]
    version: str | None = Field(None, description="Default: the model's newest version")


class Accepted(BaseModel):
    accepted: list[str] = Field(description="event_id of every event produced, in request order")


class DriftThresholds(BaseModel):
    """The thresholds every worker applies to drift (see docs/models.md#drift)."""

    psi_warn: float = Field(0.1, gt=0, le=10, description="A PSI at or above this is `warn` (and alerts)")
    psi_alert: float = Field(0.25, gt=0, le=10, description="A PSI at or above this is `alert`")
    adwin_delta: float = Field(
        0.002, gt=0, lt=1, description="ADWIN's confidence on the progressive-validation loss (smaller: fewer alerts)"
    )
    adwin_rise: float = Field(
        0.2, ge=0, le=100, description="The least relative rise of a model's mean loss an ADWIN change needs to alert"
    )

    @model_validator(mode="after")
    def _ordered(self) -> DriftThresholds:
        if self.psi_warn > self.psi_alert:
            raise ValueError("psi_warn must not exceed psi_alert")
        return self


class Alert(BaseModel):
    """A drift alert, as in ClickHouse ``alerts`` and on the Kafka topic ``alerts``."""

    alert_id: str = Field(description="Stable id (the Kafka key): the same alert raised again has the same id")
    raised_ms: int
    task: str
    model: str = Field(description="The champion's model name, or for `adwin` the model kind (`pretrained`, `online`)")
    version: str
    feature: str = Field(description="The feature; empty for the score's PSI and for a loss")
    statistic: Literal["psi", "adwin"]
    value: float = Field(description="The PSI, or for `adwin` the mean log loss after the change")
    threshold: float = Field(
        description="The threshold crossed (`psi_warn`, `psi_alert`; for `adwin` the old mean loss x (1+`adwin_rise`))"
    )
    level: Literal["warn", "alert"]
    window_start_ms: int = Field(description="The event time the statistic covers, from")
    window_end_ms: int = Field(description="... to")


class ExperimentStart(Promote):
    """The challenger (a model version in the registry) and how it meets the users."""

    share: float = Field(0.1, gt=0, lt=1, description="Share of users assigned the challenger (a stable hash)")
    mode: Literal["shadow", "served"] = Field(
        "served", description="`served`: the challenger's users are served its score; `shadow`: it only scores"
    )


class ExperimentOut(BaseModel):
    experiment_id: str
    task: str
    model: str = Field(description="The challenger")
    version: str
    share: float
    mode: str
    started_ms: int
    ended_ms: int = Field(description="0 while it runs")
    outcome: str = Field(description="`stopped` or `promoted` once ended")


class ExperimentReport(BaseModel):
    """Each variant on the same resolved labels (both score every user), and the paired bootstrap's 95 % intervals
    of the differences, challenger minus champion."""

    experiment: ExperimentOut
    labels: int
    positives: int
    compared: int = Field(description="Labels the bootstrap resampled: a stable sample of at most 20,000")
    champion: dict[str, float | None] = Field(description="labels, positives, roc_auc, log_loss, mean_score, observed")
    challenger: dict[str, float | None]
    calibration: list[dict[str, float | str]] = Field(description="Per variant and score decile: predicted, observed")
    auc_diff: dict[str, float] | None
    log_loss_diff: dict[str, float] | None
    significant: bool = Field(description="The AUC difference's 95 % interval excludes 0")


class UserSegment(BaseModel):
    """A user's RFM segment, as the worker last computed it beside the scores (docs/segments.md)."""

    user_id: str
    segment: str | None = Field(description="The named segment; null until the first RFM boundaries are cut")
    code: str | None = Field(None, description="R, F and M scores as three digits, e.g. `545`")
    r: int | None = Field(None, ge=1, le=5, description="Recency score (5: the most recent fifth)")
    f: int | None = Field(None, ge=1, le=5, description="Frequency score (lifetime purchases)")
    m: int | None = Field(None, ge=1, le=5, description="Monetary score (lifetime revenue)")
    recency_days: float | None = None
    frequency: float | None = None
    monetary: float | None = None
    version: str | None = Field(None, description="The RFM boundaries' version (ClickHouse `rfm_boundaries`)")
    as_of_ms: int | None = None
    as_of: str | None = None
    trigger: Literal["event", "time"] | None = None
    cluster: int | None = Field(None, description="The behavioural cluster (-1: no clusters trained yet)")
    clusters_version: str | None = None


class CategoryInterest(BaseModel):
    category: str
    interest: float = Field(description="Recency-weighted interest, in weights (view 1, cart 3, purchased item 5)")
    share: float = Field(description="Its share of the interest in the categories kept")


class UserCategories(BaseModel):
    """A user's priority categories (top-K by recency-weighted interest), from the state in Redis."""

    user_id: str
    as_of_ms: int = Field(description="The user's latest category-tagged event: interest is decayed to it")
    as_of: str
    half_life_days: float
    categories: list[CategoryInterest]


class RecommendedItem(BaseModel):
    item_id: str
    category: str | None
    score: float = Field(
        description="The blend: alpha x cf + (1 - alpha) x content (popularity variant: relative popularity)"
    )
    cf: float = Field(description="Collaborative-filtering score, 0 to 1 (the daily job's candidates)")
    content: float = Field(description="Category affinity x relative popularity in the category, 0 to 1")


class Recommendations(BaseModel):
    user_id: str
    variant: Literal["hybrid", "popularity"] = Field(
        description="`popularity`: the user is in the popularity holdout (`popular_share`)"
    )
    model_version: str = Field(description="The item model served (the daily job's version)")
    candidates_version: str | None = Field(description="The job version of the user's CF candidates; null: none")
    alpha: float
    min_score: float
    items: list[RecommendedItem]


class RecommendationSettings(BaseModel):
    alpha: float = Field(0.95, ge=0, le=1, description="Weight of CF in the blend (content: 1 - alpha)")
    min_score: float = Field(0.0, ge=0, le=1, description="Items below this blended score are not recommended")
    popular_share: float = Field(
        0.0, ge=0, le=1, description="Share of users (a stable hash) served the popularity baseline: a holdout"
    )


class Feedback(BaseModel):
    user_id: str = Field(min_length=1, max_length=256)
    item_id: str = Field(min_length=1, max_length=256)
    action: Literal["shown", "clicked", "ignored", "bought"]
    variant: Literal["hybrid", "popularity"] = "hybrid"
    model_version: str = Field("", max_length=128)
    feedback_id: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="Idempotency: a feedback sent again with the same id counts once; default: a new id",
    )
