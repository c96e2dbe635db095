"""Exact path-dependent TreeSHAP and exact margins for LightGBM boosters, precomputed per tree, in numba.

The value it computes is the same as LightGBM's ``booster.predict(X, pred_contrib=True)`` (and therefore
``shap.TreeExplainer(booster).shap_values``, which calls it) to float rounding: per feature the
path-dependent TreeSHAP value of the raw margin, plus the expected value as the last column. The raw
margin it computes is LightGBM's ``booster.predict(X, raw_score=True)`` *bit for bit*: the same leaf
values added in the same (tree) order, starting from 0.0, exactly as LightGBM's ``GBDT::PredictRaw`` does.

Why it can be precomputed
-------------------------
For one leaf l with value v, let F be the distinct features split on along its root-to-leaf path
(d = |F|). For a feature k in F, z_k is the product of the cover ratios (child count / parent count) of
the path's splits on k, and o_k(x) is 1 when x satisfies every one of those splits, else 0. The
path-dependent TreeSHAP contribution of leaf l to feature f in F is

    v * (o_f - z_f) * sum over S subset of F \\ {f} of  w(|S|) * prod_{k in S} o_k * prod_{k in F \\ {f} \\ S} z_k,
    w(s) = s! (d - s - 1)! / d!

(features off the path get nothing from this leaf). Everything except the d bits o(x) is fixed by the
model, so each leaf gets a table of 2^d rows (one per bit pattern) by d contributions (the sum uses
elementary symmetric polynomials of the z's, O(d^2) per entry).

Per tree, not per leaf. Every o_k of every leaf of a tree is a function of the tree's m node decisions
(x goes left or right at each internal node), so the whole tree's contribution is a function of an
m-bit pattern: the tree gets one table of 2^m rows by (distinct features of the tree) columns, the sum of
its leaves' table rows, built once per model with numpy. Explaining a row is then, per tree: evaluate
its m splits (a bit pattern), add one table row into the output and the one leaf value the pattern
selects into the margin. The production models are depth 3 (m <= 7, 128 rows a tree); a tree with more
than ``MAX_TREE_NODES`` internal nodes makes the whole model use per-leaf tables instead (the same
formula, O(leaves * depth) a row).

Split semantics follow LightGBM exactly (``Tree::NumericalDecision`` and its dense row reader): a value
with |x| <= 1e-35 is read as 0.0; with missing type ``NaN`` a NaN goes the default way; with ``Zero`` a
NaN or a zero goes the default way; with ``None`` a NaN is treated as 0.0; otherwise x <= threshold goes
left. Categorical splits (native categories), linear trees, multi-class and averaged (random forest)
models are not supported: ``TreeShap`` raises ``ValueError`` and callers fall back to LightGBM.

Kernels (all deterministic: each row's arithmetic is the same whatever the batch and the thread count)
------------------------------------------------------------------------------------------------------
* :meth:`TreeShap.explain` -- contributions and raw margins in one pass;
* :meth:`TreeShap.margins` -- raw margins only (a root-to-leaf walk per tree);
* :meth:`TreeShap.moved_margins` -- per row and per column range, the raw margin with that range of the
  row replaced by a reference row (the faithfulness check), re-walking only the trees that split on the
  range and re-using the row's own leaf value elsewhere: the same leaves, the same order, so the same
  float LightGBM gives for the moved row.
* ``walk_margin`` / ``leaf_values`` -- the per-row building blocks, used by ``scoring.counterfactual``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

MAX_PATH_FEATURES = 12
MAX_TREE_NODES = 10  # 2^10 patterns a tree at most for per-tree tables
MISSING_NONE, MISSING_ZERO, MISSING_NAN = 0, 1, 2
_MISSING_TYPES = {"None": MISSING_NONE, "Zero": MISSING_ZERO, "NaN": MISSING_NAN}
ZERO_THRESHOLD = 1e-35


@dataclass(frozen=True)
class _Leaf:
    value: float
    count: float
    path: list[tuple[int, float, bool, bool, int, float, int]]  # feature, threshold, default_left,
    #                               went_left, missing type, cover ratio of the child taken, node number


@dataclass
class _Tree:
    nodes: list[tuple[int, float, bool, int]]  # feature, threshold, default_left, missing type (preorder)
    left: list[int]  # child of each node: >= 0 an internal node, < 0 a leaf (-1 - leaf number)
    right: list[int]
    leaves: list[_Leaf]  # in the order their numbers say


def _parse(structure: Mapping[str, Any]) -> _Tree:
    tree = _Tree([], [], [], [])

    def visit(node: Mapping[str, Any], path: list[tuple[int, float, bool, bool, int, float, int]]) -> int:
        if "split_feature" not in node:
            if "leaf_coeff" in node or "leaf_const" in node:
                raise ValueError("treeshap does not support linear trees")
            tree.leaves.append(_Leaf(float(node["leaf_value"]), float(node.get("leaf_count", 0.0)), list(path)))
            return -len(tree.leaves)  # -1 - (leaf number)
        if node.get("decision_type") != "<=":
            raise ValueError("treeshap supports numerical splits only (the model has a categorical split)")
        number = len(tree.nodes)
        feature, threshold = int(node["split_feature"]), float(node["threshold"])
        default_left, missing = bool(node["default_left"]), _MISSING_TYPES[str(node["missing_type"])]
        tree.nodes.append((feature, threshold, default_left, missing))
        tree.left.append(0)
        tree.right.append(0)
        parent = float(node["internal_count"])
        for side, went_left in (("left_child", True), ("right_child", False)):
            child = node[side]
            count = float(child["internal_count"] if "split_feature" in child else child.get("leaf_count", 0.0))
            step = (feature, threshold, default_left, went_left, missing, count / parent if parent > 0 else 0.0,
                    number)
            target = visit(child, [*path, step])
            (tree.left if went_left else tree.right)[number] = target
        return number

    visit(structure, [])
    return tree


def _walk(node: Mapping[str, Any], path: list[tuple[int, float, bool, bool, int, float]],
          leaves: list[_Leaf]) -> None:
    """Kept for callers of the per-leaf form: every leaf with its path (node numbers left out)."""
    for leaf in _parse(node).leaves:
        leaves.append(leaf)


def _leaf_table(leaf: _Leaf) -> tuple[list[int], FloatArray]:
    """The distinct path features of a leaf and its (2^d, d) contribution table (bit k of a row's index:
    the row satisfies every split of the path on the k-th distinct feature)."""
    features: list[int] = []
    zero: list[float] = []
    for step in leaf.path:
        feature, ratio = step[0], step[5]
        if feature in features:
            zero[features.index(feature)] *= ratio
        else:
            features.append(feature)
            zero.append(ratio)
    d = len(features)
    if d > MAX_PATH_FEATURES:
        raise ValueError(f"a leaf path splits on {d} distinct features; at most {MAX_PATH_FEATURES} are supported")
    weights = [math.factorial(s) * math.factorial(d - s - 1) / math.factorial(d) for s in range(d)]
    table = np.zeros((1 << d, d), dtype=np.float64)
    for pattern in range(1 << d):
        ones = [(pattern >> k) & 1 for k in range(d)]
        for f in range(d):
            others = [k for k in range(d) if k != f]
            free = [zero[k] for k in others if ones[k]]  # o_k = 1: in S (factor 1) or not (factor z_k)
            fixed = math.prod(zero[k] for k in others if not ones[k])  # o_k = 0: never in S, factor z_k
            # elementary symmetric polynomials e_m of the free z's
            elementary = [1.0] + [0.0] * len(free)
            for z in free:
                for m in range(len(free), 0, -1):
                    elementary[m] += elementary[m - 1] * z
            a = len(free)
            total = sum(weights[j] * elementary[a - j] for j in range(a + 1))
            table[pattern, f] = leaf.value * (ones[f] - zero[f]) * fixed * total
    return features, table


def _tree_table(tree: _Tree) -> tuple[list[int], FloatArray, FloatArray]:
    """Per-tree tables: the tree's distinct features, its (2^m, features) contribution table and the
    leaf value each m-bit node pattern selects (bit j set: the row goes left at node j)."""
    m = len(tree.nodes)
    patterns = np.arange(1 << m, dtype=np.int64)
    bits = [(patterns >> j) & 1 for j in range(m)]  # 1: goes left at node j
    features = sorted({feature for feature, _, _, _ in tree.nodes})
    column = {f: k for k, f in enumerate(features)}
    table = np.zeros((1 << m, len(features)), dtype=np.float64)
    value = np.zeros(1 << m, dtype=np.float64)
    for leaf in tree.leaves:
        distinct, leaf_table = _leaf_table(leaf)
        slot = {f: k for k, f in enumerate(distinct)}
        satisfied = [np.ones(1 << m, dtype=np.int64) for _ in distinct]
        reached = np.ones(1 << m, dtype=np.int64)
        for feature, _, _, went_left, _, _, node in leaf.path:
            taken = bits[node] if went_left else 1 - bits[node]
            satisfied[slot[feature]] &= taken
            reached &= taken
        index = np.zeros(1 << m, dtype=np.int64)
        for k in range(len(distinct)):
            index |= satisfied[k] << k
        for k, feature in enumerate(distinct):
            table[:, column[feature]] += leaf_table[index, k]
        value[reached == 1] = leaf.value
    return features, table, value


# --- kernels -----------------------------------------------------------------------------------------

@numba.njit(inline="always", cache=True)
def _goes_left(value: float, threshold: float, default_left: bool, missing: int) -> bool:
    if math.isnan(value):
        if missing == MISSING_NAN:
            return default_left
        value = 0.0
    elif -ZERO_THRESHOLD <= value <= ZERO_THRESHOLD:
        value = 0.0  # LightGBM's dense row reader drops |x| <= kZeroThreshold: it reads 0.0
    if missing == MISSING_ZERO and value == 0.0:
        return default_left
    return value <= threshold


@numba.njit(inline="always", cache=True)
def walk_leaf(x: FloatArray, t: int, node_start: IntArray, node_feature: IntArray, node_threshold: FloatArray,
              node_default_left: npt.NDArray[np.bool_], node_missing: IntArray, node_left: IntArray,
              node_right: IntArray) -> int:
    """The (tree-local) leaf number a row reaches in tree t."""
    start = node_start[t]
    if node_start[t + 1] == start:
        return 0
    node = 0
    while True:
        j = start + node
        if _goes_left(x[node_feature[j]], node_threshold[j], node_default_left[j], node_missing[j]):
            nxt = node_left[j]
        else:
            nxt = node_right[j]
        if nxt < 0:
            return int(-1 - nxt)
        node = nxt


@numba.njit(cache=True)
def leaf_values(x: FloatArray, node_start: IntArray, node_feature: IntArray, node_threshold: FloatArray,
                node_default_left: npt.NDArray[np.bool_], node_missing: IntArray, node_left: IntArray,
                node_right: IntArray, leaf_start: IntArray, leaf_value: FloatArray, out: FloatArray) -> float:
    """Each tree's output for one row into ``out``; returns their sum in tree order (the raw margin)."""
    total = 0.0
    for t in range(node_start.shape[0] - 1):
        v = leaf_value[leaf_start[t] + walk_leaf(x, t, node_start, node_feature, node_threshold,
                                                 node_default_left, node_missing, node_left, node_right)]
        out[t] = v
        total += v
    return total


