"""Monotone additive boosting: fit stumps freely, then project each field's shape onto a monotone one.

Why: LightGBM enforces ``monotone_constraints`` tree by tree. With correlated inputs, early trees give the
strongest single field (the bureau score) the credit for what its correlates cause; a later tree that
would take some of that credit back has to slope the other way, which the constraint forbids, so the
over-credit is never undone and the explanations blame the wrong field. On the demo product, whose true
causes are known, that constraint alone moved the top stated reason away from the true dominant cause for
about a fifth of denials (scripts/check_demo_reasons.py: stumps with per-tree constraints 0.69, free
stumps 0.89 on 100,000 rows).

How: a booster made only of stumps (depth-1 trees) is additive, ``f(x) = c + sum_j g_j(x_j)``, and each
``g_j`` is a step function over the split thresholds used on feature ``j``. For every feature with a
monotone direction, ``g_j`` is replaced by its weighted isotonic regression (pool adjacent violators,
weights = training rows in each step), which is the closest monotone step function in least squares,
and written back into the same trees' leaf values. Nothing else changes: same trees, same thresholds,
so exact TreeSHAP, scoring and recourse read the model as before, and the result is monotone by
construction for the whole model, not just per tree.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import lightgbm as lgb
import numba
import numpy as np
import numpy.typing as npt
from scipy.special import expit
from sklearn.isotonic import IsotonicRegression

FloatArray = npt.NDArray[np.float64]

# The smallest weight an empty step gets, so that the projection still defines its value.
_EMPTY_STEP_WEIGHT = 1e-9


@dataclass(frozen=True)
class _Stump:
    tree: int
    feature: int
    threshold: float
    left: float
    right: float


def _stumps(booster: lgb.Booster) -> tuple[list[_Stump], list[int]]:
    """The model's stumps, and the indices of its one-leaf (constant) trees. Refuses anything deeper."""
    stumps: list[_Stump] = []
    constants: list[int] = []
    for index, tree in enumerate(booster.dump_model()["tree_info"]):
        root = tree["tree_structure"]
        if "leaf_value" in root:
            constants.append(index)
            continue
        left, right = root["left_child"], root["right_child"]
        if "leaf_value" not in left or "leaf_value" not in right:
            raise ValueError(f"tree {index} is deeper than a stump: monotone projection needs max_depth = 1")
        if root["decision_type"] != "<=":
            raise ValueError(f"tree {index} splits on a category: monotone projection needs numeric splits")
        stumps.append(_Stump(index, int(root["split_feature"]), float(root["threshold"]),
                             float(left["leaf_value"]), float(right["leaf_value"])))
    return stumps, constants


def shape_function(stumps: list[_Stump]) -> tuple[FloatArray, FloatArray]:
    """One feature's step function: the sorted unique thresholds and its value on each of the
    ``len(thresholds) + 1`` intervals (``x <= t_1``, ``t_1 < x <= t_2``, ..., ``x > t_K``)."""
    thresholds = np.unique([s.threshold for s in stumps])
    values = np.full(len(thresholds) + 1, sum(s.left for s in stumps))
    for s in stumps:
        # Past its threshold a stump gives its right value instead of its left one.
        k = int(np.searchsorted(thresholds, s.threshold))
        values[k + 1:] += s.right - s.left
    return thresholds, values


def _projected_leaves(stumps: list[_Stump], column: FloatArray, direction: int) -> dict[int, tuple[float, ...]]:
    """New (left, right) leaf values for every stump of one feature, making its shape monotone."""
    thresholds, values = shape_function(stumps)
    steps = np.searchsorted(thresholds, column, side="left")  # x <= t_k lands in step k
    return _step_leaves(stumps, thresholds, _monotone(values, steps, direction))


