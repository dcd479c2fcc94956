"""The recommender's pure parts: the item model on hand-made interactions, the blend, exclusion and threshold, the
round trip through files, and the generated catalogue's structure (what CF has to find)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from models.recommend import ItemModel, interactions, rank
from models.recommend_eval import ndcg
from simulation import catalogue
from simulation.generator import make_users, simulate

# three users who like books b1+b2, two who like toys t1+t2, one who bridges b1 and t1
ROWS = [
    ("u1", "b1", "books", 1.0), ("u1", "b2", "books", 5.0),
    ("u2", "b1", "books", 3.0), ("u2", "b2", "books", 1.0),
    ("u3", "b1", "books", 1.0), ("u3", "b2", "books", 1.0),
    ("u4", "t1", "toys", 1.0), ("u4", "t2", "toys", 3.0),
    ("u5", "t1", "toys", 5.0), ("u5", "t2", "toys", 1.0),
    ("u6", "b1", "books", 1.0), ("u6", "t1", "toys", 1.0),
]  # fmt: skip


@pytest.fixture(scope="module")
def model() -> ItemModel:
    return ItemModel.fit(*([r[c] for r in ROWS] for c in range(4)), version="test")  # type: ignore[arg-type]


def test_co_interacted_items_are_nearest(model: ItemModel) -> None:
    assert model.neighbours("b1")[0][0] == "b2"
    assert model.neighbours("t2")[0][0] == "t1"
    assert "t2" not in dict(model.neighbours("b2"))  # never co-viewed


def test_cf_scores_are_means_of_similarities_between_0_and_1(model: ItemModel) -> None:
    cf = model.cf_scores({"b1": 1.0})
    assert set(cf) == {"b2", "t1"} and cf["b2"] > cf["t1"] > 0
    assert all(0 < v <= 1 for v in cf.values())
    assert model.cf_scores({"unknown": 3.0}) == {}


def test_blend_excludes_bought_items_and_applies_the_threshold(model: ItemModel) -> None:
    cf, content = model.cf_scores({"b1": 1.0, "b2": 5.0}), model.content_scores({"toys": 1.0})
    assert rank(cf, content, 1.0, exclude={"b1", "b2"}, k=5)[0][0] == "t1"
    full = rank(cf, content, 0.5, k=5)
    assert "b1" in dict(full) and "b1" not in dict(rank(cf, content, 0.5, exclude={"b1"}, k=5))
    threshold = sorted(s for _, s in full)[len(full) // 2]
    assert all(s >= threshold for _, s in rank(cf, content, 0.5, k=5, min_score=threshold))
    assert len(rank(cf, content, 0.5, k=5, min_score=threshold)) < len(full)


def test_content_fills_what_cf_cannot_at_alpha_one(model: ItemModel) -> None:
    got = rank({}, model.content_scores({"toys": 1.0}), 1.0, k=2)
    assert [i for i, _ in got] == ["t1", "t2"] and all(s == 0 for _, s in got)


def test_the_model_round_trips_through_files_without_pickles(model: ItemModel, tmp_path: Path) -> None:
    again = ItemModel.load(model.save(tmp_path / "m"))
    assert again.version == "test" and again.neighbours("b1") == model.neighbours("b1")
    assert np.array_equal(again.popularity, model.popularity)


def test_ndcg_on_hand_made_lists() -> None:
    assert ndcg(["a", "b"], {"a"}) == 1.0
    assert ndcg(["x", "a"], {"a"}) == pytest.approx(1 / np.log2(3))
    assert ndcg(["x", "y"], {"a"}) == 0.0


def test_the_catalogue_gives_customers_of_one_taste_the_same_lines_across_categories() -> None:
    events = simulate(make_users(200, 120, seed=4), 120, seed=4)
    rows = interactions(events)
    assert {catalogue.product(item).category for _, item, _, _, _ in rows} == set(catalogue.CATEGORIES)
    assert all(catalogue.product(item).category == category for _, item, category, _, _ in rows)
    in_taste = Counter(catalogue.product(item).line == catalogue.taste(user) for user, item, _, _, _ in rows)
    share = in_taste[True] / sum(in_taste.values())
    assert 0.7 < share < 0.85  # 70 % in taste, plus a quarter of the rest by chance
    ranks = Counter(catalogue.product(item).rank for _, item, _, _, _ in rows)
    assert ranks[0] > 2 * ranks[5] > 0  # popularity falls with rank
