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
3. The grid optimum is the first approved combination in cost order (ties: fewer changed fields, then
   the enumeration order). How candidates are scored:
   * compiled (every model ``scoring.treeshap`` reproduces with per-tree tables; the production models):
     a candidate differs from the application in a few actionable fields, so per tree only the nodes
     that split on those fields decide again. The trees are classified once per model: trees that split on
     no actionable field keep the application's leaves (one constant per application), trees that split on
     exactly one (every tree of an additive model) are summed once per option of that field, and only trees
     that split on two or more are summed per candidate. That grouped margin is LightGBM's up to rounding,
     bounded from the number of trees and their largest leaves (``_SearchTables.tolerance``, ~1e-11 in
     log-odds); a candidate that close to the approval line is scored again with the leaf values LightGBM
     adds in the same order, so every decision is ``booster.predict``'s bit for bit, without a row.
     When every field's options are monotone and the model is monotone in those fields in those
     directions, trained with LightGBM's monotone constraints or verified from its trees (an additive
     model whose trees on the field split on nothing else: ``_separable_monotone``), so that the approved
     combinations are an up-set of the grid (moving any field further never loses the approval), the
     search does not enumerate the grid: per subset of fields (one, two, then three, in the enumeration
     order) it finds the staircase of smallest approving options (bisection, each step
     bounded by the step before and by the cheapest combination found so far) and keeps the cheapest;
     that is the cost-ordered first hit, found with a tenth of the candidates. Otherwise (categories,
     free directions, a knockout that forces a field) the combinations are scored in cost order until
     the first approved one. Every application of a batch is searched in one compiled call
     (:meth:`RecourseSearch.find_many`; :meth:`find` is a batch of one, the same result bit for bit).
   * otherwise, one application at a time with ``booster.predict`` in a few vectorised calls (the
     cheapest ``CHUNKS[0]`` first, then ``CHUNKS[1]``, then the rest).
4. Refinement, exact: for each changed numeric field (largest cost share first, the others held at their
   current winning values), the model's output can only change where a tree splits on that feature. The
   search reads every split threshold of the feature from the booster once per model; between the
   previous (not approved) grid step and the winning one, the grid value just past each threshold is a
   candidate (a bisection over the only points where the answer can change). They are scored nearest
   the current value first and the first approved is kept: on a monotone model that is the smallest
   approved move of that field to the field's resolution.
5. Verification: the final candidate is applied to the application's values and re-scored the way
   ``model.score`` scores (the same model version, ``encode_row``, LightGBM, the Platt scaling; the
   candidates of a batch in one LightGBM call, which scores each row on its own) and ``policy_decide``. If
   the refined candidate does not verify, the unrefined grid winner is tried; if neither does, no recourse
   is reported (``found = False`` with a note), never an unverified one. ``candidates_scored`` counts the
   candidates actually scored.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any, NamedTuple

import numba
import numpy as np
import numpy.typing as npt

from scoring.features import BOOLEAN, NATIVE, NUMERIC, ONEHOT, FieldEncoding, to_float
from scoring.policy import APPROVED, policy_decide
from scoring.predict import ScoringModel
from scoring.spec import FieldSpec, ProductSpec
from scoring.treeshap import TreeShap, _goes_left
from scoring.wording import field_label, format_value

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

GRID_STEPS = 12
MAX_CHANGED_FIELDS = 3
CHUNKS = (256, 1024)
MONEY_UNITS = ("USD", "EUR", "DM", "GBP")
CATEGORY_COST = 1.0

