"""Explanations: which fields pushed an application's probability of default up or down, and by how much.

Method (Reg B comment 9(b)(2)-5, first method: "compare each factor with the average of applicants at or
slightly above the passing score")
----------------------------------------------------------------------------------------------------------
1. Exact path-dependent TreeSHAP gives, per feature j, phi_j(x) with ``sum_j phi_j(x) + phi_0 = raw
   margin(x)``: computed by ``scoring.treeshap`` (per-tree tables, numba; the values of LightGBM's
   ``booster.predict(X, pred_contrib=True)`` to ~1e-15, and the raw margin LightGBM's bit for bit), or by
   LightGBM itself for a model the kernel cannot reproduce (native categorical splits) or on request
   (``own_kernel=False``). Platt calibration is affine (calibrated log-odds ``f(x) = a * margin + b``), so
   ``a * phi_j(x)`` is exact and additive in calibrated log-odds; ``phi_0`` (the bias column) goes into
   the base value.
2. The cutoff reference group R_c: the rows of the model's stored reference sample (``model.reference``,
   encoded training rows) that are *just approved*: the ``CUTOFF_GROUP_SIZE`` rows whose PD lies nearest
   below the approval line ``cutoff - refer_band``. If fewer rows are below the line, the group is widened
   with the rows nearest above it (``widened`` in the group summary). Group size, PD range and line are
   recorded in every explanation (``reference_group``).
3. Attribution of feature j against a group G: ``a * phi_j(x) - mean_{r in G} a * phi_j(r)``; the base
   value is ``mean_{r in G} f(r)``. Then ``base + sum_j attribution_j = f(x)`` exactly (up to float
   rounding; checked on every explanation). With G = the whole reference sample the same gives the
   "all applicants" view (``base_value_all``, ``attributions_all``).
   This is the difference of path-dependent TreeSHAP values (each taken against the training
   distribution), not interventional SHAP against G itself; it is exact, additive, cheap (one kernel pass
   per application; the group means are computed once per model) and for an additive model with
   independent features the two agree.
4. Fields: feature attributions are summed into the spec field each feature belongs to
   (``encoder.feature_field``; a field's features are contiguous, so the sum is ``np.add.reduceat``,
   the grouped sum an indicator-matrix product would give; a BLAS product can round differently for one
   row than for a batch, reduceat does not, so single and batch explanations are bit-identical).
   Monitoring-only, identity and context fields have no features and never get an attribution.

Signs and names
---------------
Everything is about the log-odds of DEFAULT. A POSITIVE attribution pushes the probability of default up
(toward denial): the field is a *negative contributor* (an adverse factor). ``negative_ranked`` lists the
fields with positive attribution (> 0), largest first (ties: spec order); the stated reasons are its
first ``MAX_REASONS`` (``Explanation.reasons``). ``probability_attributions`` restate the field
attributions in probability-of-default terms: each log-odds attribution is multiplied by the secant slope
``(PD(output) - PD(base)) / (output - base)`` (the derivative ``PD(1 - PD)`` when output == base), so they
keep the log-odds ranking and signs and sum exactly to ``PD(x) - PD(base)``.

Checks (recorded in every explanation; a failed check is recorded, never raised or hidden)
------------------------------------------------------------------------------------------
* additivity: ``|base + sum(attributions) - output| <= 1e-6`` for both references (residuals recorded),
  and the grouped sum equals the ungrouped feature sum (to 1e-9).
* determinism: the explanation is computed a second time from scratch (the values encoded again, the
  attributions and output computed again by the same kernel) and compared bit for bit.
* faithfulness: each field in turn is moved to the cutoff group's representative value (at the encoded
  feature level: the group's median of a numeric field's main feature, the modal pattern of a category's
  one-hot columns or of a special-coded field) and the application is re-scored (with the kernel: only
  the tree nodes that split on the moved field decide again; the margin is the one LightGBM gives for
  the moved row, bit for bit). Passed if moving the top stated reason lowers the PD by more than moving
  any single field that is not a stated reason. Recorded: the top reason, the strongest field that is
  not a reason and every field's PD change (``delta_pd``). With no negative contributor the check
  passes with a note.

Stored form
-----------
``to_dict`` is the full explanation. It leaves out of ``feature_attributions`` the fields that have a single
feature of their own name (that feature's attribution is the field's, bit for bit); ``from_dict`` puts them
back. ``to_json()`` is exactly ``json.dumps(to_dict(), allow_nan=False)``, written faster.

What is stored (format 2) is the same explanation in two parts: ``stored_context()``, what every explanation
of one model version shares (field and feature names in array order, the cutoff group's reference values
and summary), stored once; and ``to_stored(context)``, this explanation's own values, with every per-field
mapping written as a list in the context's field order (``to_stored_json`` is its JSON text, written by
orjson). ``expand_stored(row, context) == to_dict()`` exactly: nothing is left out and every float reads
back as the same float. The row is about 60% of the full text; in PostgreSQL it stays within the heap page
instead of going out of line to TOAST, which roughly halves what the database spends storing it. The batch
path writes the rows straight from the chunk's arrays (``Explainer.explain_many_stored``), the same JSON
values as ``to_stored_json`` of each explanation.

Everything is float64; nothing is random (``seed`` is recorded as 0). The same method applied to the
logistic benchmark gives exact linear attributions ``beta_j * (d_j(x) - mean_G d_j)`` on its design
matrix (method ``linear-exact``, ``Explainer.explain_benchmark``).
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numba
import numpy as np
import numpy.typing as npt
import orjson

from scoring.calibration import LogisticBenchmark, sigmoid
from scoring.counterfactual import Recourse, RecourseSearch
from scoring.features import BOOLEAN, NATIVE, NUMERIC, ONEHOT, FeatureEncoder, _to_bool_float, to_float
from scoring.policy import APPROVED, policy_decide
from scoring.predict import ScoringModel
from scoring.spec import ProductSpec
from scoring.treeshap import TreeShap

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

EXPLAINER_VERSION = "candor-explain-1.0"
METHOD_TREE = "treeshap-exact"
METHOD_LINEAR = "linear-exact"
REFERENCE_CUTOFF = "cutoff"
SEED = 0
CUTOFF_GROUP_SIZE = 150
MAX_REASONS = 4
ADDITIVITY_TOLERANCE = 1e-6
GROUPING_TOLERANCE = 1e-9
CHUNK_ROWS = 4096
STORED_FORMAT = 2  # the stored form: a row (Explanation.to_stored) and a shared context (stored_context)
MONEY_UNITS = ("USD", "EUR", "DM", "GBP")


# --- plain data ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Check:
    passed: bool
    detail: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "detail": _json_safe(self.detail)}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Check:
        return cls(passed=bool(raw["passed"]), detail=dict(raw.get("detail", {})))


@dataclass(frozen=True)
class Checks:
    additivity: Check
    determinism: Check
    faithfulness: Check

    @property
    def all_passed(self) -> bool:
        return self.additivity.passed and self.determinism.passed and self.faithfulness.passed

    def to_dict(self) -> dict[str, Any]:
        return {"additivity": self.additivity.to_dict(), "determinism": self.determinism.to_dict(),
                "faithfulness": self.faithfulness.to_dict(), "all_passed": self.all_passed}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Checks:
        return cls(additivity=Check.from_dict(raw["additivity"]),
                   determinism=Check.from_dict(raw["determinism"]),
                   faithfulness=Check.from_dict(raw["faithfulness"]))


@dataclass(frozen=True)
class Explanation:
    """One application's explanation. Log-odds of default throughout; positive = toward denial.

    ``base_value`` is the mean calibrated log-odds of the cutoff reference group, ``output`` the model's
    calibrated log-odds for this application; ``base_value + sum(attributions.values()) == output`` (to
    float rounding). ``attributions`` (per spec field) and ``feature_attributions`` (per encoded feature)
    are against the cutoff group; ``attributions_all``/``base_value_all`` against all reference applicants.
    """

    model_version: str
    explainer_version: str
    method: str
    seed: int
    reference: str
    base_value: float
    output: float
    probability: float
    base_probability: float
    decision: str
    attributions: Mapping[str, float]
    probability_attributions: Mapping[str, float]
    base_value_all: float
    attributions_all: Mapping[str, float]
    feature_attributions: Mapping[str, float]
    negative_ranked: tuple[str, ...]
    checks: Checks
    recourse: Recourse | None
    reference_values: Mapping[str, Any]
    reference_group: Mapping[str, Any]

    @property
    def reasons(self) -> tuple[str, ...]:
        """The stated reasons: the top ``MAX_REASONS`` negative contributors."""
        return self.negative_ranked[:MAX_REASONS]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_version": self.model_version,
            "explainer_version": self.explainer_version,
            "method": self.method,
            "seed": self.seed,
            "reference": self.reference,
            "base_value": self.base_value,
            "output": self.output,
            "probability": self.probability,
            "base_probability": self.base_probability,
            "decision": self.decision,
            "attributions": dict(self.attributions),
            "probability_attributions": dict(self.probability_attributions),
            "base_value_all": self.base_value_all,
            "attributions_all": dict(self.attributions_all),
            "feature_attributions": _lean_features(self.feature_attributions, self.attributions),
            "negative_ranked": list(self.negative_ranked),
            "checks": self.checks.to_dict(),
            "recourse": None if self.recourse is None else self.recourse.to_dict(),
            "reference_values": _json_safe_shared(self.reference_values),
            "reference_group": _json_safe_shared(self.reference_group),
        }

    def to_json(self) -> str:
        """The stored text: exactly ``json.dumps(self.to_dict(), allow_nan=False)``, written without building
        the dict (templates per key set, floats through ``float.__repr__`` as json does); anything unusual
        (a non-finite or non-float number, an unexpected detail) goes through ``json.dumps`` itself."""
        try:
            return _fast_json(self)
        except _Slow:
            return _JSON.encode(self.to_dict())

    def stored_context(self) -> dict[str, Any]:
        """The part of the stored form every explanation of one model version (and spec, and explainer
        version) shares: the field and stored feature names, in the order of the stored arrays, and the
        cutoff group's reference values and summary. Stored once, referenced by each explanation."""
        return {"format": STORED_FORMAT, "fields": list(self.attributions),
                "features": list(_lean_features(self.feature_attributions, self.attributions)),
                "reference_values": _json_safe_shared(self.reference_values),
                "reference_group": _json_safe_shared(self.reference_group)}

    def to_stored(self, context: Mapping[str, Any]) -> dict[str, Any]:
        """The explanation's own part of the stored form (format 2): ``to_dict`` with every per-field
        mapping whose keys are ``context["fields"]`` in order written as a list of its values, the stored
        feature attributions as a list in ``context["features"]`` order, and no reference values or group
        (they are the context's). A mapping with other keys stays a mapping. ``expand_stored(row,
        context) == to_dict()``, exactly: nothing is left out, the numbers are the same floats."""
        fields = context["fields"]
        features = context["features"]
        checks = self.checks
        faithfulness = _json_safe(checks.faithfulness.detail)
        if isinstance(faithfulness.get("delta_pd"), dict):
            faithfulness["delta_pd"] = _as_list(faithfulness["delta_pd"], fields)
        return {
            "format": STORED_FORMAT,
            "model_version": self.model_version,
            "explainer_version": self.explainer_version,
            "method": self.method,
            "seed": self.seed,
            "reference": self.reference,
            "base_value": self.base_value,
            "output": self.output,
            "probability": self.probability,
            "base_probability": self.base_probability,
            "decision": self.decision,
            "attributions": _as_list(self.attributions, fields),
            "probability_attributions": _as_list(self.probability_attributions, fields),
            "base_value_all": self.base_value_all,
            "attributions_all": _as_list(self.attributions_all, fields),
            "feature_attributions": _as_list(_lean_features(self.feature_attributions, self.attributions), features),
            "negative_ranked": list(self.negative_ranked),
            "checks": {"additivity": checks.additivity.to_dict(), "determinism": checks.determinism.to_dict(),
                       "faithfulness": {"passed": checks.faithfulness.passed, "detail": faithfulness},
                       "all_passed": checks.all_passed},
            "recourse": None if self.recourse is None else self.recourse.to_dict(),
        }

    def to_stored_json(self, context: Mapping[str, Any]) -> str:
        """``to_stored(context)`` as JSON text. Written by orjson (floats as the shortest text that reads back
        as the same float, as ``repr`` does, several times faster than the json module) when every number
        is finite; otherwise by ``json.dumps(allow_nan=False)``, which refuses a non-finite number (orjson
        would write it as null)."""
        return _stored_text(self.to_stored(context), _finite_numbers(self))

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Explanation:
        def floats(key: str) -> dict[str, float]:
            return {str(k): float(v) for k, v in dict(raw[key]).items()}

        recourse = raw.get("recourse")
        return cls(
            model_version=str(raw["model_version"]), explainer_version=str(raw["explainer_version"]),
            method=str(raw["method"]), seed=int(raw["seed"]), reference=str(raw["reference"]),
            base_value=float(raw["base_value"]), output=float(raw["output"]),
            probability=float(raw["probability"]), base_probability=float(raw["base_probability"]),
            decision=str(raw["decision"]), attributions=floats("attributions"),
            probability_attributions=floats("probability_attributions"),
            base_value_all=float(raw["base_value_all"]), attributions_all=floats("attributions_all"),
            feature_attributions=_full_features(floats("feature_attributions"), floats("attributions")),
            negative_ranked=tuple(str(f) for f in raw["negative_ranked"]),
            checks=Checks.from_dict(raw["checks"]),
            recourse=None if recourse is None else Recourse.from_dict(recourse),
            reference_values=dict(raw.get("reference_values", {})),
            reference_group=dict(raw.get("reference_group", {})),
        )


