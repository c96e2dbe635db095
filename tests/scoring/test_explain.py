"""Explanations: exact and additive against the cutoff reference group, grouped per spec field, deterministic,
the same in single and batch mode, with their checks recorded (and able to fail), never attributing anything
to a monitoring-only field; the logistic benchmark explained exactly the same way."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from scoring import demo
from scoring.calibration import sigmoid
from scoring.datasets import Dataset
from scoring.explain import (
    ADDITIVITY_TOLERANCE,
    CUTOFF_GROUP_SIZE,
    EXPLAINER_VERSION,
    MAX_REASONS,
    METHOD_LINEAR,
    METHOD_TREE,
    STORED_FORMAT,
    Explainer,
    Explanation,
    _faithfulness_rows,
    decode_features,
    expand_stored,
)
from scoring.predict import ScoringModel, load_model
from scoring.spec import ProductSpec, get_spec, validate_fields

# --- fixtures --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo_spec() -> ProductSpec:
    return get_spec("demo")


@pytest.fixture(scope="module")
def demo_model(demo_model_path: Path) -> ScoringModel:
    return load_model(demo_model_path)


@pytest.fixture(scope="module")
def demo_explainer(demo_model: ScoringModel, demo_spec: ProductSpec) -> Explainer:
    return Explainer.for_model(demo_model, demo_spec)


@pytest.fixture(scope="module")
def demo_rows(demo_spec: ProductSpec) -> list[dict[str, Any]]:
    """Fresh demo applications (a seed the model never saw), cleaned as the API cleans them."""
    frame, _ = demo.generate(400, 4242)
    rows = []
    for record in frame.to_dict("records"):
        raw = {k: v for k, v in record.items() if v is not None}
        rows.append(validate_fields(demo_spec, raw))
    return rows


@pytest.fixture(scope="module")
def demo_explained(demo_explainer: Explainer, demo_rows: list[dict[str, Any]]) -> list[Explanation]:
    return demo_explainer.explain_many(demo_rows)


def _records(dataset: Dataset, count: int, step: int = 7) -> list[dict[str, Any]]:
    frame = dataset.frame.iloc[::step].head(count)
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for r in frame.to_dict("records")]


def _assert_additive(explanation: Explanation, model: ScoringModel, values: Mapping[str, Any]) -> None:
    total = math.fsum(explanation.attributions.values())
    assert abs(explanation.base_value + total - explanation.output) <= ADDITIVITY_TOLERANCE
    total_all = math.fsum(explanation.attributions_all.values())
    assert abs(explanation.base_value_all + total_all - explanation.output) <= ADDITIVITY_TOLERANCE
    # grouped sum == ungrouped sum, and each field is exactly the sum of its own features
    assert math.isclose(total, math.fsum(explanation.feature_attributions.values()), abs_tol=1e-9)
    owners = dict(zip(model.feature_names, model.feature_field, strict=True))
    for field_name, value in explanation.attributions.items():
        own = [v for name, v in explanation.feature_attributions.items() if owners[name] == field_name]
        assert math.isclose(value, math.fsum(own), abs_tol=1e-12)
    # the output is the model's own calibrated log-odds, and its PD is exactly what scoring gives
    assert math.isclose(explanation.output, model.margin_row(values), abs_tol=1e-12)
    assert explanation.probability == model.score(values)
    assert explanation.checks.additivity.passed
    assert abs(explanation.checks.additivity.detail["residual"]) <= ADDITIVITY_TOLERANCE


# --- additivity, grouping, conventions --------------------------------------------------------------

def test_demo_additivity_on_every_row(demo_explained: list[Explanation], demo_rows: list[dict[str, Any]],
                                      demo_model: ScoringModel) -> None:
    assert len(demo_explained) == len(demo_rows)
    for explanation, values in zip(demo_explained, demo_rows, strict=True):
        _assert_additive(explanation, demo_model, values)
        assert explanation.method == METHOD_TREE and explanation.reference == "cutoff"
        assert explanation.explainer_version == EXPLAINER_VERSION and explanation.seed == 0
        assert explanation.model_version == demo_model.version


@pytest.mark.slow
@pytest.mark.parametrize("which", ["heloc", "german"])
def test_real_data_additivity_on_every_row(which: str, request: pytest.FixtureRequest) -> None:
    path: Path = request.getfixturevalue(f"{which}_model_dir")
    spec: ProductSpec = request.getfixturevalue(f"{which}_spec")
    data: Dataset = request.getfixturevalue(f"{which}_data")
    model = load_model(path)
    rows = _records(data, 250)
    explanations = Explainer.for_model(model, spec).explain_many(rows)
    for explanation, values in zip(explanations, rows, strict=True):
        _assert_additive(explanation, model, values)
        assert explanation.checks.determinism.passed
        assert set(explanation.attributions) == {f.name for f in spec.model_inputs}


def test_sign_convention_and_ranking(demo_explained: list[Explanation]) -> None:
    denied = [e for e in demo_explained if e.decision == "denied"]
    assert len(denied) >= 20
    for explanation in demo_explained:
        ranked = explanation.negative_ranked
        values = [explanation.attributions[f] for f in ranked]
        assert all(v > 0 for v in values)
        assert values == sorted(values, reverse=True)
        assert set(ranked) == {f for f, v in explanation.attributions.items() if v > 0}
        assert explanation.reasons == ranked[:MAX_REASONS]
    for explanation in denied:
        # a denial is above the cutoff group, so something pushed it up
        assert explanation.output > explanation.base_value and explanation.negative_ranked


def test_probability_attributions_sum_to_the_pd_gap(demo_explained: list[Explanation]) -> None:
    for explanation in demo_explained:
        gap = sigmoid(explanation.output) - sigmoid(explanation.base_value)
        assert math.isclose(math.fsum(explanation.probability_attributions.values()), gap, abs_tol=1e-12)
        for field_name, value in explanation.attributions.items():
            assert (value > 0) == (explanation.probability_attributions[field_name] > 0) or value == 0


def test_cutoff_reference_group(demo_explainer: Explainer, demo_model: ScoringModel) -> None:
    group = demo_explainer.reference_group
    line = demo_explainer.approval_line
    probabilities = demo_explainer.reference_probabilities
    assert group.size == CUTOFF_GROUP_SIZE and not group.widened
    assert group.pd_max < line and group.below_line == group.size
    # exactly the rows nearest below the line: nothing between the group and the line is left out
    between = np.flatnonzero((probabilities >= group.pd_min) & (probabilities < line))
    assert sorted(between.tolist()) == list(group.rows)
    # the base value is the group's mean calibrated log-odds
    reference = demo_model.reference[list(group.rows)]
    raw = demo_model.booster.predict(reference, raw_score=True)
    expected = float(np.mean(demo_model.calibration.a * raw + demo_model.calibration.b))
    explanation = demo_explainer.explain(decode_features(demo_model.encoder, demo_explainer.spec, reference[0]))
    assert math.isclose(explanation.base_value, expected, abs_tol=1e-12)
    assert explanation.reference_group["size"] == group.size
    assert explanation.reference_group["pd_max"] == group.pd_max


def test_attribution_is_phi_minus_group_mean_phi(demo_explainer: Explainer, demo_model: ScoringModel,
                                                 demo_rows: list[dict[str, Any]]) -> None:
    """Recompute the method by hand from LightGBM's pred_contrib for one row."""
    values = demo_rows[3]
    a = demo_model.calibration.a
    rows = list(demo_explainer.reference_group.rows)
    phi_group = a * demo_model.booster.predict(demo_model.reference[rows], pred_contrib=True)[:, :-1]
    phi_x = a * demo_model.contributions_row(values)[:-1]
    expected = phi_x - phi_group.mean(axis=0)
    explanation = demo_explainer.explain(values, with_recourse=False)
    got = np.array([explanation.feature_attributions[n] for n in demo_model.feature_names])
    assert np.allclose(got, expected, rtol=0, atol=1e-12)