NOT_FOUND = "no actionable change within the valid ranges reaches approval"
MAX_FRONTIER_FIELDS = 3  # the frontier search handles combinations of up to three fields
OPTIONS_CACHE_SIZE = 200_000
STATUS_FOUND, STATUS_CORNER, STATUS_NONE = 0, 1, 2
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
                 max_changed_fields: int = MAX_CHANGED_FIELDS, kernel: TreeShap | None = None,
                 use_kernel: bool = True, grouped_sums: bool = True) -> None:
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
        dump = model.booster.dump_model()
        self._thresholds = _split_thresholds(dump, {a.enc.first for a in actionable if a.enc.kind == NUMERIC})
        self._options_cache: dict[tuple[int, Any], _Options | None] = {}
        self._combination_cache: dict[tuple[tuple[int, ...], frozenset[int]], IntArray] = {}
        # The search's own exact margins (scoring.treeshap): per-tree node patterns, so that a candidate,
        # which differs from the application in a few actionable fields, is scored by re-deciding only the
        # nodes that split on those fields. Without per-tree tables, LightGBM scores every candidate row.
        if kernel is None and use_kernel:
            try:
                kernel = TreeShap(model.booster)
            except ValueError:
                kernel = None
        self._kernel = kernel if kernel is not None and kernel.per_tree else None
        # The model's monotone direction per actionable feature, which the frontier search relies on (see
        # _all_monotone): LightGBM's constraint as trained, else the direction read off the trees where the
        # feature's trees split on it alone (an additive model, monotone by projection; _separable_monotone).
        trained = list(dump.get("monotone_constraints") or [])
        self._model_monotone = {
            a.enc.first: (trained[a.enc.first] if a.enc.first < len(trained) and trained[a.enc.first]
                          else _separable_monotone(dump, a.enc.first) if a.enc.kind == NUMERIC else 0)
            for a in actionable}
        if self._kernel is not None:
            self._tables = _SearchTables.build(self._kernel, self.actionable, self._thresholds, self)
            # grouped_sums=False scores every candidate with the in-order sum over all trees: the reference
            # the grouped sums are tested against (the same results, bit for bit, far slower).
            tolerance = self._tables.tolerance(self._a, self._b, self._logit_line) if grouped_sums else math.inf
            self._decision = _Decision(float(self._a), float(self._b), float(self._logit_line), float(tolerance))

    # --- public ------------------------------------------------------------------------------------

    def find(self, values: Mapping[str, Any], *, features: FloatArray | None = None,
             reasons: Sequence[str] = ()) -> Recourse:
        """The cheapest verified change to actionable fields that makes ``values`` an approval."""
        return self.find_many([values], features=None if features is None else
                              np.asarray(features, dtype=np.float64).reshape(1, -1), reasons=[reasons])[0]

    def find_many(self, values: Sequence[Mapping[str, Any]], *, features: FloatArray | None = None,
                  reasons: Sequence[Sequence[str]] | None = None, probabilities: Sequence[float] | None = None,
                  patterns: npt.NDArray[np.int32] | None = None) -> list[Recourse]:
        """:meth:`find` for many applications at once: the same result for each, bit for bit.

        ``features`` (rows, n_features) are the encoded rows if the caller has them; ``probabilities`` the
        PDs ``model.score`` gives (computed if not given); ``patterns`` the rows' per-tree node patterns
        (``TreeShap.explain(keep_patterns=True)``), computed if not given."""
        n = len(values)
        reasons = [()] * n if reasons is None else reasons
        encoder = self.model.encoder
        x = (np.vstack([encoder.encode_row(v) for v in values]) if features is None
             else np.array(features, dtype=np.float64, copy=True, order="C").reshape(n, -1)) if n else \
            np.zeros((0, encoder.n_features), dtype=np.float64)
        if self._kernel is None:
            return [self._find_one_legacy(v, features=x[i], reasons=reasons[i]) for i, v in enumerate(values)]
        if probabilities is None:
            margins = self._kernel.margins(x, threads=1)
            calibration = self.model.calibration
            probabilities = [calibration.pd(m) for m in margins.tolist()]
        results: list[Recourse | None] = [None] * n
        jobs: list[_Job] = []
        for i, row_values in enumerate(values):
            result, job = self._prepare(i, row_values, x[i], float(probabilities[i]))
            if result is not None:
                results[i] = result
            elif job is not None:
                jobs.append(job)
        if jobs:
            if patterns is None or len(patterns) != n:
                rows = np.array([job.row for job in jobs], dtype=np.int64)
                own = self._kernel.explain(x[rows], threads=1, keep_patterns=True)[2]
                assert own is not None
                for k, job in enumerate(jobs):
                    job.pattern = own[k]
            else:
                for job in jobs:
                    job.pattern = patterns[job.row]
            self._search(jobs, x)
            for job, result in zip(jobs, self._verify_many(jobs, values, reasons), strict=True):
                results[job.row] = result
        out = [r for r in results if r is not None]
        assert len(out) == n
        return out

    # --- the batch search ----------------------------------------------------------------------------

    def _prepare(self, row: int, values: Mapping[str, Any], x: FloatArray,
                 probability: float) -> tuple[Recourse | None, _Job | None]:
        """Everything up to the search itself: the early answers, else the row's options."""
        version = self.model.version
        if policy_decide(self.spec.policy, probability, values).outcome == APPROVED:
            return Recourse(found=True, new_probability=probability, verified=True, cost=0.0,
                            note="already approved; nothing needs to change", model_version=version), None
        required: set[int] = set()
        for rule in self.spec.policy.knockouts:
            if not rule.applies(values.get(rule.field)):
                continue
            position = next((i for i, a in enumerate(self.actionable)
                             if a.enc.name == rule.field and a.enc.kind == NUMERIC), None)
            if position is None:
                return Recourse(found=False, model_version=version,
                                note=f"a policy rule on {self._label(rule.field)} denies this application, "
                                     "and the applicant cannot change it"), None
            required.add(position)
        if not self.actionable:
            return Recourse(found=False, model_version=version,
                            note="the product has no actionable fields; " + NOT_FOUND), None
        options = [opt for opt in (self._cached_options(i, a, x, values) for i, a in enumerate(self.actionable))
                   if opt is not None]
        if any(all(opt.position != r for opt in options) for r in required):
            return Recourse(found=False, model_version=version,
                            note="a knockout applies and its field has no valid value outside it; "
                                 + NOT_FOUND), None
        if not options:
            return Recourse(found=False, model_version=version,
                            note="every actionable field is already at its bound; " + NOT_FOUND), None
        frontier = (not required and self._all_monotone(options)
                    and self.max_changed_fields <= MAX_FRONTIER_FIELDS)
        job = _Job(row=row, options=options, frontier=frontier)
        if not frontier:
            job.choice = self._combinations(options, required)  # the compiled search orders them by cost
        return None, job

    def _cached_options(self, position: int, act: _Actionable, x: FloatArray,
                        values: Mapping[str, Any]) -> _Options | None:
        """:meth:`_options`, remembered per field and current value (they depend on nothing else)."""
        enc = act.enc
        key: tuple[int, Any]
        if enc.kind in (ONEHOT, NATIVE):
            current = values.get(enc.name)
            key = (position, current if isinstance(current, str) else None)
            if not isinstance(current, str) and current is not None:
                return self._options(position, act, x, values)
        else:
            number = float(x[enc.first])
            key = (position, number if math.isfinite(number) else None)
        try:
            return self._options_cache[key]
        except KeyError:
            pass
        found = self._options(position, act, x, values)
        if len(self._options_cache) >= OPTIONS_CACHE_SIZE:
            self._options_cache.clear()
        self._options_cache[key] = found
        return found

    def _all_monotone(self, options: Sequence[_Options]) -> bool:
        """:func:`_all_monotone`, and the model monotone in every field's main feature in that direction
        (trained with that constraint, or verified from its trees)."""
        return _all_monotone(options) and all(
            self._model_monotone.get(opt.enc.first, 0) == opt.enc.monotone for opt in options)

    def _combinations(self, options: Sequence[_Options], required: set[int]) -> IntArray:
        """:func:`_combinations` (the option index per field, in enumeration order: fewer changed fields
        first), shared by every application with the same option counts and required fields."""
        key = (tuple(len(opt.values) for opt in options),
               frozenset(k for k, opt in enumerate(options) if opt.position in required))
        cached = self._combination_cache.get(key)
        if cached is None:
            choice, _, _ = _combinations(options, self.max_changed_fields, required)
            if len(self._combination_cache) >= OPTIONS_CACHE_SIZE:
                self._combination_cache.clear()
            cached = self._combination_cache[key] = choice
        return cached

    def _search(self, jobs: Sequence[_Job], x: FloatArray) -> None:
        """Run the compiled search over every job at once; fills each job's grid choice, refined values,
        outcome and count of scored candidates."""
        tables = self._tables
        slot_start = [0]
        slot_position: list[int] = []
        option_start = [0]
        numbers: list[FloatArray] = []
        costs: list[FloatArray] = []
        signs: list[IntArray] = []
        blocks: list[FloatArray] = []
        choice_start: list[int] = []  # per job: its combinations' first value in ``choices`` (shared arrays once)
        choice_count: list[int] = []
        choices: list[IntArray] = []
        shared: dict[int, int] = {}
        n_values = 0
        for job in jobs:
            for opt in job.options:
                slot_position.append(opt.position)
                option_start.append(option_start[-1] + len(opt.values))
                numbers.append(opt.numbers)
                costs.append(opt.costs)
                signs.append(opt.signs)
                blocks.append(opt.blocks.reshape(-1))
            slot_start.append(len(slot_position))
            if job.choice is not None:
                if id(job.choice) not in shared:
                    shared[id(job.choice)] = n_values
                    choices.append(job.choice.reshape(-1))
                    n_values += job.choice.size
                choice_start.append(shared[id(job.choice)])
                choice_count.append(len(job.choice))
            else:
                choice_start.append(0)
                choice_count.append(0)
        n_slots = len(slot_position)
        rows = np.ascontiguousarray(x[[job.row for job in jobs]])
        own = np.ascontiguousarray(np.vstack([job.pattern for job in jobs if job.pattern is not None]),
                                   dtype=np.int32)
        status = np.zeros(len(jobs), dtype=np.int64)
        scored = np.zeros(len(jobs), dtype=np.int64)
        grid = np.full(n_slots, -1, dtype=np.int64)
        refined = np.full(n_slots, np.nan, dtype=np.float64)
        refine_scored = np.zeros(len(jobs), dtype=np.int64)
        _search_rows(rows, own, np.array(slot_start, dtype=np.int64), np.array(slot_position, dtype=np.int64),
                     np.array(option_start, dtype=np.int64), _cat(numbers, np.float64), _cat(costs, np.float64),
                     _cat(signs, np.int64), _cat(blocks, np.float64),
                     np.array([job.frontier for job in jobs], dtype=np.bool_),
                     np.array(choice_start, dtype=np.int64), np.array(choice_count, dtype=np.int64),
                     _cat(choices, np.int64),
                     self.max_changed_fields, self._decision, tables.scoring(), tables.clear, tables.tree_owner,
                     tables.field_first, tables.field_width, tables.field_numeric, tables.threshold_start,
                     tables.threshold_value, tables.threshold_down, tables.threshold_up, tables.threshold_down_ok,
                     tables.threshold_up_ok, status, scored, grid, refined, refine_scored)
        for k, job in enumerate(jobs):
            first, last = slot_start[k], slot_start[k + 1]
            job.status = int(status[k])
            job.scored = int(scored[k])
            job.refine_scored = int(refine_scored[k])
            job.grid = grid[first:last].tolist()
            job.refined = refined[first:last].tolist()

    def _verify_many(self, jobs: Sequence[_Job], values: Sequence[Mapping[str, Any]],
                     reasons: Sequence[Sequence[str]]) -> list[Recourse]:
        """Verify every job's refined candidate (then, where that fails, its grid winner) by re-scoring the
        changed applications with the model version's own scoring (LightGBM, one batch)."""
        version = self.model.version
        out: list[Recourse | None] = [None] * len(jobs)
        tries: list[tuple[int, dict[int, tuple[Any, FloatArray]], int]] = []
        fallbacks: dict[int, dict[int, tuple[Any, FloatArray]]] = {}
        for k, job in enumerate(jobs):
            options = job.options
            if job.status == STATUS_CORNER:
                extremes = ", ".join(f"{self._label(opt.enc.name)} {self._say(opt.enc.name, opt.values[-1])}"
                                     for opt in options)
                out[k] = Recourse(found=False, model_version=version, candidates_scored=job.scored,
                                  note=f"{NOT_FOUND} (even {extremes} together is not approved)")
                continue
            if job.status == STATUS_NONE:
                out[k] = Recourse(found=False, model_version=version, candidates_scored=job.scored,
                                  note=f"{NOT_FOUND} (searched {job.scored} combinations of up to "
                                       f"{self.max_changed_fields} fields)")
                continue
            grid_state: dict[int, tuple[Any, FloatArray]] = {}
            refined_state: dict[int, tuple[Any, FloatArray]] = {}
            assert job.grid is not None and job.refined is not None
            for q, opt in enumerate(options):
                index = job.grid[q]
                if index < 0:
                    continue
                grid_state[opt.position] = (opt.values[index], opt.blocks[index])
                if opt.enc.kind == NUMERIC:
                    winner = float(job.refined[q])
                    block = np.zeros(opt.enc.width, dtype=np.float64)
                    block[0] = winner
                    refined_state[opt.position] = (_typed(opt.spec, winner), block)
                else:
                    refined_state[opt.position] = grid_state[opt.position]
            tries.append((k, dict(sorted(refined_state.items())), job.scored + job.refine_scored))
            fallbacks[k] = dict(sorted(grid_state.items()))
        for attempt in range(2):
            if not tries:
                break
            changed = [self._changed(values[jobs[k].row], attempt_state) for k, attempt_state, _ in tries]
            probabilities = self._score_many([c[0] for c in changed])
            retry: list[tuple[int, dict[int, tuple[Any, FloatArray]], int]] = []
            for (k, _, scored), (changed_values, changes, cost), probability in zip(
                    tries, changed, probabilities, strict=True):
                if policy_decide(self.spec.policy, probability, changed_values).outcome == APPROVED:
                    out[k] = self._found(changes, cost, probability, reasons[jobs[k].row], scored)
                elif attempt == 0:
                    retry.append((k, fallbacks[k], scored))
                else:
                    out[k] = Recourse(found=False, model_version=version, candidates_scored=scored,
                                      note="the best candidate did not verify when re-scored through model.score; "
                                           "no recourse is reported")
            tries = retry
        return [r for r in out if r is not None]

    def _changed(self, values: Mapping[str, Any], state: Mapping[int, tuple[Any, FloatArray]]
                 ) -> tuple[dict[str, Any], list[tuple[str, Any, Any]], float]:
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
        return changed, changes, cost

    # --- wording: a note names fields by their labels and values as people write them -----------------

    def _label(self, name: str) -> str:
        """A field as the spec names it for people ("Revolving utilisation", never the column name)."""
        return field_label(self.spec, self.spec.field(name), "en")

    def _say(self, name: str, value: Any) -> str:
        """A value as people write it: "$12,000", "35%", "36 months", a category's label."""
        return format_value(self.spec, self.spec.field(name), value, "en")

    def _found_note(self, changes: Sequence[tuple[str, Any, Any]], not_in: Sequence[str]) -> str:
        note = "approved after changing " + ", ".join(
            f"{self._label(name)} from {self._say(name, old)} to {self._say(name, new)}" for name, old, new in changes)
        if not_in:
            note += f"; not among the stated reasons: {', '.join(self._label(name) for name in not_in)}"
        return note

    def _score_many(self, rows: Sequence[Mapping[str, Any]]) -> list[float]:
        """``model.score`` of each mapping, in one LightGBM call: the same encoding (``encode_row``), the
        same raw margin (LightGBM scores each row on its own, whatever the batch), the same calibration."""
        model = self.model
        matrix = np.vstack([model.encoder.encode_row(v) for v in rows])
        margins = model.booster.predict(matrix, raw_score=True, num_threads=1)
        return [model.calibration.pd(float(m)) for m in margins]

    def _found(self, changes: Sequence[tuple[str, Any, Any]], cost: float, probability: float,
               reasons: Sequence[str], scored: int) -> Recourse:
        reason_set = set(reasons)
        names = [name for name, _, _ in changes]
        in_reasons = tuple(n for n in names if n in reason_set)
        not_in = tuple(n for n in names if n not in reason_set)
        note = self._found_note(changes, not_in)
        return Recourse(found=True, changes=tuple(changes), new_probability=probability, verified=True,
                        cost=cost, changed_fields_in_reasons=in_reasons, fields_not_in_reasons=not_in,
                        note=note, model_version=self.model.version, candidates_scored=scored)

    # --- the one-at-a-time search, scored by LightGBM -------------------------------------------------

    def _find_one_legacy(self, values: Mapping[str, Any], *, features: FloatArray | None = None,
                         reasons: Sequence[str] = ()) -> Recourse:
        """The search scored by LightGBM, one application at a time (models without per-tree tables)."""
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
                                note=f"a policy rule on {self._label(rule.field)} denies this application, "
                                     "and the applicant cannot change it")
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
            extremes = ", ".join(f"{self._label(opt.enc.name)} {self._say(opt.enc.name, opt.values[-1])}"
                                     for opt in options)
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
            # A neutral value (features.py) is never suggested: it scores as its reference level, and
            # recourse must not ask for a medical purpose or a marital or age proxy (FCRA 604(g), Reg B 1002.6(b)).
            current_as = enc.neutral_as.get(str(current_value), current_value)
            others = [c for c in enc.categories if c != current_value and c != current_as and c not in enc.neutral_as]
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
        changed, changes, cost = self._changed(values, state)
        probability = self.model.score(changed)
        if policy_decide(self.spec.policy, probability, changed).outcome != APPROVED:
            return None
        reason_set = set(reasons)
        names = [name for name, _, _ in changes]
        in_reasons = tuple(n for n in names if n in reason_set)
        not_in = tuple(n for n in names if n not in reason_set)
        note = self._found_note(changes, not_in)
        return Recourse(found=True, changes=tuple(changes), new_probability=probability, verified=True,
                        cost=cost, changed_fields_in_reasons=in_reasons, fields_not_in_reasons=not_in,
                        note=note, model_version=self.model.version, candidates_scored=scored)


