"""Fair-lending monitoring: outcome metrics by group, each with a confidence interval.

Built from decisions and the monitoring-only fields (Reg B 1002.12(a)(3) lets a creditor keep those for
monitoring; they never reach the model). For every group column, and for every intersection of two, the
report gives per group

* the approval rate, with a Wilson score interval;
* the mean and standard deviation of the score (PD), when a score column is given;
* the override rate (share of decisions an officer overrode), with a Wilson interval, when an override
  column is given (rows where it is missing are decisions without an override flag and are left out);

and for each protected group against the control group (regulatory checklist I(a)):

* the adverse impact ratio AIR = protected approval rate / control approval rate, with a Katz
  log-ratio (delta method) interval: log AIR +/- z * sqrt(1/x1 - 1/n1 + 1/x2 - 1/n2) where x are
  approvals and n group sizes; when a group has no approvals or no denials, 0.5 is added to each cell
  of the 2x2 table (x + 0.5 of n + 1) for the interval only. The four-fifths flag is AIR < 0.8
  (29 CFR 1607.4(D)), judged on the point estimate; ``ci_below_threshold`` says whether the whole
  interval is below it;
* the marginal effect: protected minus control approval rate in percentage points, with Newcombe's
  hybrid score interval (his method 10, built from the two Wilson intervals), and a two-sided Fisher
  exact test p-value for the difference;
* the standardised mean difference of scores, (mean protected - mean control) / pooled SD (Cohen's d,
  pooled with n - 1 weights), with the usual large-sample interval d +/- z * sqrt((n1 + n2) / (n1 n2) +
  d^2 / (2 (n1 + n2))). With a PD as the score a positive SMD means the protected group looks riskier;
* the difference in override rates in percentage points (Newcombe).

Nothing is divided by zero silently: a statistic that cannot be computed (an empty group, a control group
without approvals, scores without spread) is ``None`` with a ``note`` saying why, and a group with no rows
is reported with n = 0. ``fairness_chart_svg`` draws the approval rates with their intervals and the
four-fifths line as a small static SVG (no JavaScript).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from html import escape
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import fisher_exact

from scoring.policy import policy_decide
from scoring.spec import Policy

FOUR_FIFTHS = 0.8
DEFAULT_CONFIDENCE = 0.95
MISSING_LABEL = "missing"

METHODS: dict[str, str] = {
    "approval_rate": "Wilson score interval",
    "air": "Katz log-ratio (delta method) interval; 0.5 added to each 2x2 cell for the interval when a "
           "group has no approvals or no denials",
    "four_fifths_flag": "AIR point estimate below the threshold (29 CFR 1607.4(D))",
    "marginal_effect_pp": "protected minus control approval rate in percentage points; Newcombe hybrid "
                          "score interval (method 10)",
    "p_value": "two-sided Fisher exact test of approval by group",
    "smd": "Cohen's d: (mean protected - mean control) / pooled SD (n - 1 weights); interval d +/- z * "
           "sqrt((n1 + n2) / (n1 n2) + d^2 / (2 (n1 + n2)))",
    "override_rate": "Wilson score interval over decisions with an override flag",
    "override_difference_pp": "protected minus control override rate in percentage points; Newcombe",
}


# --- estimates -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Estimate:
    """A point estimate with its interval; all three are None (with a note) when it cannot be computed."""

    value: float | None
    lower: float | None
    upper: float | None
    method: str
    note: str = ""

    @property
    def defined(self) -> bool:
        return self.value is not None

    @property
    def width(self) -> float | None:
        if self.lower is None or self.upper is None:
            return None
        return self.upper - self.lower

    def contains(self, value: float) -> bool:
        return self.lower is not None and self.upper is not None and self.lower <= value <= self.upper

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _undefined(method: str, note: str) -> Estimate:
    return Estimate(value=None, lower=None, upper=None, method=method, note=note)


def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    return NormalDist().inv_cdf(1.0 - (1.0 - confidence) / 2.0)


def _check_counts(successes: int, n: int) -> None:
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")


def wilson_interval(successes: int, n: int, confidence: float = DEFAULT_CONFIDENCE) -> Estimate:
    """A proportion with its Wilson score interval; undefined for n = 0."""
    _check_counts(successes, n)
    method = METHODS["approval_rate"]
    if n == 0:
        return _undefined(method, "empty group (n = 0)")
    z = _z(confidence)
    p = successes / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return Estimate(value=p, lower=max(0.0, centre - half), upper=min(1.0, centre + half), method=method)


def adverse_impact_ratio(protected_approvals: int, protected_n: int, control_approvals: int, control_n: int,
                         confidence: float = DEFAULT_CONFIDENCE) -> Estimate:
    """Protected approval rate / control approval rate with a Katz log-ratio interval."""
    _check_counts(protected_approvals, protected_n)
    _check_counts(control_approvals, control_n)
    method = METHODS["air"]
    if protected_n == 0:
        return _undefined(method, "protected group is empty (n = 0)")
    if control_n == 0:
        return _undefined(method, "control group is empty (n = 0)")
    if control_approvals == 0:
        return _undefined(method, "control group has no approvals: the ratio would divide by zero")
    x1, n1, x2, n2 = float(protected_approvals), float(protected_n), float(control_approvals), float(control_n)
    value = (x1 / n1) / (x2 / n2)
    note = ""
    if x1 in (0.0, n1) or x2 == n2:
        x1, n1, x2, n2 = x1 + 0.5, n1 + 1.0, x2 + 0.5, n2 + 1.0
        note = "a group had no approvals or no denials: interval with 0.5 added to each cell"
    log_ratio = math.log((x1 / n1) / (x2 / n2))
    se = math.sqrt(max(0.0, 1 / x1 - 1 / n1 + 1 / x2 - 1 / n2))
    z = _z(confidence)
    return Estimate(value=value, lower=math.exp(log_ratio - z * se), upper=math.exp(log_ratio + z * se),
                    method=method, note=note)


def rate_difference_pp(successes_a: int, n_a: int, successes_b: int, n_b: int,
                       confidence: float = DEFAULT_CONFIDENCE, *, method: str | None = None) -> Estimate:
    """(a - b) in percentage points with Newcombe's hybrid score interval (method 10)."""
    method = method or METHODS["marginal_effect_pp"]
    if n_a == 0 or n_b == 0:
        return _undefined(method, "a group is empty (n = 0)")
    a, b = wilson_interval(successes_a, n_a, confidence), wilson_interval(successes_b, n_b, confidence)
    assert a.value is not None and a.lower is not None and a.upper is not None
    assert b.value is not None and b.lower is not None and b.upper is not None
    difference = a.value - b.value
    lower = difference - math.sqrt((a.value - a.lower) ** 2 + (b.upper - b.value) ** 2)
    upper = difference + math.sqrt((a.upper - a.value) ** 2 + (b.value - b.lower) ** 2)
    return Estimate(value=100.0 * difference, lower=100.0 * lower, upper=100.0 * upper, method=method)