# --- determinism, single == batch, serialisation ------------------------------------------------------

def test_determinism(demo_explainer: Explainer, demo_rows: list[dict[str, Any]]) -> None:
    for values in demo_rows[:20]:
        first = demo_explainer.explain(values)
        second = demo_explainer.explain(values)
        assert first.checks.determinism.passed
        assert first.checks.determinism.detail["max_abs_difference"] == 0.0
        assert first.to_dict() == second.to_dict()


def test_single_equals_batch(demo_explainer: Explainer, demo_explained: list[Explanation],
                             demo_rows: list[dict[str, Any]], demo_model: ScoringModel) -> None:
    picks = [i for i, e in enumerate(demo_explained) if e.decision != "approved"][:15] + list(range(15))
    for i in picks:
        single = demo_explainer.explain(demo_rows[i])
        assert single.to_dict() == demo_explained[i].to_dict()  # bit for bit, recourse included
    # an encoded matrix gives the same explanations as the value mappings
    matrix = np.vstack([demo_model.encoder.encode_row(demo_rows[i]) for i in picks])
    from_matrix = demo_explainer.explain_many(matrix, values=[demo_rows[i] for i in picks], chunk_rows=7)
    for i, explanation in zip(picks, from_matrix, strict=True):
        assert explanation.to_dict() == demo_explained[i].to_dict()
    # without values, the matrix is decoded: the numbers are still the same
    decoded = demo_explainer.explain_many(matrix, with_recourse=False)
    for i, explanation in zip(picks, decoded, strict=True):
        assert explanation.attributions == demo_explained[i].attributions
        assert explanation.output == demo_explained[i].output