@dataclass(frozen=True)
class ReferenceGroup:
    """The cutoff reference group: indices into ``model.reference`` and what they cover."""

    rows: tuple[int, ...]
    approval_line: float
    pd_min: float
    pd_max: float
    below_line: int  # how many of the rows are below the approval line
    widened: bool  # True when too few reference rows were below the line

    @property
    def size(self) -> int:
        return len(self.rows)

    def summary(self) -> dict[str, Any]:
        return {"size": self.size, "approval_line": self.approval_line, "pd_min": self.pd_min,
                "pd_max": self.pd_max, "below_line": self.below_line, "widened": self.widened,
                "selection": f"the {self.size} reference rows with PD nearest below the approval line"}


_JSON = json.JSONEncoder(allow_nan=False)
# JSON-safe copies of the mappings every explanation of a model shares (reference values and group),
# made once: keyed by identity, holding the original so that its id cannot be reused.
_SHARED: dict[int, tuple[Any, Any]] = {}
_SHARED_LIMIT = 256


def _json_safe_shared(value: Any) -> Any:
    """``_json_safe`` of a flat mapping shared by many explanations, converted once (a fresh dict each call)."""
    cached = _SHARED.get(id(value))
    if cached is None or cached[0] is not value:
        safe = _json_safe(value)
        if not isinstance(safe, dict) or any(isinstance(v, dict | list) for v in safe.values()):
            return safe  # not flat: a shared copy could be changed through a caller's nested reference
        if len(_SHARED) >= _SHARED_LIMIT:
            _SHARED.clear()
        _SHARED[id(value)] = cached = (value, safe)
    return dict(cached[1])


