"""Recourse: only actionable fields move, inside their ranges and types, in the risk-lowering direction; the
change is the smallest on its path, verified by re-scoring; impossible cases say why."""

from __future__ import annotations

import math
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from scoring import demo
from scoring.counterfactual import NOT_FOUND, Recourse, RecourseSearch, find_recourse
from scoring.datasets import Dataset
from scoring.explain import Explainer
from scoring.features import to_float
from scoring.policy import APPROVED, policy_decide
from scoring.predict import ScoringModel, load_model
from scoring.spec import ProductSpec, get_spec, validate_fields


@pytest.fixture(scope="module")
def demo_spec() -> ProductSpec:
    return get_spec("demo")


@pytest.fixture(scope="module")
def demo_model(demo_model_path: Path) -> ScoringModel:
    return load_model(demo_model_path)


@pytest.fixture(scope="module")
def search(demo_model: ScoringModel, demo_spec: ProductSpec) -> RecourseSearch:
    return Explainer.for_model(demo_model, demo_spec).recourse_search


@pytest.fixture(scope="module")
def not_approved(demo_spec: ProductSpec, demo_model: ScoringModel) -> list[tuple[dict[str, Any], float]]:
    """Fresh demo applications that are denied or referred, with their PD, lowest PD first."""
    frame, _ = demo.generate(1500, 777)
    out = []
    for record in frame.to_dict("records"):
        values = validate_fields(demo_spec, {k: v for k, v in record.items() if v is not None})
        probability = demo_model.score(values)
        if policy_decide(demo_spec.policy, probability, values).outcome != APPROVED:
            out.append((values, probability))
    return sorted(out, key=lambda pair: pair[1])


def _step(spec: ProductSpec, name: str) -> float:
    field_spec = spec.field(name)
    return 1.0 if field_spec.type == "integer" or field_spec.unit in ("USD", "DM") else 0.1


def _check_valid(recourse: Recourse, values: dict[str, Any], spec: ProductSpec, model: ScoringModel) -> None:
    assert recourse.found and recourse.verified and recourse.changes
    actionable = {f.name for f in spec.model_inputs if f.actionable}
    changed = dict(values)
    for name, old, new in recourse.changes:
        field_spec = spec.field(name)
        assert name in actionable, f"{name} is not actionable"
        assert old == values.get(name)
        if field_spec.type in ("number", "integer"):
            number = to_float(new)
            assert field_spec.minimum is None or number >= field_spec.minimum
            assert field_spec.maximum is None or number <= field_spec.maximum
            if field_spec.type == "integer":
                assert type(new) is int
            if field_spec.unit in ("USD", "DM"):
                assert isinstance(new, Decimal) and new == new.to_integral_value()
            moved = number - to_float(old)
            assert moved != 0
            if field_spec.monotone == "increasing":
                assert moved < 0, f"{name} must only go down"
            elif field_spec.monotone == "decreasing":
                assert moved > 0, f"{name} must only go up"
        elif field_spec.type == "category":
            assert new in field_spec.categories and new != old
        changed[name] = new
    for name, value in values.items():
        if name not in recourse.changed_fields:
            assert changed[name] == value  # nothing else moves
    probability = model.score(changed)
    assert probability == recourse.new_probability
    assert policy_decide(spec.policy, probability, changed).outcome == APPROVED
    assert recourse.cost is not None and recourse.cost > 0
    assert set(recourse.changed_fields_in_reasons) | set(recourse.fields_not_in_reasons) == set(
        recourse.changed_fields)
    assert not set(recourse.changed_fields_in_reasons) & set(recourse.fields_not_in_reasons)
    assert recourse.model_version == model.version


def test_borderline_denial_gets_verified_recourse(not_approved: list[tuple[dict[str, Any], float]],
                                                  search: RecourseSearch, demo_spec: ProductSpec,
                                                  demo_model: ScoringModel) -> None:
    line = demo_spec.policy.cutoff + demo_spec.policy.refer_band
    values, probability = next((v, p) for v, p in not_approved if p >= line)  # the most borderline denial
    assert policy_decide(demo_spec.policy, probability, values).outcome == "denied"
    explanation = Explainer.for_model(demo_model, demo_spec).explain(values)
    recourse = explanation.recourse
    assert recourse is not None
    _check_valid(recourse, values, demo_spec, demo_model)
    assert recourse.new_probability is not None
    assert recourse.new_probability < demo_spec.policy.cutoff - demo_spec.policy.refer_band
    reasons = set(explanation.reasons)
    assert set(recourse.changed_fields_in_reasons) == set(recourse.changed_fields) & reasons


