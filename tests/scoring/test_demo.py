"""The demo product's synthetic data: valid against its spec, deterministic, and true to its documented
causal structure."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd
import pytest

from scoring import demo
from scoring.spec import ProductSpec, get_spec, validate_fields

N = 20_000
SEED = 20240601


@pytest.fixture(scope="module")
def spec() -> ProductSpec:
    return get_spec("demo")


@pytest.fixture(scope="module")
def sample() -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    return demo.generate_with_latents(N, SEED)


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mann-Whitney AUC with ties counted half."""
    ranks = pd.Series(scores).rank(method="average").to_numpy()
    positives = labels == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def python_row(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in row.items():
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        out[key] = value.item() if isinstance(value, np.generic) else value
    return out


# --- shape, determinism, validity ----------------------------------------------------------------

def test_same_seed_same_data_and_generate_matches_generate_with_latents() -> None:
    frame_a, y_a = demo.generate(2_000, 7)
    frame_b, y_b, latents = demo.generate_with_latents(2_000, 7)
    frame_c, y_c = demo.generate(2_000, 7)
    pd.testing.assert_frame_equal(frame_a, frame_b)
    pd.testing.assert_frame_equal(frame_a, frame_c)
    assert np.array_equal(y_a, y_b) and np.array_equal(y_a, y_c)
    assert list(latents.columns) == ["purpose_category", "employment_type"]
    assert latents.index.equals(frame_a.index)
    frame_d, _ = demo.generate(2_000, 8)
    assert not frame_a.equals(frame_d)


def test_columns_are_exactly_the_submitted_fields(spec: ProductSpec,
                                                  sample: tuple[pd.DataFrame, np.ndarray, pd.DataFrame],
                                                  ) -> None:
    frame, y, _ = sample
    assert list(frame.columns) == [f.name for f in spec.submitted_fields]
    assert y.dtype == np.int8 and set(np.unique(y)) == {0, 1}
    assert len(frame) == len(y) == N


def test_value_kinds_and_ranges(spec: ProductSpec,
                                sample: tuple[pd.DataFrame, np.ndarray, pd.DataFrame]) -> None:
    frame, _, _ = sample
    for field in spec.submitted_fields:
        column = frame[field.name]
        if field.type == "integer":
            assert pd.api.types.is_integer_dtype(column), field.name
        elif field.type == "number":
            assert pd.api.types.is_float_dtype(column), field.name
        if field.type in ("integer", "number"):
            assert column.notna().all(), field.name
            assert column.min() >= field.minimum and column.max() <= field.maximum, field.name
        if field.type == "category":
            assert set(column.unique()) <= set(field.categories), field.name
            assert set(column.unique()) == set(field.categories), f"{field.name}: a category never occurs"
    for money in ("amount", "annual_income"):
        cents = frame[money].to_numpy() * 100
        assert np.allclose(cents, np.round(cents)), money
    assert (frame["amount"] % 100 == 0).all()


def test_sampled_rows_pass_spec_validation(spec: ProductSpec,
                                           sample: tuple[pd.DataFrame, np.ndarray, pd.DataFrame]) -> None:
    frame, _, _ = sample
    rows = frame.sample(500, random_state=1).to_dict("records")
    for row in rows:
        cleaned = validate_fields(spec, python_row(row))
        assert set(cleaned) >= {f.name for f in spec.submitted_fields if f.required}


def test_joint_distribution_is_plausible(sample: tuple[pd.DataFrame, np.ndarray, pd.DataFrame]) -> None:
    frame, _, _ = sample
    corr = frame[["credit_score", "delinquencies_2y", "revolving_utilization", "credit_history_months",
                  "annual_income", "amount"]].corr(method="spearman")
    assert corr.loc["credit_score", "delinquencies_2y"] < -0.2
    assert corr.loc["credit_score", "revolving_utilization"] < -0.3
    assert corr.loc["credit_score", "credit_history_months"] > 0.1
    assert corr.loc["annual_income", "amount"] > 0.3
    history = frame.groupby("housing")["credit_history_months"].median()
    assert history["mortgage"] > history["rent"] and history["own"] > history["rent"]
    log_income = np.log(frame["annual_income"])
    assert abs(float(log_income.skew())) < 1.0 < float(frame["annual_income"].skew())  # lognormal-ish


def test_free_text_is_varied_and_follows_the_latents(
        sample: tuple[pd.DataFrame, np.ndarray, pd.DataFrame]) -> None:
    frame, _, latents = sample
    assert set(latents["purpose_category"]) == set(demo.PURPOSE_CATEGORIES)
    assert set(latents["employment_type"]) == set(demo.EMPLOYMENT_TYPES)
    for templates in (*demo.PURPOSE_TEMPLATES.values(), *demo.EMPLOYMENT_TEMPLATES.values()):
        assert len(templates) >= 8
    for text_field, latent in (("loan_purpose_text", "purpose_category"),
                               ("employment_text", "employment_type")):
        texts = frame[text_field]
        blank = texts.isna()
        assert 0.005 < blank.mean() < 0.05
        assert texts[~blank].map(lambda t: isinstance(t, str) and 3 <= len(t) <= 1000).all()
        distinct = texts[~blank].groupby(latents[latent][~blank]).nunique()
        assert (distinct >= 8).all(), distinct
        # No text is shared between two categories: the text determines the latent category.
        owners = pd.DataFrame({"text": texts[~blank], "latent": latents[latent][~blank]})
        assert (owners.groupby("text")["latent"].nunique() == 1).all()
    gig = frame.loc[latents["employment_type"] == "contract_or_gig", "employment_text"].dropna()
    assert gig.str.contains("rideshare|delivery|freelance|contract", case=False, regex=True).mean() > 0.5


def test_text_never_mentions_age_or_public_assistance(
        sample: tuple[pd.DataFrame, np.ndarray, pd.DataFrame]) -> None:
    frame, _, _ = sample
    texts = pd.concat([frame["loan_purpose_text"], frame["employment_text"]]).dropna()
    pattern = r"\b(?:years old|social security|welfare|food stamps|SNAP|disability|my age)\b"
    assert not texts.str.contains(pattern, case=False, regex=True).any()


def test_names_and_emails_are_obviously_fake(sample: tuple[pd.DataFrame, np.ndarray, pd.DataFrame]) -> None:
    frame, _, _ = sample
    assert frame["email"].str.fullmatch(r"[a-z]+\.[a-z]+\d+@example\.(com|org|net)").all()
    assert frame["applicant_name"].str.fullmatch(r"[A-Z][a-z]+ [A-Z][a-z]+").all()


def test_zero_rows() -> None:
    frame, y, latents = demo.generate_with_latents(0, 1)
    assert frame.shape == (0, len(demo.FIELDS)) and y.shape == (0,) and len(latents) == 0


# --- the causal structure ------------------------------------------------------------------------

def test_default_rate_in_range(sample: tuple[pd.DataFrame, np.ndarray, pd.DataFrame]) -> None:
    _, y, _ = sample
    assert 0.14 <= y.mean() <= 0.21


def test_true_log_odds_is_intercept_plus_row_sum(
        sample: tuple[pd.DataFrame, np.ndarray, pd.DataFrame]) -> None:
    frame, _, latents = sample
    contributions = demo.true_contributions(frame, latents)
    assert list(contributions.columns) == [*demo.CAUSAL_FIELDS, "purpose_category", "employment_type"]
    assert contributions.index.equals(frame.index)
    assert np.isfinite(contributions.to_numpy()).all()
    expected = demo.INTERCEPT + contributions.sum(axis=1).to_numpy()
    assert np.allclose(demo.true_log_odds(frame, latents), expected)
    # The latents can also travel as columns of the frame itself.
    assert np.allclose(demo.true_log_odds(frame.join(latents)), expected)


def test_truth_needs_the_latents(sample: tuple[pd.DataFrame, np.ndarray, pd.DataFrame]) -> None:
    frame, _, _ = sample
    with pytest.raises(ValueError, match="purpose_category"):
        demo.true_contributions(frame)


def test_causal_fields_are_the_model_inputs(spec: ProductSpec) -> None:
    # The latent categories are model inputs too: the language model reads them from the texts.
    assert set(demo.CAUSAL_FIELDS) | set(demo.LATENT_FIELDS) == {f.name for f in spec.model_inputs}
    assert {f.name for f in spec.derived_fields} == set(demo.LATENT_FIELDS)
    assert set(demo.TRUE_EFFECTS) == set(demo.CAUSAL_FIELDS) | {"purpose_category", "employment_type"}
    for effect in demo.TRUE_EFFECTS.values():
        assert effect.description.startswith(effect.field)


def test_defaults_follow_the_true_log_odds(sample: tuple[pd.DataFrame, np.ndarray, pd.DataFrame]) -> None:
    frame, y, latents = sample
    log_odds = demo.true_log_odds(frame, latents)
    assert auc(log_odds, y) > 0.75
    # Calibration: the observed rate in each decile of true PD matches the mean true PD.
    pd_true = 1 / (1 + np.exp(-log_odds))
    deciles = pd.qcut(pd_true, 10, labels=False)
    observed = pd.Series(y).groupby(deciles).mean()
    predicted = pd.Series(pd_true).groupby(deciles).mean()
    assert np.allclose(observed, predicted, atol=0.03)


@pytest.mark.parametrize("field_name", [name for name in demo.CAUSAL_FIELDS if name != "housing"])
def test_each_term_is_monotone_as_the_spec_declares(spec: ProductSpec, field_name: str) -> None:
    field = spec.field(field_name)
    assert field.minimum is not None and field.maximum is not None
    grid = np.linspace(field.minimum, field.maximum, 2_001)
    if field.type == "integer":
        grid = np.unique(np.round(grid))
    numeric = [name for name in demo.CAUSAL_FIELDS if name != "housing"]
    frame = pd.DataFrame(0.0, columns=numeric, index=range(len(grid)))
    frame[field_name] = grid
    frame["housing"] = "rent"
    frame["purpose_category"] = "debt_consolidation"
    frame["employment_type"] = "salaried"
    term = demo.true_contributions(frame)[field_name].to_numpy()
    steps = np.diff(term)
    assert np.ptp(term) > 0.3, f"{field_name} has too small an effect"
    direction = demo.TRUE_EFFECTS[field_name].direction
    if field.monotone == "increasing":
        assert (steps >= -1e-12).all()
        assert direction == "increasing"
    elif field.monotone == "decreasing":
        assert (steps <= 1e-12).all()
        assert direction == "decreasing"
    else:
        assert direction not in ("increasing", "decreasing")


def test_documented_reference_values_have_zero_terms() -> None:
    reference = pd.DataFrame([{
        "amount": 10_000.0, "term_months": 36, "annual_income": 60_000.0, "employment_length_years": 3,
        "housing": "rent", "credit_score": 700, "delinquencies_2y": 0, "inquiries_6m": 0,
        "revolving_utilization": 30.0, "open_accounts": 10, "credit_history_months": 120,
        "public_records": 0, "purpose_category": "debt_consolidation", "employment_type": "salaried",
    }])
    assert np.allclose(demo.true_contributions(reference).to_numpy(), 0.0)
    assert demo.true_log_odds(reference)[0] == pytest.approx(demo.INTERCEPT)


def test_documented_sizes_match_the_functions() -> None:
    """Spot-check the docstring table against the code, so the documentation cannot drift."""
    base = {"amount": 10_000.0, "term_months": 36, "annual_income": 60_000.0, "employment_length_years": 3,
            "housing": "rent", "credit_score": 700, "delinquencies_2y": 0, "inquiries_6m": 0,
            "revolving_utilization": 30.0, "open_accounts": 10, "credit_history_months": 120,
            "public_records": 0, "purpose_category": "debt_consolidation", "employment_type": "salaried"}
    docstring = demo.__doc__ or ""
    table = {line.split()[0]: line for line in docstring.splitlines() if line.split()[:1]
             and line.split()[0] in demo.CAUSAL_FIELDS}
    cases = {"amount": 40_000.0, "term_months": 60, "annual_income": 20_000.0, "employment_length_years": 0,
             "credit_score": 600, "delinquencies_2y": 3, "inquiries_6m": 8, "revolving_utilization": 90.0,
             "open_accounts": 0, "credit_history_months": 24, "public_records": 2}
    for name, value in cases.items():
        term = float(demo.true_contributions(pd.DataFrame([{**base, name: value}]))[name].iloc[0])
        documented = f"{term:+.2f}"
        assert documented in table[name] or documented.replace("+0.", "+.") in table[name], (name, term)
    assert f"INTERCEPT = {demo.INTERCEPT}" in docstring
    for category, effect in {**demo.PURPOSE_EFFECTS, **demo.EMPLOYMENT_EFFECTS}.items():
        pattern = rf"{category} {re.escape('0' if effect == 0 else f'{effect:+.2f}')}\b"
        assert re.search(pattern, " ".join(docstring.split())), category


def test_latent_terms_are_modest_and_documented() -> None:
    assert demo.PURPOSE_EFFECTS["small_business"] > 0.3
    assert demo.EMPLOYMENT_EFFECTS["contract_or_gig"] > 0.2
    # The truth must not reward medical information, a marital-status signal or an age proxy.
    assert demo.PURPOSE_EFFECTS["medical"] == demo.PURPOSE_EFFECTS["wedding"] == 0.0
    assert demo.EMPLOYMENT_EFFECTS["retired"] <= 0.0
    assert max(abs(v) for v in (*demo.PURPOSE_EFFECTS.values(), *demo.EMPLOYMENT_EFFECTS.values())) <= 0.6


def test_true_attributions_sum_to_the_log_odds_gap(
        sample: tuple[pd.DataFrame, np.ndarray, pd.DataFrame]) -> None:
    frame, _, latents = sample
    reference, reference_latents = frame.iloc[:1000], latents.iloc[:1000]
    attributions = demo.true_attributions(frame, reference, latents, reference_latents)
    gap = demo.true_log_odds(frame, latents) - demo.true_log_odds(reference, reference_latents).mean()
    assert np.allclose(attributions.sum(axis=1).to_numpy(), gap)


def test_no_single_field_dominates_denials(spec: ProductSpec,
                                           sample: tuple[pd.DataFrame, np.ndarray, pd.DataFrame]) -> None:
    """Against applicants at the cutoff, the top adverse factor of denied applicants varies."""
    frame, _, latents = sample
    pd_true = demo.true_pd(frame, latents)
    cutoff, band = spec.policy.cutoff, spec.policy.refer_band
    at_cutoff = np.abs(pd_true - cutoff) < 0.02
    denied = pd_true >= cutoff + band
    assert at_cutoff.sum() > 200 and denied.sum() > 1_000
    attributions = demo.true_attributions(frame[denied], frame[at_cutoff],
                                          latents[denied], latents[at_cutoff])
    top = attributions.idxmax(axis=1).value_counts(normalize=True)
    assert top.max() < 0.35, top
    assert (top >= 0.03).sum() >= 6, top


def test_two_hundred_thousand_rows() -> None:
    frame, y = demo.generate(200_000, 3)
    assert frame.shape == (200_000, len(demo.FIELDS)) and len(y) == 200_000