def standardised_mean_difference(protected: Sequence[float] | np.ndarray, control: Sequence[float] | np.ndarray,
                                 confidence: float = DEFAULT_CONFIDENCE) -> Estimate:
    """Cohen's d of protected against control (pooled SD), with its large-sample interval."""
    method = METHODS["smd"]
    a = np.asarray(protected, dtype=np.float64)
    b = np.asarray(control, dtype=np.float64)
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    n1, n2 = len(a), len(b)
    if n1 == 0 or n2 == 0:
        return _undefined(method, "a group has no scores (n = 0)")
    if n1 + n2 <= 2:
        return _undefined(method, "too few scores for a pooled standard deviation (need n1 + n2 > 2)")
    mean1, mean2 = float(a.mean()), float(b.mean())
    pooled = math.sqrt((float(np.sum((a - mean1) ** 2)) + float(np.sum((b - mean2) ** 2))) / (n1 + n2 - 2))
    if pooled == 0.0:
        return _undefined(method, "scores have no spread within the groups: the SMD would divide by zero")
    d = (mean1 - mean2) / pooled
    se = math.sqrt((n1 + n2) / (n1 * n2) + d * d / (2 * (n1 + n2)))
    z = _z(confidence)
    return Estimate(value=d, lower=d - z * se, upper=d + z * se, method=method)