def _step_leaves(stumps: list[_Stump], thresholds: FloatArray, target: FloatArray) -> dict[int, tuple[float, ...]]:
    """Leaf values for one feature's stumps that make its shape the step function ``target`` (one value per
    step over ``thresholds``): the first stump at each threshold carries the jump there, the others carry
    nothing, and the first stump at the lowest threshold also carries the value of the lowest step."""
    leaves: dict[int, tuple[float, ...]] = {s.tree: (0.0, 0.0) for s in stumps}
    first_at: dict[float, int] = {}
    for s in sorted(stumps, key=lambda s: s.tree):
        first_at.setdefault(s.threshold, s.tree)
    for k, threshold in enumerate(thresholds):
        leaves[first_at[float(threshold)]] = (0.0, float(target[k + 1] - target[k]))
    base_tree = first_at[float(thresholds[0])]
    left, right = leaves[base_tree]
    leaves[base_tree] = (left + float(target[0]), right + float(target[0]))
    return leaves


def _rewrite_leaf_values(model: str, leaves: dict[int, tuple[float, ...]]) -> str:
    blocks = re.split(r"(?m)^(?=Tree=\d+$)", model)
    out: list[str] = []
    for block in blocks:
        found = re.match(r"Tree=(\d+)\n", block)
        if found is None or int(found.group(1)) not in leaves:
            out.append(block)
            continue
        values = " ".join(repr(v) for v in leaves[int(found.group(1))])
        block, count = re.subn(r"(?m)^leaf_value=.*$", f"leaf_value={values}", block)
        if count != 1:
            raise ValueError(f"tree {found.group(1)}: expected one leaf_value line")
        out.append(block)
    # The header's byte sizes of the trees no longer hold; without them LightGBM parses tree by tree.
    return re.sub(r"(?m)^tree_sizes=.*\n", "", "".join(out))


def project_monotone(booster: lgb.Booster, x_train: FloatArray, directions: list[int]) -> lgb.Booster:
    """The booster with each monotone feature's shape replaced by its isotonic projection.

    ``directions[j]`` is +1 (output must not fall as feature ``j`` grows), -1 (must not rise) or 0 (free).
    ``x_train`` are the rows the booster was fitted on (the projection's weights). Features with a
    direction must have no missing values there: a missing value takes a default branch, not a step."""
    stumps, _ = _stumps(booster)
    by_feature: dict[int, list[_Stump]] = defaultdict(list)
    for s in stumps:
        by_feature[s.feature].append(s)
    leaves: dict[int, tuple[float, ...]] = {}
    for feature, direction in enumerate(directions):
        if direction == 0 or feature not in by_feature:
            continue
        column = np.asarray(x_train[:, feature], dtype=np.float64)
        if np.isnan(column).any():
            raise ValueError(f"feature {feature} has missing values: monotone projection needs complete columns")
        leaves.update(_projected_leaves(by_feature[feature], column, direction))
    return lgb.Booster(model_str=_rewrite_leaf_values(booster.model_to_string(), leaves))


def monotone_violations(booster: lgb.Booster, directions: list[int]) -> dict[int, float]:
    """For each feature with a direction, the largest step against it in the model's shape (0 if none)."""
    stumps, _ = _stumps(booster)
    out: dict[int, float] = {}
    for feature, direction in enumerate(directions):
        own = [s for s in stumps if s.feature == feature]
        if direction == 0 or not own:
            continue
        _, values = shape_function(own)
        steps = np.diff(values) * direction
        out[feature] = float(max(0.0, -steps.min())) if len(steps) else 0.0
    return out



# --- penalized joint refit ---------------------------------------------------------------------------
#
# Boosting decides WHERE each field's shape may step (the thresholds its stumps split at) and gives a
# first, noisy estimate of the step heights: each stump's height is fitted greedily, once, to what the
# earlier trees left, so with correlated inputs the field picked first keeps credit for what its
# correlates cause, and the steps are as noisy as the few rows near each threshold. ``refit_additive``
# keeps the thresholds and fits ALL step heights jointly, as a penalized logistic regression (a P-spline
# style GAM over the boosted steps): the binary log-loss of the whole additive model plus, per feature, a
# weighted penalty on the change of slope between adjacent steps (in the feature's standardised units),
# the weights estimated from the data (``_penalized_fit``); each monotone feature's fitted shape is then
# projected as in ``project_monotone``. The result is written into the same trees, so everything that
# reads the booster is unchanged.

