"""Behavioural clusters: fitted on generated users they separate the quiet from the active, every k's silhouette is
kept, the file round-trips, and a corrupt or edited file is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import orjson
import pytest

from core.days import DAY_MS, day_end
from features import offline
from features.compute import FEATURE_NAMES
from models.clusters import COLUMNS, KS, Clusters
from models.registry import ModelRejected, Registry
from models.train import fit_clusters
from simulation.generator import make_users, simulate


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    events = simulate(make_users(800, 200, seed=2), 200, seed=2)
    accepted = offline.accept((e["type"], orjson.dumps(e)) for e in events)
    registry = Registry(tmp_path_factory.mktemp("registry"))
    summary = fit_clusters(accepted, registry)
    assert summary is not None
    return summary | {"accepted": accepted}, registry.root / "clusters"


def test_the_best_silhouette_of_every_k_is_kept(fitted: tuple[dict, Path]) -> None:
    summary, _ = fitted
    assert set(summary["silhouettes"]) == set(KS)
    assert summary["silhouette"] == max(summary["silhouettes"].values()) > 0
    assert sum(p["users"] for p in summary["profiles"]) == summary["users"]
    assert all(set(p["means"]) == set(COLUMNS) for p in summary["profiles"])


def test_recency_separates_clusters(fitted: tuple[dict, Path]) -> None:
    summary, _ = fitted
    recency = [p["means"]["days_since_last_event"] for p in summary["profiles"]]
    assert max(recency) - min(recency) > 10  # some cluster is the quiet one


def test_assignment_round_trips_and_follows_the_profiles(fitted: tuple[dict, Path]) -> None:
    summary, root = fitted
    c = Clusters.load_current(root)
    assert c is not None and c.version == summary["version"] and c.k == summary["k"]
    accepted = summary["accepted"]
    end = day_end(max(evs[-1].ts_ms for evs in accepted.values()) // DAY_MS)
    users = [u for u, evs in accepted.items() if end - evs[-1].ts_ms < 60 * DAY_MS]
    X = np.array([[f[n] for n in FEATURE_NAMES] for f in offline.build(accepted, [(u, end) for u in users])])
    labels = c.assign(X)
    assert [int((labels == k).sum()) for k in range(c.k)] == [p["users"] for p in summary["profiles"]]


def test_a_corrupt_or_edited_file_is_refused(fitted: tuple[dict, Path], tmp_path: Path) -> None:
    _, root = fitted
    c = Clusters.load_current(root)
    assert c is not None
    copy = tmp_path / "clusters"
    c.save(copy)
    path = copy / c.version / "clusters.json"
    data = json.loads(path.read_text())
    data["centers"][0][0] += 1.0
    path.write_text(json.dumps(data, indent=1))
    with pytest.raises(ModelRejected, match="checksum"):
        Clusters.load_current(copy)