def fisher_p_value(protected_approvals: int, protected_n: int, control_approvals: int, control_n: int) -> float | None:
    """Two-sided Fisher exact p-value for approval by group; None when a group is empty."""
    if protected_n == 0 or control_n == 0:
        return None
    table = [[protected_approvals, protected_n - protected_approvals],
             [control_approvals, control_n - control_approvals]]
    return float(fisher_exact(table, alternative="two-sided")[1])


# --- the report ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GroupStats:
    """Outcomes of one group: a value of a column, a cell of an intersection, or a pooled control group."""

    label: str
    n: int
    approvals: int
    approval_rate: Estimate
    score_n: int = 0
    score_mean: float | None = None
    score_sd: float | None = None
    override_n: int = 0  # decisions with an override flag
    overrides: int = 0
    override_rate: Estimate | None = None  # None when the report has no override column

    @property
    def denials(self) -> int:
        return self.n - self.approvals

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label, "n": self.n, "approvals": self.approvals,
            "approval_rate": self.approval_rate.to_dict(),
            "score_n": self.score_n, "score_mean": self.score_mean, "score_sd": self.score_sd,
            "override_n": self.override_n, "overrides": self.overrides,
            "override_rate": self.override_rate.to_dict() if self.override_rate else None,
        }


@dataclass(frozen=True)
class Comparison:
    """One protected group against the control group."""

    protected: str
    control: str
    air: Estimate
    four_fifths_flag: bool | None  # AIR < threshold; None when the AIR is undefined
    ci_below_threshold: bool | None  # the whole AIR interval is below the threshold
    marginal_effect_pp: Estimate
    p_value: float | None
    smd: Estimate | None  # None when the report has no score column
    override_difference_pp: Estimate | None  # None when the report has no override column

    def to_dict(self) -> dict[str, Any]:
        return {
            "protected": self.protected, "control": self.control, "air": self.air.to_dict(),
            "four_fifths_flag": self.four_fifths_flag, "ci_below_threshold": self.ci_below_threshold,
            "marginal_effect_pp": self.marginal_effect_pp.to_dict(), "p_value": self.p_value,
            "smd": self.smd.to_dict() if self.smd else None,
            "override_difference_pp": self.override_difference_pp.to_dict() if self.override_difference_pp else None,
        }


@dataclass(frozen=True)
class Breakdown:
    """Every group of one column (or of an intersection of two), the control group and the comparisons."""

    name: str
    columns: tuple[str, ...]
    groups: tuple[GroupStats, ...]
    control: GroupStats
    comparisons: tuple[Comparison, ...]

    def group(self, label: str) -> GroupStats:
        for candidate in (*self.groups, self.control):
            if candidate.label == label:
                return candidate
        raise KeyError(label)

    def comparison(self, protected: str) -> Comparison:
        for candidate in self.comparisons:
            if candidate.protected == protected:
                return candidate
        raise KeyError(protected)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "columns": list(self.columns), "groups": [g.to_dict() for g in self.groups],
                "control": self.control.to_dict(), "comparisons": [c.to_dict() for c in self.comparisons]}


@dataclass(frozen=True)
class FairnessReport:
    n: int
    confidence: float
    air_threshold: float
    approved_column: str
    score_column: str | None
    overridden_column: str | None
    breakdowns: tuple[Breakdown, ...]
    title: str = ""
    methods: Mapping[str, str] = field(default_factory=lambda: dict(METHODS))

    def breakdown(self, name: str) -> Breakdown:
        for candidate in self.breakdowns:
            if candidate.name == name:
                return candidate
        raise KeyError(name)

    @property
    def flagged(self) -> tuple[tuple[str, Comparison], ...]:
        """(breakdown name, comparison) for every comparison under the four-fifths threshold."""
        return tuple((b.name, c) for b in self.breakdowns for c in b.comparisons if c.four_fifths_flag)

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title, "n": self.n, "confidence": self.confidence, "air_threshold": self.air_threshold,
            "approved_column": self.approved_column, "score_column": self.score_column,
            "overridden_column": self.overridden_column, "methods": dict(self.methods),
            "breakdowns": [b.to_dict() for b in self.breakdowns],
        }


def _values(spec: Any) -> tuple[Any, ...]:
    if isinstance(spec, list | tuple | set | frozenset):
        return tuple(spec)
    return (spec,)


def _label(value: Any) -> str:
    return str(value)