@numba.njit(cache=True)
def walk_margin(x: FloatArray, node_start: IntArray, node_feature: IntArray, node_threshold: FloatArray,
                node_default_left: npt.NDArray[np.bool_], node_missing: IntArray, node_left: IntArray,
                node_right: IntArray, leaf_start: IntArray, leaf_value: FloatArray) -> float:
    """One row's raw margin: the leaf values of every tree added in tree order from 0.0 (LightGBM's sum)."""
    total = 0.0
    for t in range(node_start.shape[0] - 1):
        total += leaf_value[leaf_start[t] + walk_leaf(x, t, node_start, node_feature, node_threshold,
                                                      node_default_left, node_missing, node_left, node_right)]
    return total


@numba.njit(parallel=True, cache=True)
def _margins(x: FloatArray, node_start: IntArray, node_feature: IntArray, node_threshold: FloatArray,
             node_default_left: npt.NDArray[np.bool_], node_missing: IntArray, node_left: IntArray,
             node_right: IntArray, leaf_start: IntArray, leaf_value: FloatArray, out: FloatArray) -> None:
    for i in numba.prange(x.shape[0]):
        out[i] = walk_margin(x[i], node_start, node_feature, node_threshold, node_default_left, node_missing,
                             node_left, node_right, leaf_start, leaf_value)


