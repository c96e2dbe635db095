"""Principal reasons, the reasons lint, the FCRA credit-score disclosure and HMDA denial codes.

Each test names the rule it protects and fails if that rule breaks.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import warnings
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring.adverse_action import (
    EXAMPLE_BUREAU,
    MAX_REASONS,
    BureauInfo,
    CreditScoreDisclosure,
    HmdaDenial,
    HmdaEditError,
    InsufficientReason,
    KeyFactor,
    PrincipalReason,
    ReasonError,
    ReasonLimitWarning,
    bureau_for,
    bureau_score_field,
    credit_score_disclosure,
    hmda_applies,
    hmda_denial_codes,
    hmda_other_text,
    is_inquiries_reason,
    principal_reasons,
    reason_translations_lint,
    reasons_lint,
)
from scoring.spec import (
    PRODUCTS_DIR,
    FieldSpec,
    ProductReason,
    ProductSpec,
    SpecError,
    get_spec,
    parse_spec,
    shipped_specs,
)

SCORED = dt.date(2026, 3, 2)


@pytest.fixture(scope="module")
def demo() -> ProductSpec:
    return get_spec("demo")


@pytest.fixture(scope="module")
def heloc() -> ProductSpec:
    return get_spec("heloc")


@pytest.fixture(scope="module")
def german() -> ProductSpec:
    return get_spec("german-credit")


# Six fields pushed toward denial, each with its own reason key.
SIX_NEGATIVE = {
    "revolving_utilization": 0.61, "delinquencies_2y": 0.52, "term_months": 0.40, "housing": 0.33,
    "credit_history_months": 0.21, "open_accounts": 0.11, "annual_income": -0.35, "credit_score": -0.2,
}


# --- principal reasons -------------------------------------------------------------------------------

def test_six_negative_fields_give_four_reasons_largest_first(demo: ProductSpec) -> None:
    # Reg B comment 9(b)(2)-1: no more than four reasons.
    reasons = principal_reasons(demo, attributions=SIX_NEGATIVE, knockout_reason=None)
    assert [r.field for r in reasons] == ["revolving_utilization", "delinquencies_2y", "term_months", "housing"]
    assert [r.rank for r in reasons] == [1, 2, 3, 4]
    assert [r.key for r in reasons] == ["revolving_utilization", "delinquent_obligations", "loan_term",
                                        "housing_status"]
    assert all(r.source == "model" for r in reasons)
    assert [r.attribution for r in reasons] == [0.61, 0.52, 0.40, 0.33]
    # Officer/regulator wording and customer wording both come from the spec.
    assert reasons[0].text == "Proportion of revolving credit limits in use"
    assert reasons[0].customer_text.startswith("How much of your available revolving credit")
    assert reasons[0].fcra_key_factor == "Proportion of balances to credit limits on revolving accounts is too high"
    assert reasons[1].hmda_code == 3


def test_only_fields_that_pushed_toward_denial_are_reasons(demo: ProductSpec) -> None:
    reasons = principal_reasons(demo, attributions={"annual_income": -0.4, "credit_score": 0.0, "term_months": 0.05},
                                knockout_reason=None)
    assert [r.field for r in reasons] == ["term_months"]
    assert principal_reasons(demo, attributions={"annual_income": -0.4}, knockout_reason=None) == ()


def test_fields_sharing_a_reason_collapse_into_one_ranked_by_their_sum(demo: ProductSpec) -> None:
    # amount and annual_income both map to "Income insufficient for amount of credit requested".
    attributions = {"amount": 0.30, "annual_income": 0.25, "credit_score": 0.50, "term_months": 0.45,
                    "delinquencies_2y": 0.10}
    reasons = principal_reasons(demo, attributions=attributions, knockout_reason=None)
    assert [r.key for r in reasons] == ["income_insufficient", "bureau_score", "loan_term", "delinquent_obligations"]
    income = reasons[0]
    assert income.fields == ("amount", "annual_income") and income.field == "amount"
    assert income.attribution == pytest.approx(0.55)
    assert len({r.key for r in reasons}) == len(reasons)


def test_a_negative_field_in_a_group_does_not_cancel_the_positive_one(demo: ProductSpec) -> None:
    # The reason is what pushed toward denial: a large loan stays a reason even with a high income.
    reasons = principal_reasons(demo, attributions={"amount": 0.3, "annual_income": -0.5}, knockout_reason=None)
    assert [(r.key, r.fields, r.attribution) for r in reasons] == [("income_insufficient", ("amount",), 0.3)]


def test_a_knockout_reason_comes_first(demo: ProductSpec) -> None:
    # Reg B comment 9(b)(2)-8: an automatic-denial factor is disclosed; it leads.
    reasons = principal_reasons(demo, attributions={**SIX_NEGATIVE, "public_records": 0.9},
                                knockout_reason="public_records")
    assert reasons[0].source == "knockout" and reasons[0].key == "public_records"
    assert reasons[0].field == "public_records" and reasons[0].attribution is None
    assert reasons[0].customer_text.startswith("Public records")
    assert [r.key for r in reasons[1:]] == ["revolving_utilization", "delinquent_obligations", "loan_term"]
    assert len(reasons) == MAX_REASONS
    assert [r.key for r in reasons].count("public_records") == 1
    # The rule's name works too; a reason that is not a knockout of the product does not.
    assert principal_reasons(demo, attributions={}, knockout_reason="public_records_4_or_more")[0].key == \
        "public_records"
    with pytest.raises(ReasonError, match="not the reason or name of a knockout"):
        principal_reasons(demo, attributions={}, knockout_reason="bankruptcy")


def test_heloc_no_bureau_record_knockout(heloc: ProductSpec) -> None:
    reasons = principal_reasons(heloc, attributions={}, knockout_reason="no_credit_file")
    assert [(r.key, r.field, r.text, r.hmda_code) for r in reasons] == [
        ("no_credit_file", "AverageMInFile", "No credit file", 3)]


def test_officer_factors_replace_the_models(demo: ProductSpec) -> None:
    # Comments 9(b)(2)-6 and -7: the model approved, the officer denied on judgment: only the officer's factors.
    reasons = principal_reasons(demo, attributions=SIX_NEGATIVE, knockout_reason=None,
                                officer_factors=["employment_length_years", "unverifiable_income",
                                                 "other: Insufficient bank references"])
    assert [(r.key, r.field, r.source) for r in reasons] == [
        ("length_of_employment", "employment_length_years", "officer"),
        ("unverifiable_income", None, "officer"),
        ("other", None, "officer")]
    assert reasons[2].text == reasons[2].customer_text == "Insufficient bank references"
    assert reasons[2].hmda_code == 9
    assert all(r.attribution is None for r in reasons)
    assert not {r.key for r in reasons} & {"revolving_utilization", "delinquent_obligations"}


def test_officer_factors_keep_the_officers_order_and_drop_repeats(demo: ProductSpec) -> None:
    reasons = principal_reasons(demo, attributions={}, knockout_reason=None,
                                officer_factors=["delinquencies_2y", "amount", "annual_income",
                                                 "delinquent_obligations"])
    assert [r.key for r in reasons] == ["delinquent_obligations", "income_insufficient"]


def test_officer_factors_are_checked(demo: ProductSpec, german: ProductSpec) -> None:
    with pytest.raises(ReasonError, match="monitoring_only"):
        principal_reasons(german, attributions={}, knockout_reason=None, officer_factors=["age_years"])
    with pytest.raises(ReasonError, match="neither a product reason"):
        principal_reasons(demo, attributions={}, knockout_reason=None, officer_factors=["gut_feeling"])
    with pytest.raises(ReasonError, match="specific wording"):
        principal_reasons(demo, attributions={}, knockout_reason=None, officer_factors=["other"])
    with pytest.raises(ReasonError, match="factors the officer relied on"):
        principal_reasons(demo, attributions={}, knockout_reason=None, officer_factors=[])
    with pytest.raises(ReasonError, match="at most 4"):
        principal_reasons(demo, attributions={}, knockout_reason=None,
                          officer_factors=["amount", "term_months", "housing", "credit_score", "inquiries_6m"])
    with pytest.raises(ReasonError, match=r"9\(b\)\(2\)-8"):
        principal_reasons(demo, attributions={}, knockout_reason="public_records", officer_factors=["amount"])
    kept = principal_reasons(demo, attributions={}, knockout_reason="public_records",
                             officer_factors=["amount", "public_records"])
    assert [r.key for r in kept] == ["income_insufficient", "public_records"]


def test_an_input_the_model_did_not_use_is_never_a_reason(demo: ProductSpec, german: ProductSpec) -> None:
    # Comment 9(b)(2)-4: reasons relate only to factors actually scored. A monitoring-only field, a context
    # field and an unknown name never become reasons, however large their attribution.
    reasons = principal_reasons(german, attributions={"age_years": 5.0, "personal_status_sex": 4.0,
                                                      "foreign_worker": 3.0, "telephone": 2.0, "nonsense": 9.0,
                                                      "duration_months": 0.2}, knockout_reason=None)
    assert [r.field for r in reasons] == ["duration_months"]
    reasons = principal_reasons(demo, attributions={"employment_text": 3.0, "email": 2.0, "loan_purpose_text": 1.0,
                                                    "term_months": 0.1}, knockout_reason=None)
    assert [r.field for r in reasons] == ["term_months"]


def test_encoded_features_are_credited_to_their_field(german: ProductSpec, heloc: ProductSpec) -> None:
    reasons = principal_reasons(german, attributions={"housing=A151": 0.2, "housing=A152": 0.1, "savings": 0.25},
                                knockout_reason=None)
    assert [(r.field, r.attribution) for r in reasons] == [("housing", pytest.approx(0.3)), ("savings", 0.25)]
    reasons = principal_reasons(heloc, attributions={"MSinceMostRecentDelq=-7": 0.2}, knockout_reason=None)
    assert [r.field for r in reasons] == ["MSinceMostRecentDelq"]


def test_ties_keep_spec_order(demo: ProductSpec) -> None:
    reasons = principal_reasons(demo, attributions={"public_records": 0.2, "term_months": 0.2}, knockout_reason=None)
    assert [r.field for r in reasons] == ["term_months", "public_records"]


def test_a_limit_above_four_warns_and_a_lower_limit_is_kept(demo: ProductSpec) -> None:
    with pytest.warns(ReasonLimitWarning, match=r"9\(b\)\(2\)-1"):
        reasons = principal_reasons(demo, attributions=SIX_NEGATIVE, knockout_reason=None, limit=6)
    assert len(reasons) == 6
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(principal_reasons(demo, attributions=SIX_NEGATIVE, knockout_reason=None, limit=2)) == 2
    with pytest.raises(ValueError, match="at least 1"):
        principal_reasons(demo, attributions=SIX_NEGATIVE, knockout_reason=None, limit=0)


def _with_reason(spec: ProductSpec, key: str, **changes: Any) -> ProductSpec:
    reasons = dict(spec.reasons)
    reasons[key] = dataclasses.replace(reasons[key], **changes)
    return dataclasses.replace(spec, reasons=reasons)


@pytest.mark.parametrize("wording", ["Score below cutoff", "Did not meet our internal standards",
                                     "Failed to achieve a qualifying score"])
def test_an_insufficient_reason_is_never_emitted(demo: ProductSpec, wording: str) -> None:
    # Reg B 1002.9(b)(2). parse_spec refuses such wording; a spec built in code must be caught here too.
    bad = _with_reason(demo, "loan_term", customer_text=wording)
    with pytest.raises(InsufficientReason):
        principal_reasons(bad, attributions={"term_months": 0.3}, knockout_reason=None)
    with pytest.raises(InsufficientReason):
        principal_reasons(demo, attributions={}, knockout_reason=None, officer_factors=[f"other: {wording}"])
    assert principal_reasons(bad, attributions={"delinquencies_2y": 0.3}, knockout_reason=None)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from([f.name for f in get_spec("demo").model_inputs]),
                       st.floats(min_value=-2.0, max_value=2.0, allow_nan=False), max_size=12))
def test_reasons_are_exactly_the_top_four_mapped_adverse_groups(attributions: dict[str, float]) -> None:
    # Checklist A3(c): the emitted reasons are the mapped top-k negative contributors.
    spec = get_spec("demo")
    totals: dict[str, float] = {}
    order: dict[str, int] = {}
    for position, field_spec in enumerate(spec.fields):
        value = attributions.get(field_spec.name, 0.0)
        if field_spec.is_model_input and value > 0 and field_spec.reason:
            totals[field_spec.reason] = totals.get(field_spec.reason, 0.0) + value
            order.setdefault(field_spec.reason, position)
    expected = sorted(totals, key=lambda key: (-totals[key], order[key]))[:MAX_REASONS]
    reasons = principal_reasons(spec, attributions=attributions, knockout_reason=None,
                                values={"purpose_category": "car", "employment_type": "hourly"})
    assert [r.key for r in reasons] == expected
    for reason in reasons:
        assert reason.attribution is not None
        assert math.isclose(reason.attribution, totals[reason.key], rel_tol=1e-12)


def test_a_text_derived_reason_names_the_value_read_in_english_and_spanish(demo: ProductSpec) -> None:
    # CFPB circular 2023-03's substance: the customer reads the value, never only a category of reason.
    attributions = {"purpose_category": 0.9, "employment_type": 0.5, "credit_score": 0.2}
    purpose, employment, score = principal_reasons(demo, attributions=attributions, knockout_reason=None,
                                                   values={"purpose_category": "small_business"})
    assert (purpose.key, purpose.field, purpose.value) == ("stated_purpose", "purpose_category", "small_business")
    assert purpose.text == "Stated loan purpose: starting or running a small business"
    assert purpose.customer_text == "The purpose of the loan you told us: starting or running a small business"
    assert purpose.customer_text_es == ("El destino del préstamo que nos indicó: iniciar o administrar un "
                                        "pequeño negocio")
    assert purpose.as_dict()["value"] == "small_business"
    # A blank text left the field missing: the reason says so rather than naming a value.
    assert employment.customer_text == "The type of employment you told us: none given"
    assert employment.customer_text_es == "El tipo de empleo que nos indicó: no indicó ninguno"
    assert score.value is None and "{value}" not in score.customer_text
    # An officer's factor by field or by reason key names it too.
    by_key = principal_reasons(demo, attributions={}, knockout_reason=None, officer_factors=["stated_employment_type"],
                               values={"employment_type": "self_employed"})
    assert by_key[0].customer_text == "The type of employment you told us: self-employed"
    with pytest.raises(ReasonError, match="pass the decision's input values"):
        principal_reasons(demo, attributions=attributions, knockout_reason=None)


def test_a_text_derived_reason_must_name_the_value_to_load(demo: ProductSpec) -> None:
    text = (PRODUCTS_DIR / "demo.toml").read_text(encoding="utf-8")
    vague = text.replace('customer_text = "The purpose of the loan you told us: {value}"',
                         'customer_text = "The purpose of the loan"')
    with pytest.raises(SpecError, match="must name the stated value"):
        parse_spec(vague)
    unknown = text.replace('"moving", "wedding", "other"]', '"moving", "wedding", "crypto", "other"]')
    with pytest.raises(SpecError, match="not in the extractor's catalogue"):
        parse_spec(unknown)
    orphan = text.replace('derived_from = ["loan_purpose_text"]', 'derived_from = ["email_address"]')
    with pytest.raises(SpecError, match="not a text field of this product"):
        parse_spec(orphan)


def test_a_reason_record_is_json_ready(demo: ProductSpec) -> None:
    record = principal_reasons(demo, attributions=SIX_NEGATIVE, knockout_reason=None)[0].as_dict()
    assert record["key"] == "revolving_utilization" and record["attribution"] == 0.61
    assert record["fields"] == ["revolving_utilization"] and record["source"] == "model"


# --- reasons lint (the CI check of Reg B Appendix C para. 4 and circular 2023-03's substance) ---------

@pytest.mark.parametrize("slug", sorted(shipped_specs()))
def test_every_shipped_spec_passes_the_reasons_lint(slug: str) -> None:
    spec = shipped_specs()[slug]
    assert reasons_lint(spec) == []
    assert reason_translations_lint(spec) == []


def _with_field(spec: ProductSpec, new: FieldSpec) -> ProductSpec:
    return dataclasses.replace(spec, fields=(*spec.fields, new))


def test_the_lint_rejects_a_text_derived_input_with_a_generic_reason(demo: ProductSpec) -> None:
    # Built in code: parse_spec would refuse it, which is exactly why the lint re-checks built specs.
    derived = FieldSpec(name="employment_type", label="Employment type", type="category", source="text",
                        role="model_input", categories=("salaried", "hourly", "self_employed", "other"),
                        reason="other", derived_from=("employment_text",))
    # The demo's own employment_type (a correct one) is replaced by this one.
    base = dataclasses.replace(demo, fields=tuple(f for f in demo.fields if f.name != derived.name))
    problems = reasons_lint(_with_field(base, derived))
    assert any("generic Form C-1 reason 'Other, specify'" in p for p in problems)
    assert any("text-derived" in p and "employment_type" in p for p in problems)
    # A specific but generic-category Form C-1 reason is still not enough for a text-derived input.
    problems = reasons_lint(_with_field(base, dataclasses.replace(derived, reason="temporary_employment")))
    assert problems == ["demo: model input 'employment_type' is text-derived and maps to the Form C-1 reason "
                        "'Temporary or irregular employment'; it needs a product reason naming the specific "
                        "behaviour"]
    # A product reason naming the stated value passes.
    reasons = dict(demo.reasons)
    reasons["stated_job"] = ProductReason(
        key="stated_job", text="Type of employment stated in the application",
        customer_text="The type of work you told us you do", hmda_code=2, fcra_key_factor="Type of employment")
    vague = dataclasses.replace(_with_field(base, dataclasses.replace(derived, reason="stated_job")), reasons=reasons)
    # ... but only if it names the value read from the text, not just the kind of thing it is.
    assert reasons_lint(vague) == ["demo: model input 'employment_type' is text-derived and its reason "
                                   "'stated_job' does not name the stated value ({value})"]
    reasons["stated_job"] = dataclasses.replace(reasons["stated_job"],
                                                customer_text="The type of work you told us you do: {value}")
    fixed = dataclasses.replace(vague, reasons=reasons)
    assert reasons_lint(fixed) == []


def test_the_lint_rejects_a_behavioural_input_with_a_form_reason(demo: ProductSpec) -> None:
    spending = FieldSpec(name="merchant_spend_share", label="Share of spending at certain merchants", type="number",
                         source="applicant", role="model_input", reason="excessive_obligations")
    problems = reasons_lint(_with_field(demo, spending))
    assert len(problems) == 1 and "behavioural" in problems[0]
    flagged = FieldSpec(name="night_activity", label="x", type="number", source="applicant", role="model_input",
                        reason="excessive_obligations")
    assert reasons_lint(_with_field(demo, flagged)) == []
    assert "behavioural" in reasons_lint(_with_field(demo, flagged), behavioural_fields=["night_activity"])[0]


def test_the_lint_rejects_a_model_input_without_a_reason(demo: ProductSpec) -> None:
    bare = FieldSpec(name="extra_score", label="x", type="number", source="bureau", role="model_input")
    unknown = dataclasses.replace(bare, name="extra_score_2", reason="no_such_reason")
    problems = reasons_lint(_with_field(_with_field(demo, bare), unknown))
    assert problems == ["demo: model input 'extra_score' has no adverse-action reason",
                        "demo: model input 'extra_score_2' names unknown reason 'no_such_reason'"]


# --- FCRA credit score disclosure ---------------------------------------------------------------------

def test_the_demo_disclosure_has_every_fcra_element(demo: ProductSpec) -> None:
    attributions = {"credit_score": 0.9, "amount": 0.8, "revolving_utilization": 0.5, "delinquencies_2y": 0.4,
                    "inquiries_6m": 0.2}
    assert bureau_score_field(demo) == "credit_score"
    disclosure = credit_score_disclosure(demo, values={"credit_score": 612}, attributions=attributions,
                                         bureau=bureau_for(demo), score_field="credit_score", score_date=SCORED)
    assert disclosure is not None and disclosure.has_score
    assert disclosure.bureau == EXAMPLE_BUREAU
    assert (disclosure.score, disclosure.score_range, disclosure.score_date) == (612, (300, 850), SCORED)
    assert disclosure.score_source == "Example Credit Bureau, Inc."
    # Bureau fields only (not the applicant's amount), not the score itself, in order of importance.
    assert [f.key for f in disclosure.key_factors] == ["revolving_utilization", "delinquent_obligations",
                                                       "recent_inquiries"]
    assert [f.rank for f in disclosure.key_factors] == [1, 2, 3]
    assert disclosure.key_factors[0].text == \
        "Proportion of balances to credit limits on revolving accounts is too high"
    assert all(f.text_es for f in disclosure.key_factors)


ALL_BUREAU_ADVERSE = {"revolving_utilization": 0.6, "delinquencies_2y": 0.5, "public_records": 0.4,
                      "credit_history_months": 0.3, "open_accounts": 0.2}


def test_a_fifth_key_factor_only_when_it_is_the_inquiries_factor(demo: ProductSpec) -> None:
    # FCRA 609(f)(1)(C): not more than four; 609(f)(9): inquiries "without regard to the numerical limitation".
    def factors(attributions: dict[str, float]) -> list[str]:
        disclosure = credit_score_disclosure(demo, values={"credit_score": 600}, attributions=attributions,
                                             bureau=EXAMPLE_BUREAU, score_field="credit_score", score_date=SCORED)
        assert disclosure is not None
        return [factor.key for factor in disclosure.key_factors]

    assert factors(ALL_BUREAU_ADVERSE) == ["revolving_utilization", "delinquent_obligations", "public_records",
                                           "limited_credit_experience"]
    assert factors({**ALL_BUREAU_ADVERSE, "inquiries_6m": 0.01}) == [
        "revolving_utilization", "delinquent_obligations", "public_records", "limited_credit_experience",
        "recent_inquiries"]
    assert factors({**ALL_BUREAU_ADVERSE, "inquiries_6m": 0.55}) == [
        "revolving_utilization", "recent_inquiries", "delinquent_obligations", "public_records"]


def test_a_disclosure_refuses_five_factors_without_inquiries() -> None:
    def factor(rank: int, inquiries: bool = False) -> KeyFactor:
        return KeyFactor(rank=rank, key=f"k{rank}", text=f"factor {rank}", text_es=None, is_inquiries=inquiries)

    base: dict[str, Any] = {"bureau": EXAMPLE_BUREAU, "score": 700, "score_range": (300, 850),
                            "score_date": SCORED, "score_source": "Example Credit Bureau, Inc."}
    CreditScoreDisclosure(**base, key_factors=(*(factor(i) for i in range(1, 5)), factor(5, True)))
    with pytest.raises(ValueError, match=r"609\(f\)\(9\)"):
        CreditScoreDisclosure(**base, key_factors=tuple(factor(i) for i in range(1, 6)))
    with pytest.raises(ValueError, match=r"609\(f\)\(9\)"):
        CreditScoreDisclosure(**base, key_factors=(factor(1, True), *(factor(i) for i in range(2, 5)),
                                                   factor(5, True)))
    with pytest.raises(ValueError, match="range, date and source"):
        CreditScoreDisclosure(bureau=EXAMPLE_BUREAU, score=700)
    with pytest.raises(ValueError, match="outside its range"):
        CreditScoreDisclosure(**{**base, "score": 900})
    with pytest.raises(ValueError, match="there is none"):
        CreditScoreDisclosure(bureau=EXAMPLE_BUREAU, key_factors=(factor(1),))


def test_only_a_count_of_inquiries_is_the_inquiries_factor(heloc: ProductSpec, demo: ProductSpec) -> None:
    assert is_inquiries_reason(demo.reason_for("recent_inquiries"))
    assert is_inquiries_reason(heloc.reason_for("inquiries_6m"))
    assert is_inquiries_reason(heloc.reason_for("inquiries_6m_excl_7_days"))
    assert not is_inquiries_reason(heloc.reason_for("recent_inquiry"))  # months since, not a number of inquiries
    assert not is_inquiries_reason(demo.reason_for("revolving_utilization"))


def test_heloc_discloses_the_external_risk_estimate_as_its_score(heloc: ProductSpec) -> None:
    attributions = {"ExternalRiskEstimate": 1.0, "NetFractionRevolvingBurden": 0.5, "MSinceMostRecentDelq": 0.4,
                    "NumTrades60Ever2DerogPubRec": 0.3, "AverageMInFile": 0.2, "NumInqLast6M": 0.1}
    assert bureau_score_field(heloc) == "ExternalRiskEstimate"
    disclosure = credit_score_disclosure(heloc, values={"ExternalRiskEstimate": 58}, attributions=attributions,
                                         bureau=bureau_for(heloc), score_field="ExternalRiskEstimate",
                                         score_date=SCORED)
    assert disclosure is not None and (disclosure.score, disclosure.score_range) == (58, (0, 100))
    assert [f.key for f in disclosure.key_factors] == ["revolving_burden", "recent_delinquency",
                                                       "trades_60_days_late", "average_months_in_file_short",
                                                       "inquiries_6m"]
    assert disclosure.key_factors[-1].is_inquiries
    # No bureau record (-9): a consumer report was still used (615(a)), but there is no score to disclose.
    empty = credit_score_disclosure(heloc, values={"ExternalRiskEstimate": -9}, attributions=attributions,
                                    bureau=bureau_for(heloc), score_field="ExternalRiskEstimate", score_date=SCORED)
    assert empty is not None and not empty.has_score and empty.key_factors == ()


def test_no_disclosure_without_consumer_report_information(german: ProductSpec, demo: ProductSpec) -> None:
    assert bureau_score_field(german) is None
    assert credit_score_disclosure(german, values={}, attributions={"savings": 0.4}, bureau=EXAMPLE_BUREAU,
                                   score_field=None, score_date=None) is None
    with pytest.raises(ValueError, match="not a bureau-sourced model input"):
        credit_score_disclosure(demo, values={"amount": 5000}, attributions={}, bureau=EXAMPLE_BUREAU,
                                score_field="amount", score_date=SCORED)
    with pytest.raises(ValueError, match=r"609\(f\)\(1\)\(D\)"):
        credit_score_disclosure(demo, values={"credit_score": 700}, attributions={}, bureau=EXAMPLE_BUREAU,
                                score_field="credit_score", score_date=None)


def test_a_nationwide_bureau_is_listed_with_a_toll_free_number(demo: ProductSpec) -> None:
    # FCRA 615(a)(3)(A).
    with pytest.raises(ValueError, match="toll-free"):
        BureauInfo(name="Big Bureau", address="1 Main St, Atlanta, GA 30303", phone="404-555-0100")
    BureauInfo(name="Local Bureau", address="1 Main St, Atlanta, GA 30303", phone="404-555-0100", nationwide=False)
    BureauInfo(name="Big Bureau", address="1 Main St, Atlanta, GA 30303", phone="(888) 555-0100")
    custom = dataclasses.replace(demo, creditor={**demo.creditor, "bureau_name": "Other Bureau LLC",
                                                 "bureau_address": "PO Box 1, Dallas, TX 75201",
                                                 "bureau_phone": "1-877-555-0123"})
    assert bureau_for(custom).name == "Other Bureau LLC"


# --- HMDA denial reasons ------------------------------------------------------------------------------

def _reason(rank: int, code: int, text: str = "x") -> PrincipalReason:
    return PrincipalReason(rank=rank, field=None, key=f"k{rank}", text=text, customer_text=text, hmda_code=code,
                           fcra_key_factor=text, source="model", attribution=0.1)


def test_hmda_codes_follow_the_reasons_in_rank_order_without_repeats() -> None:
    denial = hmda_denial_codes([_reason(2, 1), _reason(1, 3), _reason(3, 3), _reason(4, 4)], denied=True,
                               other_text=None)
    assert denial.codes == (3, 1, 4) and denial.other_text is None
    heloc_reasons = principal_reasons(get_spec("heloc"), attributions={"NumInqLast6M": 0.3,
                                                                       "NetFractionRevolvingBurden": 0.2},
                                      knockout_reason=None)
    assert hmda_denial_codes(heloc_reasons, denied=True, other_text=None).codes == (3, 1)


def test_hmda_code_9_and_free_text_go_together() -> None:
    reasons = [_reason(1, 9, "Length of the loan term requested"), _reason(2, 1)]
    with pytest.raises(HmdaEditError, match="V671-1"):
        hmda_denial_codes(reasons, denied=True, other_text=None)
    with pytest.raises(HmdaEditError, match="V671-1"):
        hmda_denial_codes(reasons, denied=True, other_text="   ")
    denial = hmda_denial_codes(reasons, denied=True, other_text=hmda_other_text(reasons))
    assert denial.codes == (9, 1) and denial.other_text == "Length of the loan term requested"
    with pytest.raises(HmdaEditError, match="V671-2"):
        hmda_denial_codes([_reason(1, 1)], denied=True, other_text="Something else")
    with pytest.raises(HmdaEditError, match="V671-1"):
        HmdaDenial(codes=(9,), other_text="x" * 256)


def test_hmda_code_10_only_when_not_denied_and_alone() -> None:
    assert hmda_denial_codes([_reason(1, 3)], denied=False, other_text=None).codes == (10,)
    assert hmda_denial_codes([], denied=False, other_text=None).not_applicable
    with pytest.raises(HmdaEditError, match="V671-2"):
        hmda_denial_codes([], denied=False, other_text="why")
    with pytest.raises(HmdaEditError, match="V669-4"):
        HmdaDenial(codes=(10, 3))
    with pytest.raises(HmdaEditError, match="V670-1"):
        hmda_denial_codes([_reason(1, 10)], denied=True, other_text=None)
    with pytest.raises(HmdaEditError, match="V670-1"):
        hmda_denial_codes([], denied=True, other_text=None)


def test_hmda_reports_at_most_four_valid_distinct_codes() -> None:
    reasons = [_reason(i, code) for i, code in enumerate((1, 2, 3, 4, 5), start=1)]
    assert hmda_denial_codes(reasons, denied=True, other_text=None).codes == (1, 2, 3, 4)
    with pytest.raises(HmdaEditError, match="V669-2"):
        HmdaDenial(codes=(1, 2, 3, 4, 5))
    with pytest.raises(HmdaEditError, match="V669-3"):
        HmdaDenial(codes=(1, 1))
    with pytest.raises(HmdaEditError, match="V669-1"):
        HmdaDenial(codes=(11,))
    with pytest.raises(HmdaEditError, match="V669-1"):
        HmdaDenial(codes=())


def test_hmda_applies_to_dwelling_secured_products() -> None:
    specs = shipped_specs()
    assert hmda_applies(specs["heloc"])
    assert not hmda_applies(specs["demo"]) and not hmda_applies(specs["german-credit"])