def _joined(values: Iterable[Any]) -> str:
    return " or ".join(_label(v) for v in values)


def _flags(frame: pd.DataFrame, column: str, *, allow_missing: bool) -> tuple[np.ndarray, np.ndarray]:
    """(known, value) boolean arrays for a 0/1 or True/False column."""
    series = frame[column]
    known = ~series.isna().to_numpy()
    if not allow_missing and not known.all():
        raise ValueError(f"column {column!r} has {int((~known).sum())} missing values; every decision needs one")
    observed = series[known]
    bad = [v for v in pd.unique(observed) if not (isinstance(v, bool | np.bool_) or v in (0, 1))]
    if bad:
        raise ValueError(f"column {column!r} must hold True/False or 0/1, found {bad[:5]!r}")
    values = np.zeros(len(series), dtype=bool)
    values[known] = observed.astype(bool).to_numpy()
    return known, values


@dataclass(frozen=True)
class _Columns:
    approved: np.ndarray
    score: np.ndarray | None
    override_known: np.ndarray | None
    overridden: np.ndarray | None


def _stats(label: str, mask: np.ndarray, data: _Columns, confidence: float) -> GroupStats:
    n = int(mask.sum())
    approvals = int(data.approved[mask].sum())
    score_n, score_mean, score_sd = 0, None, None
    if data.score is not None:
        scores = data.score[mask]
        scores = scores[~np.isnan(scores)]
        score_n = len(scores)
        if score_n:
            score_mean = float(scores.mean())
            score_sd = float(scores.std(ddof=1)) if score_n > 1 else None
    override_n, overrides, override_rate = 0, 0, None
    if data.override_known is not None and data.overridden is not None:
        known = mask & data.override_known
        override_n = int(known.sum())
        overrides = int(data.overridden[known].sum())
        wilson = wilson_interval(overrides, override_n, confidence)
        override_rate = Estimate(wilson.value, wilson.lower, wilson.upper, METHODS["override_rate"],
                                 "no decisions with an override flag (n = 0)" if override_n == 0 else "")
    return GroupStats(label=label, n=n, approvals=approvals,
                      approval_rate=wilson_interval(approvals, n, confidence),
                      score_n=score_n, score_mean=score_mean, score_sd=score_sd,
                      override_n=override_n, overrides=overrides, override_rate=override_rate)


def _compare(protected: GroupStats, protected_mask: np.ndarray, control: GroupStats, control_mask: np.ndarray,
             data: _Columns, confidence: float, threshold: float) -> Comparison:
    air = adverse_impact_ratio(protected.approvals, protected.n, control.approvals, control.n, confidence)
    flag = None if air.value is None else air.value < threshold
    below = None if air.upper is None else air.upper < threshold
    smd = None
    if data.score is not None:
        smd = standardised_mean_difference(data.score[protected_mask], data.score[control_mask], confidence)
    override_difference = None
    if data.override_known is not None:
        override_difference = rate_difference_pp(protected.overrides, protected.override_n, control.overrides,
                                                 control.override_n, confidence,
                                                 method=METHODS["override_difference_pp"])
    return Comparison(
        protected=protected.label, control=control.label, air=air, four_fifths_flag=flag,
        ci_below_threshold=below,
        marginal_effect_pp=rate_difference_pp(protected.approvals, protected.n, control.approvals, control.n,
                                              confidence),
        p_value=fisher_p_value(protected.approvals, protected.n, control.approvals, control.n),
        smd=smd, override_difference_pp=override_difference,
    )


def _isin(series: pd.Series, values: Sequence[Any]) -> np.ndarray:
    mask = np.zeros(len(series), dtype=bool)
    known = ~series.isna().to_numpy()
    for value in values:
        mask |= known & (series == value).to_numpy(dtype=bool, na_value=False)
    return mask


def _ordered_values(series: pd.Series, extra: Iterable[Any]) -> list[Any]:
    values: list[Any] = []
    for value in [*sorted(pd.unique(series.dropna()), key=_label), *extra]:
        if all(_label(value) != _label(seen) for seen in values):
            values.append(value)
    return values


@dataclass(frozen=True)
class _Axis:
    """One monitoring column: its protected values and the control group's membership and label."""

    column: str
    protected: tuple[Any, ...]
    control_mask: np.ndarray
    control_label: str
    values: tuple[Any, ...]
    missing: np.ndarray