@numba.njit(parallel=True, cache=True)
def _explain_trees(x: FloatArray, node_start: IntArray, node_feature: IntArray, node_threshold: FloatArray,
                   node_default_left: npt.NDArray[np.bool_], node_missing: IntArray, pattern_start: IntArray,
                   pattern_value: FloatArray, slot_start: IntArray, slot_feature: IntArray, table_start: IntArray,
                   table: FloatArray, expected: float, out: FloatArray, margin: FloatArray,
                   patterns: npt.NDArray[np.int32]) -> None:
    n_trees = node_start.shape[0] - 1
    n_features = x.shape[1]
    keep = patterns.shape[0] == x.shape[0]
    for i in numba.prange(x.shape[0]):
        total = 0.0
        for t in range(n_trees):
            start = node_start[t]
            pattern = 0
            for j in range(node_start[t + 1] - start):
                if _goes_left(x[i, node_feature[start + j]], node_threshold[start + j], node_default_left[start + j],
                              node_missing[start + j]):
                    pattern |= 1 << j
            if keep:
                patterns[i, t] = pattern
            total += pattern_value[pattern_start[t] + pattern]
            first = slot_start[t]
            d = slot_start[t + 1] - first
            row = table_start[t] + pattern * d
            for k in range(d):
                out[i, slot_feature[first + k]] += table[row + k]
        out[i, n_features] = expected
        margin[i] = total


