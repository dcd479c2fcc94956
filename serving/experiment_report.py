"""An experiment's report, for the API and the dashboard: each variant's ROC-AUC, log loss and calibration computed
from counts ClickHouse aggregates per score bin on the labels resolved so far (named query ``experiment_bins``),
and the paired bootstrap of :mod:`models.comparison` on the same labels, which says whether the difference is
significant."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from models.comparison import compare, from_bins
from models.experiments import Experiment
from serving.dashboard.queries import run


def report(client: Any, exp: Experiment) -> dict[str, Any]:
    params = {"task": exp.task, "experiment": exp.experiment_id}
    quality, calibration = from_bins(run(client, "experiment_bins", **params))
    labels = max((q["labels"] for q in quality.values()), default=0)
    per_million = min(1_000_000, math.ceil(1_000_000 * 25_000 / labels)) if labels else 1_000_000
    pairs = run(client, "experiment_pairs", per_million=per_million, **params)
    y = np.array([r["label"] for r in pairs], dtype=np.int8)
    champion, challenger = np.array([r["champion"] for r in pairs]), np.array([r["challenger"] for r in pairs])
    test = compare(y, champion, challenger, groups=[r["user_id"] for r in pairs])
    empty = {"labels": 0, "positives": 0, "roc_auc": None, "log_loss": None, "mean_score": None, "observed": None}
    return {
        "experiment": exp.to_json(),
        "labels": quality.get("champion", empty)["labels"],
        "positives": quality.get("champion", empty)["positives"],
        "compared": test["labels"],  # the bootstrap's pairs: a stable sample of at most 20,000
        "champion": quality.get("champion", empty),
        "challenger": quality.get("challenger", empty),
        "auc_diff": test["auc_diff"],
        "log_loss_diff": test["log_loss_diff"],
        "significant": test["significant"],
        "calibration": calibration,
    }
