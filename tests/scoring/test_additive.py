"""Monotone additive boosting (scoring.additive): free stumps, then each shape projected onto a monotone one."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from scoring.additive import monotone_violations, project_monotone
from scoring.datasets import load_dataset
from scoring.features import FeatureEncoder
from scoring.spec import get_spec
from scoring.train import train_product


def _noisy_stumps(seed: int = 0) -> tuple[lgb.Booster, np.ndarray]:
    """Stumps fitted freely on a truly increasing effect of x0 (and a decreasing one of x1) with much noise,
    so that the free fit wiggles against the true direction somewhere."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3000, 3))
    logit = 0.4 * x[:, 0] - 0.4 * x[:, 1] + 0.6 * np.corrcoef(x[:, 0], x[:, 2])[0, 1]
    y = (rng.random(3000) < 1 / (1 + np.exp(-logit))).astype(int)
    params = {"objective": "binary", "max_depth": 1, "num_leaves": 2, "learning_rate": 0.5, "min_data_in_leaf": 5,
              "verbose": -1, "num_threads": 1, "seed": seed}
    return lgb.train(params, lgb.Dataset(x, y), num_boost_round=400), x


def test_projection_removes_every_step_against_the_direction() -> None:
    booster, x = _noisy_stumps()
    directions = [1, -1, 0]
    before = monotone_violations(booster, directions)
    assert max(before.values()) > 0, "the free fit should wiggle (else this test proves nothing)"
    projected = project_monotone(booster, x, directions)
    after = monotone_violations(projected, directions)
    assert after == {0: 0.0, 1: 0.0}


def test_projection_is_still_exactly_explained_and_keeps_the_free_feature() -> None:
    booster, x = _noisy_stumps()
    projected = project_monotone(booster, x, [1, -1, 0])
    contributions = projected.predict(x, pred_contrib=True)
    margin = projected.predict(x, raw_score=True)
    np.testing.assert_allclose(contributions.sum(axis=1), margin, atol=1e-9)
    # The free feature's stumps are untouched: its contribution is the same as before the projection.
    np.testing.assert_allclose(contributions[:, 2], booster.predict(x, pred_contrib=True)[:, 2], atol=1e-12)
    # Outputs move only where the projection had to: the projected model ranks about as well as the free one.
    truth = 0.4 * x[:, 0] - 0.4 * x[:, 1]
    free_margin = booster.predict(x, raw_score=True)
    assert np.corrcoef(margin, truth)[0, 1] >= np.corrcoef(free_margin, truth)[0, 1] - 0.02


def test_monotone_walk_along_a_field_never_goes_the_wrong_way() -> None:
    booster, x = _noisy_stumps()
    projected = project_monotone(booster, x, [1, -1, 0])
    grid = np.repeat(x[:1], 400, axis=0)
    grid[:, 0] = np.linspace(-4, 4, 400)
    assert np.all(np.diff(projected.predict(grid, raw_score=True)) >= -1e-12)


def test_projection_refuses_deeper_trees() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 2))
    y = (x[:, 0] * x[:, 1] > 0).astype(int)
    deep = lgb.train({"objective": "binary", "max_depth": 3, "num_leaves": 8, "verbose": -1, "num_threads": 1},
                     lgb.Dataset(x, y), num_boost_round=5)
    with pytest.raises(ValueError, match="deeper than a stump"):
        project_monotone(deep, x, [1, 0])


def test_demo_training_with_isotonic_projection_gives_a_monotone_model() -> None:
    spec = get_spec("demo")
    dataset = load_dataset(spec, n=4000, seed=3)
    result = train_product(spec, dataset, seed=0, params={"max_depth": 1, "num_leaves": 2, "num_boost_round": 200,
                                                          "learning_rate": 0.3, "monotone_fit": "isotonic_projection"})
    encoder: FeatureEncoder = result.encoder
    violations = monotone_violations(result.booster, list(encoder.monotone_constraints))
    assert violations and max(violations.values()) == 0.0
    assert result.metrics["auc"] > 0.75