def find_recourse(model: ScoringModel, spec: ProductSpec, values: Mapping[str, Any], *,
                  reasons: Sequence[str] = ()) -> Recourse:
    """One-off convenience: build a :class:`RecourseSearch` and run it (reuse the search for many rows)."""
    return RecourseSearch(model, spec).find(values, reasons=reasons)


# --- the compiled search ------------------------------------------------------------------------------

@dataclass
class _Job:
    """One application's search: its options, how to search them, and what the search found."""

    row: int
    options: list[_Options]
    frontier: bool
    choice: IntArray | None = None  # the generic search's combinations, in enumeration order (shared, not copied)
    pattern: npt.NDArray[np.int32] | None = None
    status: int = STATUS_NONE
    scored: int = 0
    refine_scored: int = 0
    grid: list[int] | None = None
    refined: list[float] | None = None


@dataclass(frozen=True)
class _SearchTables:
    """What the compiled search needs from the model, per actionable field: the nodes (of every tree)
    that split on the field's columns, their bits in the tree's node pattern, and for numeric fields the
    split thresholds of the main feature with the grid values just below and above each one.

    The trees are classified once per model by the actionable fields their nodes split on: none, exactly one
    (a single-field tree, listed per field in ``single_tree[single_start[p]:single_start[p + 1]]``) or two
    or more (a multi-field tree, ``multi_tree``). A candidate differs from the application in actionable
    fields only, so a tree of no actionable field keeps the application's leaf, a single-field tree's leaf
    depends on that field's option alone, and only the multi-field trees combine the options. Per node,
    ``node_single`` / ``node_multi`` say where its tree sits in those lists (-1: not there)."""

    pattern_start: IntArray
    pattern_value: FloatArray
    clear: npt.NDArray[np.int32]  # (actionable fields, trees): the field's node bits per tree
    field_first: IntArray
    field_width: IntArray
    field_numeric: npt.NDArray[np.bool_]
    node_start: IntArray
    node_tree: IntArray
    node_bit: npt.NDArray[np.int32]
    node_column: IntArray
    node_threshold: FloatArray
    node_default_left: npt.NDArray[np.bool_]
    node_missing: IntArray
    node_single: IntArray
    node_multi: IntArray
    tree_owner: IntArray  # per tree: the one actionable field it splits on, NO_FIELD or SEVERAL_FIELDS
    single_start: IntArray
    single_tree: IntArray
    multi_tree: IntArray
    threshold_start: IntArray
    threshold_value: FloatArray
    threshold_down: FloatArray
    threshold_up: FloatArray
    threshold_down_ok: npt.NDArray[np.bool_]
    threshold_up_ok: npt.NDArray[np.bool_]
    leaf_magnitude: float  # sum over trees of the tree's largest |leaf value|: bounds |margin| and its terms

    @classmethod
    def build(cls, kernel: TreeShap, actionable: Sequence[_Actionable], thresholds: Mapping[int, FloatArray],
              search: RecourseSearch) -> _SearchTables:
        node_start_of_tree = kernel._node_start
        features = kernel._node_feature
        n_trees = kernel.n_trees
        clear = np.zeros((len(actionable), n_trees), dtype=np.int32)
        node_start = [0]
        tree, bit, column, threshold, default_left, missing = [], [], [], [], [], []
        thr_start = [0]
        thr_value: list[float] = []
        thr_down: list[float] = []
        thr_up: list[float] = []
        down_ok: list[bool] = []
        up_ok: list[bool] = []
        for position, act in enumerate(actionable):
            first, width = act.enc.first, act.enc.width
            for t in range(n_trees):
                for j in range(int(node_start_of_tree[t]), int(node_start_of_tree[t + 1])):
                    feature = int(features[j])
                    if first <= feature < first + width:
                        local = 1 << (j - int(node_start_of_tree[t]))
                        clear[position, t] |= local
                        tree.append(t)
                        bit.append(local)
                        column.append(feature - first)
                        threshold.append(float(kernel._node_threshold[j]))
                        default_left.append(bool(kernel._node_default_left[j]))
                        missing.append(int(kernel._node_missing[j]))
            node_start.append(len(tree))
            if act.enc.kind == NUMERIC:
                for value in thresholds.get(first, _NO_THRESHOLDS).tolist():
                    floor = Decimal(repr(value)).quantize(act.resolution, rounding=ROUND_FLOOR)
                    down, up = float(floor), float(floor + act.resolution)
                    thr_value.append(value)
                    thr_down.append(down)
                    thr_up.append(up)
                    down_ok.append(search._allowed(act.enc, down))
                    up_ok.append(search._allowed(act.enc, up))
            thr_start.append(len(thr_value))
        owner, single_start, single_tree, multi_tree = _classify_trees(clear)
        single_index = np.full(n_trees, -1, dtype=np.int64)
        single_index[single_tree] = np.arange(len(single_tree))
        multi_index = np.full(n_trees, -1, dtype=np.int64)
        multi_index[multi_tree] = np.arange(len(multi_tree))
        node_tree = np.array(tree, dtype=np.int64)
        pattern_start, pattern_value = kernel._pattern_start, kernel._pattern_value
        magnitude = math.fsum(float(np.abs(pattern_value[pattern_start[t]:pattern_start[t + 1]]).max())
                              for t in range(n_trees))
        return cls(
            pattern_start=pattern_start, pattern_value=pattern_value, clear=clear,
            field_first=np.array([a.enc.first for a in actionable], dtype=np.int64),
            field_width=np.array([a.enc.width for a in actionable], dtype=np.int64),
            field_numeric=np.array([a.enc.kind == NUMERIC for a in actionable], dtype=np.bool_),
            node_start=np.array(node_start, dtype=np.int64), node_tree=node_tree,
            node_bit=np.array(bit, dtype=np.int32), node_column=np.array(column, dtype=np.int64),
            node_threshold=np.array(threshold, dtype=np.float64),
            node_default_left=np.array(default_left, dtype=np.bool_), node_missing=np.array(missing, dtype=np.int64),
            node_single=single_index[node_tree], node_multi=multi_index[node_tree], tree_owner=owner,
            single_start=single_start, single_tree=single_tree, multi_tree=multi_tree,
            threshold_start=np.array(thr_start, dtype=np.int64), threshold_value=np.array(thr_value, dtype=np.float64),
            threshold_down=np.array(thr_down, dtype=np.float64), threshold_up=np.array(thr_up, dtype=np.float64),
            threshold_down_ok=np.array(down_ok, dtype=np.bool_), threshold_up_ok=np.array(up_ok, dtype=np.bool_),
            leaf_magnitude=magnitude)

    def scoring(self) -> _Scoring:
        """The arrays that score a candidate, as the compiled search takes them."""
        return _Scoring(*(getattr(self, name) for name in _Scoring._fields))

    def tolerance(self, a: float, b: float, line: float) -> float:
        """How far from the approval line a candidate's calibrated log-odds, summed per tree group, must be for
        its side of the line to be LightGBM's.

        The grouped margin adds the same n leaf values as LightGBM's in-order sum, in another order. Any
        order of adding n terms is within gamma(n - 1) * sum|term| of the exact sum (Higham, Accuracy and
        Stability of Numerical Algorithms, 4.2), gamma(k) = k u / (1 - k u), u = 2^-53; so the two sums are
        within 2 gamma(n) L of each other, L = ``leaf_magnitude`` (>= sum|term| and >= |margin|). ``a m + b``
        and the comparison with the line add roundings of at most u per operation on magnitudes below
        |a| L + |b| + |line|. The tolerance is twice the sum of those bounds (the 710-tree demo model, L = 28.8,
        gives 9e-12, so the exact sum is needed only for candidates that close to the line)."""
        u = 2.0 ** -53
        n = len(self.pattern_start)  # trees + 1: covers n - 1 additions and the sum's start
        gamma = n * u / (1.0 - n * u)
        scale = abs(a) * self.leaf_magnitude + abs(b) + abs(line)
        return 2.0 * (abs(a) * 2.0 * gamma * self.leaf_magnitude + 4.0 * u * scale)


