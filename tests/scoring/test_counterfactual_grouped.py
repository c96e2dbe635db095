"""The compiled recourse search scores candidates from grouped sums (a per-application constant, per-option sums
of single-field trees, multi-field trees per candidate) and falls back to LightGBM's in-order sum near the
approval line. Its results must be those of the in-order sum on every candidate, bit for bit: every Recourse
field, ``candidates_scored`` included, on stump models (no multi-field trees) and depth-3 models (many)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from scoring import demo
from scoring.artifact import save_model
from scoring.counterfactual import NO_FIELD, SEVERAL_FIELDS, RecourseSearch, _classify_trees, _separable_monotone
from scoring.datasets import load_dataset
from scoring.policy import APPROVED, policy_decide
from scoring.predict import ScoringModel, load_model
from scoring.spec import ProductSpec, get_spec, validate_fields
from scoring.train import DEFAULT_PARAMS, train_product


@pytest.fixture(scope="module")
def demo_spec() -> ProductSpec:
    return get_spec("demo")


@pytest.fixture(scope="module")
def depth3_model(demo_model_path: Path) -> ScoringModel:
    """The session's demo model: depth-3 trees with LightGBM's monotone constraints (multi-field trees)."""
    return load_model(demo_model_path)


@pytest.fixture(scope="module")
def stump_model(demo_spec: ProductSpec, tmp_path_factory: pytest.TempPathFactory) -> ScoringModel:
    """Depth-1 stumps with LightGBM's monotone constraints: every tree splits on one field."""
    dataset = load_dataset(demo_spec, n=4000, seed=11)
    params = {**DEFAULT_PARAMS, "max_depth": 1, "num_leaves": 2, "num_boost_round": 200, "monotone_fit": "per_tree"}
    result = train_product(demo_spec, dataset, seed=0, params=params)
    return load_model(save_model(result, demo_spec, dataset, tmp_path_factory.mktemp("stump-models")))


def _not_approved(spec: ProductSpec, model: ScoringModel, n: int, seed: int) -> list[dict[str, Any]]:
    frame, _ = demo.generate(n, seed)
    out = []
    for record in frame.to_dict("records"):
        values = validate_fields(spec, {k: v for k, v in record.items() if v is not None})
        if policy_decide(spec.policy, model.score(values), values).outcome != APPROVED:
            out.append(values)
    return out


def _searches(model: ScoringModel, spec: ProductSpec, path: str) -> tuple[RecourseSearch, RecourseSearch]:
    grouped = RecourseSearch(model, spec)
    in_order = RecourseSearch(model, spec, grouped_sums=False)
    if path == "cost_ordered":
        # As if the model were not known to be monotone: the generic cost-ordered search, same grid.
        for search in (grouped, in_order):
            search._model_monotone = dict.fromkeys(search._model_monotone, 0)
    return grouped, in_order


@pytest.mark.parametrize("path", ["frontier", "cost_ordered"])
@pytest.mark.parametrize("which", ["depth3", "stump"])
def test_grouped_sums_give_the_in_order_results(which: str, path: str, demo_spec: ProductSpec,
                                                request: pytest.FixtureRequest) -> None:
    model: ScoringModel = request.getfixturevalue(f"{which}_model")
    grouped, in_order = _searches(model, demo_spec, path)
    tables = grouped._tables
    assert (tables.multi_tree.size > 0) == (which == "depth3")  # the case each model is here for
    assert tables.single_tree.size > 0
    rows = _not_approved(demo_spec, model, 1500 if path == "frontier" else 600, seed=31337)
    assert len(rows) >= 100
    fast = grouped.find_many(rows)
    reference = in_order.find_many(rows)
    assert fast == reference  # every field, candidates_scored included
    assert [r.to_dict() for r in fast] == [r.to_dict() for r in reference]
    assert sum(r.found for r in fast) >= 50
    assert sum(r.candidates_scored for r in fast) > 10 * len(rows)
    # the path under test is the one taken
    x = np.vstack([model.encoder.encode_row(v) for v in rows[:20]])
    jobs = [grouped._prepare(i, v, x[i], model.score(v))[1] for i, v in enumerate(rows[:20])]
    assert any(job is not None and job.frontier == (path == "frontier") for job in jobs)


