"""Neutral categories: values that must never count for or against an applicant (a medical loan purpose,
FCRA 604(g) / Reg V 1022.30; a wedding, a marital-status proxy, Reg B 1002.6(b); retired, an age proxy,
Reg B 1002.6(b)(2),(5)) are encoded exactly as their field's reference level, so the model cannot tell
them apart, and are never stated as a reason. Older model artifacts (no neutral mapping) score as before.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from scoring import demo
from scoring.adverse_action import ReasonError, principal_reasons
from scoring.artifact import ENCODER_FILE
from scoring.explain import Explainer
from scoring.features import FeatureEncoder
from scoring.predict import load_model
from scoring.spec import ProductSpec, SpecError, get_spec, parse_spec, validate_fields

from .conftest import edit_field, spec_text

NEUTRAL_PAIRS = [("purpose_category", "medical"), ("purpose_category", "wedding"), ("employment_type", "retired")]


@pytest.fixture(scope="module")
def spec() -> ProductSpec:
    return get_spec("demo")


@pytest.fixture(scope="module")
def rows(spec: ProductSpec) -> list[dict[str, Any]]:
    frame, _ = demo.generate(60, 2718)
    return [validate_fields(spec, {k: v for k, v in r.items() if v is not None}) for r in frame.to_dict("records")]


# --- the spec ----------------------------------------------------------------------------------------

def test_the_demo_spec_declares_its_neutral_values_with_why_and_a_reference(spec: ProductSpec) -> None:
    purpose, employment = spec.field("purpose_category"), spec.field("employment_type")
    assert set(purpose.neutral_categories) == {"medical", "wedding"}
    assert "604(g)" in purpose.neutral_categories["medical"]
    assert "marital" in purpose.neutral_categories["wedding"]
    assert set(employment.neutral_categories) == {"retired"}
    assert "1002.6(b)(2)" in employment.neutral_categories["retired"]
    assert purpose.reference_category == "debt_consolidation"
    assert employment.reference_category == "salaried"
    # A field without a declared reference still has a well-defined one: its first category.
    assert spec.field("housing").reference_category == "own"
    assert not spec.field("housing").neutral_categories


def _demo_with(field_name: str, old: str, new: str) -> str:
    return edit_field(spec_text("demo"), field_name, old, new)


def test_an_unknown_neutral_value_is_refused_naming_field_and_value() -> None:
    text = _demo_with("purpose_category", 'wedding = "a marital', 'honeymoon = "a marital')
    with pytest.raises(SpecError) as caught:
        parse_spec(text)
    message = str(caught.value)
    assert "'purpose_category'" in message and "['honeymoon']" in message and "not among its categories" in message


@pytest.mark.parametrize(("old", "new", "problem"), [
    ('reference = "debt_consolidation"', 'reference = "groceries"', "reference 'groceries' is not one of"),
    ('reference = "debt_consolidation"\n', "", "must declare its reference level"),
    ('reference = "debt_consolidation"', 'reference = "medical"', "cannot itself be neutral"),
    ('medical = "FCRA 604(g) and Reg V 1022.30 restrict using medical information to decide credit eligibility"',
     'medical = " "', "need the reason they are neutral"),
])
def test_a_bad_reference_or_unexplained_neutral_value_is_refused(old: str, new: str, problem: str) -> None:
    with pytest.raises(SpecError, match=problem) as caught:
        parse_spec(_demo_with("purpose_category", old, new))
    assert caught.value.field_name == "purpose_category"


def test_neutral_values_only_on_category_fields() -> None:
    text = _demo_with("credit_score", 'unit = "points"', 'unit = "points"\nneutral_categories = { "300" = "x" }')
    with pytest.raises(SpecError, match="only for category fields"):
        parse_spec(text)


# --- the encoder -------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["onehot", "native"])
@pytest.mark.parametrize(("field_name", "value"), NEUTRAL_PAIRS)
def test_a_neutral_value_encodes_exactly_as_the_reference(spec: ProductSpec, rows: list[dict[str, Any]],
                                                          mode: str, field_name: str, value: str) -> None:
    import pandas as pd

    encoder = FeatureEncoder.from_spec(spec, category_mode=mode)
    reference = spec.field(field_name).reference_category
    neutral_rows = [{**row, field_name: value} for row in rows]
    reference_rows = [{**row, field_name: reference} for row in rows]
    for a, b in zip(neutral_rows, reference_rows, strict=True):
        assert np.array_equal(encoder.encode_row(a), encoder.encode_row(b), equal_nan=True)
    assert np.array_equal(encoder.encode_frame(pd.DataFrame(neutral_rows)),
                          encoder.encode_frame(pd.DataFrame(reference_rows)), equal_nan=True)
    # ... and a non-neutral category is still told apart.
    other = [{**row, field_name: "small_business" if field_name == "purpose_category" else "hourly"} for row in rows]
    assert not np.array_equal(encoder.encode_frame(pd.DataFrame(other)),
                              encoder.encode_frame(pd.DataFrame(reference_rows)), equal_nan=True)


def test_the_encoder_round_trips_its_neutral_mapping(spec: ProductSpec) -> None:
    encoder = FeatureEncoder.from_spec(spec)
    raw = json.loads(json.dumps(encoder.to_dict()))
    purpose = next(f for f in raw["fields"] if f["name"] == "purpose_category")
    assert purpose["neutral_as"] == {"medical": "debt_consolidation", "wedding": "debt_consolidation"}
    assert FeatureEncoder.from_dict(raw).to_dict() == encoder.to_dict()
    housing = next(f for f in raw["fields"] if f["name"] == "housing")
    assert "neutral_as" not in housing  # nothing written where nothing is neutral: older bytes unchanged


def test_an_older_artifact_without_the_mapping_scores_as_it_always_did(spec: ProductSpec,
                                                                     rows: list[dict[str, Any]]) -> None:
    """An encoder saved before neutral values existed has no ``neutral_as``: medical keeps its own column."""
    raw = FeatureEncoder.from_spec(spec).to_dict()
    for field in raw["fields"]:
        field.pop("neutral_as", None)
    old = FeatureEncoder.from_dict(raw)
    row = {**rows[0], "purpose_category": "medical"}
    features = dict(zip(old.feature_names, old.encode_row(row), strict=True))
    assert features["purpose_category=medical"] == 1.0
    assert features["purpose_category=debt_consolidation"] == 0.0


def test_an_encoder_mapping_a_neutral_value_to_an_unknown_category_is_refused(spec: ProductSpec) -> None:
    raw = FeatureEncoder.from_spec(spec).to_dict()
    purpose = next(f for f in raw["fields"] if f["name"] == "purpose_category")
    purpose["neutral_as"] = {"medical": "groceries"}
    with pytest.raises(ValueError, match="purpose_category"):
        FeatureEncoder.from_dict(raw)


# --- the trained model: identical scores and attributions --------------------------------------------

def test_the_saved_artifact_carries_the_mapping(demo_model_path: Path) -> None:
    raw = json.loads((demo_model_path / ENCODER_FILE).read_text())
    employment = next(f for f in raw["fields"] if f["name"] == "employment_type")
    assert employment["neutral_as"] == {"retired": "salaried"}


@pytest.mark.parametrize(("field_name", "value"), NEUTRAL_PAIRS)
def test_neutral_and_reference_get_identical_scores_and_attributions(demo_model_path: Path, spec: ProductSpec,
                                                                     rows: list[dict[str, Any]],
                                                                     field_name: str, value: str) -> None:
    model = load_model(demo_model_path)
    explainer = Explainer.for_model(model, spec)
    reference = spec.field(field_name).reference_category
    for row in rows[:8]:
        neutral, baseline = {**row, field_name: value}, {**row, field_name: reference}
        assert model.score(neutral) == model.score(baseline)
        a, b = explainer.explain(neutral), explainer.explain(baseline)
        assert a.probability == b.probability and a.output == b.output
        assert dict(a.attributions) == dict(b.attributions)
        assert dict(a.feature_attributions) == dict(b.feature_attributions)


# --- reasons: defence in depth -----------------------------------------------------------------------

def test_a_neutral_value_is_never_a_model_reason(spec: ProductSpec) -> None:
    attributions = {"purpose_category": 2.0, "employment_type": 1.5, "credit_score": 0.5}
    values = {"purpose_category": "medical", "employment_type": "retired", "credit_score": 580}
    reasons = principal_reasons(spec, attributions=attributions, knockout_reason=None, values=values)
    assert [r.field for r in reasons] == ["credit_score"]
    # The same attributions with non-neutral values do state them.
    values = {**values, "purpose_category": "small_business", "employment_type": "hourly"}
    stated = principal_reasons(spec, attributions=attributions, knockout_reason=None, values=values)
    assert [r.field for r in stated] == ["purpose_category", "employment_type", "credit_score"]


def test_an_officer_cannot_state_a_neutral_value_as_a_reason(spec: ProductSpec) -> None:
    with pytest.raises(ReasonError, match="'medical' is neutral"):
        principal_reasons(spec, attributions={}, knockout_reason=None, officer_factors=["purpose_category"],
                          values={"purpose_category": "medical"})


def test_recourse_never_suggests_a_neutral_value(demo_model_path: Path, spec: ProductSpec,
                                                 rows: list[dict[str, Any]]) -> None:
    """Were the purpose actionable, recourse could move it, but never to medical or wedding."""
    import dataclasses

    from scoring.counterfactual import RecourseSearch
    from scoring.policy import APPROVED, policy_decide

    edited = parse_spec(edit_field(spec_text("demo"), "purpose_category", "actionable = false", "actionable = true"))
    # The same model inputs and encoding; only ``actionable`` differs, so the demo model serves it.
    actionable = dataclasses.replace(edited, spec_hash=spec.spec_hash)
    model = load_model(demo_model_path)
    search = RecourseSearch(model, actionable)
    moved = []
    for row in rows:
        values = {**row, "purpose_category": "small_business"}
        if policy_decide(actionable.policy, model.score(values), values).outcome == APPROVED:
            continue
        recourse = search.find(values)
        moved += [new for name, _, new in recourse.changes if name == "purpose_category"]
    assert moved, "no recourse moved the purpose: the test shows nothing"
    assert not {"medical", "wedding"} & set(moved)
    # The candidate moves themselves (a tie with the reference level could otherwise pick a neutral value).
    position = search.actionable_fields.index("purpose_category")
    values = {**rows[0], "purpose_category": "small_business"}
    options = search._options(position, search.actionable[position], model.encoder.encode_row(values), values)
    assert options is not None and "debt_consolidation" in options.values
    assert not {"medical", "wedding", "small_business"} & set(options.values)
    from_medical = {**rows[0], "purpose_category": "medical"}
    options = search._options(position, search.actionable[position], model.encoder.encode_row(from_medical),
                              from_medical)
    assert options is not None and "debt_consolidation" not in options.values  # the same features: no move