NO_FIELD, SEVERAL_FIELDS = -1, -2


def _classify_trees(clear: npt.NDArray[np.int32]) -> tuple[IntArray, IntArray, IntArray, IntArray]:
    """Per tree, which actionable fields split in it (``clear``: fields x trees, nonzero where they do):
    the owner of each tree (its one field, NO_FIELD or SEVERAL_FIELDS), the single-field trees grouped by
    field (start offsets per field and the trees in tree order) and the multi-field trees in tree order."""
    touching = (clear != 0).sum(axis=0) if clear.shape[0] else np.zeros(clear.shape[1], dtype=np.int64)
    owner = np.full(clear.shape[1], NO_FIELD, dtype=np.int64)
    single = touching == 1
    if clear.shape[0]:
        owner[single] = np.argmax(clear != 0, axis=0)[single]
    owner[touching >= 2] = SEVERAL_FIELDS
    single_start = [0]
    single_tree: list[int] = []
    for position in range(clear.shape[0]):
        single_tree += np.flatnonzero(owner == position).tolist()
        single_start.append(len(single_tree))
    return (owner, np.array(single_start, dtype=np.int64), np.array(single_tree, dtype=np.int64),
            np.flatnonzero(touching >= 2).astype(np.int64))


def _cat(parts: Sequence[npt.NDArray[Any]], dtype: Any) -> npt.NDArray[Any]:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype=dtype)


