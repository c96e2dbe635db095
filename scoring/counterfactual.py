"""Recourse: the smallest change to the fields an applicant can act on that turns a decision into an approval.

What may move
-------------
Only model-input fields the product spec marks ``actionable = true``; every other field is immutable and
never moves. A move respects the field's declared ``min``/``max``, its type (integers stay whole, money
is a whole number of currency units, other numbers move in steps of 0.1), its categories, and its
``monotone`` direction: a field whose probability of default *increases* with the value (amount, term,
utilisation) only moves down, one whose PD *decreases* with it only moves up. A numeric field without a
declared direction may move either way (the search keeps whichever lowers the PD); a category may take
any other of its categories. Values that would trigger a knockout rule, and special codes (e.g. FICO's
-7/-8/-9), are never proposed. A missing or special-coded actionable value is left as it is.

Approval means what ``scoring.policy.policy_decide`` says: PD < cutoff - refer_band and no knockout.
A knockout on a field the applicant cannot change makes recourse impossible (reported with a note); a
knockout on an actionable field forces that field to move out of the knocked-out range.

Cost
----
``cost = sum over changed fields of |new - old| / spread``, where a numeric field's spread is the
inter-quartile range of its values in the model's stored reference sample (the range if the IQR is 0,
the spec's range if that is 0 too). A category or boolean change costs 1.0 (one "spread"). The smallest
total cost wins; equal costs go to fewer changed fields, then to the earlier candidate in a fixed
enumeration order, so the result is deterministic.

Search
------
1. Per actionable field, ``GRID_STEPS`` candidate values from the current value toward the bound in the
   risk-lowering direction (every integer when there are fewer), rounded to the field's resolution.
2. Every combination that changes at most ``MAX_CHANGED_FIELDS`` fields, ordered by cost. When every
   actionable field is monotone in the model, the "corner" (every field at its extreme) is scored first:
   if even that is not approved, nothing on the grid is, and the search stops.
3. The cost-ordered combinations are scored with ``booster.predict`` in a few vectorised calls (the
   cheapest ``CHUNKS[0]`` first, then ``CHUNKS[1]``, then the rest) and the first approved one in cost
   order is the grid optimum; most borderline denials stop after the first call.
4. Refinement, exact: for each changed numeric field (largest cost share first, the others held at their
   current winning values), the model's output can only change where a tree splits on that feature. The
   search reads every split threshold of the feature from the booster once per model; between the
   previous (not approved) grid step and the winning one, the grid value just past each threshold is a
   candidate (a bisection over the only points where the answer can change). They are scored in one call
   and the approved one nearest the current value is kept: on a monotone model that is the smallest
   approved move of that field to the field's resolution.
5. Verification: the final candidate is applied to the application's values and re-scored through
   ``model.score`` (the same model version, the production scoring path) and ``policy_decide``. If the
   refined candidate does not verify, the unrefined grid winner is tried; if neither does, no recourse is
   reported (``found = False`` with a note), never an unverified one.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

import numpy as np
import numpy.typing as npt

from scoring.features import BOOLEAN, NATIVE, NUMERIC, ONEHOT, FieldEncoding, to_float
from scoring.policy import APPROVED, policy_decide
from scoring.predict import ScoringModel
from scoring.spec import FieldSpec, ProductSpec

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

GRID_STEPS = 12
MAX_CHANGED_FIELDS = 3
CHUNKS = (256, 1024)
MONEY_UNITS = ("USD", "EUR", "DM", "GBP")
CATEGORY_COST = 1.0

NOT_FOUND = "no actionable change within the valid ranges reaches approval"
_NO_THRESHOLDS: FloatArray = np.zeros(0, dtype=np.float64)


@dataclass(frozen=True)
class Recourse:
    """The result of a recourse search.

    ``changes`` holds ``(field, from, to)`` in spec order: money as ``Decimal`` whole units, integers as
    ``int``, other numbers as ``float``, categories as ``str``. ``new_probability`` is the PD of the
    changed application as ``model.score`` gives it (``verified``: that PD is an approval under the
    policy). ``changed_fields_in_reasons`` are the changed fields that are stated reasons for the
    decision; ``fields_not_in_reasons`` the changed fields that are not (reported, never hidden).
    """

    found: bool
    changes: tuple[tuple[str, Any, Any], ...] = ()
    new_probability: float | None = None
    verified: bool = False
    cost: float | None = None
    changed_fields_in_reasons: tuple[str, ...] = ()
    fields_not_in_reasons: tuple[str, ...] = ()
    note: str = ""
    model_version: str = ""
    candidates_scored: int = 0

    @property
    def changed_fields(self) -> tuple[str, ...]:
        return tuple(change[0] for change in self.changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: Decimal values become strings, and ``decimal_fields`` says which to turn back."""
        decimal_fields = sorted({name for name, old, new in self.changes
                                 if isinstance(old, Decimal) or isinstance(new, Decimal)})
        return {
            "found": self.found,
            "changes": [[name, _json_value(old), _json_value(new)] for name, old, new in self.changes],
            "decimal_fields": decimal_fields,
            "new_probability": self.new_probability,
            "verified": self.verified,
            "cost": self.cost,
            "changed_fields_in_reasons": list(self.changed_fields_in_reasons),
            "fields_not_in_reasons": list(self.fields_not_in_reasons),
            "note": self.note,
            "model_version": self.model_version,
            "candidates_scored": self.candidates_scored,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Recourse:
        decimal_fields = set(raw.get("decimal_fields", ()))

        def back(name: str, value: Any) -> Any:
            if name in decimal_fields and isinstance(value, str):
                return Decimal(value)
            return value

        changes = tuple((str(name), back(str(name), old), back(str(name), new))
                        for name, old, new in raw.get("changes", ()))
        probability = raw.get("new_probability")
        cost = raw.get("cost")
        return cls(found=bool(raw["found"]), changes=changes,
                   new_probability=None if probability is None else float(probability),
                   verified=bool(raw.get("verified", False)), cost=None if cost is None else float(cost),
                   changed_fields_in_reasons=tuple(str(f) for f in raw.get("changed_fields_in_reasons", ())),
                   fields_not_in_reasons=tuple(str(f) for f in raw.get("fields_not_in_reasons", ())),
                   note=str(raw.get("note", "")), model_version=str(raw.get("model_version", "")),
                   candidates_scored=int(raw.get("candidates_scored", 0)))


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass
class _Options:
    """One actionable field's candidate moves for one application, nearest first per direction."""

    position: int  # index among the search's actionable fields
    enc: FieldEncoding
    spec: FieldSpec
    values: list[Any]  # typed field values
    numbers: FloatArray  # the encoded main value of each option (NaN for categories)
    blocks: FloatArray  # (options, width): the field's encoded columns
    costs: FloatArray
    signs: IntArray  # direction of each numeric move (+1 up, -1 down; 0 for categories and booleans)


@dataclass(frozen=True)
class _Actionable:
    enc: FieldEncoding
    spec: FieldSpec
    low: float
    high: float
    spread: float
    resolution: Decimal  # 1 for integers and money, 0.1 otherwise (numeric fields only)


class RecourseSearch:
    """The recourse search for one model and its spec. Build once per model (the spreads and bounds are
    read from the model's reference sample) and call :meth:`find` per application."""

    def __init__(self, model: ScoringModel, spec: ProductSpec, *, steps: int = GRID_STEPS,
                 max_changed_fields: int = MAX_CHANGED_FIELDS) -> None:
        if not model.matches_spec(spec):
            raise ValueError(f"model {model.version} was not trained for spec {spec.slug!r} "
                             f"({spec.spec_hash[:12]})")
        self.model = model
        self.spec = spec
        self.steps = int(steps)
        self.max_changed_fields = int(max_changed_fields)
        line = spec.policy.cutoff - spec.policy.refer_band
        self.approval_line = line
        self._logit_line = math.log(line / (1.0 - line))
        self._a = model.calibration.a
        self._b = model.calibration.b
        reference = np.asarray(model.reference, dtype=np.float64)
        actionable: list[_Actionable] = []
        for enc in model.encoder.fields:
            field_spec = spec.field(enc.name)
            if not field_spec.actionable:
                continue
            low, high, spread, resolution = -math.inf, math.inf, CATEGORY_COST, Decimal(1)
            if enc.kind == NUMERIC:
                column = reference[:, enc.first]
                finite = column[np.isfinite(column)]
                ref_low = float(finite.min()) if finite.size else 0.0
                ref_high = float(finite.max()) if finite.size else 0.0
                low = field_spec.minimum if field_spec.minimum is not None else ref_low
                high = field_spec.maximum if field_spec.maximum is not None else ref_high
                spread = _spread(finite, low, high)
                integer = field_spec.type == "integer" or field_spec.unit in MONEY_UNITS
                resolution = Decimal(1) if integer else Decimal("0.1")
            actionable.append(_Actionable(enc, field_spec, float(low), float(high), spread, resolution))
        self.actionable: tuple[_Actionable, ...] = tuple(actionable)
        self.actionable_fields: tuple[str, ...] = tuple(a.enc.name for a in actionable)
        self.spreads: dict[str, float] = {a.enc.name: a.spread for a in actionable if a.enc.kind == NUMERIC}
        self._thresholds = _split_thresholds(model.booster.dump_model(),
                                             {a.enc.first for a in actionable if a.enc.kind == NUMERIC})

    # --- public ------------------------------------------------------------------------------------

    def find(self, values: Mapping[str, Any], *, features: FloatArray | None = None,
             reasons: Sequence[str] = ()) -> Recourse:
        """The cheapest verified change to actionable fields that makes ``values`` an approval."""
        model = self.model
        x = (model.encoder.encode_row(values) if features is None
             else np.asarray(features, dtype=np.float64).reshape(-1)).copy()
        version = model.version
        probability = model.score(values)
        outcome = policy_decide(self.spec.policy, probability, values)
        if outcome.outcome == APPROVED:
            return Recourse(found=True, new_probability=probability, verified=True, cost=0.0,
                            note="already approved; nothing needs to change", model_version=version)
        required: set[int] = set()
        for rule in self.spec.policy.knockouts:
            if not rule.applies(values.get(rule.field)):
                continue
            position = next((i for i, a in enumerate(self.actionable)
                             if a.enc.name == rule.field and a.enc.kind == NUMERIC), None)
            if position is None:
                return Recourse(found=False, model_version=version,
                                note=f"knockout {rule.name!r} applies to {rule.field!r}, which the applicant "
                                     "cannot change")
            required.add(position)
        if not self.actionable:
            return Recourse(found=False, model_version=version,
                            note="the product has no actionable fields; " + NOT_FOUND)
        options = [opt for opt in (self._options(i, a, x, values) for i, a in enumerate(self.actionable))
                   if opt is not None]
        if any(all(opt.position != r for opt in options) for r in required):
            return Recourse(found=False, model_version=version,
                            note="a knockout applies and its field has no valid value outside it; " + NOT_FOUND)
        if not options:
            return Recourse(found=False, model_version=version,
                            note="every actionable field is already at its bound; " + NOT_FOUND)

        choice, costs, counts = _combinations(options, self.max_changed_fields, required)
        scored = 0
        corner_known_bad = False
        if _all_monotone(options) and not required:
            corner = x.copy()
            for opt in options:
                _assign(corner, opt, len(opt.values) - 1)
            scored += 1
            if not self._approves(corner.reshape(1, -1))[0]:
                corner_known_bad = True
        if corner_known_bad:
            extremes = ", ".join(f"{opt.enc.name} {_show(opt.values[-1])}" for opt in options)
            return Recourse(found=False, model_version=version, candidates_scored=scored,
                            note=f"{NOT_FOUND} (even {extremes} together is not approved)")
        order = np.lexsort((np.arange(len(costs)), counts, costs))
        winner = -1
        start = 0
        bounds = [*itertools.accumulate(CHUNKS), len(order)]
        for stop in bounds:
            stop = min(stop, len(order))
            if stop <= start:
                continue
            rows = order[start:stop]
            approved = self._approves(_candidates(x, options, choice[rows]))
            scored += len(rows)
            hits = np.flatnonzero(approved)
            if hits.size:
                winner = int(rows[hits[0]])
                break
            start = stop
        if winner < 0:
            return Recourse(found=False, model_version=version, candidates_scored=scored,
                            note=f"{NOT_FOUND} (searched {scored} combinations of up to "
                                 f"{self.max_changed_fields} fields)")

        picked = {opt.position: int(choice[winner, k]) for k, opt in enumerate(options) if choice[winner, k] >= 0}
        grid_state = {pos: (_options_by(options, pos).values[i], _options_by(options, pos).blocks[i])
                      for pos, i in picked.items()}
        refined_state, refine_scored = self._refine(x, options, picked)
        scored += refine_scored
        for state in (refined_state, grid_state):
            result = self._verify(values, state, reasons, scored)
            if result is not None:
                return result
        return Recourse(found=False, model_version=version, candidates_scored=scored,
                        note="the best candidate did not verify when re-scored through model.score; "
                             "no recourse is reported")

    # --- internals ---------------------------------------------------------------------------------

    def _approves(self, rows: FloatArray) -> npt.NDArray[np.bool_]:
        raw = np.asarray(self.model.booster.predict(rows, raw_score=True, num_threads=1), dtype=np.float64)
        result: npt.NDArray[np.bool_] = (self._a * raw + self._b) < self._logit_line
        return result

    def _allowed(self, enc: FieldEncoding, value: float) -> bool:
        """Whether a numeric value may be proposed: not a special code, and no knockout applies to it."""
        if value in {float(c) for c in enc.special_codes}:
            return False
        return not any(rule.field == enc.name and rule.applies(value) for rule in self.spec.policy.knockouts)

    def _options(self, position: int, act: _Actionable, x: FloatArray,
                 values: Mapping[str, Any]) -> _Options | None:
        enc, field_spec = act.enc, act.spec
        knockouts = [rule for rule in self.spec.policy.knockouts if rule.field == enc.name]
        if enc.kind == NUMERIC:
            current = float(x[enc.first])
            if not math.isfinite(current):
                return None
            directions = {1: (-1,), -1: (1,)}.get(enc.monotone, (-1, 1))
            specials = {float(c) for c in enc.special_codes}
            numbers: list[float] = []
            signs: list[int] = []
            for sign in directions:
                bound = act.low if sign < 0 else act.high
                for value in _steps(current, bound, sign, self.steps, act.resolution):
                    if value in specials or any(rule.applies(value) for rule in knockouts):
                        continue
                    numbers.append(value)
                    signs.append(sign)
            if not numbers:
                return None
            width = enc.width
            blocks = np.zeros((len(numbers), width), dtype=np.float64)
            blocks[:, 0] = numbers
            typed = [_typed(field_spec, v) for v in numbers]
            costs = np.abs(np.asarray(numbers) - current) / act.spread
            return _Options(position, enc, field_spec, typed, np.asarray(numbers, dtype=np.float64), blocks,
                            costs.astype(np.float64), np.asarray(signs, dtype=np.int64))
        if enc.kind in (ONEHOT, NATIVE):
            current_value = values.get(enc.name)
            others = [c for c in enc.categories if c != current_value]
            if not others:
                return None
            if enc.kind == ONEHOT:
                blocks = np.zeros((len(others), enc.width), dtype=np.float64)
                for row, category in enumerate(others):
                    blocks[row, enc.categories.index(category)] = 1.0
            else:
                blocks = np.array([[float(enc.categories.index(c))] for c in others], dtype=np.float64)
            n = len(others)
            return _Options(position, enc, field_spec, list(others), np.full(n, np.nan), blocks,
                            np.full(n, CATEGORY_COST), np.zeros(n, dtype=np.int64))
        if enc.kind == BOOLEAN:
            current = float(x[enc.first])
            if not math.isfinite(current):
                return None
            target = 1.0 - current
            if enc.monotone != 0 and (target - current) * enc.monotone > 0:
                return None  # flipping would raise the risk
            return _Options(position, enc, field_spec, [bool(target)], np.array([target]),
                            np.array([[target]]), np.array([CATEGORY_COST]), np.zeros(1, dtype=np.int64))
        return None

    def _refine(self, x: FloatArray, options: Sequence[_Options],
                picked: Mapping[int, int]) -> tuple[dict[int, tuple[Any, FloatArray]], int]:
        """Shrink each changed numeric field toward its current value while the candidate stays approved."""
        state: dict[int, tuple[Any, FloatArray]] = {}
        best = x.copy()
        for pos, index in picked.items():
            opt = _options_by(options, pos)
            state[pos] = (opt.values[index], opt.blocks[index])
            best[opt.enc.first:opt.enc.first + opt.enc.width] = opt.blocks[index]
        scored = 0
        numeric = [pos for pos in picked if _options_by(options, pos).enc.kind == NUMERIC]
        numeric.sort(key=lambda pos: (-float(_options_by(options, pos).costs[picked[pos]]), pos))
        for pos in numeric:
            opt = _options_by(options, pos)
            act = self.actionable[pos]
            index = picked[pos]
            current = float(x[opt.enc.first])
            sign = int(opt.signs[index])
            winner = float(opt.numbers[index])
            same_way = [i for i in range(index) if int(opt.signs[i]) == sign]
            previous = float(opt.numbers[same_way[-1]]) if same_way else current
            points = _threshold_points(self._thresholds.get(opt.enc.first, _NO_THRESHOLDS), previous, winner,
                                       current, sign, act.resolution)
            points = [v for v in points if v == winner or self._allowed(opt.enc, v)]
            if len(points) > 1:
                rows = np.repeat(best.reshape(1, -1), len(points), axis=0)
                rows[:, opt.enc.first] = points
                rows[:, opt.enc.first + 1:opt.enc.first + opt.enc.width] = 0.0
                hits = np.flatnonzero(self._approves(rows))
                scored += len(points)
                if hits.size:
                    winner = points[int(hits[0])]
            best[opt.enc.first] = winner
            block = np.zeros(opt.enc.width, dtype=np.float64)
            block[0] = winner
            state[pos] = (_typed(opt.spec, winner), block)
        return state, scored

    def _verify(self, values: Mapping[str, Any], state: Mapping[int, tuple[Any, FloatArray]],
                reasons: Sequence[str], scored: int) -> Recourse | None:
        changed = dict(values)
        changes: list[tuple[str, Any, Any]] = []
        cost = 0.0
        for pos in sorted(state):
            act = self.actionable[pos]
            new_value, _ = state[pos]
            old_value = values.get(act.enc.name)
            changed[act.enc.name] = new_value
            changes.append((act.enc.name, old_value, new_value))
            if act.enc.kind == NUMERIC:
                cost += abs(to_float(new_value) - to_float(old_value)) / act.spread
            else:
                cost += CATEGORY_COST
        probability = self.model.score(changed)
        if policy_decide(self.spec.policy, probability, changed).outcome != APPROVED:
            return None
        reason_set = set(reasons)
        names = [name for name, _, _ in changes]
        in_reasons = tuple(n for n in names if n in reason_set)
        not_in = tuple(n for n in names if n not in reason_set)
        note = "approved after changing " + ", ".join(
            f"{name} from {_show(old)} to {_show(new)}" for name, old, new in changes)
        if not_in:
            note += f"; not among the stated reasons: {', '.join(not_in)}"
        return Recourse(found=True, changes=tuple(changes), new_probability=probability, verified=True,
                        cost=cost, changed_fields_in_reasons=in_reasons, fields_not_in_reasons=not_in,
                        note=note, model_version=self.model.version, candidates_scored=scored)


def find_recourse(model: ScoringModel, spec: ProductSpec, values: Mapping[str, Any], *,
                  reasons: Sequence[str] = ()) -> Recourse:
    """One-off convenience: build a :class:`RecourseSearch` and run it (reuse the search for many rows)."""
    return RecourseSearch(model, spec).find(values, reasons=reasons)


# --- helpers ---------------------------------------------------------------------------------------

def _options_by(options: Sequence[_Options], position: int) -> _Options:
    for opt in options:
        if opt.position == position:
            return opt
    raise KeyError(position)


def _split_thresholds(dump: Mapping[str, Any], features: set[int]) -> dict[int, FloatArray]:
    """Sorted unique numerical split thresholds of each feature in ``features`` (from ``dump_model()``)."""
    found: dict[int, set[float]] = {f: set() for f in features}
    stack = [tree["tree_structure"] for tree in dump.get("tree_info", ())]
    while stack:
        node = stack.pop()
        if "split_feature" not in node:
            continue
        feature = int(node["split_feature"])
        if feature in found and node.get("decision_type") == "<=":
            found[feature].add(float(node["threshold"]))
        stack.extend((node["left_child"], node["right_child"]))
    return {f: np.array(sorted(values), dtype=np.float64) for f, values in found.items()}


def _spread(finite: FloatArray, low: float, high: float) -> float:
    if finite.size:
        q25, q75 = np.quantile(finite, [0.25, 0.75])
        if q75 - q25 > 0:
            return float(q75 - q25)
        if finite.max() - finite.min() > 0:
            return float(finite.max() - finite.min())
    if math.isfinite(high - low) and high - low > 0:
        return float(high - low)
    return 1.0


def _round_away(value: float, current: float, sign: int, resolution: Decimal) -> float:
    """``value`` on the field's resolution grid, rounded away from ``current`` (further in the move)."""
    rounding = ROUND_CEILING if sign > 0 else ROUND_FLOOR
    return float(Decimal(repr(value)).quantize(resolution, rounding=rounding))


def _steps(current: float, bound: float, sign: int, steps: int, resolution: Decimal) -> list[float]:
    """Up to ``steps`` values from ``current`` to ``bound`` (inclusive), nearest first."""
    span = bound - current
    if span * sign <= 0 or not math.isfinite(span):
        return []
    step = float(resolution)
    if abs(span) / step <= steps:
        count = math.floor(abs(span) / step + 1e-9)
        raw = [current + sign * step * k for k in range(1, count + 1)]
    else:
        raw = [current + span * k / steps for k in range(1, steps + 1)]
    out: list[float] = []
    for value in raw:
        rounded = _round_away(value, current, sign, resolution)
        rounded = min(rounded, bound) if sign > 0 else max(rounded, bound)
        if (rounded - current) * sign > 0 and (not out or rounded != out[-1]):
            out.append(rounded)
    if out and out[-1] != bound and (bound - out[-1]) * sign > 0:
        out.append(bound)  # always offer the bound itself
    return out


def _threshold_points(thresholds: FloatArray, previous: float, winner: float, current: float, sign: int,
                      resolution: Decimal) -> list[float]:
    """Every value between ``previous`` (not approved) and ``winner`` (approved) at which the model's output
    can change, on the field's resolution grid, nearest to ``current`` first, ending with ``winner``.

    A tree sends x left when x <= threshold, so the output is constant between consecutive thresholds: the
    candidates are, per threshold t in the interval, the grid value just at or below t (moving down) or
    just above t (moving up). Scoring them all finds the smallest approved move exactly."""
    low, high = min(previous, winner), max(previous, winner)
    inside = thresholds[(thresholds >= low) & (thresholds <= high)]
    points: set[float] = {winner}
    for threshold in inside.tolist():
        floor = Decimal(repr(threshold)).quantize(resolution, rounding=ROUND_FLOOR)
        value = float(floor if sign < 0 else floor + resolution)
        if (value - current) * sign > 0 and (value - previous) * sign > 0 and (value - winner) * sign <= 0:
            points.add(value)
    return sorted(points, key=lambda v: abs(v - current))


def _typed(field_spec: FieldSpec, number: float) -> Any:
    """A numeric candidate as the value an application would hold."""
    if field_spec.type == "integer":
        return round(number)
    if field_spec.unit in MONEY_UNITS:
        return Decimal(round(number))
    if field_spec.type == "boolean":
        return bool(number)
    return float(number)


def _show(value: Any) -> str:
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.10g}"
    return str(value)


