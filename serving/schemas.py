"""Request and response bodies, as they appear in the OpenAPI schema at /docs."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

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
    as_of_ms: int = Field(description="Event time (epoch ms) of the user's event that produced this score")
    as_of: str = Field(description="The same instant in ISO-8601 UTC")


class UserScores(BaseModel):
    user_id: str
    scores: dict[Task, list[Score]]


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


class Promote(BaseModel):
    model: Literal["logreg", "svm", "random_forest", "xgboost"]
    version: str | None = Field(None, description="Default: the model's newest version")


class Accepted(BaseModel):
    accepted: list[str] = Field(description="event_id of every event produced, in request order")