class _Scoring(NamedTuple):
    """The model's arrays that score a candidate (see :class:`_SearchTables`), unpacked once per batch: numba
    passes a tuple of arrays by copying and reference-counting every member, far too dear per candidate."""

    pattern_start: IntArray
    pattern_value: FloatArray
    node_start: IntArray
    node_tree: IntArray
    node_bit: npt.NDArray[np.int32]
    node_column: IntArray
    node_threshold: FloatArray
    node_default_left: npt.NDArray[np.bool_]
    node_missing: IntArray
    node_single: IntArray
    node_multi: IntArray
    single_start: IntArray
    single_tree: IntArray
    multi_tree: IntArray


class _Decision(NamedTuple):
    """Approved: ``a * margin + b < line``; ``tolerance``: how far from the line the grouped margin decides."""

    a: float
    b: float
    line: float
    tolerance: float


_NO, _YES, _CLOSE = 0, 1, -1

# How a candidate is scored. Per application, slot q (one of its actionable fields with options) is at bits
# index ``chosen[q]``: 0 its current value, 1 + o its option o, the last index a refined value (``custom``).
# The candidate's raw margin is
#     constant (the trees of no slot's field keep the application's own leaves)
#   + partial[q, chosen[q]] per slot (the slot field's single-field trees, summed once per option)
#   + the multi-field trees, summed per candidate from their node patterns (``multi_base`` with each slot's
#     ``multi_bits[q, chosen[q]]`` set).
# That is LightGBM's sum up to rounding; a candidate within the tolerance of the line is scored again with the
# in-order sum over every tree (``_exact_verdict``), so that every decision is LightGBM's, bit for bit.
# Each call site writes "_grouped, then _exact_verdict if _CLOSE" out: one function doing both takes all
# the arrays _exact_verdict needs on every candidate, and numba's calls pass each array by value (measured
# 2026-11-26 on 30,000 demo applications: 10% slower searches).

@numba.njit(cache=True)
def _option_block(q: int, k: int, sizes: IntArray, widths: IntArray, offsets: IntArray, blocks: FloatArray,
                  custom: FloatArray) -> FloatArray:
    """The encoded columns of slot q at bits index k >= 1 (an option, or the refined value)."""
    w = widths[q]
    if k <= sizes[q]:
        start = offsets[q] + (k - 1) * w
        block: FloatArray = blocks[start:start + w]
        return block
    refined: FloatArray = custom[q, :w]
    return refined


@numba.njit(cache=True)
def _fill(block: FloatArray, p: int, rest: npt.NDArray[np.int32], moved: npt.NDArray[np.int32],
          node_start: IntArray, node_bit: npt.NDArray[np.int32], node_column: IntArray, node_threshold: FloatArray,
          node_default_left: npt.NDArray[np.bool_], node_missing: IntArray, node_single: IntArray,
          node_multi: IntArray, single_start: IntArray, single_tree: IntArray, pattern_start: IntArray,
          pattern_value: FloatArray) -> float:
    """Field p's columns set to ``block``: the sum of its single-field trees (returned) and its node bits in
    the multi-field trees (into ``moved``). ``rest``: the application's decisions at those trees' other nodes."""
    k0, k1 = single_start[p], single_start[p + 1]
    patterns = rest[k0:k1].copy()
    moved[:] = 0
    for n in range(node_start[p], node_start[p + 1]):
        if _goes_left(block[node_column[n]], node_threshold[n], node_default_left[n], node_missing[n]):
            if node_single[n] >= 0:
                patterns[node_single[n] - k0] |= node_bit[n]
            else:
                moved[node_multi[n]] |= node_bit[n]
    total = 0.0
    for j in range(k1 - k0):
        total += pattern_value[pattern_start[single_tree[k0 + j]] + patterns[j]]
    return total


@numba.njit(cache=True)
def _grouped(chosen: IntArray, constant: float, partial: FloatArray, multi_base: npt.NDArray[np.int32],
             multi_bits: npt.NDArray[np.int32], multi_tree: IntArray, pattern_start: IntArray,
             pattern_value: FloatArray, decision: _Decision) -> int:
    """_YES / _NO from the grouped margin, _CLOSE when it is within the tolerance of the line."""
    n_slots = chosen.shape[0]
    total = constant
    for q in range(n_slots):
        total += partial[q, chosen[q]]
    for m in range(multi_tree.shape[0]):
        pattern = multi_base[m]
        for q in range(n_slots):
            pattern |= multi_bits[q, chosen[q], m]
        total += pattern_value[pattern_start[multi_tree[m]] + pattern]
    z = decision.a * total + decision.b
    if z < decision.line - decision.tolerance:
        return _YES
    if z > decision.line + decision.tolerance:
        return _NO
    return _CLOSE