def test_a_found_recourse_note_uses_labels_and_formatted_values(not_approved: list[tuple[dict[str, Any], float]],
                                                               search: RecourseSearch, demo_spec: ProductSpec) -> None:
    """Officers read the note: the spec's labels and values as people write them, never column names."""
    internal = {f.name for f in demo_spec.fields if "_" in f.name}  # ("amount" is also an English word)
    notes = [r.note for r in (search.find(v) for v, _ in not_approved[:60]) if r.found and r.changes]
    assert notes
    for note in notes:
        assert note.startswith("approved after changing ")
        assert not internal & set(re.findall(r"[a-z_]+", note)), note
    joined = " ".join(notes)
    assert "Revolving utilisation from " in joined and re.search(r"\d%", joined), joined
    if "Loan amount" in joined:
        assert re.search(r"Loan amount from \$\d{1,3}(,\d{3})*(\.\d\d)? to \$", joined), joined


def test_recourse_properties_across_denials(not_approved: list[tuple[dict[str, Any], float]],
                                            search: RecourseSearch, demo_spec: ProductSpec,
                                            demo_model: ScoringModel) -> None:
    found = 0
    for values, _ in not_approved[:120]:
        recourse = search.find(values)
        if recourse.found:
            found += 1
            _check_valid(recourse, values, demo_spec, demo_model)
        else:
            assert not recourse.changes and recourse.note
    assert found >= 60


def test_change_is_the_smallest_on_its_path(not_approved: list[tuple[dict[str, Any], float]],
                                            search: RecourseSearch, demo_spec: ProductSpec,
                                            demo_model: ScoringModel) -> None:
    """Moving any changed field one resolution step back toward its old value loses the approval."""
    checked = 0
    for values, _ in not_approved[:60]:
        recourse = search.find(values)
        if not recourse.found:
            continue
        changed = dict(values)
        changed.update({name: new for name, _, new in recourse.changes})
        for name, old, new in recourse.changes:
            step = _step(demo_spec, name)
            back = to_float(new) + math.copysign(step, to_float(old) - to_float(new))
            if (back - to_float(old)) * (to_float(new) - to_float(old)) <= 0:
                continue  # one step back is the old value itself
            typed: Any = int(back) if isinstance(new, int) else (
                Decimal(int(back)) if isinstance(new, Decimal) else round(back, 1))
            probability = demo_model.score({**changed, name: typed})
            assert policy_decide(demo_spec.policy, probability, {**changed, name: typed}).outcome != APPROVED
            checked += 1
    assert checked >= 20


def test_hopeless_case_is_reported_with_a_note(search: RecourseSearch, demo_spec: ProductSpec) -> None:
    values = validate_fields(demo_spec, {
        "amount": "15000", "term_months": 60, "annual_income": "21000", "employment_length_years": 0,
        "housing": "other", "credit_score": 420, "delinquencies_2y": 9, "inquiries_6m": 9,
        "revolving_utilization": 120.0, "open_accounts": 1, "credit_history_months": 10, "public_records": 2,
    })
    recourse = search.find(values)
    assert not recourse.found and not recourse.verified and not recourse.changes
    assert NOT_FOUND in recourse.note
    assert recourse.new_probability is None


def test_knockout_on_an_immutable_field_is_reported(not_approved: list[tuple[dict[str, Any], float]],
                                                    search: RecourseSearch) -> None:
    values = dict(not_approved[0][0], public_records=5)
    recourse = search.find(values)
    assert not recourse.found
    # People's words: the field's label, never the rule's or the field's internal name.
    assert "Public records (bankruptcies, judgments, liens)" in recourse.note and "cannot change" in recourse.note
    assert "public_records" not in recourse.note


def test_already_approved_needs_nothing(search: RecourseSearch, demo_spec: ProductSpec) -> None:
    values = validate_fields(demo_spec, {
        "amount": "5000", "term_months": 24, "annual_income": "90000", "employment_length_years": 8,
        "housing": "mortgage", "credit_score": 780, "delinquencies_2y": 0, "inquiries_6m": 0,
        "revolving_utilization": 10.0, "open_accounts": 8, "credit_history_months": 200, "public_records": 0,
    })
    recourse = search.find(values)
    assert recourse.found and recourse.verified and not recourse.changes and recourse.cost == 0.0


def test_explain_gives_recourse_only_when_not_approved(not_approved: list[tuple[dict[str, Any], float]],
                                                       demo_model: ScoringModel, demo_spec: ProductSpec) -> None:
    explainer = Explainer.for_model(demo_model, demo_spec)
    frame, _ = demo.generate(200, 99)
    rows = [validate_fields(demo_spec, {k: v for k, v in r.items() if v is not None})
            for r in frame.to_dict("records")]
    for explanation in explainer.explain_many(rows):
        assert (explanation.recourse is None) == (explanation.decision == APPROVED)
    assert explainer.explain(rows[0], with_recourse=False).recourse is None