def test_to_dict_is_json_and_round_trips(demo_explained: list[Explanation]) -> None:
    with_recourse = [e for e in demo_explained if e.recourse is not None and e.recourse.found][:5]
    assert with_recourse
    for explanation in [*with_recourse, demo_explained[0]]:
        text = json.dumps(explanation.to_dict(), allow_nan=False)
        again = Explanation.from_dict(json.loads(text))
        assert again == explanation
        assert again.to_dict() == explanation.to_dict()


def test_explainer_is_cached_per_model(demo_model: ScoringModel, demo_spec: ProductSpec,
                                       demo_explainer: Explainer) -> None:
    assert Explainer.for_model(demo_model, demo_spec) is demo_explainer


def test_refuses_a_spec_the_model_was_not_trained_for(demo_model: ScoringModel, german_spec: ProductSpec) -> None:
    with pytest.raises(ValueError, match="not trained for spec"):
        Explainer(demo_model, german_spec)


# --- faithfulness -------------------------------------------------------------------------------------

def test_faithfulness_is_recorded(demo_explained: list[Explanation]) -> None:
    denied = [e for e in demo_explained if e.decision == "denied"]
    for explanation in demo_explained:
        detail = explanation.checks.faithfulness.detail
        assert set(detail["delta_pd"]) == set(explanation.attributions)
        if explanation.negative_ranked:
            assert detail["top_reason"] == explanation.negative_ranked[0]
            deltas = detail["delta_pd"]
            others = [f for f in explanation.attributions if f not in explanation.reasons]
            strongest = max(others, key=lambda f: (deltas[f], -others.index(f))) if others else None
            assert detail["largest_non_reason"] == strongest
            expected = strongest is None or deltas[detail["top_reason"]] > deltas[strongest]
            assert explanation.checks.faithfulness.passed == expected
        else:
            assert explanation.checks.faithfulness.passed and detail["note"] == "no negative contributors"
    passed = sum(e.checks.faithfulness.passed for e in denied) / len(denied)
    assert passed >= 0.9


def _faithfulness_by_row(fields: list[str], reasons: tuple[str, ...], probability: float,
                         moved: list[float]) -> tuple[bool, dict[str, Any], list[float]]:
    """The faithfulness check as the docstring of scoring.explain._faithfulness_rows defines it, one row in
    plain Python: what the compiled pass must give, bit for bit."""
    deltas = [probability - sigmoid(v) for v in moved]
    if not reasons:
        return True, {"note": "no negative contributors"}, deltas
    strongest, best = None, -math.inf
    for name, delta in zip(fields, deltas, strict=True):
        if name not in reasons and (strongest is None or delta > best):
            strongest, best = name, delta
    passed = strongest is None or deltas[fields.index(reasons[0])] > best
    return passed, {"top_reason": reasons[0], "largest_non_reason": strongest}, deltas