@numba.njit(cache=True)
def _exact_verdict(chosen: IntArray, own_row: npt.NDArray[np.int32], positions: IntArray, sizes: IntArray,
                    widths: IntArray, offsets: IntArray, blocks: FloatArray, custom: FloatArray,
                    pattern_start: IntArray, pattern_value: FloatArray, node_start: IntArray, node_tree: IntArray,
                    node_bit: npt.NDArray[np.int32], node_column: IntArray, node_threshold: FloatArray,
                    node_default_left: npt.NDArray[np.bool_], node_missing: IntArray, decision: _Decision) -> int:
    """_YES / _NO: whether the candidate is approved, its raw margin the leaf values LightGBM adds in the same
    order (bit for bit ``booster.predict``): per tree the application's node pattern with each moved slot's
    nodes decided again for the candidate's value."""
    patterns = own_row.copy()
    for q in range(chosen.shape[0]):
        if chosen[q] == 0:
            continue  # the current value: the application's own decisions
        block = _option_block(q, chosen[q], sizes, widths, offsets, blocks, custom)
        p = positions[q]
        for n in range(node_start[p], node_start[p + 1]):
            t = node_tree[n]
            if _goes_left(block[node_column[n]], node_threshold[n], node_default_left[n], node_missing[n]):
                patterns[t] |= node_bit[n]
            else:
                patterns[t] &= ~node_bit[n]
    total = 0.0
    for t in range(patterns.shape[0]):
        total += pattern_value[pattern_start[t] + patterns[t]]
    return _YES if (decision.a * total + decision.b) < decision.line else _NO