def test_recourse_round_trips(not_approved: list[tuple[dict[str, Any], float]], search: RecourseSearch) -> None:
    recourse = next(r for r in (search.find(v) for v, _ in not_approved) if r.found)
    assert Recourse.from_dict(recourse.to_dict()) == recourse


@pytest.mark.slow
def test_german_recourse_respects_categories_and_types(german_model_dir: Path, german_spec: ProductSpec,
                                                       german_data: Dataset) -> None:
    model = load_model(german_model_dir)
    search = RecourseSearch(model, german_spec)
    found = 0
    for record in german_data.frame.to_dict("records")[:300]:
        probability = model.score(record)
        if policy_decide(german_spec.policy, probability, record).outcome == APPROVED:
            continue
        recourse = search.find(record)
        if recourse.found:
            found += 1
            _check_valid(recourse, record, german_spec, model)
    assert found >= 10


@pytest.mark.slow
def test_no_actionable_fields_is_reported(heloc_model_dir: Path, heloc_spec: ProductSpec,
                                          heloc_data: Dataset) -> None:
    model = load_model(heloc_model_dir)
    assert not any(f.actionable for f in heloc_spec.model_inputs)
    for record in heloc_data.frame.to_dict("records")[:200]:
        if policy_decide(heloc_spec.policy, model.score(record), record).outcome != APPROVED:
            recourse = find_recourse(model, heloc_spec, record)
            assert not recourse.found and ("no actionable fields" in recourse.note or "policy rule" in recourse.note)
            break
    else:
        pytest.fail("no HELOC application was declined in the first 200 rows")


# --- the compiled batch search ----------------------------------------------------------------------------

def _without_count(recourse: Recourse) -> dict[str, Any]:
    out = recourse.to_dict()
    out.pop("candidates_scored")
    if not recourse.found and "(searched" in out["note"]:
        out["note"] = out["note"].split(" (searched")[0]
    return out


def test_find_many_is_find_one_by_one(not_approved: list[tuple[dict[str, Any], float]],
                                      search: RecourseSearch) -> None:
    rows = [values for values, _ in not_approved[:150]]
    batch = search.find_many(rows)
    for values, recourse in zip(rows, batch, strict=True):
        assert search.find(values).to_dict() == recourse.to_dict()  # bit for bit, the count included


def test_compiled_search_finds_what_the_lightgbm_search_finds(not_approved: list[tuple[dict[str, Any], float]],
                                                              demo_model: ScoringModel,
                                                              demo_spec: ProductSpec) -> None:
    """The frontier search on the compiled kernel and the exhaustive cost-ordered search scored by LightGBM
    choose the same change, verify it the same way and word it the same way (they differ only in how many
    candidates they had to score)."""
    lightgbm = RecourseSearch(demo_model, demo_spec, use_kernel=False)
    compiled = RecourseSearch(demo_model, demo_spec)
    assert compiled._kernel is not None and lightgbm._kernel is None
    rows = [values for values, _ in not_approved[::3][:250]]
    fast = compiled.find_many(rows)
    scored_fast = scored_slow = 0
    for values, recourse in zip(rows, fast, strict=True):
        slow = lightgbm.find(values)
        assert _without_count(recourse) == _without_count(slow)
        scored_fast += recourse.candidates_scored
        scored_slow += slow.candidates_scored
    assert scored_fast < scored_slow


@pytest.mark.slow
def test_compiled_search_on_german_categories(german_model_dir: Path, german_spec: ProductSpec,
                                              german_data: Dataset) -> None:
    """Categories and free-direction fields: the generic cost-ordered search, compiled, against LightGBM."""
    model = load_model(german_model_dir)
    lightgbm = RecourseSearch(model, german_spec, use_kernel=False)
    compiled = RecourseSearch(model, german_spec)
    rows = german_data.frame.to_dict("records")[:200]
    for values, recourse in zip(rows, compiled.find_many(rows), strict=True):
        assert _without_count(recourse) == _without_count(lightgbm.find(values))
        assert recourse.to_dict() == compiled.find(values).to_dict()


def test_batch_verification_scores_as_model_score(not_approved: list[tuple[dict[str, Any], float]],
                                                  search: RecourseSearch, demo_model: ScoringModel) -> None:
    rows = [values for values, _ in not_approved[:100]]
    assert search._score_many(rows) == [demo_model.score(values) for values in rows]