def _all_monotone(options: Sequence[_Options]) -> bool:
    """Whether every field's options move in one risk-lowering direction of a monotone-constrained feature,
    so that the model's PD at the field's last option is the lowest the field can give."""
    return all(opt.enc.kind in (NUMERIC, BOOLEAN) and opt.enc.monotone != 0 for opt in options)


def _combinations(options: Sequence[_Options], max_changed: int,
                  required: set[int]) -> tuple[IntArray, FloatArray, IntArray]:
    """Every combination changing 1 to ``max_changed`` fields: the option index per field (-1 unchanged),
    the total cost and the number of changed fields. Fields in ``required`` must change."""
    n_fields = len(options)
    sizes = [len(opt.values) for opt in options]
    blocks: list[IntArray] = []
    needed = [k for k, opt in enumerate(options) if opt.position in required]
    limit = max(max_changed, len(needed))
    for size in range(1, min(limit, n_fields) + 1):
        for subset in itertools.combinations(range(n_fields), size):
            if any(k not in subset for k in needed):
                continue
            grid = np.indices([sizes[k] for k in subset]).reshape(size, -1).T
            block = np.full((grid.shape[0], n_fields), -1, dtype=np.int64)
            block[:, list(subset)] = grid
            blocks.append(block)
    if not blocks:
        return (np.zeros((0, n_fields), dtype=np.int64), np.zeros(0), np.zeros(0, dtype=np.int64))
    choice = np.concatenate(blocks, axis=0)
    costs = np.zeros(len(choice), dtype=np.float64)
    for k, opt in enumerate(options):
        chosen = choice[:, k]
        costs += np.where(chosen >= 0, opt.costs[np.maximum(chosen, 0)], 0.0)
    counts = (choice >= 0).sum(axis=1).astype(np.int64)
    return choice, costs, counts


def _assign(row: FloatArray, opt: _Options, index: int) -> None:
    row[opt.enc.first:opt.enc.first + opt.enc.width] = opt.blocks[index]


def _candidates(x: FloatArray, options: Sequence[_Options], choice: IntArray) -> FloatArray:
    rows = np.repeat(x.reshape(1, -1), len(choice), axis=0)
    for k, opt in enumerate(options):
        chosen = choice[:, k]
        hit = chosen >= 0
        if hit.any():
            rows[hit, opt.enc.first:opt.enc.first + opt.enc.width] = opt.blocks[chosen[hit]]
    return rows