@numba.njit(parallel=True, cache=True)
def _explain_leaves(x: FloatArray, path_start: IntArray, path_feature: IntArray, path_threshold: FloatArray,
                    path_default_left: npt.NDArray[np.bool_], path_went_left: npt.NDArray[np.bool_],
                    path_missing: IntArray, path_slot: IntArray, slot_start: IntArray, slot_feature: IntArray,
                    table_start: IntArray, table: FloatArray, expected: float, out: FloatArray) -> None:
    n_leaves = path_start.shape[0] - 1
    n_features = x.shape[1]
    for i in numba.prange(x.shape[0]):
        for leaf in range(n_leaves):
            d = slot_start[leaf + 1] - slot_start[leaf]
            pattern = (1 << d) - 1
            for p in range(path_start[leaf], path_start[leaf + 1]):
                left = _goes_left(x[i, path_feature[p]], path_threshold[p], path_default_left[p], path_missing[p])
                if left != path_went_left[p]:
                    pattern &= ~(1 << path_slot[p])
            row = table_start[leaf] + pattern * d
            first = slot_start[leaf]
            for k in range(d):
                out[i, slot_feature[first + k]] += table[row + k]
        out[i, n_features] = expected


@numba.njit(parallel=True, cache=True)
def _moved_patterns(patterns: npt.NDArray[np.int32], clear: npt.NDArray[np.int32], setbits: npt.NDArray[np.int32],
                    pattern_start: IntArray, pattern_value: FloatArray, out: FloatArray) -> None:
    """Per row and per column range k: the raw margin with the range moved to a fixed reference row. Moving
    a range changes only the decisions of the nodes that split on it, and the reference row's decisions
    there are fixed: per tree the moved pattern is ``(pattern & ~clear[t, k]) | setbits[t, k]``."""
    n_trees = patterns.shape[1]
    n_ranges = clear.shape[1]
    for i in numba.prange(patterns.shape[0]):
        acc = np.zeros(n_ranges, dtype=np.float64)
        for t in range(n_trees):
            base = pattern_start[t]
            own = patterns[i, t]
            for k in range(n_ranges):
                acc[k] += pattern_value[base + ((own & ~clear[t, k]) | setbits[t, k])]
        for k in range(n_ranges):
            out[i, k] = acc[k]


@numba.njit(parallel=True, cache=True)
def _moved_margins(x: FloatArray, reference: FloatArray, range_start: IntArray, range_stop: IntArray,
                   touches: npt.NDArray[np.bool_], node_start: IntArray, node_feature: IntArray,
                   node_threshold: FloatArray, node_default_left: npt.NDArray[np.bool_], node_missing: IntArray,
                   node_left: IntArray, node_right: IntArray, leaf_start: IntArray, leaf_value: FloatArray,
                   out: FloatArray) -> None:
    n_trees = node_start.shape[0] - 1
    n_ranges = range_start.shape[0]
    for i in numba.prange(x.shape[0]):
        own = np.empty(n_trees, dtype=np.float64)
        row = x[i].copy()
        leaf_values(row, node_start, node_feature, node_threshold, node_default_left, node_missing, node_left,
                    node_right, leaf_start, leaf_value, own)
        for k in range(n_ranges):
            lo, hi = range_start[k], range_stop[k]
            for f in range(lo, hi):
                row[f] = reference[f]
            total = 0.0
            for t in range(n_trees):
                if touches[t, k]:
                    total += leaf_value[leaf_start[t] + walk_leaf(row, t, node_start, node_feature, node_threshold,
                                                                  node_default_left, node_missing, node_left,
                                                                  node_right)]
                else:
                    total += own[t]
            out[i, k] = total
            for f in range(lo, hi):
                row[f] = x[i, f]


