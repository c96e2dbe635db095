"""The shipped HELOC and German Credit specs load, keep prohibited bases out of the model, and give every
model input a specific reason; edited copies that break those rules are refused, naming the field."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from scoring.datasets import shared_data_dir
from scoring.reasons import FORM_C1_BY_KEY
from scoring.spec import PRODUCTS_DIR, ProductSpec, SpecError, load_spec, parse_spec, shipped_specs

from .conftest import edit_field, spec_text

GERMAN_MONITORING = ("personal_status_sex", "age_years", "foreign_worker", "telephone")


def _assert_specific_reasons(spec: ProductSpec) -> None:
    for field_spec in spec.model_inputs:
        assert field_spec.reason, field_spec.name
        if field_spec.reason in spec.reasons:
            reason = spec.reasons[field_spec.reason]
            assert reason.text and reason.customer_text and reason.fcra_key_factor
            assert 1 <= reason.hmda_code <= 9
        else:
            assert not FORM_C1_BY_KEY[field_spec.reason].generic, field_spec.name


def test_shipped_specs_load() -> None:
    specs = shipped_specs()
    assert {"heloc", "german-credit"} <= set(specs)
    for path in sorted(PRODUCTS_DIR.glob("*.toml")):
        load_spec(path)


def test_heloc_spec(heloc_spec: ProductSpec) -> None:
    assert heloc_spec.credit_type == "heloc"
    assert heloc_spec.data_loader == "heloc"
    assert heloc_spec.data_path == "heloc/heloc_dataset_v1.csv"
    assert len(heloc_spec.model_inputs) == 23
    assert heloc_spec.monitoring_fields == ()
    assert heloc_spec.creditor["name"]
    for field_spec in heloc_spec.fields:
        assert field_spec.source == "bureau" and field_spec.type == "integer"
        assert field_spec.minimum is not None and field_spec.maximum is not None
        assert {-7, -8, -9} <= set(field_spec.special_values)
    assert set(heloc_spec.field("MaxDelq2PublicRecLast12M").special_values) == {-9, -8, -7, 8, 9}
    assert set(heloc_spec.field("MaxDelqEver").special_values) == {-9, -8, -7, 1, 9}
    _assert_specific_reasons(heloc_spec)
    # Each bureau attribute has its own product reason (no two fields share one).
    reasons = [f.reason for f in heloc_spec.model_inputs]
    assert len(set(reasons)) == len(reasons)
    knockout = heloc_spec.policy.knockouts[0]
    assert knockout.reason == "no_credit_file" and knockout.applies(-9) and not knockout.applies(60)
    assert 0.3 < heloc_spec.policy.cutoff < 0.6


def test_heloc_monotone_directions_follow_fico_dictionary(heloc_spec: ProductSpec) -> None:
    path = shared_data_dir() / Path(heloc_spec.data_path).parent / "heloc_data_dictionary-2.xlsx"
    dictionary = pd.read_excel(path, sheet_name="Data Dictionary")
    column = "Monotonicity Constraint (with respect to probability of bad = 1)"
    expected: dict[str, str | None] = {}
    for _, row in dictionary.iterrows():
        name, rule = row["Variable Names"], row[column]
        if row.get("Role") != "predictor" or not isinstance(rule, str):
            continue
        rule = rule.lower()
        if "no constraint" in rule:
            expected[name] = None
        elif "increasing" in rule:
            expected[name] = "increasing"
        else:  # "Monotonically Decreasing" and "Values 0-7 / 2-8 are monotonically decreasing"
            expected[name] = "decreasing"
    assert set(expected) == set(heloc_spec.field_names)
    for name, direction in expected.items():
        assert heloc_spec.field(name).monotone == direction, name


def test_german_spec(german_spec: ProductSpec) -> None:
    assert german_spec.slug == "german-credit"
    assert german_spec.credit_type == "consumer_instalment"
    assert german_spec.data_loader == "german"
    assert len(german_spec.fields) == 20
    assert {f.name for f in german_spec.monitoring_fields} == set(GERMAN_MONITORING)
    model_inputs = {f.name for f in german_spec.model_inputs}
    assert not model_inputs & set(GERMAN_MONITORING)
    assert len(model_inputs) == 16
    assert german_spec.field("foreign_worker").prohibited_basis == "national_origin"
    assert german_spec.field("credit_amount").unit == "DM"
    for field_spec in german_spec.fields:
        if field_spec.type == "category":
            assert all(c.startswith("A") for c in field_spec.categories)
            assert set(field_spec.category_labels) == set(field_spec.categories), field_spec.name
    _assert_specific_reasons(german_spec)


@pytest.mark.parametrize("field_name", GERMAN_MONITORING)
def test_german_prohibited_basis_as_model_input_is_refused(field_name: str) -> None:
    text = spec_text("german-credit")
    text = edit_field(text, field_name, 'role = "monitoring_only"', 'role = "model_input"\nreason = "job"')
    with pytest.raises(SpecError) as caught:
        parse_spec(text, origin="german-credit")
    assert caught.value.field_name == field_name
    assert field_name in str(caught.value)
    assert "prohibited basis" in str(caught.value)


@pytest.mark.parametrize(("slug", "field_name", "reason_line"), [
    ("german-credit", "duration_months", 'reason = "loan_duration"'),
    ("german-credit", "purpose", 'reason = "loan_purpose"'),
    ("heloc", "MSinceMostRecentDelq", 'reason = "recent_delinquency"'),
])
def test_model_input_without_reason_is_refused(slug: str, field_name: str, reason_line: str) -> None:
    text = edit_field(spec_text(slug), field_name, reason_line + "\n", "")
    with pytest.raises(SpecError) as caught:
        parse_spec(text, origin=slug)
    assert caught.value.field_name == field_name
    assert "without a specific adverse-action reason" in str(caught.value)


TINY = '''
slug = "tiny"
credit_type = "consumer_instalment"
[policy]
cutoff = 0.3
refer_band = 0.05
[reasons.short_history]
text = "Length of credit history is too short"
[[fields]]
name = "history_months"
type = "integer"
min = 0
max = 900
source = "bureau"
role = "model_input"
monotone = "decreasing"
reason = "short_history"
[[fields]]
name = "applicant_gender"
type = "category"
categories = ["f", "m", "x"]
source = "applicant"
role = "monitoring_only"
required = false
'''


def test_tiny_inline_spec_loads() -> None:
    spec = parse_spec(TINY)
    assert [f.name for f in spec.model_inputs] == ["history_months"]
    assert [f.name for f in spec.monitoring_fields] == ["applicant_gender"]


def test_tiny_spec_with_prohibited_model_input_is_refused() -> None:
    text = TINY.replace('role = "monitoring_only"', 'role = "model_input"\nreason = "short_history"')
    with pytest.raises(SpecError) as caught:
        parse_spec(text)
    assert caught.value.field_name == "applicant_gender"


def test_tiny_spec_without_reason_is_refused() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(TINY.replace('reason = "short_history"\n', ""))
    assert caught.value.field_name == "history_months"


def test_tiny_spec_with_generic_reason_is_refused() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(TINY.replace('reason = "short_history"\n', 'reason = "other"\n'))
    assert caught.value.field_name == "history_months"
    assert "generic" in str(caught.value)
