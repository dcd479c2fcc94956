"""Model quality metrics reported by training and tracked live."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score


def quality(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """ROC-AUC, PR-AUC, log loss, Brier score, and precision/recall among the top decile of scores.

    >>> q = quality(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    >>> q["roc_auc"], q["precision_top_decile"]
    (0.75, 1.0)
    """
    p = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    k = max(1, len(p) // 10)
    top = np.argsort(-p, kind="stable")[:k]
    positives = max(1, int(y.sum()))
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "precision_top_decile": float(y[top].mean()),
        "recall_top_decile": float(y[top].sum() / positives),
        "positive_rate": float(y.mean()),
    }