def _with_threads(threads: int, call: Any, *args: Any) -> None:
    """Run a parallel kernel on ``threads`` numba threads (0: numba's default for this thread)."""
    if threads <= 0:
        call(*args)
        return
    previous = numba.get_num_threads()
    wanted = min(int(threads), int(numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
    if wanted == previous:
        call(*args)
        return
    numba.set_num_threads(wanted)
    try:
        call(*args)
    finally:
        numba.set_num_threads(previous)


class TreeShap:
    """Exact path-dependent TreeSHAP and exact raw margins of a LightGBM booster, precomputed per tree.

    ``TreeShap(booster).contributions(X)`` equals ``booster.predict(X, pred_contrib=True)`` to float
    rounding (last column: the expected value); ``margins(X)`` equals ``booster.predict(X,
    raw_score=True)`` bit for bit. Raises ValueError for a model it cannot reproduce exactly (categorical
    splits, linear trees, several outputs, averaged output).
    """

    def __init__(self, booster: Any) -> None:
        dump = booster.dump_model()
        self.n_features = int(dump["max_feature_idx"]) + 1
        if int(dump.get("num_class", 1)) != 1 or int(dump.get("num_tree_per_iteration", 1)) != 1:
            raise ValueError("treeshap supports single-output models only")
        if dump.get("average_output"):
            raise ValueError("treeshap does not support averaged (random forest) output")
        trees: list[_Tree] = []
        for info in dump["tree_info"]:
            trees.append(_parse(info["tree_structure"]))
        self.n_trees = len(trees)
        self.per_tree = all(len(tree.nodes) <= MAX_TREE_NODES for tree in trees)

        # nodes and leaves, for walks and per-tree patterns
        node_start, feature, threshold, default_left, missing, left, right = [0], [], [], [], [], [], []
        leaf_start, leaf_value = [0], []
        for tree in trees:
            for f, thr, dl, miss in tree.nodes:
                feature.append(f)
                threshold.append(thr)
                default_left.append(dl)
                missing.append(miss)
            left += tree.left
            right += tree.right
            node_start.append(len(feature))
            leaf_value += [leaf.value for leaf in tree.leaves]
            leaf_start.append(len(leaf_value))
        self._node_start = np.array(node_start, dtype=np.int64)
        self._node_feature = np.array(feature, dtype=np.int64)
        self._node_threshold = np.array(threshold, dtype=np.float64)
        self._node_default_left = np.array(default_left, dtype=np.bool_)
        self._node_missing = np.array(missing, dtype=np.int64)
        self._node_left = np.array(left, dtype=np.int64)
        self._node_right = np.array(right, dtype=np.int64)
        self._leaf_start = np.array(leaf_start, dtype=np.int64)
        self._leaf_value = np.array(leaf_value, dtype=np.float64)
        # which features each tree splits on
        self.tree_features: tuple[frozenset[int], ...] = tuple(
            frozenset(f for f, _, _, _ in tree.nodes) for tree in trees)

        expected = 0.0
        for tree in trees:
            if len(tree.leaves) == 1:
                expected += tree.leaves[0].value
            else:
                total = sum(leaf.count for leaf in tree.leaves)
                expected += sum(leaf.count / total * leaf.value for leaf in tree.leaves)
        self.expected_value = float(expected)

        if self.per_tree:
            pattern_start, pattern_values, slot_start, slot_feature, table_start, tables = [0], [], [0], [], [], []
            offset = 0
            for tree in trees:
                features, table, value = _tree_table(tree)
                pattern_values.append(value)
                pattern_start.append(pattern_start[-1] + len(value))
                slot_feature += features
                slot_start.append(len(slot_feature))
                table_start.append(offset)
                tables.append(table.reshape(-1))
                offset += table.size
            self._pattern_start = np.array(pattern_start, dtype=np.int64)
            self._pattern_value = np.concatenate(pattern_values)
            self._slot_start = np.array(slot_start, dtype=np.int64)
            self._slot_feature = np.array(slot_feature, dtype=np.int64)
            self._table_start = np.array(table_start, dtype=np.int64)
            self._table = np.concatenate(tables) if tables else np.zeros(0, dtype=np.float64)
        else:
            self._build_leaf_tables(trees)
        self.table_bytes = int(self._table.nbytes)

    def _build_leaf_tables(self, trees: list[_Tree]) -> None:
        starts, features, thresholds, defaults, went, missing, slots = [0], [], [], [], [], [], []
        slot_start, slot_feature, table_start, tables = [0], [], [0], []
        for tree in trees:
            if len(tree.leaves) == 1:
                continue
            for leaf in tree.leaves:
                distinct, table = _leaf_table(leaf)
                for feature, threshold, default_left, went_left, missing_type, _, _ in leaf.path:
                    features.append(feature)
                    thresholds.append(threshold)
                    defaults.append(default_left)
                    went.append(went_left)
                    missing.append(missing_type)
                    slots.append(distinct.index(feature))
                starts.append(len(features))
                slot_feature += distinct
                slot_start.append(len(slot_feature))
                tables.append(table.reshape(-1))
                table_start.append(table_start[-1] + table.size)
        self._path_start = np.array(starts, dtype=np.int64)
        self._path_feature = np.array(features, dtype=np.int64)
        self._path_threshold = np.array(thresholds, dtype=np.float64)
        self._path_default_left = np.array(defaults, dtype=np.bool_)
        self._path_went_left = np.array(went, dtype=np.bool_)
        self._path_missing = np.array(missing, dtype=np.int64)
        self._path_slot = np.array(slots, dtype=np.int64)
        self._slot_start = np.array(slot_start, dtype=np.int64)
        self._slot_feature = np.array(slot_feature, dtype=np.int64)
        self._table_start = np.array(table_start[:-1], dtype=np.int64)
        self._table = np.concatenate(tables) if tables else np.zeros(0, dtype=np.float64)

    # --- the walk arrays, for kernels elsewhere (scoring.counterfactual) -------------------------------

    @property
    def walk_arrays(self) -> tuple[IntArray, IntArray, FloatArray, npt.NDArray[np.bool_], IntArray, IntArray,
                                   IntArray, IntArray, FloatArray]:
        """(node_start, node_feature, node_threshold, node_default_left, node_missing, node_left, node_right,
        leaf_start, leaf_value): what ``walk_margin`` and ``leaf_values`` take after the row."""
        return (self._node_start, self._node_feature, self._node_threshold, self._node_default_left,
                self._node_missing, self._node_left, self._node_right, self._leaf_start, self._leaf_value)

    def _rows(self, x: FloatArray) -> FloatArray:
        rows = np.ascontiguousarray(np.atleast_2d(np.asarray(x, dtype=np.float64)))
        if rows.shape[1] != self.n_features:
            raise ValueError(f"expected {self.n_features} features, got {rows.shape[1]}")
        return rows

    # --- public ----------------------------------------------------------------------------------------

    def explain(self, x: FloatArray, threads: int = 0,
                keep_patterns: bool = False) -> tuple[FloatArray, FloatArray, npt.NDArray[np.int32] | None]:
        """(contributions (rows, n_features + 1), raw margins (rows,), node patterns (rows, trees) or None)
        in one pass. The patterns (per-tree tables only) feed :meth:`moved_from_patterns`."""
        rows = self._rows(x)
        out = np.zeros((rows.shape[0], self.n_features + 1), dtype=np.float64)
        margin = np.zeros(rows.shape[0], dtype=np.float64)
        patterns: npt.NDArray[np.int32] | None = None
        if self.per_tree:
            patterns = np.zeros((rows.shape[0] if keep_patterns else 0, self.n_trees), dtype=np.int32)
            _with_threads(threads, _explain_trees, rows, self._node_start, self._node_feature,
                          self._node_threshold, self._node_default_left, self._node_missing, self._pattern_start,
                          self._pattern_value, self._slot_start, self._slot_feature, self._table_start,
                          self._table, self.expected_value, out, margin, patterns)
            if not keep_patterns:
                patterns = None
        else:
            _with_threads(threads, _explain_leaves, rows, self._path_start, self._path_feature,
                          self._path_threshold, self._path_default_left, self._path_went_left,
                          self._path_missing, self._path_slot, self._slot_start, self._slot_feature,
                          self._table_start, self._table, self.expected_value, out)
            _with_threads(threads, _margins, rows, *self.walk_arrays, margin)
        return out, margin, patterns

    def contributions(self, x: FloatArray, threads: int = 0) -> FloatArray:
        """(rows, n_features + 1): per-feature path-dependent TreeSHAP of the raw margin, then the
        expected value. Deterministic and independent of how rows are batched or threaded."""
        return self.explain(x, threads)[0]

    def margins(self, x: FloatArray, threads: int = 0) -> FloatArray:
        """Raw margins, bit for bit ``booster.predict(x, raw_score=True)``."""
        rows = self._rows(x)
        out = np.zeros(rows.shape[0], dtype=np.float64)
        _with_threads(threads, _margins, rows, *self.walk_arrays, out)
        return out

    def touches(self, ranges: list[tuple[int, int]]) -> npt.NDArray[np.bool_]:
        """(trees, ranges): whether each tree splits on a feature in each [start, stop) column range."""
        out = np.zeros((self.n_trees, len(ranges)), dtype=np.bool_)
        for t, features in enumerate(self.tree_features):
            for k, (start, stop) in enumerate(ranges):
                out[t, k] = any(start <= f < stop for f in features)
        return out

    def moved_masks(self, reference: FloatArray, ranges: list[tuple[int, int]]) -> tuple[npt.NDArray[np.int32],
                                                                                         npt.NDArray[np.int32]]:
        """(clear, setbits), each (trees, ranges): the node bits of each tree that split on a range, and the
        bits the reference row sets there (per-tree tables only)."""
        if not self.per_tree:
            raise ValueError("moved_masks needs per-tree tables")
        reference = np.asarray(reference, dtype=np.float64).reshape(-1)
        clear = np.zeros((self.n_trees, len(ranges)), dtype=np.int32)
        setbits = np.zeros((self.n_trees, len(ranges)), dtype=np.int32)
        for t in range(self.n_trees):
            for j in range(int(self._node_start[t]), int(self._node_start[t + 1])):
                bit = 1 << (j - int(self._node_start[t]))
                feature = int(self._node_feature[j])
                for k, (start, stop) in enumerate(ranges):
                    if start <= feature < stop:
                        clear[t, k] |= bit
                        if _goes_left(float(reference[feature]), float(self._node_threshold[j]),
                                      bool(self._node_default_left[j]), int(self._node_missing[j])):
                            setbits[t, k] |= bit
        return clear, setbits

    def moved_from_patterns(self, patterns: npt.NDArray[np.int32], clear: npt.NDArray[np.int32],
                            setbits: npt.NDArray[np.int32], threads: int = 0) -> FloatArray:
        """(rows, ranges) raw margins of the moved rows, from the patterns :meth:`explain` kept."""
        out = np.zeros((patterns.shape[0], clear.shape[1]), dtype=np.float64)
        _with_threads(threads, _moved_patterns, patterns, clear, setbits, self._pattern_start, self._pattern_value,
                      out)
        return out

    def moved_margins(self, x: FloatArray, reference: FloatArray, ranges: list[tuple[int, int]],
                      threads: int = 0) -> FloatArray:
        """(rows, ranges): the raw margin of each row with columns [start, stop) of one range at a time set
        to ``reference``'s; bit for bit what ``booster.predict`` gives for the moved row."""
        rows = self._rows(x)
        if self.per_tree:
            clear, setbits = self.moved_masks(reference, ranges)
            patterns = self.explain(rows, threads, keep_patterns=True)[2]
            assert patterns is not None
            return self.moved_from_patterns(patterns, clear, setbits, threads)
        reference = np.ascontiguousarray(reference, dtype=np.float64).reshape(-1)
        starts = np.array([r[0] for r in ranges], dtype=np.int64)
        stops = np.array([r[1] for r in ranges], dtype=np.int64)
        out = np.zeros((rows.shape[0], len(ranges)), dtype=np.float64)
        _with_threads(threads, _moved_margins, rows, reference, starts, stops, self.touches(ranges),
                      *self.walk_arrays, out)
        return out