def test_the_compiled_faithfulness_pass_is_the_row_by_row_definition_bit_for_bit() -> None:
    fields = [f"f{j}" for j in range(7)]
    rng = np.random.default_rng(7)
    moved = rng.normal(0.0, 3.0, size=(400, len(fields)))
    moved[::9] = np.round(moved[::9])  # ties between fields
    moved[1] = [0.0, -0.0, 40.0, -745.0, 800.0, -800.0, 1e-300]  # exp's edges
    moved[2, 3] = math.nan
    moved[3, :] = math.nan
    moved[4, 5] = math.inf
    probabilities = [sigmoid(v) for v in rng.normal(-1.0, 2.0, size=len(moved))]
    negatives: list[tuple[str, ...]] = []
    for i in range(len(moved)):
        count = [0, 1, 3, MAX_REASONS, MAX_REASONS + 2, len(fields)][i % 6]  # none, some, more than stated, all
        negatives.append(tuple(fields[j] for j in rng.permutation(len(fields))[:count]))

    got = _faithfulness_rows(fields, negatives, probabilities, moved)

    for i, (passed, detail, deltas) in enumerate(got):
        expected = _faithfulness_by_row(fields, negatives[i][:MAX_REASONS], probabilities[i], moved[i].tolist())
        assert (passed, detail) == expected[:2], i
        assert [float.hex(v) for v in deltas] == [float.hex(v) for v in expected[2]], i
    assert {d.get("largest_non_reason") for _, d, _ in got} >= {None, "f0"}  # every branch was taken
    assert {p for p, _, _ in got} == {True, False}


class _SwappedContributions:
    """A booster whose pred_contrib gives credit_score's contribution to open_accounts and back: the
    scores are untouched (additivity still holds), the explanation is wrong."""

    def __init__(self, booster: Any, left: int, right: int) -> None:
        self._booster, self._left, self._right = booster, left, right

    def predict(self, data: Any, **kwargs: Any) -> Any:
        out = self._booster.predict(data, **kwargs)
        if kwargs.get("pred_contrib"):
            out = np.array(out, copy=True)
            out[:, [self._left, self._right]] = out[:, [self._right, self._left]]
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._booster, name)


@pytest.mark.parametrize("own_kernel", [True, False], ids=["own-kernel", "lightgbm"])
def test_faithfulness_failure_is_flagged_not_raised(demo_model: ScoringModel, demo_spec: ProductSpec,
                                                    demo_rows: list[dict[str, Any]], own_kernel: bool) -> None:
    names = demo_model.feature_names
    left, right = names.index("credit_score"), names.index("open_accounts")
    if own_kernel:
        explainer = Explainer(demo_model, demo_spec)  # not cached: about to be broken on purpose
        kernel = explainer._tree.backend.kernel  # type: ignore[attr-defined]
        assert kernel is not None
        explain = kernel.explain

        def swapped(rows: Any, threads: int = 0, keep_patterns: bool = False) -> Any:
            contrib, margin, patterns = explain(rows, threads, keep_patterns)
            contrib[:, [left, right]] = contrib[:, [right, left]]
            return contrib, margin, patterns

        kernel.explain = swapped
    else:
        broken = ScoringModel(demo_model.path, demo_model.manifest, demo_model.encoder,
                              _SwappedContributions(demo_model.booster, left, right),
                              demo_model.calibration, demo_model.benchmark)
        explainer = Explainer(broken, demo_spec, own_kernel=False)  # not cached: a deliberately broken model
    explanations = explainer.explain_many(demo_rows, with_recourse=False)
    failed = [e for e in explanations if not e.checks.faithfulness.passed]
    assert failed, "swapping the two contributions should make some explanations unfaithful"
    for explanation in failed:
        assert not explanation.checks.all_passed
        assert explanation.checks.additivity.passed  # the sum is untouched, only the story is wrong
        detail = explanation.checks.faithfulness.detail
        assert detail["delta_pd"][detail["largest_non_reason"]] >= detail["delta_pd"][detail["top_reason"]]
    assert any(e.checks.faithfulness.detail["top_reason"] == "open_accounts" for e in failed)


# --- what is and is not attributed ----------------------------------------------------------------------

