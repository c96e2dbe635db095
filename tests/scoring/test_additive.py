"""Monotone additive boosting (scoring.additive): free stumps, then each shape projected onto a monotone one."""

from __future__ import annotations

import lightgbm as lgb
import numba
import numpy as np
import pytest

from scoring.additive import fit_additive, monotone_violations, project_monotone, refit_additive
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


# --- the penalized joint fits (refit_additive, fit_additive) -------------------------------------------------

def _additive_truth(n: int = 20000, seed: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x0 straight (0.8 x), x1 curved and decreasing (-ln(1 + e^(2 x))), x2 correlated with x0 but without
    an effect of its own: the fit must leave x2 nearly flat and not give it x0's credit."""
    rng = np.random.default_rng(seed)
    x0 = rng.normal(size=n)
    x1 = rng.normal(size=n)
    x2 = 0.7 * x0 + 0.7 * rng.normal(size=n)
    truth = 0.8 * x0 - np.log1p(np.exp(2.0 * x1))
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-(truth - 0.5)))).astype(int)
    return np.round(np.column_stack([x0, x1, x2]), 2), y, truth


def _template(x: np.ndarray, y: np.ndarray, rounds: int = 1) -> lgb.Booster:
    params = {"objective": "binary", "max_depth": 1, "num_leaves": 2, "learning_rate": 0.3, "verbose": -1,
              "num_threads": 1, "seed": 0, "min_data_in_leaf": 20}
    return lgb.train(params, lgb.Dataset(x, y), num_boost_round=rounds)


def test_grid_fit_is_a_monotone_exactly_explained_booster_that_recovers_the_shapes() -> None:
    x, y, truth = _additive_truth()
    booster, smoothing = fit_additive(_template(x, y), x, y, [1, -1, 0])
    assert monotone_violations(booster, [1, -1, 0]) == {0: 0.0, 1: 0.0}
    margin = booster.predict(x, raw_score=True)
    np.testing.assert_allclose(booster.predict(x, pred_contrib=True).sum(axis=1), margin, atol=1e-9)
    # It saves and loads as any booster, bit for bit.
    np.testing.assert_array_equal(lgb.Booster(model_str=booster.model_to_string()).predict(x, raw_score=True), margin)
    contributions = booster.predict(x, pred_contrib=True)
    # The straight field is estimated as (nearly) a straight line of the right slope: its smoothing weight is
    # far larger than the curved field's.
    slope = np.polyfit(x[:, 0], contributions[:, 0], 1)[0]
    assert 0.7 < slope < 0.9
    assert smoothing[0] > 10 * smoothing[1]
    # The correlated field without an effect gets little: far less spread than the real ones.
    assert contributions[:, 2].std() < 0.1 * contributions[:, 0].std()
    assert np.corrcoef(margin, truth)[0, 1] > 0.99


def test_refit_keeps_the_boosted_thresholds_and_gives_credit_where_it_is_due() -> None:
    x, y, _ = _additive_truth()
    boosted = _template(x, y, rounds=300)
    refitted, _ = refit_additive(boosted, x, y, [1, -1, 0])
    assert refitted.num_trees() == boosted.num_trees()
    assert monotone_violations(refitted, [1, -1, 0]) == {0: 0.0, 1: 0.0}
    before = boosted.predict(x, pred_contrib=True)
    after = refitted.predict(x, pred_contrib=True)
    np.testing.assert_allclose(after.sum(axis=1), refitted.predict(x, raw_score=True), atol=1e-9)
    # Closer to the true contributions of the two real fields than the greedy boosting was.
    def error(contrib: np.ndarray) -> float:
        x0 = contrib[:, 0] - contrib[:, 0].mean() - (0.8 * x[:, 0] - (0.8 * x[:, 0]).mean())
        return float(np.sqrt(np.mean(x0 ** 2)))
    assert error(after) < error(before)


def test_the_joint_fits_refuse_missing_values() -> None:
    x, y, _ = _additive_truth(n=2000)
    x[3, 1] = np.nan
    with pytest.raises(ValueError, match="missing values"):
        fit_additive(_template(x, y), x, y, [1, -1, 0])


def test_demo_training_with_the_grid_fit_gives_a_monotone_model() -> None:
    spec = get_spec("demo")
    dataset = load_dataset(spec, n=6000, seed=3)
    result = train_product(spec, dataset, seed=0, params={"monotone_fit": "additive_grid"})
    violations = monotone_violations(result.booster, list(result.encoder.monotone_constraints))
    assert violations and max(violations.values()) == 0.0
    assert result.metrics["auc"] > 0.75


def test_the_step_design_computes_what_the_sparse_indicator_matrix_does() -> None:
    """The fit's design (scoring.additive._design) against the explicit indicator matrix it stands for,
    with one-hot features sharing slots: X beta, X' v and X' diag(w) X; and the kernels on all threads (as
    fits from 200,000 rows run them) give the one-thread sums bit for bit, so training is deterministic."""
    from scipy import sparse

    from scoring.additive import _curvature, _design, _FeatureSteps, _transposed_times, _weighted_gram, step_grid

    rng = np.random.default_rng(7)
    rows = 2_003  # not a multiple of the row slices
    category = rng.integers(0, 3, size=rows)
    x = np.column_stack([rng.normal(size=rows), rng.integers(0, 5, size=rows).astype(float),
                         category == 0, category == 1, category == 2]).astype(np.float64)
    features = []
    for j in range(x.shape[1]):
        thresholds = step_grid(x[:, j], 20)
        steps = np.searchsorted(thresholds, x[:, j], side="left")
        features.append(_FeatureSteps(j, thresholds, 0, steps, _curvature(x[:, j], thresholds, steps)))
    design = _design(features, np.arange(rows))
    assert design.columns.shape[1] == 3, "the three one-hot columns of one category should share a slot"

    blocks = [sparse.csr_matrix(np.ones((rows, 1)))]
    for f in features:
        own = f.steps > 0
        blocks.append(sparse.csr_matrix((np.ones(int(own.sum())), (np.flatnonzero(own), f.steps[own] - 1)),
                                        shape=(rows, len(f.thresholds))))
    explicit = sparse.hstack(blocks, format="csr")
    assert explicit.shape[1] == design.size

    beta, values, weights = rng.normal(size=design.size), rng.normal(size=rows), rng.random(rows)
    np.testing.assert_allclose(design.margin(beta), explicit @ beta, rtol=0, atol=1e-12)
    np.testing.assert_allclose(design.transposed_times(values), explicit.T @ values, rtol=0, atol=1e-10)
    gram = (explicit.T @ explicit.multiply(weights[:, None])).toarray()
    np.testing.assert_allclose(design.gram(weights), gram, rtol=0, atol=1e-9)

    assert numba.get_num_threads() > 1, "the parallel kernels need more than one thread to be tested"
    assert np.array_equal(_weighted_gram(design.columns, weights, design.size), design.gram(weights))
    assert np.array_equal(_transposed_times(design.columns, values, design.size), design.transposed_times(values))