def _axis(frame: pd.DataFrame, column: str, protected: Mapping[str, Any], control: Mapping[str, Any] | None) -> _Axis:
    if column not in protected:
        raise ValueError(f"group column {column!r} needs its protected value(s) in `protected`")
    series = frame[column]
    protected_values = _values(protected[column])
    missing = series.isna().to_numpy()
    if control is not None and column in control:
        control_values = _values(control[column])
        overlap = {_label(v) for v in control_values} & {_label(v) for v in protected_values}
        if overlap:
            raise ValueError(f"column {column!r}: {sorted(overlap)} cannot be both protected and control")
        control_mask = _isin(series, control_values)
        control_label = _joined(control_values)
        extra = (*protected_values, *control_values)
    else:
        control_mask = ~missing & ~_isin(series, protected_values)
        control_label = f"not {_joined(protected_values)}"
        extra = protected_values
    return _Axis(column=column, protected=protected_values, control_mask=control_mask, control_label=control_label,
                 values=tuple(_ordered_values(series, extra)), missing=missing)


def _single(frame: pd.DataFrame, axis: _Axis, data: _Columns, confidence: float, threshold: float) -> Breakdown:
    series = frame[axis.column]
    groups: list[GroupStats] = []
    masks: dict[str, np.ndarray] = {}
    for value in axis.values:
        mask = _isin(series, (value,))
        masks[_label(value)] = mask
        groups.append(_stats(_label(value), mask, data, confidence))
    if axis.missing.any():
        groups.append(_stats(MISSING_LABEL, axis.missing, data, confidence))
    control = _stats(axis.control_label, axis.control_mask, data, confidence)
    comparisons = tuple(
        _compare(next(g for g in groups if g.label == _label(value)), masks[_label(value)], control,
                 axis.control_mask, data, confidence, threshold)
        for value in axis.protected
    )
    return Breakdown(name=axis.column, columns=(axis.column,), groups=tuple(groups), control=control,
                     comparisons=comparisons)


def _intersection(frame: pd.DataFrame, first: _Axis, second: _Axis, data: _Columns, confidence: float,
                  threshold: float) -> Breakdown:
    groups: list[GroupStats] = []
    protected_cells: list[tuple[GroupStats, np.ndarray]] = []
    for value_a in first.values:
        mask_a = _isin(frame[first.column], (value_a,))
        for value_b in second.values:
            mask = mask_a & _isin(frame[second.column], (value_b,))
            stats = _stats(f"{_label(value_a)} × {_label(value_b)}", mask, data, confidence)
            groups.append(stats)
            is_protected = any(_label(value_a) == _label(v) for v in first.protected) or \
                any(_label(value_b) == _label(v) for v in second.protected)
            if is_protected:
                protected_cells.append((stats, mask))
    either_missing = first.missing | second.missing
    if either_missing.any():
        groups.append(_stats(MISSING_LABEL, either_missing, data, confidence))
    control_mask = first.control_mask & second.control_mask
    control = _stats(f"{first.control_label} × {second.control_label}", control_mask, data, confidence)
    comparisons = tuple(_compare(stats, mask, control, control_mask, data, confidence, threshold)
                        for stats, mask in protected_cells)
    return Breakdown(name=f"{first.column} × {second.column}", columns=(first.column, second.column),
                     groups=tuple(groups), control=control, comparisons=comparisons)