@pytest.mark.slow
def test_monitoring_only_fields_are_never_attributed(german_model_dir: Path, german_spec: ProductSpec,
                                                     german_data: Dataset) -> None:
    model = load_model(german_model_dir)
    monitoring = {f.name for f in german_spec.monitoring_fields}
    assert monitoring == {"personal_status_sex", "age_years", "telephone", "foreign_worker"}
    rows = _records(german_data, 60, step=11)
    assert all(monitoring <= set(r) for r in rows)  # the values are there, and must be ignored
    explainer = Explainer.for_model(model, german_spec)
    for explanation in [*explainer.explain_many(rows), explainer.explain_benchmark(rows[0])]:
        feature_fields = {model.feature_field[model.feature_names.index(n)]
                          for n in explanation.feature_attributions if n in model.feature_names}
        for names in (set(explanation.attributions), set(explanation.attributions_all),
                      set(explanation.probability_attributions), set(explanation.negative_ranked),
                      set(explanation.reference_values), feature_fields):
            assert not names & monitoring
        if explanation.recourse is not None:
            assert not set(explanation.recourse.changed_fields) & monitoring
    # changing a monitoring-only value changes nothing at all
    changed = dict(rows[0], age_years=80, personal_status_sex="A92", foreign_worker="A202", telephone="A192")
    assert explainer.explain(changed).to_dict() == explainer.explain(rows[0]).to_dict()


# --- our own TreeSHAP ---------------------------------------------------------------------------------------

def _kernel_rows(model: ScoringModel, rows: list[dict[str, Any]]) -> np.ndarray:
    x = np.vstack([model.encoder.encode_row(v) for v in rows])
    x[::17, 0] = np.nan  # missing values take LightGBM's default direction
    x[5::19, -1] = np.nan
    return x


def _check_kernel(model: ScoringModel, x: np.ndarray) -> None:
    from scoring.treeshap import TreeShap

    kernel = TreeShap(model.booster)
    contributions, margins, patterns = kernel.explain(x, keep_patterns=True)
    theirs = model.booster.predict(x, pred_contrib=True)
    assert contributions.shape == theirs.shape
    assert np.abs(contributions - theirs).max() <= 1e-9
    a = model.calibration.a  # after the Platt scaling too
    assert np.abs(a * contributions - a * theirs).max() <= 1e-9
    # the raw margin is LightGBM's, bit for bit, from both kernels
    raw = model.booster.predict(x, raw_score=True)
    assert np.array_equal(margins, raw)
    assert np.array_equal(kernel.margins(x), raw)
    # single == batch, and the thread count changes nothing
    single = [kernel.explain(row) for row in x[:7]]
    assert np.array_equal(np.vstack([c for c, _, _ in single]), contributions[:7])
    assert np.array_equal(np.concatenate([m for _, m, _ in single]), margins[:7])
    one_thread = kernel.explain(x, threads=1)
    assert np.array_equal(one_thread[0], contributions) and np.array_equal(one_thread[1], margins)
    # a range of columns moved to a reference row: LightGBM's margin of the moved row, bit for bit
    reference = np.nanmedian(x, axis=0)
    ranges = [(enc.first, enc.first + enc.width) for enc in model.encoder.fields]
    clear, setbits = kernel.moved_masks(reference, ranges)
    assert patterns is not None
    moved = kernel.moved_from_patterns(patterns, clear, setbits)
    rows = np.repeat(x, len(ranges), axis=0)
    for k, (start, stop) in enumerate(ranges):
        rows[k::len(ranges), start:stop] = reference[start:stop]
    assert np.array_equal(moved, model.booster.predict(rows, raw_score=True).reshape(len(x), len(ranges)))


def test_own_treeshap_matches_lightgbm(demo_model: ScoringModel, demo_rows: list[dict[str, Any]]) -> None:
    _check_kernel(demo_model, _kernel_rows(demo_model, demo_rows))


@pytest.mark.slow
@pytest.mark.parametrize("which", ["heloc", "german"])
def test_own_treeshap_matches_lightgbm_on_real_data(which: str, request: pytest.FixtureRequest) -> None:
    model = load_model(request.getfixturevalue(f"{which}_model_dir"))
    data: Dataset = request.getfixturevalue(f"{which}_data")
    _check_kernel(model, _kernel_rows(model, _records(data, 400, step=3)))


