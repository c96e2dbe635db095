"""Which gradient-boosting library should Candor's models use? Measured, not assumed.

For each product (HELOC, German Credit) it fits scikit-learn HistGradientBoostingClassifier, LightGBM
and XGBoost with the same monotone constraints and similar capacity (depth 3 / 8 leaves, 300 rounds,
learning rate 0.03 (German Credit 0.02), min 50 (German Credit 20) rows per leaf, L2 1.0), on the same
features (scoring.features, one-hot categories), and reports:

* held-out AUC (stratified 20%, seed 0) and 5-fold stratified CV AUC on the training part,
* single-row score latency in process: p50/p99 over 2,000 one-row calls (model call only, one thread),
* exact TreeSHAP time per row, one row per call (LightGBM ``pred_contrib=True``, XGBoost
  ``pred_contribs=True``, shap.TreeExplainer for HistGradientBoosting).

It also compares one-hot and native categorical encoding for LightGBM on German Credit (the encoder's
``category_mode``). Run: ``.venv/bin/python bench/model_library.py [--rows 2000] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import xgboost as xgb
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scoring.datasets import load_dataset
from scoring.features import FeatureEncoder, no_information_rows
from scoring.spec import PRODUCTS_DIR, load_spec
from scoring.train import lightgbm_params, params_for

THREADS = 2
SEED = 0


class Candidate:
    name = ""

    def fit(self, x: np.ndarray, y: np.ndarray, monotone: list[int], cats: list[int]) -> None:
        raise NotImplementedError

    def predict(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def one_row(self) -> Callable[[np.ndarray], Any]:
        raise NotImplementedError

    def shap_row(self) -> Callable[[np.ndarray], Any]:
        raise NotImplementedError


class LightGBMCandidate(Candidate):
    name = "lightgbm"

    def __init__(self, params: dict[str, Any], encoder: FeatureEncoder) -> None:
        self.params, self.encoder = params, encoder

    def fit(self, x: np.ndarray, y: np.ndarray, monotone: list[int], cats: list[int]) -> None:
        lgb_params = lightgbm_params(self.params, self.encoder, SEED)
        data = lgb.Dataset(x, label=y, categorical_feature=cats or "auto", params={"verbose": -1})
        self.booster = lgb.train(lgb_params, data, num_boost_round=int(self.params["num_boost_round"]))

    def predict(self, x: np.ndarray) -> np.ndarray:
        out = np.asarray(self.booster.predict(x, raw_score=True), dtype=np.float64)
        return out

    def one_row(self) -> Callable[[np.ndarray], Any]:
        return lambda row: self.booster.predict(row, raw_score=True, num_threads=1)

    def shap_row(self) -> Callable[[np.ndarray], Any]:
        return lambda row: self.booster.predict(row, pred_contrib=True, num_threads=1)


class XGBoostCandidate(Candidate):
    name = "xgboost"

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params

    def fit(self, x: np.ndarray, y: np.ndarray, monotone: list[int], cats: list[int]) -> None:
        p = self.params
        xgb_params = {
            "objective": "binary:logistic", "eta": p["learning_rate"], "max_depth": p["max_depth"],
            "max_leaves": p["num_leaves"], "min_child_weight": p["min_data_in_leaf"] * 0.25 * 0.9,
            "subsample": p["bagging_fraction"], "colsample_bytree": p["feature_fraction"],
            "lambda": p["lambda_l2"], "tree_method": "hist", "nthread": THREADS, "seed": SEED,
            "monotone_constraints": "(" + ",".join(str(m) for m in monotone) + ")",
        }
        rounds = int(p["num_boost_round"])
        self.booster = xgb.train(xgb_params, xgb.DMatrix(x, label=y), num_boost_round=rounds)
        self.booster.set_param({"nthread": 1})

    def predict(self, x: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.booster.predict(xgb.DMatrix(x), output_margin=True)
        return out

    def one_row(self) -> Callable[[np.ndarray], Any]:
        return lambda row: self.booster.inplace_predict(row, predict_type="margin")

    def shap_row(self) -> Callable[[np.ndarray], Any]:
        return lambda row: self.booster.predict(xgb.DMatrix(row), pred_contribs=True)


class HGBCandidate(Candidate):
    name = "sklearn-hgb"

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params

    def fit(self, x: np.ndarray, y: np.ndarray, monotone: list[int], cats: list[int]) -> None:
        p = self.params
        self.model = HistGradientBoostingClassifier(
            learning_rate=p["learning_rate"], max_iter=int(p["num_boost_round"]), max_depth=p["max_depth"],
            max_leaf_nodes=p["num_leaves"], min_samples_leaf=p["min_data_in_leaf"],
            l2_regularization=p["lambda_l2"], max_features=p["feature_fraction"], monotonic_cst=monotone,
            early_stopping=False, random_state=SEED,
        )
        self.model.fit(x, y)
        self._explainer: Any = None

    def predict(self, x: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.model.decision_function(x)
        return out

    def one_row(self) -> Callable[[np.ndarray], Any]:
        return lambda row: self.model.decision_function(row)

    def shap_row(self) -> Callable[[np.ndarray], Any]:
        import shap

        if self._explainer is None:
            self._explainer = shap.TreeExplainer(self.model)
        return lambda row: self._explainer.shap_values(row, check_additivity=False)


def _timings(call: Callable[[np.ndarray], Any], rows: np.ndarray, count: int) -> tuple[float, float]:
    times = []
    for i in range(min(20, len(rows))):  # warm up
        call(rows[i:i + 1])
    for i in range(count):
        row = rows[i % len(rows):i % len(rows) + 1]
        started = time.perf_counter()
        call(row)
        times.append(time.perf_counter() - started)
    ms = np.array(times) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def measure(slug: str, rows: int, shap_rows: int) -> list[dict[str, Any]]:
    spec = load_spec(PRODUCTS_DIR / f"{slug}.toml")
    dataset = load_dataset(spec)
    keep = ~no_information_rows(spec, dataset.frame)
    frame, y = dataset.frame.loc[keep].reset_index(drop=True), dataset.y[keep]
    params = params_for(spec)
    tr, te = train_test_split(np.arange(len(y)), test_size=0.2, stratify=y, random_state=SEED)
    results = []
    makers: list[tuple[str, Callable[[FeatureEncoder], Candidate]]] = [
        ("sklearn-hgb", lambda enc: HGBCandidate(params)),
        ("lightgbm", lambda enc: LightGBMCandidate(params, enc)),
        ("xgboost", lambda enc: XGBoostCandidate(params)),
    ]
    modes = ["onehot", "native"] if any(f.type == "category" for f in spec.model_inputs) else ["onehot"]
    for mode in modes:
        for name, make in makers:
            if mode == "native" and name != "lightgbm":
                continue
            encoder = FeatureEncoder.from_spec(spec, frame.iloc[tr], category_mode=mode)
            x = encoder.encode_frame(frame)
            monotone, cats = list(encoder.monotone_constraints), list(encoder.categorical_features)
            started = time.perf_counter()
            folds = StratifiedKFold(5, shuffle=True, random_state=SEED)
            cv = []
            for fit, val in folds.split(tr, y[tr]):
                model = make(encoder)
                model.fit(x[tr][fit], y[tr][fit], monotone, cats)
                cv.append(roc_auc_score(y[tr][val], model.predict(x[tr][val])))
            model = make(encoder)
            model.fit(x[tr], y[tr], monotone, cats)
            fit_seconds = (time.perf_counter() - started) / 6
            auc = roc_auc_score(y[te], model.predict(x[te]))
            test_rows = np.ascontiguousarray(x[te])
            p50, p99 = _timings(model.one_row(), test_rows, rows)
            shap_p50, _ = _timings(model.shap_row(), test_rows, shap_rows)
            results.append({"product": slug, "library": name, "categories": mode, "auc": auc,
                            "cv_auc": float(np.mean(cv)), "cv_auc_std": float(np.std(cv)),
                            "fit_s": fit_seconds,
                            "score_p50_ms": p50, "score_p99_ms": p99, "treeshap_ms_per_row": shap_p50})
            print(_line(results[-1]), flush=True)
    return results


HEADER = (f"{'product':<14}{'library':<13}{'cats':<8}{'auc':>7}{'cv_auc':>8}{'±':>7}{'fit s':>7}"
          f"{'p50 ms':>8}{'p99 ms':>8}{'shap ms':>9}")


def _line(r: dict[str, Any]) -> str:
    return (f"{r['product']:<14}{r['library']:<13}{r['categories']:<8}{r['auc']:>7.4f}{r['cv_auc']:>8.4f}"
            f"{r['cv_auc_std']:>7.4f}{r['fit_s']:>7.2f}{r['score_p50_ms']:>8.3f}{r['score_p99_ms']:>8.3f}"
            f"{r['treeshap_ms_per_row']:>9.3f}")


def choose(results: list[dict[str, Any]]) -> str:
    """The library whose CV AUC is within 0.005 of the best on every product and that is fastest at
    score + TreeSHAP per row (summed over products)."""
    onehot = [r for r in results if r["categories"] == "onehot"]
    products = {r["product"] for r in onehot}
    libraries = {r["library"] for r in onehot}
    eligible = []
    for lib in sorted(libraries):
        ok = all(
            next(r["cv_auc"] for r in onehot if r["product"] == p and r["library"] == lib)
            >= max(r["cv_auc"] for r in onehot if r["product"] == p) - 0.005
            for p in products
        )
        if ok:
            cost = sum(r["score_p50_ms"] + r["treeshap_ms_per_row"] for r in onehot if r["library"] == lib)
            eligible.append((cost, lib))
    return min(eligible)[1] if eligible else "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", nargs="*", default=["heloc", "german-credit"])
    parser.add_argument("--rows", type=int, default=2000, help="single-row calls for the latency figures")
    parser.add_argument("--shap-rows", type=int, default=200, help="single-row TreeSHAP calls")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)
    print(HEADER)
    results: list[dict[str, Any]] = []
    for slug in args.products:
        results += measure(slug, args.rows, args.shap_rows)
    print()
    print(HEADER)
    for r in results:
        print(_line(r))
    print(f"\nchosen library: {choose(results)} (CV AUC within 0.005 of the best on every product, then the "
          "lowest single-row score + TreeSHAP time)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