def fairness_report(frame: pd.DataFrame, *, group_columns: Sequence[str], protected: Mapping[str, Any],
                    control: Mapping[str, Any] | None = None, approved_column: str, score_column: str | None,
                    overridden_column: str | None = None, intersections: Sequence[tuple[str, str]] = (),
                    confidence: float = DEFAULT_CONFIDENCE, air_threshold: float = FOUR_FIFTHS,
                    title: str = "") -> FairnessReport:
    """The fair-lending report of a frame of decisions (one row per decision).

    ``group_columns``: monitoring columns to break down by. ``protected``: for each of them (and each
    column of an intersection) the protected value, or a list of values each compared on its own.
    ``control``: the control value(s) per column, pooled into one control group; a column not named there
    is compared with every row that is neither protected nor missing. ``approved_column``: True/False or
    0/1, no missing values. ``score_column``: a numeric score (PD) for the SMD, missing values left out;
    None for no SMD. ``overridden_column``: True/False or 0/1 per decision (missing = no override flag),
    or None. ``intersections``: pairs of columns; every cell is reported, each cell with a protected value
    on either column is compared with the cell of both control groups.
    """
    _z(confidence)
    if not 0.0 < air_threshold <= 1.0:
        raise ValueError(f"air_threshold must be in (0, 1], got {air_threshold}")
    columns = [*group_columns, *(c for pair in intersections for c in pair)]
    named = [approved_column, *(c for c in (score_column, overridden_column) if c is not None), *columns]
    absent = sorted({c for c in named if c not in frame.columns})
    if absent:
        raise ValueError(f"the frame has no column(s) {absent}")
    for pair in intersections:
        if len(pair) != 2 or pair[0] == pair[1]:
            raise ValueError(f"an intersection is a pair of two different columns, got {pair!r}")
    frame = frame.reset_index(drop=True)
    _, approved = _flags(frame, approved_column, allow_missing=False)
    score = None
    if score_column is not None:
        numbers = pd.to_numeric(frame[score_column], errors="coerce")
        if (numbers.isna() & frame[score_column].notna()).any():
            raise ValueError(f"column {score_column!r} has non-numeric scores")
        score = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    override_known, overridden = (None, None)
    if overridden_column is not None:
        override_known, overridden = _flags(frame, overridden_column, allow_missing=True)
    data = _Columns(approved=approved, score=score, override_known=override_known, overridden=overridden)
    axes = {column: _axis(frame, column, protected, control) for column in dict.fromkeys(columns)}
    breakdowns = [_single(frame, axes[column], data, confidence, air_threshold) for column in group_columns]
    breakdowns += [_intersection(frame, axes[a], axes[b], data, confidence, air_threshold) for a, b in intersections]
    return FairnessReport(n=len(frame), confidence=confidence, air_threshold=air_threshold,
                          approved_column=approved_column, score_column=score_column,
                          overridden_column=overridden_column, breakdowns=tuple(breakdowns), title=title)


# --- text and chart --------------------------------------------------------------------------------

def _pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}%"


def _interval(estimate: Estimate, fmt: Callable[[float | None], str]) -> str:
    if estimate.value is None:
        return f"n/a ({estimate.note})"
    return f"{fmt(estimate.value)} [{fmt(estimate.lower)}, {fmt(estimate.upper)}]"


def _num(digits: int) -> Callable[[float | None], str]:
    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}"
    return fmt


def format_report(report: FairnessReport) -> str:
    """A plain-text rendering (the figures bench/fairness_report.py prints)."""
    level = f"{100 * report.confidence:g}%"
    lines = [report.title] if report.title else []
    lines.append(f"n = {report.n}; intervals at {level}; four-fifths threshold {report.air_threshold:g}")
    for breakdown in report.breakdowns:
        lines.append(f"  {breakdown.name}")
        for group in (*breakdown.groups, breakdown.control):
            if group is breakdown.control and any(g.label == group.label for g in breakdown.groups):
                continue
            tag = " (control)" if group.label == breakdown.control.label else ""
            row = (f"    {group.label}{tag}: n={group.n}, approved={group.approvals}, approval rate "
                   f"{_interval(group.approval_rate, _pct)}")
            if report.score_column is not None:
                row += f", mean {report.score_column} {_num(3)(group.score_mean)}"
            if group.override_rate is not None:
                row += f", override rate {_interval(group.override_rate, _pct)} of {group.override_n}"
            lines.append(row)
        for comparison in breakdown.comparisons:
            flag = {True: "FLAG (< 4/5)", False: "ok", None: "n/a"}[comparison.four_fifths_flag]
            p_value = "n/a" if comparison.p_value is None else f"{comparison.p_value:.2g}"
            row = (f"    {comparison.protected} vs {comparison.control}: AIR {_interval(comparison.air, _num(3))} "
                   f"{flag}; marginal effect {_interval(comparison.marginal_effect_pp, _num(1))} pp "
                   f"(Fisher p={p_value})")
            if comparison.smd is not None:
                row += f"; SMD {_interval(comparison.smd, _num(3))}"
            if comparison.override_difference_pp is not None:
                row += f"; override difference {_interval(comparison.override_difference_pp, _num(1))} pp"
            lines.append(row)
    return "\n".join(lines)