# Per-feature smoothing weights (on the mean log-loss): where the estimate starts, its bounds, and how many
# Fellner-Schall updates it may take.
_START_SMOOTHING = 1e-3
_MIN_SMOOTHING, _MAX_SMOOTHING = 1e-7, 1e6
# A feature with at most this many steps is not smoothed (see _curvature).
FREE_STEPS = 16
_SMOOTHING_ITERATIONS = 40
_REFIT_RIDGE = 1e-7  # keeps every step defined where the data say nothing about it
_NEWTON_ITERATIONS = 50


@dataclass(frozen=True)
class _FeatureSteps:
    feature: int
    thresholds: FloatArray
    direction: int
    steps: npt.NDArray[np.intp]  # per row: which step (0..K) the row's value falls in
    curvature: FloatArray  # (K-1, K+1) second-difference operator on step values, standardised x units


def _curvature(column: FloatArray, thresholds: FloatArray, steps: npt.NDArray[np.intp]) -> FloatArray:
    """Second differences of a step function's values per unit of (standardised) x: row k is the change
    of slope between steps k, k+1 and k+2, each step placed at the mean of its rows' values."""
    scale = float(np.std(column)) or 1.0
    count = len(thresholds) + 1
    if count <= FREE_STEPS:
        # A field of a few values (terms, counts of delinquencies) has many rows at each: its steps are
        # estimated well enough unsmoothed, and smoothing would flatten a real bend (ln(1 + d) at d = 1).
        return np.zeros((0, count))
    sums = np.bincount(steps, weights=column, minlength=count)
    counts = np.bincount(steps, minlength=count).astype(np.float64)
    edges = np.concatenate([[thresholds[0] - 1.0], thresholds, [thresholds[-1] + 1.0]])
    fallback = (edges[:-1] + edges[1:]) / 2.0  # an empty step sits midway between its thresholds
    centres = np.where(counts > 0, sums / np.maximum(counts, 1.0), fallback) / scale
    centres = np.maximum.accumulate(centres + np.arange(count) * 1e-9)
    if count < 3:
        return np.zeros((0, count))
    operator = np.zeros((count - 2, count))
    for k in range(count - 2):
        left = 1.0 / max(centres[k + 1] - centres[k], 1e-6)
        right = 1.0 / max(centres[k + 2] - centres[k + 1], 1e-6)
        operator[k, k], operator[k, k + 1], operator[k, k + 2] = left, -left - right, right
    return operator


def _feature_steps(by_feature: dict[int, list[_Stump]], x: FloatArray, directions: list[int]) -> list[_FeatureSteps]:
    out: list[_FeatureSteps] = []
    for feature in sorted(by_feature):
        column = np.asarray(x[:, feature], dtype=np.float64)
        if np.isnan(column).any():
            raise ValueError(f"feature {feature} has missing values: the additive refit needs complete columns")
        thresholds = np.unique([s.threshold for s in by_feature[feature]])
        steps = np.searchsorted(thresholds, column, side="left")
        direction = directions[feature] if feature < len(directions) else 0
        out.append(_FeatureSteps(feature, thresholds, direction, steps, _curvature(column, thresholds, steps)))
    return out


@dataclass(frozen=True)
class _StepDesign:
    """The design of the step model without a matrix: per row and slot, the design column its step
    indicator sets (-1 where the row is on the lowest step, which is 0), beside an intercept column 0.

    Each row sets at most one column per slot, so the weighted Gram matrix X'WX is a sum over rows of
    (slots + 1)^2 / 2 products, done in one pass (``_weighted_gram``). scipy's sparse product did the same
    sums several times slower and was most of the training time; this lets the demo model be fitted on
    more rows."""

    columns: npt.NDArray[np.int64]  # (rows, slots): see _design
    size: int  # design columns, the intercept included

    def margin(self, beta: FloatArray) -> FloatArray:
        with _threads_for(self.columns.shape[0]):
            result: FloatArray = _margin(self.columns, beta)
        return result

    def transposed_times(self, values: FloatArray) -> FloatArray:
        """X' values."""
        with _threads_for(self.columns.shape[0]):
            result: FloatArray = _transposed_times(self.columns, values, self.size)
        return result

    def gram(self, weights: FloatArray) -> FloatArray:
        """X' diag(weights) X, dense."""
        with _threads_for(self.columns.shape[0]):
            result: FloatArray = _weighted_gram(self.columns, weights, self.size)
        return result


