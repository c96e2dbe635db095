"""Exact path-dependent TreeSHAP for LightGBM boosters, precomputed per leaf (Fast TreeSHAP v2 style).

The value it computes is the same as LightGBM's ``booster.predict(X, pred_contrib=True)`` (and therefore
``shap.TreeExplainer(booster).shap_values``, which calls it): per feature the path-dependent TreeSHAP value
of the raw margin, plus the expected value as the last column.

Why it can be precomputed
-------------------------
For one leaf l with value v, let F be the distinct features split on along its root-to-leaf path
(d = |F|). For a feature k in F, z_k is the product of the cover ratios (child count / parent count) of
the path's splits on k, and o_k(x) is 1 when x satisfies every one of those splits, else 0. The
path-dependent TreeSHAP contribution of leaf l to feature f in F is

    v * (o_f - z_f) * sum over S subset of F \\ {f} of  w(|S|) * prod_{k in S} o_k * prod_{k in F \\ {f} \\ S} z_k,
    w(s) = s! (d - s - 1)! / d!

(features off the path get nothing from this leaf). Everything except the d bits o(x) is fixed by the
model, so each leaf gets a table of 2^d rows (one per bit pattern) by d contributions, built once per model
(the sum uses elementary symmetric polynomials of the z's, O(d^2) per entry). Explaining a row is then:
per leaf, evaluate its path's splits to get the bit pattern, and add one table row into the output. This
is O(leaves * depth) per row with no recursion, compiled with numba and parallel over rows.

Split semantics follow LightGBM exactly (``Tree::NumericalDecision``): with missing type ``NaN`` a NaN goes
the default way; with ``Zero`` a NaN or |x| <= 1e-35 goes the default way; with ``None`` a NaN is
treated as 0.0; otherwise x <= threshold goes left. Categorical splits (native categories) are not
supported (the encoder's default one-hot mode never produces them); a model with one raises ValueError.
Trees whose paths have more than ``MAX_PATH_FEATURES`` distinct features are refused (the tables grow as
2^d).
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
MISSING_NONE, MISSING_ZERO, MISSING_NAN = 0, 1, 2
_MISSING_TYPES = {"None": MISSING_NONE, "Zero": MISSING_ZERO, "NaN": MISSING_NAN}
ZERO_THRESHOLD = 1e-35


@dataclass(frozen=True)
class _Leaf:
    value: float
    count: float
    path: list[tuple[int, float, bool, bool, int, float]]  # feature, threshold, default_left, went_left,
    #                                                      missing type, cover ratio of the child taken


def _walk(node: Mapping[str, Any], path: list[tuple[int, float, bool, bool, int, float]],
          leaves: list[_Leaf]) -> None:
    if "split_feature" not in node:
        leaves.append(_Leaf(float(node["leaf_value"]), float(node.get("leaf_count", 0.0)), list(path)))
        return
    if node.get("decision_type") != "<=":
        raise ValueError("treeshap supports numerical splits only (the model has a categorical split)")
    parent = float(node["internal_count"])
    for side, went_left in (("left_child", True), ("right_child", False)):
        child = node[side]
        count = float(child["internal_count"] if "split_feature" in child else child.get("leaf_count", 0.0))
        step = (int(node["split_feature"]), float(node["threshold"]), bool(node["default_left"]), went_left,
                _MISSING_TYPES[str(node["missing_type"])], count / parent if parent > 0 else 0.0)
        _walk(child, [*path, step], leaves)


def _leaf_table(leaf: _Leaf) -> tuple[list[int], FloatArray]:
    """The distinct path features of a leaf and its (2^d, d) contribution table."""
    features: list[int] = []
    zero: list[float] = []
    for feature, _, _, _, _, ratio in leaf.path:
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


@numba.njit(parallel=True, cache=False, fastmath=False)
def _contributions(x: FloatArray, path_start: IntArray, path_feature: IntArray, path_threshold: FloatArray,
                   path_default_left: npt.NDArray[np.bool_], path_went_left: npt.NDArray[np.bool_],
                   path_missing: IntArray, path_slot: IntArray, slot_start: IntArray, slot_feature: IntArray,
                   table_start: IntArray, table: FloatArray, expected: float, out: FloatArray) -> None:
    n_rows = x.shape[0]
    n_leaves = path_start.shape[0] - 1
    n_features = x.shape[1]
    for i in numba.prange(n_rows):
        for leaf in range(n_leaves):
            d = slot_start[leaf + 1] - slot_start[leaf]
            pattern = (1 << d) - 1
            for p in range(path_start[leaf], path_start[leaf + 1]):
                value = x[i, path_feature[p]]
                missing = path_missing[p]
                if math.isnan(value) and missing != MISSING_NAN:
                    value = 0.0
                if (missing == MISSING_ZERO and -ZERO_THRESHOLD <= value <= ZERO_THRESHOLD) or \
                        (missing == MISSING_NAN and math.isnan(value)):
                    left = path_default_left[p]
                else:
                    left = value <= path_threshold[p]
                if left != path_went_left[p]:
                    pattern &= ~(1 << path_slot[p])
            row = table_start[leaf] + pattern * d
            first = slot_start[leaf]
            for k in range(d):
                out[i, slot_feature[first + k]] += table[row + k]
        out[i, n_features] = expected


class TreeShap:
    """Exact path-dependent TreeSHAP of a LightGBM booster's raw margin, precomputed per leaf.

    ``TreeShap(booster).contributions(X)`` equals ``booster.predict(X, pred_contrib=True)`` to float
    rounding (last column: the expected value).
    """

    def __init__(self, booster: Any) -> None:
        dump = booster.dump_model()
        self.n_features = int(dump["max_feature_idx"]) + 1
        if int(dump.get("num_class", 1)) != 1:
            raise ValueError("treeshap supports single-output models only")
        starts, features, thresholds, defaults, went, missing, slots = [0], [], [], [], [], [], []
        slot_start, slot_feature, table_start, tables = [0], [], [0], []
        expected = 0.0
        for tree in dump["tree_info"]:
            leaves: list[_Leaf] = []
            _walk(tree["tree_structure"], [], leaves)
            if len(leaves) == 1:
                expected += leaves[0].value
                continue
            total = sum(leaf.count for leaf in leaves)
            expected += sum(leaf.count / total * leaf.value for leaf in leaves)
            for leaf in leaves:
                distinct, table = _leaf_table(leaf)
                for feature, threshold, default_left, went_left, missing_type, _ in leaf.path:
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
        self.expected_value = float(expected)
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
        self.n_leaves = len(starts) - 1
        self.table_bytes = int(self._table.nbytes)

    def contributions(self, x: FloatArray) -> FloatArray:
        """(rows, n_features + 1): per-feature path-dependent TreeSHAP of the raw margin, then the
        expected value. Deterministic and independent of how rows are batched or threaded."""
        rows = np.ascontiguousarray(np.atleast_2d(np.asarray(x, dtype=np.float64)))
        if rows.shape[1] != self.n_features:
            raise ValueError(f"expected {self.n_features} features, got {rows.shape[1]}")
        out = np.zeros((rows.shape[0], self.n_features + 1), dtype=np.float64)
        _contributions(rows, self._path_start, self._path_feature, self._path_threshold,
                       self._path_default_left, self._path_went_left, self._path_missing, self._path_slot,
                       self._slot_start, self._slot_feature, self._table_start, self._table,
                       self.expected_value, out)
        return out