def test_find_is_a_batch_of_one_with_grouped_sums(depth3_model: ScoringModel, demo_spec: ProductSpec) -> None:
    grouped = RecourseSearch(depth3_model, demo_spec)
    rows = _not_approved(demo_spec, depth3_model, 300, seed=5)
    for values, recourse in zip(rows, grouped.find_many(rows), strict=True):
        assert grouped.find(values) == recourse


def test_the_tolerance_is_tiny_and_positive(stump_model: ScoringModel, depth3_model: ScoringModel,
                                            demo_spec: ProductSpec) -> None:
    """Only candidates this close to the line are scored again in order: a bound of rounding, not a guess."""
    for model in (stump_model, depth3_model):
        search = RecourseSearch(model, demo_spec)
        assert 0.0 < search._decision.tolerance < 1e-9
        assert RecourseSearch(model, demo_spec, grouped_sums=False)._decision.tolerance == np.inf


def test_trees_are_classified_by_the_actionable_fields_they_split_on() -> None:
    clear = np.array([[1, 0, 1, 0, 2],   # field 0 splits in trees 0, 2, 4
                      [0, 0, 2, 1, 0],   # field 1 in trees 2, 3
                      [0, 0, 0, 0, 0]],  # field 2 nowhere
                     dtype=np.int32)
    owner, single_start, single_tree, multi_tree = _classify_trees(clear)
    assert owner.tolist() == [0, NO_FIELD, SEVERAL_FIELDS, 1, 0]
    assert single_start.tolist() == [0, 2, 3, 3]
    assert single_tree.tolist() == [0, 4, 3]
    assert multi_tree.tolist() == [2]


@pytest.fixture(scope="module")
def additive_model(demo_spec: ProductSpec, tmp_path_factory: pytest.TempPathFactory) -> ScoringModel:
    """The demo's production kind of model (scoring.additive.fit_additive): stumps, no LightGBM constraints,
    monotone by projection."""
    dataset = load_dataset(demo_spec, n=6000, seed=3)
    result = train_product(demo_spec, dataset, seed=0, params={"monotone_fit": "additive_grid"})
    return load_model(save_model(result, demo_spec, dataset, tmp_path_factory.mktemp("additive-models")))


def test_an_additive_model_is_found_monotone_from_its_trees(additive_model: ScoringModel,
                                                            depth3_model: ScoringModel,
                                                            demo_spec: ProductSpec) -> None:
    search = RecourseSearch(additive_model, demo_spec)
    dump = additive_model.booster.dump_model()
    assert not any(dump.get("monotone_constraints") or [])  # nothing was trained with LightGBM's constraints
    for act in search.actionable:
        assert _separable_monotone(dump, act.enc.first) == act.enc.monotone != 0
    # Depth-3 trees split on several features: nothing can be read off them one feature at a time.
    deep = depth3_model.booster.dump_model()
    assert all(_separable_monotone(deep, act.enc.first) == 0 for act in search.actionable)


def test_on_an_additive_model_the_frontier_search_finds_the_cost_ordered_first_hit(
        additive_model: ScoringModel, demo_spec: ProductSpec) -> None:
    frontier = RecourseSearch(additive_model, demo_spec)
    ordered = RecourseSearch(additive_model, demo_spec)
    ordered._model_monotone = dict.fromkeys(ordered._model_monotone, 0)
    rows = _not_approved(demo_spec, additive_model, 1500, seed=77)
    x = np.vstack([additive_model.encoder.encode_row(v) for v in rows[:20]])
    jobs = [frontier._prepare(i, v, x[i], additive_model.score(v))[1] for i, v in enumerate(rows[:20])]
    assert any(job is not None and job.frontier for job in jobs)
    fast, slow = frontier.find_many(rows), ordered.find_many(rows)
    assert sum(r.found for r in fast) >= 50
    for a, b in zip(fast, slow, strict=True):
        assert a.found == b.found
        if a.found:
            assert a.changes == b.changes and a.cost == b.cost and a.new_probability == b.new_probability
            assert a.note == b.note and a.verified and b.verified
    assert sum(r.candidates_scored for r in fast) < sum(r.candidates_scored for r in slow) / 2