CHART_PLOT = 320
CHART_RIGHT = 230
CHART_CHAR = 6.6  # approximate width of a 12px sans-serif character, to size the label column
CHART_ROW = 24
CHART_HEAD = 40
BAR_COLOUR = "#3f6ea6"
FLAG_COLOUR = "#b3412f"
CONTROL_COLOUR = "#6b7280"


def fairness_chart_svg(report: FairnessReport, *, breakdowns: Sequence[str] | None = None,
                       id_prefix: str = "fairness") -> str:
    """Approval rates by group as horizontal bars with interval whiskers and, per breakdown, a dashed line
    at the threshold (0.8) times the control group's approval rate. Static SVG with a title, a text
    description and text labels on every bar; flagged groups are also marked in words, not colour alone."""
    chosen = [report.breakdown(name) for name in breakdowns] if breakdowns is not None else list(report.breakdowns)
    labels = [g.label + " (control)" for b in chosen for g in (*b.groups, b.control)]
    left = int(max(120.0, CHART_CHAR * max((len(label) for label in labels), default=0) + 16))
    plot = CHART_PLOT
    width = left + plot + CHART_RIGHT
    level = f"{100 * report.confidence:g}%"

    def x(rate: float) -> float:
        return left + max(0.0, min(1.0, rate)) * plot

    body: list[str] = []
    summary: list[str] = []
    legend = ((BAR_COLOUR, "group"), (CONTROL_COLOUR, "control group"), (FLAG_COLOUR, "below four-fifths of control"))
    legend_x = 4
    for colour, words in legend:
        body.append(f'<rect x="{legend_x}" y="6" width="12" height="12" fill="{colour}"/>'
                    f'<text x="{legend_x + 16}" y="16">{escape(words)}</text>')
        legend_x += int(30 + CHART_CHAR * len(words))
    body.append(f'<text x="{legend_x}" y="16">whiskers: {level} interval</text>')
    y = 30
    for breakdown in chosen:
        flagged = {c.protected for c in breakdown.comparisons if c.four_fifths_flag}
        rows = list(breakdown.groups)
        if all(g.label != breakdown.control.label for g in rows):
            rows.append(breakdown.control)
        top = y
        control_rate = breakdown.control.approval_rate.value
        body.append(f'<text x="4" y="{y + 14}" font-weight="bold">{escape(breakdown.name)}</text>')
        if control_rate is not None:
            line = report.air_threshold * control_rate
            body.append(f'<text x="{left}" y="{y + 14}" fill="{FLAG_COLOUR}">'
                        f'dashed line: {report.air_threshold:g} × control ({escape(breakdown.control.label)}) '
                        f'= {_pct(line)}</text>')
        y += CHART_HEAD - 14
        for group in rows:
            is_control = group.label == breakdown.control.label
            colour = FLAG_COLOUR if group.label in flagged else CONTROL_COLOUR if is_control else BAR_COLOUR
            label = group.label + (" (control)" if is_control else "")
            body.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{escape(label)}</text>')
            rate = group.approval_rate
            if rate.value is None or rate.lower is None or rate.upper is None:
                body.append(f'<text x="{left + 4}" y="{y + 15}" fill="{CONTROL_COLOUR}">n = 0, no data</text>')
                summary.append(f"{breakdown.name}, {label}: no applications.")
                y += CHART_ROW
                continue
            body.append(f'<rect x="{left}" y="{y + 4}" width="{x(rate.value) - left:.1f}" height="14" '
                        f'fill="{colour}"><title>{escape(label)}: {_pct(rate.value)} approved</title></rect>')
            mid = y + 11
            body.append(f'<path d="M{x(rate.lower):.1f} {mid}H{x(rate.upper):.1f}M{x(rate.lower):.1f} {mid - 5}'
                        f'V{mid + 5}M{x(rate.upper):.1f} {mid - 5}V{mid + 5}" stroke="#111" stroke-width="1.3" '
                        'fill="none"/>')
            words = f"{_pct(rate.value)} [{_pct(rate.lower, 0)}–{_pct(rate.upper, 0)}] n={group.n}"
            if group.label in flagged:
                words += ", below 4/5"
            body.append(f'<text x="{width - CHART_RIGHT + 6}" y="{y + 15}">{escape(words)}</text>')
            summary.append(f"{breakdown.name}, {label}: {_pct(rate.value)} approved ({level} interval "
                           f"{_pct(rate.lower)} to {_pct(rate.upper)}, n = {group.n})"
                           + (", below four-fifths of the control group." if group.label in flagged else "."))
            y += CHART_ROW
        if control_rate is not None:
            line_x = x(report.air_threshold * control_rate)
            body.append(f'<line x1="{line_x:.1f}" y1="{top + 20}" x2="{line_x:.1f}" y2="{y + 2}" '
                        f'stroke="{FLAG_COLOUR}" stroke-width="1.5" stroke-dasharray="5 3"/>')
        for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
            body.append(f'<text x="{x(tick):.1f}" y="{y + 14}" text-anchor="middle" fill="#555" '
                        f'font-size="10">{int(tick * 100)}%</text>')
        body.append(f'<line x1="{left}" y1="{y + 2}" x2="{left + plot}" y2="{y + 2}" stroke="#999"/>')
        for comparison in breakdown.comparisons:
            if comparison.air.value is not None:
                summary.append(f"{breakdown.name}: adverse impact ratio of {comparison.protected} to "
                               f"{comparison.control} {comparison.air.value:.2f} ({level} interval "
                               f"{comparison.air.lower:.2f} to {comparison.air.upper:.2f}).")
        y += 30
    height = y
    title = report.title or "Approval rates by group"
    description = (f"Approval rate of each group with {level} confidence intervals as whiskers; the dashed line "
                   f"in each panel is {report.air_threshold:g} times the control group's approval rate. "
                   + " ".join(summary))
    return "".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {width} {height}" width="100%" '
        f'aria-labelledby="{escape(id_prefix)}-title {escape(id_prefix)}-desc" '
        f'style="max-width:{width}px;font:12px system-ui,sans-serif">',
        f'<title id="{escape(id_prefix)}-title">{escape(title)}</title>',
        f'<desc id="{escape(id_prefix)}-desc">{escape(description)}</desc>',
        *body,
        "</svg>",
    ])