def test_own_kernel_and_lightgbm_give_the_same_explanations(demo_model: ScoringModel, demo_spec: ProductSpec,
                                                             demo_rows: list[dict[str, Any]],
                                                             demo_explained: list[Explanation]) -> None:
    """The Explainer on LightGBM's pred_contrib/predict (``own_kernel=False``) and on scoring.treeshap:
    the same outputs bit for bit, the same attributions to 1e-9, the same reasons and recourse."""
    lightgbm = Explainer(demo_model, demo_spec, own_kernel=False).explain_many(demo_rows[:150])
    for ours, theirs in zip(demo_explained[:150], lightgbm, strict=True):
        assert ours.output == theirs.output and ours.probability == theirs.probability
        for key in ("attributions", "attributions_all", "feature_attributions"):
            assert max(abs(getattr(ours, key)[f] - getattr(theirs, key)[f]) for f in getattr(ours, key)) <= 1e-9
        assert ours.checks.faithfulness.detail["delta_pd"] == theirs.checks.faithfulness.detail["delta_pd"]
        assert ours.negative_ranked == theirs.negative_ranked
        assert (ours.recourse is None) == (theirs.recourse is None)
        if ours.recourse is not None and theirs.recourse is not None:
            mine, other = ours.recourse.to_dict(), theirs.recourse.to_dict()
            mine.pop("candidates_scored"), other.pop("candidates_scored")
            assert mine == other


def test_encode_many_is_encode_row(demo_model: ScoringModel, demo_spec: ProductSpec,
                                   demo_rows: list[dict[str, Any]]) -> None:
    from decimal import Decimal

    from scoring.explain import encode_many

    odd: list[dict[str, Any]] = [{}, {f.name: None for f in demo_spec.model_inputs},
                                 {f.name: "junk" for f in demo_spec.model_inputs},
                                 {f.name: True for f in demo_spec.model_inputs},
                                 {f.name: Decimal("NaN") for f in demo_spec.model_inputs},
                                 {f.name: 10**400 for f in demo_spec.model_inputs}]
    rows = [*demo_rows, *odd]
    expected = np.vstack([demo_model.encoder.encode_row(v) for v in rows])
    got = encode_many(demo_model.encoder, rows)
    assert np.array_equal(expected, got, equal_nan=True)
    assert encode_many(demo_model.encoder, []).shape == (0, demo_model.encoder.n_features)


@pytest.mark.slow
@pytest.mark.parametrize("which", ["heloc", "german"])
def test_encode_many_is_encode_row_on_real_data(which: str, request: pytest.FixtureRequest) -> None:
    from scoring.explain import encode_many

    model = load_model(request.getfixturevalue(f"{which}_model_dir"))
    rows = _records(request.getfixturevalue(f"{which}_data"), 600, step=1)
    assert np.array_equal(np.vstack([model.encoder.encode_row(v) for v in rows]), encode_many(model.encoder, rows),
                          equal_nan=True)


def test_stored_json_is_json_dumps_of_to_dict(demo_explained: list[Explanation], demo_explainer: Explainer,
                                              demo_rows: list[dict[str, Any]]) -> None:
    """to_json writes without building the dict: the same text, and it reads back to the same explanation
    (the per-feature attribution of a single-feature field, left out of the stored form, comes back)."""

    explanations = [*demo_explained, demo_explainer.explain_benchmark(demo_rows[0])]
    odd = demo_explained[0]
    explanations += [replace(odd, recourse=None),
                     replace(odd, checks=replace(odd.checks, additivity=replace(
                         odd.checks.additivity, detail={**odd.checks.additivity.detail, "residual": math.nan}))),
                     replace(odd, attributions={**odd.attributions, "amount": 1})]
    for explanation in explanations:
        text = explanation.to_json()
        assert text == json.dumps(explanation.to_dict(), allow_nan=False)
        assert Explanation.from_dict(json.loads(text)).to_dict() == explanation.to_dict()
    stored = json.loads(demo_explained[0].to_json())["feature_attributions"]
    assert set(stored) == {n for n in demo_explained[0].feature_attributions if "=" in n}
    with pytest.raises(ValueError):
        replace(odd, output=math.inf).to_json()