@numba.njit(cache=True)
def _search_rows(rows: FloatArray, own: npt.NDArray[np.int32], slot_start: IntArray, slot_position: IntArray,
                 option_start: IntArray, numbers: FloatArray, costs: FloatArray, signs: IntArray,
                 blocks: FloatArray, frontier: npt.NDArray[np.bool_], choice_start: IntArray,
                 choice_count: IntArray, choices: IntArray,
                 max_changed: int, decision: _Decision, tables: _Scoring, clear: npt.NDArray[np.int32],
                 tree_owner: IntArray, field_first: IntArray, field_width: IntArray,
                 field_numeric: npt.NDArray[np.bool_], threshold_start: IntArray, threshold_value: FloatArray,
                 threshold_down: FloatArray, threshold_up: FloatArray, threshold_down_ok: npt.NDArray[np.bool_],
                 threshold_up_ok: npt.NDArray[np.bool_], status: IntArray, scored: IntArray, grid: IntArray,
                 refined: FloatArray, refine_scored: IntArray) -> None:
    (pattern_start, pattern_value, node_start, node_tree, node_bit, node_column, node_threshold, node_default_left,
     node_missing, node_single, node_multi, single_start, single_tree, multi_tree) = tables
    n_multi = multi_tree.shape[0]
    rest = np.zeros(single_start[-1], dtype=np.int32)  # per single-field tree: its pattern without its field
    is_slot = np.zeros(clear.shape[0], dtype=np.bool_)
    block_offset = 0
    for r in range(rows.shape[0]):
        s0 = slot_start[r]
        n_slots = slot_start[r + 1] - s0
        own_row = own[r]
        positions = slot_position[s0:s0 + n_slots]
        sizes = np.empty(n_slots, dtype=np.int64)
        widths = np.empty(n_slots, dtype=np.int64)
        offsets = np.empty(n_slots, dtype=np.int64)  # first block value of each slot's options
        widest = 0
        widest_block = 1
        for q in range(n_slots):
            sizes[q] = option_start[s0 + q + 1] - option_start[s0 + q]
            widths[q] = field_width[positions[q]]
            offsets[q] = block_offset
            block_offset += sizes[q] * widths[q]
            widest = max(widest, sizes[q])
            widest_block = max(widest_block, widths[q])
        custom_index = widest + 1  # bits index of a refined value
        custom = np.zeros((n_slots, widest_block), dtype=np.float64)  # the refined value's columns per slot
        # Every option's single-field sum and multi-field bits, once per application (bits index 0: as is).
        partial = np.zeros((n_slots, widest + 2), dtype=np.float64)
        multi_bits = np.zeros((n_slots, widest + 2, n_multi), dtype=np.int32)
        multi_base = np.empty(n_multi, dtype=np.int32)  # per multi-field tree: its pattern without slot fields
        for m in range(n_multi):
            multi_base[m] = own_row[multi_tree[m]]
        is_slot[:] = False
        for q in range(n_slots):
            p = positions[q]
            is_slot[p] = True
            total = 0.0
            for k in range(single_start[p], single_start[p + 1]):
                t = single_tree[k]
                rest[k] = own_row[t] & ~clear[p, t]
                total += pattern_value[pattern_start[t] + own_row[t]]
            partial[q, 0] = total
            for m in range(n_multi):
                t = multi_tree[m]
                multi_bits[q, 0, m] = own_row[t] & clear[p, t]
                multi_base[m] &= ~clear[p, t]
            for k in range(1, sizes[q] + 1):
                block = _option_block(q, k, sizes, widths, offsets, blocks, custom)
                partial[q, k] = _fill(block, p, rest, multi_bits[q, k], node_start, node_bit, node_column,
                                      node_threshold, node_default_left, node_missing, node_single, node_multi,
                                      single_start, single_tree, pattern_start, pattern_value)
        constant = 0.0
        for t in range(own_row.shape[0]):
            owner = tree_owner[t]
            if owner == NO_FIELD or (owner >= 0 and not is_slot[owner]):
                constant += pattern_value[pattern_start[t] + own_row[t]]
        index = np.zeros(n_slots, dtype=np.int64)  # the candidate: each slot's bits index
        count = 0

        # --- the grid search ----------------------------------------------------------------------
        best = np.full(n_slots, -1, dtype=np.int64)
        found = False
        if frontier[r]:
            # the corner: every field at its last option
            for q in range(n_slots):
                index[q] = sizes[q]
            count += 1
            verdict = _grouped(index, constant, partial, multi_base, multi_bits, multi_tree,
                               pattern_start, pattern_value, decision)
            if verdict == _CLOSE:
                verdict = _exact_verdict(index, own_row, positions, sizes, widths, offsets,
                                         blocks, custom, pattern_start, pattern_value, node_start,
                                         node_tree, node_bit, node_column, node_threshold,
                                         node_default_left, node_missing, decision)
            if verdict != _YES:
                status[r] = STATUS_CORNER
                scored[r] = count
                continue
            best_cost = np.inf
            limit = min(max_changed, n_slots)
            # One field: its smallest approved option (a field's approved options are a suffix). Only options
            # cheaper than the best so far are worth finding (``cap``): probing the dearest of them first
            # settles most subsets in one candidate.
            for fa in range(n_slots):
                ca = costs[option_start[s0 + fa]:option_start[s0 + fa + 1]]
                cap = _cap(ca, 0.0, best_cost)
                if cap < 0:
                    continue
                index[:] = 0
                k, _, evaluated = _smallest(fa, sizes[fa], cap, index, constant, partial, multi_base, multi_bits,
                                            multi_tree, own_row, positions, sizes, widths, offsets, blocks, custom,
                                            pattern_start, pattern_value, node_start, node_tree, node_bit,
                                            node_column, node_threshold, node_default_left, node_missing, decision)
                count += evaluated
                if k >= 0 and ca[k] < best_cost:
                    best_cost = ca[k]
                    best[:] = -1
                    best[fa] = k
            # Two fields: per option i of the first, the smallest approved option of the second; it can only
            # fall as i rises (a staircase), so the last one found bounds the next search from above.
            if limit >= 2:
                for fa in range(n_slots):
                    ca = costs[option_start[s0 + fa]:option_start[s0 + fa + 1]]
                    for fb in range(fa + 1, n_slots):
                        cb = costs[option_start[s0 + fb]:option_start[s0 + fb + 1]]
                        index[:] = 0
                        upper = sizes[fb]  # an option known to approve; sizes[fb]: none known
                        for i in range(sizes[fa]):
                            cap = _cap(cb, ca[i], best_cost)
                            if cap < 0:
                                break
                            index[fa] = i + 1
                            k, upper, evaluated = _smallest(fb, upper, cap, index, constant, partial, multi_base,
                                                            multi_bits, multi_tree, own_row, positions, sizes, widths,
                                                            offsets, blocks, custom, pattern_start, pattern_value,
                                                            node_start, node_tree, node_bit, node_column,
                                                            node_threshold, node_default_left, node_missing, decision)
                            count += evaluated
                            if k >= 0 and ca[i] + cb[k] < best_cost:
                                best_cost = ca[i] + cb[k]
                                best[:] = -1
                                best[fa] = i
                                best[fb] = k
            # Three fields: per pair (i, j) of the first two, the smallest approved option of the third, bounded
            # by what (i - 1, j) and (i, j - 1) needed.
            if limit >= 3:
                for fa in range(n_slots):
                    ca = costs[option_start[s0 + fa]:option_start[s0 + fa + 1]]
                    for fb in range(fa + 1, n_slots):
                        cb = costs[option_start[s0 + fb]:option_start[s0 + fb + 1]]
                        for fc in range(fb + 1, n_slots):
                            cc = costs[option_start[s0 + fc]:option_start[s0 + fc + 1]]
                            if (ca[0] + cb[0]) + cc[0] >= best_cost:
                                continue
                            index[:] = 0
                            previous = np.full(sizes[fb], sizes[fc], dtype=np.int64)  # known bounds at i - 1
                            for i in range(sizes[fa]):
                                if (ca[i] + cb[0]) + cc[0] >= best_cost:
                                    break
                                index[fa] = i + 1
                                current = np.full(sizes[fb], sizes[fc], dtype=np.int64)
                                left = sizes[fc]  # known bound at (i, j - 1)
                                for j in range(sizes[fb]):
                                    cap = _cap(cc, ca[i] + cb[j], best_cost)
                                    if cap < 0:
                                        break
                                    index[fb] = j + 1
                                    k, known, evaluated = _smallest(
                                        fc, min(previous[j], left), cap, index, constant, partial, multi_base,
                                        multi_bits, multi_tree, own_row, positions, sizes, widths, offsets, blocks,
                                        custom, pattern_start, pattern_value, node_start, node_tree, node_bit,
                                        node_column, node_threshold, node_default_left, node_missing, decision)
                                    count += evaluated
                                    current[j] = known
                                    left = known
                                    if k >= 0 and (ca[i] + cb[j]) + cc[k] < best_cost:
                                        best_cost = (ca[i] + cb[j]) + cc[k]
                                        best[:] = -1
                                        best[fa] = i
                                        best[fb] = j
                                        best[fc] = k
                                previous = current
            found = best_cost < np.inf
        else:
            # Every combination in cost order: a stable sort of the enumeration (fewer changed fields first,
            # then the enumeration order) by total cost, summed as _combinations sums it (fields in order).
            n_choices = choice_count[r]
            total_cost = np.empty(n_choices, dtype=np.float64)
            for c in range(n_choices):
                start = choice_start[r] + c * n_slots
                cost = 0.0
                for q in range(n_slots):
                    o = choices[start + q]
                    if o >= 0:
                        cost += costs[option_start[s0 + q] + o]
                total_cost[c] = cost
            for c in np.argsort(total_cost, kind="mergesort"):
                start = choice_start[r] + c * n_slots
                for q in range(n_slots):
                    index[q] = choices[start + q] + 1
                count += 1
                verdict = _grouped(index, constant, partial, multi_base, multi_bits, multi_tree,
                                   pattern_start, pattern_value, decision)
                if verdict == _CLOSE:
                    verdict = _exact_verdict(index, own_row, positions, sizes, widths, offsets,
                                             blocks, custom, pattern_start, pattern_value, node_start,
                                             node_tree, node_bit, node_column, node_threshold,
                                             node_default_left, node_missing, decision)
                if verdict == _YES:
                    for q in range(n_slots):
                        best[q] = choices[start + q]
                    found = True
                    break
        scored[r] = count
        if not found:
            status[r] = STATUS_NONE
            continue
        status[r] = STATUS_FOUND
        for q in range(n_slots):
            grid[s0 + q] = best[q]

        # --- refinement: each changed numeric field, largest cost share first, pulled back to the nearest
        # value (on its resolution grid, just past a split threshold) that keeps the approval ---------------
        for q in range(n_slots):
            index[q] = best[q] + 1
        order = np.empty(n_slots, dtype=np.int64)
        order_cost = np.empty(n_slots, dtype=np.float64)
        n_numeric = 0
        for q in range(n_slots):
            if best[q] >= 0 and field_numeric[slot_position[s0 + q]]:
                order[n_numeric] = q
                order_cost[n_numeric] = costs[option_start[s0 + q] + best[q]]
                n_numeric += 1
        for u in range(1, n_numeric):  # insertion sort by (-cost, slot)
            v = u
            while v > 0 and (order_cost[v] > order_cost[v - 1] or
                             (order_cost[v] == order_cost[v - 1] and order[v] < order[v - 1])):
                order[v], order[v - 1] = order[v - 1], order[v]
                order_cost[v], order_cost[v - 1] = order_cost[v - 1], order_cost[v]
                v -= 1
        extra = 0
        for u in range(n_numeric):
            q = order[u]
            position = slot_position[s0 + q]
            option = option_start[s0 + q] + best[q]
            current = rows[r, field_first[position]]
            sign = signs[option]
            winner = numbers[option]
            previous = current
            for o in range(best[q] - 1, -1, -1):
                if signs[option_start[s0 + q] + o] == sign:
                    previous = numbers[option_start[s0 + q] + o]
                    break
            low = min(previous, winner)
            high = max(previous, winner)
            t0, t1 = threshold_start[position], threshold_start[position + 1]
            points = np.empty(t1 - t0 + 1, dtype=np.float64)
            allowed = np.empty(t1 - t0 + 1, dtype=np.bool_)
            n_points = 0
            for t in range(t0, t1):
                threshold = threshold_value[t]
                if threshold < low or threshold > high:
                    continue
                value = threshold_down[t] if sign < 0 else threshold_up[t]
                ok = threshold_down_ok[t] if sign < 0 else threshold_up_ok[t]
                if (value - current) * sign > 0 and (value - previous) * sign > 0 and (value - winner) * sign <= 0:
                    points[n_points] = value
                    allowed[n_points] = ok
                    n_points += 1
            points[n_points] = winner
            allowed[n_points] = True
            n_points += 1
            for u2 in range(1, n_points):  # nearest the current value first
                v = u2
                while v > 0 and abs(points[v] - current) < abs(points[v - 1] - current):
                    points[v], points[v - 1] = points[v - 1], points[v]
                    allowed[v], allowed[v - 1] = allowed[v - 1], allowed[v]
                    v -= 1
            kept = 0
            for u2 in range(n_points):
                if u2 > 0 and points[u2] == points[u2 - 1]:
                    continue  # the same grid value from two thresholds
                if points[u2] == winner or allowed[u2]:
                    points[kept] = points[u2]
                    kept += 1
            custom[q, :] = 0.0
            index[q] = custom_index
            if kept > 1:
                for u2 in range(kept):
                    custom[q, 0] = points[u2]
                    partial[q, custom_index] = _fill(custom[q, :widths[q]], position, rest, multi_bits[q, custom_index],
                                                     node_start, node_bit, node_column, node_threshold,
                                                     node_default_left, node_missing, node_single, node_multi,
                                                     single_start, single_tree, pattern_start, pattern_value)
                    extra += 1
                    verdict = _grouped(index, constant, partial, multi_base, multi_bits, multi_tree,
                                       pattern_start, pattern_value, decision)
                    if verdict == _CLOSE:
                        verdict = _exact_verdict(index, own_row, positions, sizes, widths, offsets,
                                                 blocks, custom, pattern_start, pattern_value, node_start,
                                                 node_tree, node_bit, node_column, node_threshold,
                                                 node_default_left, node_missing, decision)
                    if verdict == _YES:
                        winner = points[u2]
                        break
            custom[q, 0] = winner
            partial[q, custom_index] = _fill(custom[q, :widths[q]], position, rest, multi_bits[q, custom_index],
                                             node_start, node_bit, node_column, node_threshold, node_default_left,
                                             node_missing, node_single, node_multi, single_start, single_tree,
                                             pattern_start, pattern_value)
            refined[s0 + q] = winner
        refine_scored[r] = extra


