"""How fast is exact TreeSHAP, and what does a full explanation cost on top of it? Measured on the demo model.

On the production-size demo model (trained on 2,000,000 generated rows as train_model does, seed 0) and
200,000 fresh demo applications (seed 424242) it measures rows per second of

(a)  ``shap.TreeExplainer(booster).shap_values(X)``, default threads. For a LightGBM booster in its default
     path-dependent mode shap hands the work to LightGBM's own ``pred_contrib``, so (a) and (b) are the
     same C++ code; (a2) also times shap's own C++ TreeSHAP (forcing its internal tree path, one thread)
     on a subset, which is what shap runs for models without a native implementation.
(b)  LightGBM ``booster.predict(X, pred_contrib=True)``, default threads.
(d)  ``scoring.treeshap.TreeShap`` (our own exact TreeSHAP: per-tree tables of node-decision patterns, numba,
     parallel over rows), default threads and one thread; its raw margins must equal LightGBM's bit for bit.
(c)  ``scoring.explain.Explainer.explain_many`` in chunks of 4,096, results discarded (no storage), on (d)'s
     kernels: field grouping, cutoff and all-applicant references, the three checks (determinism encodes and
     computes everything a second time; faithfulness moves each field to the cutoff group's representative
     value) and recourse (the compiled frontier search, verified by LightGBM) for every application that is
     not approved; (c0) the same without recourse; (c1) with recourse on one thread, as one worker process
     runs it; (c2) (c1) plus writing each explanation's stored JSON text (``Explanation.to_json``).

It checks that (a), (a2) and (d) agree with (b) to 1e-9 after the same Platt scaling (calibrated
log-odds), prints R_raw for (a) and (b) and the ratios, and writes the figures to
``bench/out/explain_raw.json``. The machine, load and thread count matter: the figures are printed with
the CPU count and the load average, and nothing is asserted.

Run: ``.venv/bin/python bench/explain_raw.py [--rows 200000] [--model DIR]``
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import shap

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scoring import demo
from scoring.artifact import save_model
from scoring.datasets import DEMO_TRAINING_ROWS, load_dataset
from scoring.explain import Explainer
from scoring.predict import ScoringModel, load_model
from scoring.spec import get_spec
from scoring.train import train_product

OUT = Path(__file__).resolve().parent / "out" / "explain_raw.json"


def production_demo_model(rows: int, model_dir: Path | None) -> ScoringModel:
    if model_dir is not None:
        return load_model(model_dir)
    spec = get_spec("demo")
    dataset = load_dataset(spec, n=rows, seed=0)
    result = train_product(spec, dataset, seed=0)
    folder = Path(tempfile.mkdtemp(prefix="candor-bench-"))
    atexit.register(shutil.rmtree, folder, True)  # the model is loaded into memory; the folder goes at exit
    return load_model(save_model(result, spec, dataset, folder))


def timed(label: str, rows: int, call: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    out = call()
    seconds = time.perf_counter() - started
    print(f"{label:<62} {rows:>8} rows {seconds:>8.2f} s {rows / seconds:>12,.0f} rows/s", flush=True)
    return out, rows / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--train-rows", type=int, default=DEMO_TRAINING_ROWS)
    parser.add_argument("--model", type=Path, default=None, help="an existing demo model directory")
    parser.add_argument("--seed", type=int, default=424242)
    parser.add_argument("--chunk", type=int, default=4096)
    parser.add_argument("--shap-internal-rows", type=int, default=20_000)
    parser.add_argument("--json", type=Path, default=OUT)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    spec = get_spec("demo")
    started = time.perf_counter()
    model = production_demo_model(args.train_rows, args.model)
    print(f"model {model.version}: {model.booster.num_trees()} trees, {model.encoder.n_features} features "
          f"(ready in {time.perf_counter() - started:.1f} s); cpus: {os.cpu_count()}, "
          f"lightgbm {lgb.__version__}, shap {shap.__version__}, numpy {np.__version__}; load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    frame, _ = demo.generate(args.rows, args.seed)
    x = model.encoder.encode_frame(frame)
    n = len(x)
    a = model.calibration.a
    booster = model.booster
    booster.predict(x[:1000], pred_contrib=True)  # warm up

    shap_values, r_shap = timed("(a)  shap.TreeExplainer(booster).shap_values(X)", n,
                                lambda: shap.TreeExplainer(booster).shap_values(x))
    contrib, r_lgb = timed("(b)  LightGBM pred_contrib=True", n, lambda: booster.predict(x, pred_contrib=True))
    subset = x[:args.shap_internal_rows]

    def shap_internal() -> Any:
        explainer = shap.TreeExplainer(booster)
        explainer.model.model_type = "internal"  # skip the LightGBM shortcut: shap's own C++ TreeSHAP
        return explainer.shap_values(subset, check_additivity=False)

    internal, r_internal = timed("(a2) shap's own C++ TreeSHAP (forced internal path)", len(subset), shap_internal)

    own_figures: dict[str, Any] = {}
    try:
        from scoring.treeshap import TreeShap

        built = time.perf_counter()
        own = TreeShap(booster)
        own.contributions(x[:10])  # compiles
        build_seconds = time.perf_counter() - built
        own_contrib, r_own = timed("(d)  scoring.treeshap.TreeShap (own, numba, parallel)", n,
                                   lambda: own.contributions(x))
        _, r_own_1 = timed("(d1) scoring.treeshap.TreeShap, one thread", n, lambda: own.contributions(x, threads=1))
        margins_equal = bool(np.array_equal(own.margins(x), booster.predict(x, raw_score=True)))
        own_figures = {"rows_per_s": r_own, "rows_per_s_one_thread": r_own_1, "build_and_compile_s": build_seconds,
                       "table_bytes": own.table_bytes, "margins_bit_identical": margins_equal,
                       "max_abs_diff_vs_lightgbm": float(np.abs(a * own_contrib - a * contrib).max())}
    except ImportError:
        own_contrib = None

    explainer = Explainer.for_model(model, spec)
    values = [{k: v for k, v in r.items() if v is not None} for r in frame.to_dict("records")]

    def explain_all(with_recourse: bool, threads: int = 0, stored: bool = False) -> dict[str, int]:
        counts = {"rows": 0, "denied": 0, "referred": 0, "recourse": 0, "recourse_found": 0, "checks_failed": 0,
                  "additivity_failed": 0, "determinism_failed": 0, "faithfulness_failed": 0, "json_bytes": 0}
        for start in range(0, n, args.chunk):
            for explanation in explainer.explain_many(values[start:start + args.chunk], with_recourse=with_recourse,
                                                      chunk_rows=args.chunk, num_threads=threads):
                if stored:
                    counts["json_bytes"] += len(explanation.to_json())
                counts["rows"] += 1
                counts["denied"] += explanation.decision == "denied"
                counts["referred"] += explanation.decision == "referred"
                counts["checks_failed"] += not explanation.checks.all_passed
                counts["additivity_failed"] += not explanation.checks.additivity.passed
                counts["determinism_failed"] += not explanation.checks.determinism.passed
                counts["faithfulness_failed"] += not explanation.checks.faithfulness.passed
                if explanation.recourse is not None:
                    counts["recourse"] += 1
                    counts["recourse_found"] += explanation.recourse.found
        return counts

    explainer.explain_many(values[:2000])  # warm up (compiles or loads the kernels)
    _, r_plain = timed("(c0) Explainer.explain_many, checks, no recourse", n, lambda: explain_all(False))
    counts, r_full = timed("(c)  Explainer.explain_many, checks and recourse", n, lambda: explain_all(True))
    _, r_one = timed("(c1) the same on one thread", n, lambda: explain_all(True, threads=1))
    stored_counts, r_json = timed("(c2) (c1) and the stored JSON text", n,
                                  lambda: explain_all(True, threads=1, stored=True))
    recourse_ms = ((n / r_full - n / r_plain) / max(1, counts["recourse"])) * 1e3

    diff_shap = float(np.abs(a * np.asarray(shap_values) - a * contrib[:, :-1]).max())
    diff_internal = float(np.abs(a * np.asarray(internal) - a * contrib[:len(subset), :-1]).max())
    print()
    print(f"R_raw (a) shap.TreeExplainer:        {r_shap:>12,.0f} rows/s")
    print(f"R_raw (b) LightGBM pred_contrib:     {r_lgb:>12,.0f} rows/s")
    print(f"(a2) shap's own C++ TreeSHAP:        {r_internal:>12,.0f} rows/s")
    if own_figures:
        print(f"(d) scoring.treeshap (own):          {own_figures['rows_per_s']:>12,.0f} rows/s "
              f"(build + compile {own_figures['build_and_compile_s']:.2f} s)")
    print(f"(d1) scoring.treeshap, one thread:   {own_figures.get('rows_per_s_one_thread', 0):>12,.0f} rows/s "
          f"(margins bit-identical to LightGBM's: {own_figures.get('margins_bit_identical')})")
    print(f"(c0) explain_many without recourse:  {r_plain:>12,.0f} rows/s")
    print(f"(c) explain_many with recourse:      {r_full:>12,.0f} rows/s")
    print(f"(c1) the same, one thread:           {r_one:>12,.0f} rows/s")
    print(f"(c2) (c1) + stored JSON text:        {r_json:>12,.0f} rows/s "
          f"({stored_counts['json_bytes'] / n:,.0f} bytes a row)")
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"ratios: (a)/(b) {r_shap / r_lgb:.3f}   (c)/(b) {r_full / r_lgb:.3f}   (c0)/(b) {r_plain / r_lgb:.3f}"
          + (f"   (d)/(a) {own_figures['rows_per_s'] / r_shap:.2f}   (d)/(b) {own_figures['rows_per_s'] / r_lgb:.2f}"
             f"   (d)/(a2) {own_figures['rows_per_s'] / r_internal:.2f}" if own_figures else ""))
    print(f"agreement after Platt scaling (max |diff| vs (b)): (a) {diff_shap:.2e}  (a2) {diff_internal:.2e}"
          + (f"  (d) {own_figures['max_abs_diff_vs_lightgbm']:.2e}" if own_figures else "")
          + f"  -> {'within' if max(diff_shap, diff_internal) <= 1e-9 else 'NOT within'} 1e-9")
    print(f"explained {counts['rows']} applications: {counts['denied']} denied, {counts['referred']} referred; "
          f"recourse searched for {counts['recourse']} ({counts['recourse_found']} found), about "
          f"{recourse_ms:.2f} ms each; explanations with a failed check: {counts['checks_failed']} (additivity "
          f"{counts['additivity_failed']}, determinism {counts['determinism_failed']}, faithfulness "
          f"{counts['faithfulness_failed']})")

    figures = {
        "model_version": model.version, "rows": n, "cpus": os.cpu_count(), "machine": platform.machine(),
        "libraries": {"lightgbm": lgb.__version__, "shap": shap.__version__, "numpy": np.__version__},
        "a_shap_tree_explainer_rows_per_s": r_shap, "b_lightgbm_pred_contrib_rows_per_s": r_lgb,
        "a2_shap_internal_cpp_rows_per_s": r_internal, "a2_rows": len(subset),
        "c0_explain_many_no_recourse_rows_per_s": r_plain, "c_explain_many_rows_per_s": r_full,
        "c1_explain_many_one_thread_rows_per_s": r_one, "c2_explain_many_one_thread_json_rows_per_s": r_json,
        "json_bytes_per_row": stored_counts["json_bytes"] / n, "load_average_end": os.getloadavg(),
        "ratio_a_over_b": r_shap / r_lgb, "ratio_c_over_b": r_full / r_lgb, "ratio_c0_over_b": r_plain / r_lgb,
        "max_abs_diff_a_vs_b": diff_shap, "max_abs_diff_a2_vs_b": diff_internal,
        "own_treeshap": own_figures, "explain_counts": counts, "recourse_ms_per_row": recourse_ms,
        "chunk_rows": args.chunk,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