# --- the stored JSON text, fast ---------------------------------------------------------------------------

class _Slow(Exception):
    """Something the fast writer does not handle: the caller uses json.dumps on to_dict() instead."""


_TEXT_LIMIT = 20_000
_STRINGS: dict[str, str] = {}
_FLOAT_TEMPLATES: dict[tuple[str, ...], str] = {}
_SHARED_TEXT: dict[int, tuple[Any, str]] = {}
_TOP = ('{"model_version": %s, "explainer_version": %s, "method": %s, "seed": %s, "reference": %s, '
        '"base_value": %s, "output": %s, "probability": %s, "base_probability": %s, "decision": %s, '
        '"attributions": %s, "probability_attributions": %s, "base_value_all": %s, "attributions_all": %s, '
        '"feature_attributions": %s, "negative_ranked": %s, "checks": {"additivity": %s, "determinism": %s, '
        '"faithfulness": %s, "all_passed": %s}, "recourse": %s, "reference_values": %s, "reference_group": %s}')


def _j_str(text: Any) -> str:
    if type(text) is not str:
        raise _Slow
    out = _STRINGS.get(text)
    if out is None:
        out = json.dumps(text)
        if len(_STRINGS) < _TEXT_LIMIT:
            _STRINGS[text] = out
    return out