# Below this many rows the fit's loops run on the calling thread only. Each Newton step alternates these
# loops with LAPACK on the dense 710 x 710 system; on small data the loops take milliseconds, and waking
# numba's OpenMP threads between BLAS calls only adds contention (the test suite runs two processes on two
# cores).
_PARALLEL_ROWS = 200_000


@contextmanager
def _threads_for(rows: int) -> Iterator[None]:
    before = numba.get_num_threads()
    numba.set_num_threads(before if rows >= _PARALLEL_ROWS else 1)
    try:
        yield
    finally:
        numba.set_num_threads(before)


# The Gram matrix and X' v are summed in this many fixed slices of the rows, in parallel, then added in
# slice order: the same sums in the same order whatever the number of threads, so training stays
# deterministic across machines.
_ROW_SLICES = 4


@numba.njit(parallel=True, cache=True)
def _margin(columns: npt.NDArray[np.int64], beta: FloatArray) -> FloatArray:
    out = np.full(columns.shape[0], beta[0])
    for i in numba.prange(columns.shape[0]):
        for f in range(columns.shape[1]):
            c = columns[i, f]
            if c >= 0:
                out[i] += beta[c]
    return out


@numba.njit(parallel=True, cache=True)
def _transposed_times(columns: npt.NDArray[np.int64], values: FloatArray, size: int) -> FloatArray:
    rows = columns.shape[0]
    partial = np.zeros((_ROW_SLICES, size))
    for s in numba.prange(_ROW_SLICES):
        for i in range(s * rows // _ROW_SLICES, (s + 1) * rows // _ROW_SLICES):
            partial[s, 0] += values[i]
            for f in range(columns.shape[1]):
                c = columns[i, f]
                if c >= 0:
                    partial[s, c] += values[i]
    out = np.zeros(size)
    for s in range(_ROW_SLICES):
        out += partial[s]
    return out


@numba.njit(parallel=True, cache=True)
def _weighted_gram(columns: npt.NDArray[np.int64], weights: FloatArray, size: int) -> FloatArray:
    rows, features = columns.shape
    partial = np.zeros((_ROW_SLICES, size, size))
    for s in numba.prange(_ROW_SLICES):
        own = partial[s]
        for i in range(s * rows // _ROW_SLICES, (s + 1) * rows // _ROW_SLICES):
            w = weights[i]
            own[0, 0] += w
            for a in range(features):
                ca = columns[i, a]
                if ca < 0:
                    continue
                own[0, ca] += w
                own[ca, ca] += w
                for b in range(a + 1, features):
                    cb = columns[i, b]
                    if cb >= 0:  # the upper triangle only; mirrored below
                        own[min(ca, cb), max(ca, cb)] += w
    out = np.zeros((size, size))
    for s in range(_ROW_SLICES):
        out += partial[s]
    for a in range(size):
        for b in range(a + 1, size):
            out[b, a] = out[a, b]
    return out


def _design(features: list[_FeatureSteps], rows: npt.NDArray[np.intp]) -> _StepDesign:
    """The design: an intercept column, then one indicator column per step of each feature but its
    lowest (that step is 0; the intercept carries it), so that no column is a sum of others.

    Features that are never off their lowest step in the same row (the one-hot columns of one category)
    share a slot of ``columns``: 14 slots instead of 33 on the demo, and the loops run over slots."""
    slots: list[npt.NDArray[np.int64]] = []
    at = 1
    for f in features:
        steps = f.steps[rows]
        own = steps > 0
        slot = next((column for column in slots if (column[own] < 0).all()), None)
        if slot is None:
            slot = np.full(len(rows), -1, dtype=np.int64)
            slots.append(slot)
        slot[own] = at + steps[own] - 1
        at += len(f.thresholds)
    columns = np.ascontiguousarray(np.stack(slots, axis=1)) if slots else np.zeros((len(rows), 0), dtype=np.int64)
    return _StepDesign(columns=columns, size=at)


def _newton_fit(design: _StepDesign, y: FloatArray, penalty: FloatArray, start: FloatArray) -> FloatArray:
    """Penalized logistic regression by Newton's method (IRLS) with step halving; the loss is convex."""
    beta = start.copy()

    def objective(b: FloatArray) -> float:
        margin = design.margin(b)
        return float(np.mean(np.logaddexp(0.0, margin) - y * margin) + 0.5 * b @ penalty @ b)

    current = objective(beta)
    for _ in range(_NEWTON_ITERATIONS):
        p = expit(design.margin(beta))
        gradient = design.transposed_times(p - y) / len(y) + penalty @ beta
        hessian = design.gram(p * (1.0 - p) / len(y)) + penalty
        step = np.linalg.solve(hessian, gradient)
        if float(gradient @ step) < 2e-12:
            # The full step would lower the loss by less than 1e-12 (the Newton decrement): at the optimum.
            # Trying it anyway cost some twenty step halvings lost in rounding at the end of every fit.
            break
        scale, accepted = 1.0, False
        while scale >= 1e-6:
            candidate = beta - scale * step
            value = objective(candidate)
            if np.isfinite(value) and value <= current:
                accepted = True
                break
            scale /= 2.0
        if not accepted:
            break  # no step lowers the loss: at the optimum to float precision
        beta, improvement, current = candidate, current - value, value
        if improvement < 1e-12:
            break
    return beta


def _step_values(beta: FloatArray, features: list[_FeatureSteps]) -> tuple[float, list[FloatArray]]:
    """The intercept and each feature's step values (0 on its lowest step)."""
    values: list[FloatArray] = []
    at = 1
    for f in features:
        count = len(f.thresholds)
        values.append(np.concatenate([[0.0], beta[at:at + count]]))
        at += count
    return float(beta[0]), values


def _monotone(values: FloatArray, steps: npt.NDArray[np.intp], direction: int) -> FloatArray:
    """The weighted isotonic regression of a step function (weights: rows per step), as ``project_monotone``."""
    if direction == 0:
        return values
    weights = np.bincount(steps, minlength=len(values)).astype(np.float64)
    weights[weights == 0] = _EMPTY_STEP_WEIGHT
    fitted: FloatArray = IsotonicRegression(increasing=direction > 0).fit_transform(
        np.arange(len(values), dtype=np.float64), values, sample_weight=weights)
    return fitted


def _penalty_blocks(features: list[_FeatureSteps]) -> list[tuple[int, int, FloatArray, int]]:
    """Per feature: its columns in the design (start, stop), its penalty matrix D'D and that matrix's rank."""
    blocks: list[tuple[int, int, FloatArray, int]] = []
    at = 1
    for f in features:
        count = len(f.thresholds)
        operator = f.curvature[:, 1:]  # the lowest step is fixed at 0
        blocks.append((at, at + count, operator.T @ operator, int(operator.shape[0])))
        at += count
    return blocks


def _assemble(blocks: list[tuple[int, int, FloatArray, int]], weights: FloatArray, size: int) -> FloatArray:
    """The whole penalty matrix for per-feature weights, plus the small ridge (not on the intercept)."""
    out = np.eye(size) * _REFIT_RIDGE
    out[0, 0] = 0.0
    for (start, stop, matrix, _), weight in zip(blocks, weights, strict=True):
        out[start:stop, start:stop] += weight * matrix
    return out


def _penalized_fit(features: list[_FeatureSteps], y: FloatArray) -> tuple[float, list[FloatArray], FloatArray]:
    """The intercept, each feature's monotone step values (0 on its lowest step) and the smoothing weight
    chosen for each feature.

    Each feature gets its own smoothing weight, estimated from the data by the generalized Fellner-Schall
    update (Wood and Fasiolo 2017, Biometrics 73: a REML-type fixed point for the weights of a penalized
    GLM): a field whose true shape is a straight line (the bureau score on the demo) is smoothed all the
    way to one, a curved one keeps its curvature. The fit is on the mean log-loss; the update works on the
    summed one, hence the factor ``n``."""
    n = len(y)
    blocks = _penalty_blocks(features)
    size = 1 + sum(len(f.thresholds) for f in features)
    design = _design(features, np.arange(n))
    weights = np.full(len(blocks), _START_SMOOTHING)
    rate = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
    beta = np.zeros(size)
    beta[0] = np.log(rate / (1.0 - rate))
    for _ in range(_SMOOTHING_ITERATIONS):
        beta = _newton_fit(design, y, _assemble(blocks, weights, size), beta)
        p = expit(design.margin(beta))
        hessian = design.gram(p * (1.0 - p)) + n * _assemble(blocks, weights, size)
        inverse = np.linalg.inv(hessian)
        updated = weights.copy()
        for k, (start, stop, matrix, rank) in enumerate(blocks):
            if rank == 0:
                continue
            own = beta[start:stop]
            roughness = float(own @ matrix @ own)
            trace = float(np.sum(inverse[start:stop, start:stop] * matrix))
            # Summed-loss weight: (rank - weight * tr(H^-1 S)) / (b' S b); back to the mean-loss scale.
            numerator = max(rank - n * weights[k] * trace, 1e-3)
            updated[k] = np.clip(numerator / max(roughness, 1e-300) / n, _MIN_SMOOTHING, _MAX_SMOOTHING)
        change = np.max(np.abs(np.log(updated) - np.log(weights)))
        weights = updated
        if change < 0.01:
            break
    beta = _newton_fit(design, y, _assemble(blocks, weights, size), beta)
    intercept, raw_values = _step_values(beta, features)
    values: list[FloatArray] = []
    for f, v in zip(features, raw_values, strict=True):
        shaped = _monotone(v, f.steps, f.direction)
        intercept += float(shaped[0])
        values.append(shaped - shaped[0])
    return intercept, values, weights


def refit_additive(booster: lgb.Booster, x_train: FloatArray, y_train: npt.ArrayLike, directions: list[int],
                   ) -> tuple[lgb.Booster, FloatArray]:
    """The booster with every step height refitted jointly (see the comment above), and the smoothing weights.

    ``directions[j]`` is +1, -1 or 0 per encoded feature, as for ``project_monotone``. The booster must be
    made of stumps on numeric splits, and the features it splits on must have no missing values."""
    stumps, constants = _stumps(booster)
    if not stumps:
        raise ValueError("the booster has no stumps to refit")
    by_feature: dict[int, list[_Stump]] = defaultdict(list)
    for s in stumps:
        by_feature[s.feature].append(s)
    features = _feature_steps(by_feature, x_train, directions)
    intercept, values, smoothing = _penalized_fit(features, np.asarray(y_train, dtype=np.float64))
    leaves: dict[int, tuple[float, ...]] = dict.fromkeys(constants, (0.0,))
    for f, v in zip(features, values, strict=True):
        leaves.update(_step_leaves(by_feature[f.feature], f.thresholds, v))
    # The intercept rides on the first stump of all, on both sides.
    first = min(s.tree for s in stumps)
    left, right = leaves[first]
    leaves[first] = (left + intercept, right + intercept)
    return lgb.Booster(model_str=_rewrite_leaf_values(booster.model_to_string(), leaves)), smoothing


# --- a penalized additive model on a fixed grid of steps ----------------------------------------------
#
# ``refit_additive`` can only place steps where boosting happened to split, so a field's shape is as fine
# as the boosting run was long (on the demo, 600 rounds: top stated reason = true cause 0.90; 3,000
# rounds: 0.92). ``fit_additive`` instead gives every feature a step at each of up to ``max_steps``
# quantile cut points of its training values (every distinct value when there are fewer) and fits the
# same penalized, monotone logistic model on that grid. The result is still a LightGBM booster of stumps,
# one per step, with real leaf counts as covers, so exact TreeSHAP, scoring and recourse read it as any
# other booster.

MAX_STEPS = 128


def step_grid(column: FloatArray, max_steps: int = MAX_STEPS) -> FloatArray:
    """Cut points for one feature: midpoints between adjacent distinct values, thinned to at most
    ``max_steps`` by taking those nearest the column's quantiles."""
    distinct = np.unique(column)
    if len(distinct) < 2:
        return np.zeros(0)
    midpoints = (distinct[:-1] + distinct[1:]) / 2.0
    if len(midpoints) <= max_steps:
        return midpoints
    quantiles = np.quantile(column, np.linspace(0.0, 1.0, max_steps + 2)[1:-1])
    chosen = np.unique(np.clip(np.searchsorted(midpoints, quantiles), 0, len(midpoints) - 1))
    result: FloatArray = midpoints[chosen]
    return result


def _tree_block(index: int, feature: int, threshold: float, left: float, right: float,
                counts: tuple[int, int]) -> str:
    total = counts[0] + counts[1]
    return (f"Tree={index}\nnum_leaves=2\nnum_cat=0\nsplit_feature={feature}\nsplit_gain=0\n"
            f"threshold={threshold!r}\ndecision_type=2\nleft_child=-1\nright_child=-2\n"
            f"leaf_value={left!r} {right!r}\nleaf_weight={counts[0]} {counts[1]}\n"
            f"leaf_count={counts[0]} {counts[1]}\ninternal_value=0\ninternal_weight={total}\n"
            f"internal_count={total}\nis_linear=0\nshrinkage=1\n\n\n")


def _with_trees(template: str, blocks: list[str], importances: dict[str, int]) -> str:
    """``template``'s header and parameters around new trees (and their feature importances)."""
    head, rest = template.split("\nTree=", 1)
    _, tail = rest.split("end of trees", 1)
    _, parameters = tail.split("\nparameters:", 1)
    head = re.sub(r"(?m)^tree_sizes=.*\n", "", head)
    ranked = sorted(importances.items(), key=lambda item: (-item[1], item[0]))
    importance_lines = "".join(f"{name}={count}\n" for name, count in ranked)
    return (head + "\n" + "".join(blocks) + "end of trees\n\nfeature_importances:\n" + importance_lines
            + "\nparameters:" + parameters)


def fit_additive(template: lgb.Booster, x_train: FloatArray, y_train: npt.ArrayLike, directions: list[int], *,
                 max_steps: int = MAX_STEPS) -> tuple[lgb.Booster, FloatArray]:
    """A booster of stumps, one per grid step of every feature (``step_grid``), whose heights are the
    penalized monotone logistic fit described above; ``template`` (any booster trained on the same
    features, e.g. one round) lends its header. Returns the booster and each feature's smoothing weight."""
    x = np.asarray(x_train, dtype=np.float64)
    if np.isnan(x).any():
        bad = sorted({int(j) for j in np.flatnonzero(np.isnan(x).any(axis=0))})
        raise ValueError(f"features {bad} have missing values: the additive fit needs complete columns")
    features: list[_FeatureSteps] = []
    for feature in range(x.shape[1]):
        thresholds = step_grid(x[:, feature], max_steps)
        if len(thresholds) == 0:
            continue
        steps = np.searchsorted(thresholds, x[:, feature], side="left")
        direction = directions[feature] if feature < len(directions) else 0
        features.append(_FeatureSteps(feature, thresholds, direction, steps,
                                      _curvature(x[:, feature], thresholds, steps)))
    if not features:
        raise ValueError("no feature varies: nothing to fit")
    y = np.asarray(y_train, dtype=np.float64)
    intercept, values, smoothing = _penalized_fit(features, y)
    names = template.feature_name()
    blocks: list[str] = []
    importances: dict[str, int] = defaultdict(int)
    for f, v in zip(features, values, strict=True):
        counts = np.bincount(f.steps, minlength=len(v))
        below = np.cumsum(counts)
        for k, threshold in enumerate(f.thresholds):
            # The intercept rides on the very first stump, on both sides.
            shift = intercept if not blocks else 0.0
            blocks.append(_tree_block(len(blocks), f.feature, float(threshold), shift,
                                      float(v[k + 1] - v[k]) + shift, (int(below[k]), int(len(y) - below[k]))))
            importances[names[f.feature]] += 1
    model = _with_trees(template.model_to_string(), blocks, importances)
    return lgb.Booster(model_str=model), smoothing