# --- demonstration helpers (monitoring groups and policy decisions) ---------------------------------

# UCI German Credit attribute 9 (german.doc): A91 male divorced/separated, A92 female divorced/separated/
# married, A93 male single, A94 male married/widowed, A95 female single.
GERMAN_SEX_BY_CODE: dict[str, str] = {"A91": "male", "A92": "female", "A93": "male", "A94": "male", "A95": "female"}
ELDERLY_AGE = 62  # Reg B comment 6(b)(2)-2: "elderly" means 62 or older
ELDERLY_LABEL = "62 and over"
UNDER_ELDERLY_LABEL = "under 62"


def german_monitoring_groups(frame: pd.DataFrame) -> pd.DataFrame:
    """Monitoring groups from German Credit's monitoring-only fields: ``sex`` from personal_status_sex
    and ``age_band`` (62 and over / under 62) from age_years; missing stays missing."""
    sex = pd.Series([GERMAN_SEX_BY_CODE.get(code) if isinstance(code, str) else None
                     for code in frame["personal_status_sex"]], index=frame.index, dtype=object)
    age = pd.to_numeric(frame["age_years"], errors="coerce")
    band = pd.Series([None if math.isnan(a) else ELDERLY_LABEL if a >= ELDERLY_AGE else UNDER_ELDERLY_LABEL
                      for a in age.to_numpy(dtype=np.float64, na_value=np.nan)], index=frame.index, dtype=object)
    return pd.DataFrame({"sex": sex, "age_band": band}, index=frame.index)


def policy_outcomes(policy: Policy, probabilities: Sequence[float] | np.ndarray, frame: pd.DataFrame) -> list[str]:
    """The policy's outcome (approved, referred, denied) for each row, knockouts included."""
    records = frame.to_dict("records")
    if len(records) != len(probabilities):
        raise ValueError(f"{len(probabilities)} scores for {len(records)} rows")
    return [policy_decide(policy, float(pd_value), record).outcome
            for pd_value, record in zip(probabilities, records, strict=True)]