def _j_scalar(value: Any) -> str:
    kind = type(value)
    if kind is float:
        if value - value != 0.0:  # inf or nan
            raise _Slow
        return float.__repr__(value)
    if kind is str:
        return _j_str(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return int.__repr__(value)
    if value is None:
        return "null"
    raise _Slow


def _j_floats(mapping: Mapping[str, Any]) -> str:
    """A mapping of str to finite floats, as json writes it (one %-template per key tuple)."""
    if type(mapping) is not dict:
        raise _Slow
    keys = tuple(mapping)
    template = _FLOAT_TEMPLATES.get(keys)
    if template is None:
        template = "{" + ", ".join(_j_str(k).replace("%", "%%") + ": %r" for k in keys) + "}"
        if len(_FLOAT_TEMPLATES) < _TEXT_LIMIT:
            _FLOAT_TEMPLATES[keys] = template
    values = tuple(mapping.values())
    for value in values:
        if type(value) is not float:
            raise _Slow
    if not math.isfinite(sum(values)):
        raise _Slow
    return template % values


def _j_detail(detail: Mapping[str, Any]) -> str:
    """A check's detail (what _json_safe leaves unchanged: str keys, scalars, float mappings)."""
    if type(detail) is not dict:
        raise _Slow
    parts = []
    for key, value in detail.items():
        parts.append(_j_str(key) + ": " + (_j_floats(value) if type(value) is dict else _j_scalar(value)))
    return "{" + ", ".join(parts) + "}"


def _j_check(check: Check) -> str:
    if type(check.passed) is not bool:
        raise _Slow
    return '{"passed": ' + ("true" if check.passed else "false") + ', "detail": ' + _j_detail(check.detail) + "}"


def _j_shared(mapping: Any) -> str:
    """The JSON text of a mapping every explanation of a model shares, made once."""
    cached = _SHARED_TEXT.get(id(mapping))
    if cached is None or cached[0] is not mapping:
        if len(_SHARED_TEXT) >= _SHARED_LIMIT:
            _SHARED_TEXT.clear()
        cached = _SHARED_TEXT[id(mapping)] = (mapping, _JSON.encode(_json_safe(mapping)))
    return cached[1]


def _fast_json(e: Explanation) -> str:
    checks = e.checks
    all_passed = checks.all_passed
    if type(all_passed) is not bool:
        raise _Slow
    return _TOP % (
        _j_str(e.model_version), _j_str(e.explainer_version), _j_str(e.method), _j_scalar(e.seed),
        _j_str(e.reference), _j_scalar(e.base_value), _j_scalar(e.output), _j_scalar(e.probability),
        _j_scalar(e.base_probability), _j_str(e.decision), _j_floats(e.attributions),
        _j_floats(e.probability_attributions), _j_scalar(e.base_value_all), _j_floats(e.attributions_all),
        _j_floats(_lean_features(e.feature_attributions, e.attributions)),
        "[" + ", ".join([_j_str(f) for f in e.negative_ranked]) + "]",
        _j_check(checks.additivity), _j_check(checks.determinism), _j_check(checks.faithfulness),
        "true" if all_passed else "false",
        "null" if e.recourse is None else _JSON.encode(e.recourse.to_dict()),
        _j_shared(e.reference_values), _j_shared(e.reference_group))


def _stored_text(row: Mapping[str, Any], finite: bool) -> str:
    """The JSON text of a stored row: orjson when every number is finite, else the json module (which
    refuses a non-finite number; orjson would write null)."""
    if finite:
        try:
            return orjson.dumps(row).decode()
        except TypeError:  # e.g. an integer beyond 64 bits: the json module writes it
            pass
    return _JSON.encode(row)


def _finite_numbers(e: Explanation) -> bool:
    """Every float of the stored row is finite (check details are made JSON-safe already: NaN -> None).
    A sum of finite floats can overflow to inf: then this says False and json.dumps decides."""
    sums = [e.base_value, e.output, e.probability, e.base_probability, e.base_value_all]
    for mapping in (e.attributions, e.probability_attributions, e.attributions_all, e.feature_attributions):
        sums.append(sum(mapping.values()))
    recourse = e.recourse
    if recourse is not None:
        sums.append(sum(v for v in (recourse.new_probability, recourse.cost) if v is not None))
    return math.isfinite(sum(sums))


def _as_list(mapping: Mapping[str, Any], names: Sequence[str]) -> Any:
    """The mapping's values as a list when its keys are ``names`` in order; otherwise the mapping itself."""
    keys = list(mapping)
    return list(mapping.values()) if keys == names else dict(mapping)


def _as_mapping(value: Any, names: Sequence[str]) -> dict[str, Any]:
    """Back from :func:`_as_list`: a list pairs with ``names``; a mapping stays as it is."""
    if isinstance(value, list):
        if len(value) != len(names):
            raise ValueError(f"a stored list of {len(value)} values for {len(names)} names")
        return dict(zip(names, value, strict=True))
    return dict(value)


def expand_stored(row: Mapping[str, Any], context: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``to_dict`` form of a stored explanation: a format 2 row (``Explanation.to_stored``) joined
    with its context (``Explanation.stored_context``); a row stored before format 2 is already in it."""
    if row.get("format") != STORED_FORMAT:
        return dict(row)
    if context is None or context.get("format") != STORED_FORMAT:
        raise ValueError("a format 2 explanation needs its stored context")
    fields = context["fields"]
    checks = dict(row["checks"])
    faithfulness = dict(checks["faithfulness"])
    detail = dict(faithfulness["detail"])
    if "delta_pd" in detail:
        detail["delta_pd"] = _as_mapping(detail["delta_pd"], fields)
    faithfulness["detail"] = detail
    checks["faithfulness"] = faithfulness
    out = {key: row[key] for key in ("model_version", "explainer_version", "method", "seed", "reference",
                                     "base_value", "output", "probability", "base_probability", "decision")}
    out["attributions"] = _as_mapping(row["attributions"], fields)
    out["probability_attributions"] = _as_mapping(row["probability_attributions"], fields)
    out["base_value_all"] = row["base_value_all"]
    out["attributions_all"] = _as_mapping(row["attributions_all"], fields)
    out["feature_attributions"] = _as_mapping(row["feature_attributions"], context["features"])
    out["negative_ranked"] = list(row["negative_ranked"])
    out["checks"] = checks
    out["recourse"] = row["recourse"]
    out["reference_values"] = dict(context["reference_values"])
    out["reference_group"] = dict(context["reference_group"])
    return out


def _single_feature_fields(features: Sequence[str], fields: Sequence[str]) -> frozenset[str]:
    """The fields whose only feature carries the field's own name (its attribution is the field's)."""
    return frozenset(f for f in fields if f in features and not any(
        k.startswith(f + "=") or k.startswith(f + " (") for k in features))


_LEAN: dict[tuple[tuple[str, ...], tuple[str, ...]], frozenset[str]] = {}


def _lean_features(features: Mapping[str, float], attributions: Mapping[str, float]) -> dict[str, float]:
    """The stored per-feature attributions: a field with a single feature of its own name is left out (its
    value is the field's attribution, bit for bit: a one-column sum). :func:`_full_features` puts it back."""
    key = (tuple(features), tuple(attributions))
    single = _LEAN.get(key)
    if single is None:
        if len(_LEAN) >= _SHARED_LIMIT:
            _LEAN.clear()
        single = _LEAN[key] = _single_feature_fields(key[0], key[1])
    return {k: v for k, v in features.items() if k not in single}


def _full_features(stored: Mapping[str, float], attributions: Mapping[str, float]) -> dict[str, float]:
    """Every feature's attribution, in feature order, from the lean stored form."""
    out: dict[str, float] = {}
    for field_name, value in attributions.items():
        own = [k for k in stored if k == field_name or k.startswith(field_name + "=")
               or k.startswith(field_name + " (")]
        if own:
            out.update((k, stored[k]) for k in own)
        else:
            out[field_name] = value
    out.update((k, v) for k, v in stored.items() if k not in out)
    return out


def _json_safe(value: Any) -> Any:
    kind = type(value)
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is dict:
        return {k if type(k) is str else str(k): _json_safe(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [_json_safe(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --- encoded features <-> values -------------------------------------------------------------------

def decode_features(encoder: FeatureEncoder, spec: ProductSpec, row: FloatArray) -> dict[str, Any]:
    """The application values an encoded feature row stands for (model-input fields only).

    Numbers come back as float (int for integer fields, Decimal for money), a NaN main feature as the
    special code its indicator names (None if none), one-hot columns as the category (None if all 0).
    ``encoder.encode_row(decode_features(...))`` gives the row back.
    """
    out: dict[str, Any] = {}
    for enc in encoder.fields:
        field_spec = spec.field(enc.name)
        main = float(row[enc.first])
        if enc.kind == NUMERIC:
            if math.isnan(main):
                code = None
                for k, indicator in enumerate(enc.indicator_codes):
                    if row[enc.first + 1 + k] == 1.0:
                        code = int(indicator)
                out[enc.name] = code
            elif field_spec.type == "integer" and main.is_integer():
                out[enc.name] = int(main)
            elif field_spec.unit in MONEY_UNITS:
                out[enc.name] = Decimal(repr(main))
            else:
                out[enc.name] = main
        elif enc.kind == ONEHOT:
            block = row[enc.first:enc.first + enc.width]
            hits = np.flatnonzero(block == 1.0)
            out[enc.name] = enc.categories[int(hits[0])] if hits.size else None
        elif enc.kind == NATIVE:
            out[enc.name] = None if math.isnan(main) else enc.categories[int(main)]
        elif enc.kind == BOOLEAN:
            out[enc.name] = None if math.isnan(main) else bool(main)
    return out


def _number(value: Any) -> float:
    """``to_float``, with the usual types first: a float is itself, an int or a finite Decimal is
    ``float()`` of it (which cannot fail for them), anything else goes through ``to_float``."""
    kind = type(value)
    if kind is float:
        return value  # type: ignore[no-any-return]
    if kind is int and -_HUGE < value < _HUGE:
        return float(value)
    if kind is Decimal and value.is_finite():
        return float(value)
    return to_float(value)


_HUGE = 2**1000


def encode_many(encoder: FeatureEncoder, rows: Sequence[Mapping[str, Any]]) -> FloatArray:
    """``np.vstack([encoder.encode_row(v) for v in rows])``, bit for bit, a column at a time: the same
    conversions (``to_float`` for numbers, special codes compared on the converted float, the category
    lookups and ``_to_bool_float`` of scoring.features) without a Python call per cell."""
    n = len(rows)
    out = np.zeros((n, encoder.n_features), dtype=np.float64)
    if n == 0:
        return out
    for enc in encoder.fields:
        name = enc.name
        column = [row.get(name) for row in rows]
        if enc.kind == NUMERIC:
            numbers = np.array([_number(value) for value in column], dtype=np.float64)
            for code in encoder._special[name]:
                hit = numbers == code
                if hit.any():
                    slot = encoder._indicator[name].get(code)
                    if slot is not None:
                        out[hit, slot] = 1.0
                    numbers[hit] = math.nan
            out[:, enc.first] = numbers
        elif enc.kind in (ONEHOT, NATIVE):
            lookup = encoder._category_index[name]
            index = np.array([lookup.get(value, -1) if isinstance(value, str) else -1
                              for value in column], dtype=np.int64)
            if enc.kind == ONEHOT:
                rows_hit = np.flatnonzero(index >= 0)
                out[rows_hit, enc.first + index[rows_hit]] = 1.0
            else:
                out[:, enc.first] = np.where(index >= 0, index.astype(np.float64), math.nan)
        else:
            out[:, enc.first] = [_to_bool_float(value) for value in column]
    return out


def _display_values(encoder: FeatureEncoder, spec: ProductSpec, row: FloatArray) -> dict[str, Any]:
    """Reference values as shown to a reader: like decode_features, but a median stays a plain number."""
    out = decode_features(encoder, spec, row)
    for enc in encoder.fields:
        value = out.get(enc.name)
        if enc.kind == NUMERIC and isinstance(value, Decimal):
            out[enc.name] = float(value)
    return out


def _mode(patterns: FloatArray) -> FloatArray:
    """The most frequent row of ``patterns`` (NaN equal to NaN); ties go to the first in sorted order."""
    keys = [tuple(-math.inf if math.isnan(v) else v for v in r) for r in patterns.tolist()]
    counts: dict[tuple[float, ...], int] = {}
    for key in keys:
        counts[key] = counts.get(key, 0) + 1
    best = min(counts, key=lambda k: (-counts[k], k))
    return np.array([math.nan if v == -math.inf else v for v in best], dtype=np.float64)


def representative_features(encoder: FeatureEncoder, rows: FloatArray) -> FloatArray:
    """A representative encoded row of a group: per numeric field the median of its main feature (with
    its indicators 0) when at least half the group has a real value, else the modal special-code pattern;
    per category or boolean field the modal pattern of its columns."""
    out = np.zeros(encoder.n_features, dtype=np.float64)
    for enc in encoder.fields:
        block = rows[:, enc.first:enc.first + enc.width]
        if enc.kind == NUMERIC:
            main = block[:, 0]
            finite = main[np.isfinite(main)]
            if finite.size and finite.size * 2 >= len(main):
                out[enc.first] = float(np.median(finite))
                out[enc.first + 1:enc.first + enc.width] = 0.0
            else:
                out[enc.first:enc.first + enc.width] = _mode(block[~np.isfinite(main)] if finite.size else block)
        else:
            out[enc.first:enc.first + enc.width] = _mode(block)
    return out


def cutoff_group(probabilities: FloatArray, approval_line: float, size: int = CUTOFF_GROUP_SIZE) -> ReferenceGroup:
    """The ``size`` rows with PD nearest below ``approval_line`` (widened above it if too few are below)."""
    n = len(probabilities)
    size = min(size, n)
    index = np.arange(n)
    below = index[probabilities < approval_line]
    below = below[np.lexsort((below, -probabilities[below]))]  # highest PD first, then row order
    chosen = below[:size]
    widened = False
    if len(chosen) < size:
        above = index[probabilities >= approval_line]
        above = above[np.lexsort((above, probabilities[above]))]  # nearest the line first
        chosen = np.concatenate([chosen, above[:size - len(chosen)]])
        widened = True
    rows = np.sort(chosen)
    group_pd = probabilities[rows]
    return ReferenceGroup(rows=tuple(int(i) for i in rows), approval_line=float(approval_line),
                          pd_min=float(group_pd.min()), pd_max=float(group_pd.max()),
                          below_line=int((group_pd < approval_line).sum()), widened=widened)


# --- backends: per-column contributions and the model's log-odds -----------------------------------

class _Backend:
    """What a method needs from a model: the encoder of its input rows, per-column contributions (log-odds,
    columns ordered so each field's columns are contiguous) and the model's log-odds."""

    method: str
    encoder: FeatureEncoder
    column_names: tuple[str, ...]
    starts: IntArray  # first column of each field, in encoder field order

    def contributions(self, rows: FloatArray, threads: int) -> FloatArray:
        raise NotImplementedError

    def log_odds(self, rows: FloatArray, threads: int) -> FloatArray:
        raise NotImplementedError

    def compute(self, rows: FloatArray, threads: int, keep: bool) -> tuple[FloatArray, FloatArray, Any]:
        """(contributions, log-odds, state for :meth:`moved_log_odds` or None)."""
        return self.contributions(rows, threads), self.log_odds(rows, threads), None

    def prepare_moves(self, representative: FloatArray) -> Any:
        return None

    def moved_log_odds(self, rows: FloatArray, state: Any, representative: FloatArray, moves: Any,
                       threads: int) -> FloatArray:
        """(rows, fields): the log-odds with each field in turn moved to the representative's value."""
        n_fields = len(self.encoder.fields)
        moved = np.repeat(rows, n_fields, axis=0)
        for k, enc in enumerate(self.encoder.fields):
            moved[k::n_fields, enc.first:enc.first + enc.width] = representative[enc.first:enc.first + enc.width]
        return self.log_odds(moved, threads).reshape(len(rows), n_fields)


class _TreeBackend(_Backend):
    """LightGBM through our own exact kernels (scoring.treeshap: TreeSHAP values equal to ``pred_contrib``
    to ~1e-15, margins equal to ``predict(raw_score=True)`` bit for bit), or through LightGBM itself when
    the model has something the kernels do not reproduce (native categorical splits)."""

    method = METHOD_TREE

    def __init__(self, model: ScoringModel, *, use_own: bool = True) -> None:
        self.model = model
        self.encoder = model.encoder
        self.column_names = model.encoder.feature_names
        self.starts = np.array([enc.first for enc in model.encoder.fields], dtype=np.int64)
        self.a = float(model.calibration.a)
        self.b = float(model.calibration.b)
        self.n_features = model.encoder.n_features
        self.kernel: TreeShap | None = None
        if use_own:
            try:
                self.kernel = TreeShap(model.booster)
            except ValueError:
                self.kernel = None
        self.ranges = [(enc.first, enc.first + enc.width) for enc in model.encoder.fields]

    @property
    def engine(self) -> str:
        return "candor-treeshap" if self.kernel is not None else "lightgbm-pred-contrib"

    def contributions(self, rows: FloatArray, threads: int) -> FloatArray:
        if self.kernel is not None:
            contrib = self.kernel.explain(rows, threads)[0]
        else:
            contrib = np.asarray(self.model.booster.predict(rows, pred_contrib=True, num_threads=threads),
                                 dtype=np.float64)
        out: FloatArray = self.a * contrib[:, :self.n_features]
        return out

    def log_odds(self, rows: FloatArray, threads: int) -> FloatArray:
        if self.kernel is not None:
            raw = self.kernel.margins(rows, threads)
        else:
            raw = np.asarray(self.model.booster.predict(rows, raw_score=True, num_threads=threads), dtype=np.float64)
        out: FloatArray = self.a * raw + self.b
        return out

    def compute(self, rows: FloatArray, threads: int, keep: bool) -> tuple[FloatArray, FloatArray, Any]:
        if self.kernel is None:
            return super().compute(rows, threads, keep)
        contrib, raw, patterns = self.kernel.explain(rows, threads, keep_patterns=keep)
        return self.a * contrib[:, :self.n_features], self.a * raw + self.b, patterns

    def prepare_moves(self, representative: FloatArray) -> Any:
        if self.kernel is None or not self.kernel.per_tree:
            return None
        return self.kernel.moved_masks(representative, self.ranges)

    def moved_log_odds(self, rows: FloatArray, state: Any, representative: FloatArray, moves: Any,
                       threads: int) -> FloatArray:
        if self.kernel is None:
            return super().moved_log_odds(rows, state, representative, moves, threads)
        if state is not None and moves is not None:
            raw = self.kernel.moved_from_patterns(state, moves[0], moves[1], threads)
        else:
            raw = self.kernel.moved_margins(rows, representative, self.ranges, threads)
        out: FloatArray = self.a * raw + self.b
        return out


class _LinearBackend(_Backend):
    method = METHOD_LINEAR

    def __init__(self, benchmark: LogisticBenchmark, encoder: FeatureEncoder) -> None:
        self.benchmark = benchmark
        self.encoder = encoder
        n = encoder.n_features
        owners = list(encoder.feature_field) + [encoder.feature_field[i] for i in benchmark.indicator_features]
        names = list(encoder.feature_names) + [f"{encoder.feature_names[i]} (missing)"
                                               for i in benchmark.indicator_features]
        position = {name: k for k, name in enumerate(encoder.field_names)}
        self.order = np.argsort(np.array([position[o] for o in owners], dtype=np.int64), kind="stable")
        ordered_owners = [owners[i] for i in self.order]
        self.column_names = tuple(names[i] for i in self.order)
        self.starts = np.array([ordered_owners.index(f) for f in encoder.field_names], dtype=np.int64)
        self.coefficients = np.asarray(benchmark.coefficients, dtype=np.float64)
        if len(self.coefficients) != n + len(benchmark.indicator_features):
            raise ValueError("benchmark coefficients do not match its design matrix")

    def contributions(self, rows: FloatArray, threads: int) -> FloatArray:
        out: FloatArray = (self.benchmark.design(rows) * self.coefficients)[:, self.order]
        return out

    def log_odds(self, rows: FloatArray, threads: int) -> FloatArray:
        return self.benchmark.margin(rows)


@dataclass(frozen=True)
class _Prepared:
    backend: _Backend
    mean_cut: FloatArray
    mean_all: FloatArray
    base_cut: float
    base_all: float
    representative: FloatArray  # encoded representative row of the cutoff group (backend's encoder)
    reference_values: Mapping[str, Any]
    moves: Any = None  # the backend's precomputed faithfulness moves (prepare_moves)


@dataclass(frozen=True)
class _Core:
    feature_cut: FloatArray
    feature_all: FloatArray
    field_cut: FloatArray
    field_all: FloatArray
    output: FloatArray
    state: Any = None


# --- the explainer ---------------------------------------------------------------------------------

_CACHE: dict[tuple[str, str, str], Explainer] = {}
_CACHE_LOCK = threading.Lock()


class Explainer:
    """Explains one model's decisions. Build with :meth:`for_model` (cached per model version and spec)."""

    def __init__(self, model: ScoringModel, spec: ProductSpec, *, own_kernel: bool = True) -> None:
        """``own_kernel=False``: LightGBM's ``pred_contrib`` and ``predict`` instead of scoring.treeshap
        (the same numbers to ~1e-15, several times slower); models the kernel cannot reproduce exactly
        (native categorical splits) use LightGBM anyway."""
        if not model.matches_spec(spec):
            raise ValueError(f"model {model.version} was not trained for spec {spec.slug!r} "
                             f"({spec.spec_hash[:12]})")
        self.model = model
        self.spec = spec
        self.approval_line = spec.policy.cutoff - spec.policy.refer_band
        self.fields: tuple[str, ...] = model.encoder.field_names
        reference = np.ascontiguousarray(model.reference, dtype=np.float64)
        self._reference = reference
        tree = _TreeBackend(model, use_own=own_kernel)
        reference_log_odds = tree.log_odds(reference, 0)
        self.reference_probabilities = np.array([sigmoid(v) for v in reference_log_odds.tolist()],
                                                dtype=np.float64)
        self.reference_group = cutoff_group(self.reference_probabilities, self.approval_line)
        self._group_rows = np.array(self.reference_group.rows, dtype=np.int64)
        self._group_summary = self.reference_group.summary()
        self._tree = self._prepare(tree, reference)
        self._linear: _Prepared | None = None
        self._linear_lock = threading.Lock()
        self.recourse_search = RecourseSearch(model, spec, kernel=tree.kernel, use_kernel=own_kernel)

    @classmethod
    def for_model(cls, model: ScoringModel, spec: ProductSpec) -> Explainer:
        """The explainer of ``model`` for ``spec``, built once per process (group means precomputed)."""
        key = (model.version, str(model.path), spec.spec_hash)
        explainer = _CACHE.get(key)
        if explainer is None:
            with _CACHE_LOCK:
                explainer = _CACHE.get(key)
                if explainer is None:
                    explainer = cls(model, spec)
                    _CACHE[key] = explainer
        return explainer

    @property
    def reference_values(self) -> Mapping[str, Any]:
        """The cutoff group's representative value per field (faithfulness check, recourse display)."""
        return self._tree.reference_values

    # --- public ------------------------------------------------------------------------------------

    def explain(self, values: Mapping[str, Any], *, with_recourse: bool = True) -> Explanation:
        """Explain one application (cleaned values, as validate_fields returns)."""
        encoder = self.model.encoder
        first = encode_many(encoder, [values])
        second = encode_many(encoder, [values])
        return self._explain_rows(self._tree, first, second, [values], with_recourse, threads=1)[0]

    def explain_many(self, rows: Sequence[Mapping[str, Any]] | FloatArray, *, with_recourse: bool = True,
                     values: Sequence[Mapping[str, Any]] | None = None, chunk_rows: int = CHUNK_ROWS,
                     num_threads: int = 0) -> list[Explanation]:
        """Explain many applications: value mappings, or an encoded (rows, n_features) matrix (then the
        values used for the policy and recourse are ``values`` if given, else decoded from the features).

        Per chunk of ``chunk_rows``: one kernel pass (contributions, margins and node patterns), grouping
        by ``np.add.reduceat``, checks vectorised (determinism: the chunk encoded and computed a second
        time and compared bit for bit; faithfulness from the node patterns), recourse in one compiled
        search over the rows that are not approved. ``num_threads``: numba threads of the kernels (0:
        numba's setting for this thread). Gives the same numbers as :meth:`explain` row by row.
        """
        encoder = self.model.encoder
        matrix: FloatArray | None = None
        if isinstance(rows, np.ndarray):
            matrix = np.asarray(rows, dtype=np.float64)
            if matrix.ndim != 2 or matrix.shape[1] != encoder.n_features:
                raise ValueError(f"expected a (rows, {encoder.n_features}) feature matrix, got {matrix.shape}")
            if values is not None and len(values) != len(matrix):
                raise ValueError("values must have one mapping per row of the feature matrix")
            row_values: Sequence[Mapping[str, Any]] = (
                list(values) if values is not None
                else [decode_features(encoder, self.spec, r) for r in matrix])
        else:
            row_values = list(rows)
        out: list[Explanation] = []
        total = len(row_values)
        for start in range(0, total, max(1, chunk_rows)):
            stop = min(start + max(1, chunk_rows), total)
            if matrix is not None:
                first = np.ascontiguousarray(matrix[start:stop])
                second = np.array(matrix[start:stop], dtype=np.float64, copy=True, order="C")
            else:
                first = encode_many(encoder, row_values[start:stop])
                second = encode_many(encoder, row_values[start:stop])  # encoded again: part of the recomputation
            out += self._explain_rows(self._tree, first, second, row_values[start:stop], with_recourse,
                                      threads=num_threads)
        return out

    def explain_many_stored(self, rows: Sequence[Mapping[str, Any]], *, chunk_rows: int = CHUNK_ROWS,
                            num_threads: int = 0) -> StoredBatch:
        """:meth:`explain_many` of value mappings written straight to the stored form, for the batch path:
        the same computation, without building an :class:`Explanation` per row and taking it apart again.
        ``texts[i] == explain_many(rows)[i].to_stored_json(context)`` (the same JSON values; tested)."""
        encoder = self.model.encoder
        prepared = self._tree
        row_values = list(rows)
        context: dict[str, Any] | None = None
        texts: list[str] = []
        outputs: list[float] = []
        passed: list[bool] = []
        decisions: list[str] = []
        step = max(1, chunk_rows)
        for start in range(0, len(row_values), step):
            part = row_values[start:start + step]
            first = encode_many(encoder, part)
            second = encode_many(encoder, part)  # encoded again: part of the recomputation
            computed = self._rows(prepared, first, second, part, True, num_threads)
            if context is None:
                context = self._stored_context(prepared)
            self._stored_texts(prepared, computed, context, texts, passed)
            outputs += computed.outputs
            decisions += computed.decisions
        return StoredBatch(context=context if context is not None else self._stored_context(prepared),
                           texts=texts, outputs=outputs, checks_passed=passed, decisions=decisions,
                           base_value=prepared.base_cut, method=prepared.backend.method,
                           explainer_version=EXPLAINER_VERSION)

    def explain_benchmark(self, values: Mapping[str, Any]) -> Explanation:
        """The same explanation for the logistic benchmark (exact linear attributions, no recourse)."""
        prepared = self._linear_prepared()
        encoder = prepared.backend.encoder
        first = encoder.encode_row(values).reshape(1, -1)
        second = encoder.encode_row(values).reshape(1, -1)
        return self._explain_rows(prepared, first, second, [values], False, threads=1)[0]

    # --- preparation -------------------------------------------------------------------------------

    def _prepare(self, backend: _Backend, reference: FloatArray) -> _Prepared:
        contributions = backend.contributions(reference, 0)
        log_odds = backend.log_odds(reference, 0)
        group = self._group_rows
        representative = representative_features(backend.encoder, reference[group])
        return _Prepared(
            backend=backend,
            mean_cut=contributions[group].mean(axis=0),
            mean_all=contributions.mean(axis=0),
            base_cut=float(log_odds[group].mean()),
            base_all=float(log_odds.mean()),
            representative=representative,
            reference_values=_display_values(backend.encoder, self.spec, representative),
            moves=backend.prepare_moves(representative),
        )

    def _linear_prepared(self) -> _Prepared:
        if self._linear is None:
            with self._linear_lock:
                if self._linear is None:
                    benchmark = self.model.benchmark
                    model_encoder = self.model.encoder
                    if benchmark.encoder.get("category_mode") == model_encoder.category_mode \
                            and list(benchmark.feature_names) == list(model_encoder.feature_names):
                        encoder, reference = model_encoder, self._reference
                    else:
                        encoder = FeatureEncoder.from_dict(benchmark.encoder)
                        reference = np.vstack([
                            encoder.encode_row(decode_features(model_encoder, self.spec, r))
                            for r in self._reference])
                    self._linear = self._prepare(_LinearBackend(benchmark, encoder), reference)
        return self._linear

    # --- the computation ---------------------------------------------------------------------------

    def _core(self, prepared: _Prepared, rows: FloatArray, threads: int, keep: bool = False) -> _Core:
        backend = prepared.backend
        contributions, output, state = backend.compute(rows, threads, keep)
        feature_cut = contributions - prepared.mean_cut
        feature_all = contributions - prepared.mean_all
        return _Core(
            feature_cut=feature_cut,
            feature_all=feature_all,
            field_cut=np.add.reduceat(feature_cut, backend.starts, axis=1),
            field_all=np.add.reduceat(feature_all, backend.starts, axis=1),
            output=output,
            state=state,
        )

    def _explain_rows(self, prepared: _Prepared, first: FloatArray, second: FloatArray,
                      values: Sequence[Mapping[str, Any]], with_recourse: bool, threads: int) -> list[Explanation]:
        rows = self._rows(prepared, first, second, values, with_recourse, threads)
        backend = prepared.backend
        fields = self.fields
        column_names = backend.column_names
        results: list[Explanation] = []
        for i in range(rows.n):
            attributions = dict(zip(fields, rows.field_cut[i], strict=True))
            slope = rows.slopes[i]
            passed, detail, deltas = rows.faithfulness[i]
            checks = Checks(
                additivity=Check(rows.additive[i], rows.additivity_detail(i)),
                determinism=Check(rows.identical[i], {"identical": rows.identical[i],
                                                      "max_abs_difference": rows.largest[i]}),
                faithfulness=Check(passed, {**detail, "delta_pd": dict(zip(fields, deltas, strict=True))}),
            )
            results.append(Explanation(
                model_version=self.model.version,
                explainer_version=EXPLAINER_VERSION,
                method=backend.method,
                seed=SEED,
                reference=REFERENCE_CUTOFF,
                base_value=prepared.base_cut,
                output=rows.outputs[i],
                probability=rows.probabilities[i],
                base_probability=rows.base_probability,
                decision=rows.decisions[i],
                attributions=attributions,
                probability_attributions={f: v * slope for f, v in attributions.items()},
                base_value_all=prepared.base_all,
                attributions_all=dict(zip(fields, rows.field_all[i], strict=True)),
                feature_attributions=dict(zip(column_names, rows.features[i], strict=True)),
                negative_ranked=rows.negatives[i],
                checks=checks,
                recourse=rows.recourses[i],
                reference_values=prepared.reference_values,
                reference_group=self._group_summary,
            ))
        return results

    def _stored_context(self, prepared: _Prepared) -> dict[str, Any]:
        """``Explanation.stored_context`` of this explainer's explanations (the same for every row)."""
        names = prepared.backend.column_names
        single = _single_feature_fields(names, self.fields)
        return {"format": STORED_FORMAT, "fields": list(self.fields),
                "features": [name for name in names if name not in single],
                "reference_values": _json_safe_shared(prepared.reference_values),
                "reference_group": _json_safe_shared(self._group_summary)}

    def _stored_texts(self, prepared: _Prepared, rows: _Rows, context: Mapping[str, Any], texts: list[str],
                      passed: list[bool]) -> None:
        """Append each row's ``Explanation.to_stored_json(context)`` text and whether all its checks passed."""
        names = prepared.backend.column_names
        if list(context["fields"]) != list(self.fields) or not set(context["features"]) <= set(names):
            raise ValueError("the stored context does not belong to this explainer")
        position = {name: j for j, name in enumerate(names)}
        lean = [position[name] for name in context["features"]]
        version, method = self.model.version, prepared.backend.method
        base_cut, base_all, base_probability = prepared.base_cut, prepared.base_all, rows.base_probability
        constant = base_cut + base_all + base_probability
        for i in range(rows.n):
            field_cut, field_all, features = rows.field_cut[i], rows.field_all[i], rows.features[i]
            slope = rows.slopes[i]
            probability_attributions = [v * slope for v in field_cut]
            feature_values = [features[j] for j in lean]
            faithful, detail, deltas = rows.faithfulness[i]
            additive, identical = rows.additive[i], rows.identical[i]
            recourse = rows.recourses[i]
            recourse_dict = None if recourse is None else recourse.to_dict()
            additivity = rows.additivity_detail(i)
            largest = rows.largest[i]
            # Check details are stored JSON-safe (a non-finite number as null), as Check.to_dict does.
            if not math.isfinite(sum(additivity.values()) + largest):
                additivity = _json_safe(additivity)
                largest = _json_safe(largest)
            if not math.isfinite(sum(deltas)):
                deltas = _json_safe(deltas)
            all_passed = additive and identical and faithful
            row = {
                "format": STORED_FORMAT, "model_version": version, "explainer_version": EXPLAINER_VERSION,
                "method": method, "seed": SEED, "reference": REFERENCE_CUTOFF, "base_value": base_cut,
                "output": rows.outputs[i], "probability": rows.probabilities[i], "base_probability": base_probability,
                "decision": rows.decisions[i], "attributions": field_cut,
                "probability_attributions": probability_attributions, "base_value_all": base_all,
                "attributions_all": field_all, "feature_attributions": feature_values,
                "negative_ranked": list(rows.negatives[i]),
                "checks": {"additivity": {"passed": additive, "detail": additivity},
                           "determinism": {"passed": identical, "detail": {"identical": identical,
                                                                           "max_abs_difference": largest}},
                           "faithfulness": {"passed": faithful, "detail": {**detail, "delta_pd": deltas}},
                           "all_passed": all_passed},
                "recourse": recourse_dict,
            }
            total = (constant + rows.outputs[i] + rows.probabilities[i] + sum(field_cut) + sum(field_all)
                     + sum(feature_values) + sum(probability_attributions))
            if recourse is not None:
                total += sum(v for v in (recourse.new_probability, recourse.cost) if v is not None)
            texts.append(_stored_text(row, math.isfinite(total)))
            passed.append(all_passed)

    def _rows(self, prepared: _Prepared, first: FloatArray, second: FloatArray,
              values: Sequence[Mapping[str, Any]], with_recourse: bool, threads: int) -> _Rows:
        """Everything an explanation of each row holds, computed for the chunk at once, as Python lists."""
        backend = prepared.backend
        core = self._core(prepared, first, threads, keep=True)
        again = self._core(prepared, second, threads)
        n = len(first)
        fields = self.fields

        # additivity
        residual = (prepared.base_cut + core.field_cut.sum(axis=1)) - core.output
        residual_all = (prepared.base_all + core.field_all.sum(axis=1)) - core.output
        grouping = core.field_cut.sum(axis=1) - core.feature_cut.sum(axis=1)
        grouping_all = core.field_all.sum(axis=1) - core.feature_all.sum(axis=1)
        additive = ((np.abs(residual) <= ADDITIVITY_TOLERANCE) & (np.abs(residual_all) <= ADDITIVITY_TOLERANCE)
                    & (np.abs(grouping) <= GROUPING_TOLERANCE) & (np.abs(grouping_all) <= GROUPING_TOLERANCE))

        # determinism
        pairs = ((core.feature_cut, again.feature_cut), (core.feature_all, again.feature_all),
                 (core.field_cut, again.field_cut), (core.field_all, again.field_all))
        identical = np.ones(n, dtype=bool)
        largest = np.zeros(n, dtype=np.float64)
        for left, right in (*pairs, (core.output.reshape(-1, 1), again.output.reshape(-1, 1))):
            same = (left == right) | (np.isnan(left) & np.isnan(right))
            identical &= same.all(axis=1)
            largest = np.maximum(largest, np.nan_to_num(np.abs(left - right), nan=0.0).max(axis=1))

        # ranking: positive attributions, largest first, ties in field order (stable sort)
        ranked = np.argsort(-core.field_cut, axis=1, kind="stable")
        positive = (core.field_cut > 0.0).sum(axis=1)

        # faithfulness: every field moved to the cutoff group's representative value, one predict call
        moved_log_odds = backend.moved_log_odds(first, core.state, prepared.representative, prepared.moves,
                                                threads)

        base_probability = sigmoid(prepared.base_cut)
        outputs = core.output.tolist()
        ranked_rows = ranked.tolist()
        positives = positive.tolist()
        probabilities = [sigmoid(output) for output in outputs]
        negatives = [tuple(fields[j] for j in ranked_rows[i][:positives[i]]) for i in range(n)]
        decisions = [policy_decide(self.spec.policy, probabilities[i], values[i]).outcome for i in range(n)]
        recourses: list[Recourse | None] = [None] * n
        if with_recourse and backend.method == METHOD_TREE:
            wanted = [i for i in range(n) if decisions[i] != APPROVED]
            if wanted:
                state = core.state
                found = self.recourse_search.find_many(
                    [values[i] for i in wanted], features=first[wanted],
                    reasons=[negatives[i][:MAX_REASONS] for i in wanted],
                    probabilities=[probabilities[i] for i in wanted],
                    patterns=None if state is None else state[wanted])
                for i, recourse in zip(wanted, found, strict=True):
                    recourses[i] = recourse
        slopes = []
        for output, probability in zip(outputs, probabilities, strict=True):
            delta = output - prepared.base_cut
            slopes.append((probability - base_probability) / delta if abs(delta) > 1e-12
                          else probability * (1.0 - probability))
        return _Rows(
            n=n, outputs=outputs, probabilities=probabilities, base_probability=base_probability,
            field_cut=core.field_cut.tolist(), field_all=core.field_all.tolist(), features=core.feature_cut.tolist(),
            slopes=slopes, negatives=negatives, decisions=decisions, recourses=recourses,
            additive=additive.tolist(), residual=residual.tolist(), residual_all=residual_all.tolist(),
            grouping=grouping.tolist(), grouping_all=grouping_all.tolist(), identical=identical.tolist(),
            largest=largest.tolist(),
            faithfulness=_faithfulness_rows(fields, negatives, probabilities, moved_log_odds))


@dataclass(frozen=True)
class StoredBatch:
    """Explanations in the stored form (:meth:`Explainer.explain_many_stored`): the shared context, and per
    row the stored JSON text, the output, whether every check passed and the decision it explains."""

    context: dict[str, Any]
    texts: list[str]
    outputs: list[float]
    checks_passed: list[bool]
    decisions: list[str]
    base_value: float
    method: str
    explainer_version: str


@dataclass(frozen=True)
class _Rows:
    """One chunk's explanations as lists (row i of each list belongs to application i)."""

    n: int
    outputs: list[float]
    probabilities: list[float]
    base_probability: float
    field_cut: list[list[float]]
    field_all: list[list[float]]
    features: list[list[float]]
    slopes: list[float]
    negatives: list[tuple[str, ...]]
    decisions: list[str]
    recourses: list[Recourse | None]
    additive: list[bool]
    residual: list[float]
    residual_all: list[float]
    grouping: list[float]
    grouping_all: list[float]
    identical: list[bool]
    largest: list[float]
    faithfulness: list[tuple[bool, dict[str, Any], list[float]]]

    def additivity_detail(self, i: int) -> dict[str, Any]:
        return {"residual": self.residual[i], "residual_all": self.residual_all[i],
                "grouping_difference": self.grouping[i], "grouping_difference_all": self.grouping_all[i],
                "tolerance": ADDITIVITY_TOLERANCE}


def _faithfulness_rows(fields: Sequence[str], negatives: Sequence[Sequence[str]], probabilities: Sequence[float],
                       moved_log_odds: FloatArray) -> list[tuple[bool, dict[str, Any], list[float]]]:
    """The faithfulness check of each row: passed if moving the top stated reason to the cutoff group's
    representative value (its encoded features) lowers the PD more than moving any field that is not a stated
    reason. Per row: (passed, the detail without ``delta_pd``, every field's PD change in field order). Recorded:
    the top reason, the strongest field that is not a reason (ties: the earlier field) and ``delta_pd`` (the
    reasons themselves are the explanation's ``negative_ranked[:MAX_REASONS]``); with no negative contributor
    it passes with a note. ``moved_log_odds[i, j]``: row i's log-odds with field j moved.

    The arithmetic and the comparisons run in one compiled pass over the chunk (:func:`_faithfulness_kernel`);
    only the names and lists are Python."""
    n = len(negatives)
    position = {name: j for j, name in enumerate(fields)}
    reasons = np.full((n, MAX_REASONS), -1, dtype=np.int64)
    counts = np.zeros(n, dtype=np.int64)
    for i, names in enumerate(negatives):
        stated = names[:MAX_REASONS]
        counts[i] = len(stated)
        for r, name in enumerate(stated):
            reasons[i, r] = position[name]
    deltas = np.empty((n, len(fields)), dtype=np.float64)
    passed = np.empty(n, dtype=np.bool_)
    strongest = np.empty(n, dtype=np.int64)
    _faithfulness_kernel(np.ascontiguousarray(moved_log_odds, dtype=np.float64),
                         np.asarray(probabilities, dtype=np.float64).reshape(n), reasons, counts, deltas, passed,
                         strongest)
    out: list[tuple[bool, dict[str, Any], list[float]]] = []
    for i, (row, ok, other) in enumerate(zip(deltas.tolist(), passed.tolist(), strongest.tolist(), strict=True)):
        if counts[i] == 0:
            out.append((True, {"note": "no negative contributors"}, row))
        else:
            out.append((ok, {"top_reason": fields[reasons[i, 0]],
                             "largest_non_reason": None if other < 0 else fields[other]}, row))
    return out


@numba.njit(cache=True)
def _faithfulness_kernel(moved: FloatArray, probabilities: FloatArray, reasons: IntArray, counts: IntArray,
                         deltas: FloatArray, passed: npt.NDArray[np.bool_], strongest: IntArray) -> None:
    """For each row i: ``deltas[i, j] = probabilities[i] - sigmoid(moved[i, j])`` (scoring.calibration.sigmoid's
    formula and libm's exp, as math.exp: the same bits), ``strongest[i]`` the first field that is not one of the
    row's ``counts[i]`` reasons with the largest delta (-1 if none; a NaN delta never wins, as in Python's
    ``>``), ``passed[i]`` whether the top reason's delta beats it."""
    n, m = moved.shape
    for i in range(n):
        p = probabilities[i]
        for j in range(m):
            v = moved[i, j]
            if v >= 0:
                sig = 1.0 / (1.0 + math.exp(-v))
            else:
                z = math.exp(v)
                sig = z / (1.0 + z)
            deltas[i, j] = p - sig
        k = counts[i]
        best_j = -1
        best = -np.inf
        for j in range(m):
            stated = False
            for r in range(k):
                if reasons[i, r] == j:
                    stated = True
                    break
            if not stated and (best_j == -1 or deltas[i, j] > best):
                best_j = j
                best = deltas[i, j]
        strongest[i] = best_j
        passed[i] = k == 0 or best_j == -1 or deltas[i, reasons[i, 0]] > best


def explain(model: ScoringModel, spec: ProductSpec, values: Mapping[str, Any], *,
            with_recourse: bool = True) -> Explanation:
    """Convenience: ``Explainer.for_model(model, spec).explain(values)``."""
    return Explainer.for_model(model, spec).explain(values, with_recourse=with_recourse)
