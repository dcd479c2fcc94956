"""An experiment's report, for the API and the dashboard: each variant's ROC-AUC, log loss and calibration computed
in ClickHouse on the labels resolved so far (named queries ``experiment_quality`` and ``experiment_calibration``),
and the paired bootstrap of :mod:`models.comparison` on the same labels, which says whether the difference is
significant."""

from __future__ import annotations

from typing import Any

import numpy as np

from models.comparison import compare
from models.experiments import Experiment
from serving.dashboard.queries import run


def report(client: Any, exp: Experiment) -> dict[str, Any]:
    params = {"task": exp.task, "experiment": exp.experiment_id}
    quality = {r.pop("variant"): r for r in run(client, "experiment_quality", **params)}
    pairs = run(client, "experiment_pairs", **params)
    y = np.array([r["label"] for r in pairs], dtype=np.int8)
    test = compare(y, np.array([r["champion"] for r in pairs]), np.array([r["challenger"] for r in pairs]))
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
        "calibration": run(client, "experiment_calibration", **params),
    }
