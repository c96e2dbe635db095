"""What would model-agnostic SHAP cost, and how close does it get? shap's KernelExplainer and
PermutationExplainer against exact TreeSHAP on the production-size demo model.

Both model-agnostic explainers estimate *interventional* SHAP values of the model's raw margin against a
background sample (here 100 rows of the model's reference sample, the explanation background). The exact
value of that same quantity is interventional TreeSHAP with the same background
(``shap.TreeExplainer(booster, data=background, feature_perturbation="interventional")``), so the
estimation error is measured against it. For scale it also prints the difference from the path-dependent
TreeSHAP that Candor ships (LightGBM ``pred_contrib``), a related but different quantity. Rows per second
are for explaining 100 fresh demo applications; nothing is asserted.

Run: ``.venv/bin/python bench/shap_agnostic.py [--rows 100] [--background 100] [--model DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import shap

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.explain_raw import production_demo_model
from scoring import demo

OUT = Path(__file__).resolve().parent / "out" / "shap_agnostic.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--background", type=int, default=100)
    parser.add_argument("--train-rows", type=int, default=20_000)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=424242)
    parser.add_argument("--json", type=Path, default=OUT)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    model = production_demo_model(args.train_rows, args.model)
    booster = model.booster
    rng = np.random.default_rng(0)
    background = model.reference[np.sort(rng.choice(len(model.reference), args.background, replace=False))]
    frame, _ = demo.generate(args.rows, args.seed)
    x = model.encoder.encode_frame(frame)
    n = len(x)
    print(f"model {model.version}; {n} rows to explain, {len(background)} background rows, "
          f"{x.shape[1]} features, cpus {os.cpu_count()}")

    def margin(rows: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.asarray(booster.predict(rows, raw_score=True), dtype=np.float64)
        return out

    results: dict[str, dict[str, Any]] = {}

    def run(name: str, call: Any) -> np.ndarray:
        started = time.perf_counter()
        values = np.asarray(call(), dtype=np.float64)
        seconds = time.perf_counter() - started
        results[name] = {"seconds": seconds, "rows_per_s": n / seconds}
        print(f"{name:<48} {seconds:>9.3f} s {n / seconds:>12,.1f} rows/s", flush=True)
        return values

    path_dependent = run("TreeSHAP path-dependent (LightGBM pred_contrib)",
                         lambda: booster.predict(x, pred_contrib=True)[:, :-1])
    exact = run("TreeSHAP interventional (shap, same background)",
                lambda: shap.TreeExplainer(booster, data=background, feature_perturbation="interventional",
                                           model_output="raw").shap_values(x, check_additivity=False))
    kernel = run("KernelExplainer (nsamples=auto)",
                 lambda: shap.KernelExplainer(margin, background).shap_values(x, silent=True))
    permutation = run("PermutationExplainer (max_evals=auto)",
                      lambda: shap.PermutationExplainer(margin, shap.maskers.Independent(background,
                                                                                         max_samples=len(background)),
                                                        seed=0)(x, silent=True).values)
    a = model.calibration.a
    print()
    print("max |difference| in calibrated log-odds (a * margin), per feature and row:")
    for name, key, values in (("KernelExplainer", "KernelExplainer (nsamples=auto)", kernel),
                              ("PermutationExplainer", "PermutationExplainer (max_evals=auto)", permutation)):
        vs_exact = float(np.abs(a * (values - exact)).max())
        vs_path = float(np.abs(a * (values - path_dependent)).max())
        mean_abs = float(np.abs(a * (values - exact)).mean())
        results[key].update(
            {"max_abs_diff_vs_interventional_exact": vs_exact, "mean_abs_diff_vs_interventional_exact": mean_abs,
             "max_abs_diff_vs_path_dependent": vs_path})
        print(f"  {name:<22} vs exact interventional {vs_exact:.2e} (mean {mean_abs:.2e});  "
              f"vs path-dependent TreeSHAP {vs_path:.2e}")
    print(f"  exact interventional vs path-dependent (different quantities): "
          f"{float(np.abs(a * (exact - path_dependent)).max()):.2e}")
    tree_rate = results["TreeSHAP path-dependent (LightGBM pred_contrib)"]["rows_per_s"]
    inter_rate = results["TreeSHAP interventional (shap, same background)"]["rows_per_s"]
    for name in ("KernelExplainer (nsamples=auto)", "PermutationExplainer (max_evals=auto)"):
        rate = results[name]["rows_per_s"]
        print(f"{name}: {tree_rate / rate:,.0f}x slower than path-dependent TreeSHAP, "
              f"{inter_rate / rate:,.0f}x slower than interventional TreeSHAP")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"model_version": model.version, "rows": n, "background": len(background),
                                     "results": results}, indent=2) + "\n", encoding="utf-8")
    print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