def test_stored_form_is_to_dict_exactly(demo_explained: list[Explanation], demo_explainer: Explainer,
                                        demo_rows: list[dict[str, Any]]) -> None:
    """The stored form (a compact row and the context every explanation of the model shares) expands back to
    to_dict exactly, through JSON text: nothing is dropped, every float is the same float."""
    odd = demo_explained[0]
    explanations = [*demo_explained, demo_explainer.explain_benchmark(demo_rows[0]), replace(odd, recourse=None),
                    replace(odd, checks=replace(odd.checks, additivity=replace(
                        odd.checks.additivity, detail={**odd.checks.additivity.detail, "residual": math.nan}))),
                    replace(odd, attributions={**odd.attributions, "amount": 1}),
                    # names the context does not list: kept as a mapping, still read back exactly
                    replace(odd, attributions_all=dict(reversed(list(odd.attributions_all.items()))))]
    contexts = set()
    for explanation in explanations:
        context = json.loads(json.dumps(explanation.stored_context()))
        contexts.add(json.dumps(context, sort_keys=True))
        text = explanation.to_stored_json(context)
        row = json.loads(text)
        assert row["format"] == STORED_FORMAT and "reference_values" not in row
        assert expand_stored(row, context) == json.loads(explanation.to_json())
        assert Explanation.from_dict(expand_stored(row, context)).to_dict() == explanation.to_dict()
    # every demo explanation shares one context (the benchmark's method has its own feature names)
    assert len({json.dumps(e.stored_context(), sort_keys=True) for e in demo_explained}) == 1
    context = odd.stored_context()
    row = odd.to_stored(context)
    assert row["attributions"] == list(odd.attributions.values())
    assert row["checks"]["faithfulness"]["detail"]["delta_pd"] == list(
        odd.checks.faithfulness.detail["delta_pd"].values())
    assert len(odd.to_stored_json(context)) < 0.7 * len(odd.to_json())
    # a row stored before format 2 (the full to_dict) is read as it is; a format 2 row needs its context
    assert expand_stored(odd.to_dict(), None) == odd.to_dict()
    with pytest.raises(ValueError):
        expand_stored(row, None)
    with pytest.raises(ValueError):
        expand_stored(row, {**context, "fields": context["fields"][:-1]})
    with pytest.raises(ValueError):
        replace(odd, output=math.inf).to_stored_json(context)


def test_batch_stored_form_is_each_explanations_stored_form(demo_explained: list[Explanation],
                                                            demo_explainer: Explainer,
                                                            demo_rows: list[dict[str, Any]]) -> None:
    """The batch path writes the stored form straight from the chunk's arrays: the same JSON values as
    to_stored_json of each explanation, checks (failed ones included) and recourse included."""
    assert any(not e.checks.all_passed for e in demo_explained)
    assert any(e.recourse is not None and e.recourse.found for e in demo_explained)
    batch = demo_explainer.explain_many_stored(demo_rows, chunk_rows=97)
    context = demo_explained[0].stored_context()
    assert batch.context == context
    assert batch.base_value == demo_explained[0].base_value and batch.method == METHOD_TREE
    assert len(batch.texts) == len(demo_explained)
    for i, explanation in enumerate(demo_explained):
        assert json.loads(batch.texts[i]) == json.loads(explanation.to_stored_json(context))
        assert batch.checks_passed[i] == explanation.checks.all_passed
        assert batch.outputs[i] == explanation.output and batch.decisions[i] == explanation.decision
    assert demo_explainer.explain_many_stored([]).texts == []


# --- the logistic benchmark -------------------------------------------------------------------------------

def test_linear_benchmark_attributions_are_exact(demo_explainer: Explainer, demo_model: ScoringModel,
                                                 demo_rows: list[dict[str, Any]]) -> None:
    benchmark = demo_model.benchmark
    rows = list(demo_explainer.reference_group.rows)
    coefficients = np.asarray(benchmark.coefficients)
    group_mean = (benchmark.design(demo_model.reference[rows]) * coefficients).mean(axis=0)
    for values in demo_rows[:25]:
        explanation = demo_explainer.explain_benchmark(values)
        assert explanation.method == METHOD_LINEAR and explanation.recourse is None
        features = demo_model.encoder.encode_row(values)
        log_odds = float(benchmark.margin(features)[0])
        assert math.isclose(explanation.output, log_odds, abs_tol=1e-12)
        assert abs(explanation.base_value + math.fsum(explanation.attributions.values()) - log_odds) <= 1e-9
        assert explanation.checks.additivity.passed and explanation.checks.determinism.passed
        assert math.isclose(explanation.probability, demo_model.benchmark_score(values), abs_tol=1e-12)
        # by hand: beta_j * (d_j(x) - mean over the cutoff group of d_j), summed per field
        by_column = benchmark.design(features)[0] * coefficients - group_mean
        owners = list(demo_model.feature_field) + [demo_model.feature_field[i] for i in benchmark.indicator_features]
        for field_name, value in explanation.attributions.items():
            own = [v for v, owner in zip(by_column, owners, strict=True) if owner == field_name]
            assert math.isclose(value, math.fsum(own), abs_tol=1e-12)