@numba.njit(cache=True)
def _cap(option_costs: FloatArray, base_cost: float, best_cost: float) -> int:
    """The dearest option whose total cost ``base_cost + option cost`` is still below ``best_cost`` (-1: none)."""
    k = option_costs.shape[0] - 1
    while k >= 0 and not base_cost + option_costs[k] < best_cost:
        k -= 1
    return int(k)


@numba.njit(cache=True)
def _smallest(q: int, upper: int, cap: int, index: IntArray, constant: float, partial: FloatArray,
              multi_base: npt.NDArray[np.int32], multi_bits: npt.NDArray[np.int32], multi_tree: IntArray,
              own_row: npt.NDArray[np.int32], positions: IntArray, sizes: IntArray, widths: IntArray,
              offsets: IntArray, blocks: FloatArray, custom: FloatArray, pattern_start: IntArray,
              pattern_value: FloatArray, node_start: IntArray, node_tree: IntArray, node_bit: npt.NDArray[np.int32],
              node_column: IntArray, node_threshold: FloatArray, node_default_left: npt.NDArray[np.bool_],
              node_missing: IntArray, decision: _Decision) -> tuple[int, int, int]:
    """The smallest option of slot q, up to ``cap``, that approves with the other slots as ``index`` has them.

    ``upper``: an option known to approve (``sizes[q]``: none known). The approved options of a slot are a
    suffix (monotone model): probe one step below the known (or capped) approving option, then bisect.
    Returns (that option or -1 if none up to ``cap`` approves, the smallest option now known to approve
    or ``sizes[q]``, candidates scored); slot q is left at its current value."""
    evaluated = 0
    if cap < 0:
        return -1, upper, 0
    if upper > cap:
        evaluated += 1
        index[q] = cap + 1
        verdict = _grouped(index, constant, partial, multi_base, multi_bits, multi_tree,
                           pattern_start, pattern_value, decision)
        if verdict == _CLOSE:
            verdict = _exact_verdict(index, own_row, positions, sizes, widths, offsets,
                                     blocks, custom, pattern_start, pattern_value, node_start,
                                     node_tree, node_bit, node_column, node_threshold,
                                     node_default_left, node_missing, decision)
        if verdict != _YES:
            index[q] = 0
            return -1, upper, evaluated
        hi = cap
    else:
        hi = upper
    lo = -1
    if hi > 0:
        evaluated += 1
        index[q] = hi
        verdict = _grouped(index, constant, partial, multi_base, multi_bits, multi_tree,
                           pattern_start, pattern_value, decision)
        if verdict == _CLOSE:
            verdict = _exact_verdict(index, own_row, positions, sizes, widths, offsets,
                                     blocks, custom, pattern_start, pattern_value, node_start,
                                     node_tree, node_bit, node_column, node_threshold,
                                     node_default_left, node_missing, decision)
        if verdict == _YES:
            hi -= 1
            while hi - lo > 1:
                mid = (lo + hi) // 2
                evaluated += 1
                index[q] = mid + 1
                verdict = _grouped(index, constant, partial, multi_base, multi_bits, multi_tree,
                                   pattern_start, pattern_value, decision)
                if verdict == _CLOSE:
                    verdict = _exact_verdict(index, own_row, positions, sizes, widths, offsets,
                                             blocks, custom, pattern_start, pattern_value, node_start,
                                             node_tree, node_bit, node_column, node_threshold,
                                             node_default_left, node_missing, decision)
                if verdict == _YES:
                    hi = mid
                else:
                    lo = mid
    index[q] = 0
    return hi, hi, evaluated


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


def _separable_monotone(dump: Mapping[str, Any], feature: int) -> int:
    """+1 or -1 if the model's output is monotone (non-decreasing or non-increasing) in ``feature`` with
    every other input held fixed, read off the trees; 0 if that is not established.

    Established only when every tree that splits on the feature splits on nothing else: the output is then
    F(x_f) + (the other trees), and F, the sum of those trees, is a step function of x_f that changes only
    at their thresholds, so its value at each threshold (``<=`` goes left) and just past the last one is
    all of it. The values are summed exactly (``math.fsum``); a constant F is no direction."""
    own: list[Mapping[str, Any]] = []
    for tree in dump.get("tree_info", ()):
        features = _split_features(tree["tree_structure"])
        if feature in features:
            if features != {feature}:
                return 0
            own.append(tree["tree_structure"])
    thresholds = sorted({t for tree in own for t in _tree_thresholds(tree)})
    if not thresholds:
        return 0
    points = [*thresholds, math.nextafter(thresholds[-1], math.inf)]
    values = [math.fsum(_leaf_value(tree, x) for tree in own) for x in points]
    steps = [b - a for a, b in itertools.pairwise(values)]
    if all(d >= 0 for d in steps) and any(d > 0 for d in steps):
        return 1
    if all(d <= 0 for d in steps) and any(d < 0 for d in steps):
        return -1
    return 0


def _split_features(node: Mapping[str, Any]) -> set[int]:
    found: set[int] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if "split_feature" in current:
            found.add(int(current["split_feature"]))
            stack.extend((current["left_child"], current["right_child"]))
    return found


def _tree_thresholds(node: Mapping[str, Any]) -> list[float]:
    """The numerical thresholds of a tree that splits on one feature (a categorical split: none, so the
    caller finds no direction unless other trees give one; such a field is never numeric here)."""
    out: list[float] = []
    stack = [node]
    while stack:
        current = stack.pop()
        if "split_feature" in current:
            if current.get("decision_type") == "<=":
                out.append(float(current["threshold"]))
            stack.extend((current["left_child"], current["right_child"]))
    return out


def _leaf_value(node: Mapping[str, Any], x: float) -> float:
    """The leaf a finite value ``x`` reaches in a tree of ``<=`` splits on one feature."""
    while "split_feature" in node:
        node = node["left_child"] if x <= float(node["threshold"]) else node["right_child"]
    return float(node["leaf_value"])


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
