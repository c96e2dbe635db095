"""Do the stated reasons name the true causes? Checked on the demo product, whose causes are known exactly.

The demo data (scoring/demo.py) are drawn from an additive true log-odds, so the exact SHAP value of each
cause against any reference group is known (``scoring.demo.true_attributions``). This script

1. trains the production-size demo model (``--train-rows`` rows, 2,000,000 by default as ``train_model``,
   seed 0), or loads one (``--model``);
2. finds which training rows the model's stored reference sample is (reproducing the training split and
   checking the encoded rows match ``model.reference`` exactly), so the truth can be measured against the
   SAME cutoff reference group the explainer uses, latent causes included;
3. generates a fresh sample (``--rows``, seed ``--seed``, never seen in training), explains every denied
   application (PD >= cutoff + refer_band) and compares the top stated reason (``negative_ranked[0]``) with
   the true dominant adverse cause (largest positive true attribution against the cutoff group).

Two truths are reported, because the model cannot see everything that causes default:

* ``top_reason_matches_truth`` — against the true dominant cause among the fields the model uses (the
  model's inputs: the twelve structured fields, and the two text-derived ones where the product reads them).
  This is the figure the explainer can be held to.
* ``top_reason_matches_truth_incl_latent`` — against all fourteen causes, including the two latent,
  text-only ones (``purpose_category``, ``employment_type``) that no demo model input reveals: when one of
  those dominates, no reason the model can state is "right".

With ``--diagnose`` it also reports agreement by how clear the true winner is, and the same figure for
interventional TreeSHAP against the cutoff group (shap's TreeExplainer with the group as background), to
separate estimation error in the model from the choice of attribution method.

Usage: ``.venv/bin/python scripts/check_demo_reasons.py [--rows 20000] [--seed 20261125] [--diagnose]``
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scoring import demo
from scoring.artifact import save_model
from scoring.datasets import DEMO_TRAINING_ROWS, load_dataset
from scoring.explain import MAX_REASONS, Explainer
from scoring.features import no_information_rows
from scoring.predict import ScoringModel, load_model
from scoring.spec import get_spec
from scoring.train import REFERENCE_ROWS, TEST_SIZE, train_product

TRAIN_SEED = 0
DATA_SEED = 0  # scoring.datasets.load_dataset's default seed for the demo generator


def train_demo(rows: int, out_dir: Path, params: dict[str, Any] | None = None) -> Path:
    spec = get_spec("demo")
    dataset = load_dataset(spec, n=rows, seed=DATA_SEED)
    result = train_product(spec, dataset, seed=TRAIN_SEED, params=params)
    return save_model(result, spec, dataset, out_dir)


def reference_source(model: ScoringModel) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The raw values and latents of the rows in ``model.reference``, found by replaying the training split
    (scoring.train.train_product) and verified against the stored encoded rows."""
    spec = get_spec("demo")
    source = str(model.manifest["training_data"]["source"])
    found = re.fullmatch(r"demo generator \(n=(\d+), seed=(\d+)\)", source)
    if found is None:
        raise SystemExit(f"the model was not trained on the demo generator ({source!r})")
    rows, data_seed, seed = int(found.group(1)), int(found.group(2)), int(model.manifest["seed"])
    frame, _, latents = demo.generate_with_latents(rows, data_seed)
    dataset = load_dataset(spec, n=rows, seed=data_seed)
    keep = ~no_information_rows(spec, dataset.frame)
    kept = np.flatnonzero(keep)
    index = np.arange(int(keep.sum()))
    train_idx, _ = train_test_split(index, test_size=TEST_SIZE, stratify=dataset.y[keep], random_state=seed)
    train_idx = np.sort(train_idx)
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(len(train_idx), size=min(REFERENCE_ROWS, len(train_idx)), replace=False))
    original = kept[train_idx[sample]]
    encoded = model.encoder.encode_frame(dataset.frame.iloc[original].reset_index(drop=True))
    same = np.array_equal(np.nan_to_num(encoded, nan=-1e300), np.nan_to_num(model.reference, nan=-1e300))
    if not same:
        raise SystemExit("could not match model.reference to its training rows (did scoring.train change, or "
                         "was the model trained on other data?); the truth needs the reference rows' latents")
    return frame.iloc[original].reset_index(drop=True), latents.iloc[original].reset_index(drop=True)


def oracle_attributions(model: ScoringModel, frame: pd.DataFrame, group: pd.DataFrame,
                        group_latents: pd.DataFrame) -> pd.DataFrame:
    """A ceiling: logistic regression on the TRUE basis functions g_j of the twelve observed fields (the
    exact functional forms, no latents), fitted on the model's own training rows; its attributions
    ``beta_j * (g_j(x) - mean_G g_j)`` against the same cutoff group."""
    from sklearn.linear_model import LogisticRegression

    source = str(model.manifest["training_data"]["source"])
    found = re.fullmatch(r"demo generator \(n=(\d+), seed=(\d+)\)", source)
    assert found is not None
    train, y, train_latents = demo.generate_with_latents(int(found.group(1)), int(found.group(2)))
    observed = list(demo.CAUSAL_FIELDS)
    basis = demo.true_contributions(train, train_latents)[observed].to_numpy()
    fit = LogisticRegression(C=1e6, max_iter=5000).fit(basis, y)
    latents = pd.DataFrame({c: ["debt_consolidation" if c == "purpose_category" else "salaried"] * len(frame)
                            for c in demo.LATENT_FIELDS})
    rows = demo.true_contributions(frame.reset_index(drop=True), latents)[observed].to_numpy()
    centre = demo.true_contributions(group, group_latents)[observed].to_numpy().mean(axis=0)
    return pd.DataFrame(fit.coef_[0] * (rows - centre), columns=observed)


def top_fields(frame: pd.DataFrame, count: int) -> list[list[str]]:
    """Per row, the ``count`` columns with the largest POSITIVE values, largest first (ties: column order)."""
    values = frame.to_numpy(dtype=np.float64)
    order = np.argsort(-values, axis=1, kind="stable")
    names = list(frame.columns)
    return [[names[j] for j in row[:count] if values[i, j] > 0] for i, row in enumerate(order)]


def interventional(model: ScoringModel, explainer: Explainer, features: np.ndarray) -> pd.DataFrame:
    """Interventional TreeSHAP against the cutoff group (shap), grouped per field, in calibrated log-odds."""
    import shap

    group = model.reference[list(explainer.reference_group.rows)]
    tree = shap.TreeExplainer(model.booster, data=group, feature_perturbation="interventional",
                              model_output="raw")
    saved = os.dup(2)  # shap's C++ code draws a progress bar on stderr; keep the output readable
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            raw = tree.shap_values(features, check_additivity=False)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    values = model.calibration.a * np.asarray(raw)
    starts = [enc.first for enc in model.encoder.fields]
    grouped = np.add.reduceat(values, starts, axis=1)
    return pd.DataFrame(grouped, columns=list(model.encoder.field_names))


def agreement(stated: list[tuple[str, ...]], truth: list[list[str]]) -> dict[str, float]:
    rows = [(s, t) for s, t in zip(stated, truth, strict=True) if t]
    top = np.mean([bool(s) and s[0] == t[0] for s, t in rows])
    overlap = np.mean([len(set(s[:MAX_REASONS]) & set(t)) / len(t) for s, t in rows])
    top_in_true4 = np.mean([bool(s) and s[0] in t for s, t in rows])
    true_in_stated4 = np.mean([t[0] in s[:MAX_REASONS] for s, t in rows])
    return {"top": float(top), "top4_overlap": float(overlap), "top_reason_in_true_top4": float(top_in_true4),
            "true_top_in_stated_reasons": float(true_in_stated4), "rows": float(len(rows))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000, help="fresh applications to generate")
    parser.add_argument("--seed", type=int, default=20261125, help="seed of the fresh sample (not the training one)")
    parser.add_argument("--train-rows", type=int, default=DEMO_TRAINING_ROWS, help="rows to train the demo model on")
    parser.add_argument("--model", type=Path, default=None, help="an existing demo model directory")
    parser.add_argument("--params", type=json.loads, default=None,
                        help='hyperparameter overrides for training, as JSON (e.g. \'{"num_boost_round": 1000}\')')
    parser.add_argument("--diagnose", action="store_true", help="agreement by margin, interventional SHAP")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    spec = get_spec("demo")

    started = time.perf_counter()
    if args.model is None:
        model_dir = train_demo(args.train_rows, Path(tempfile.mkdtemp(prefix="candor-demo-")), args.params)
        print(f"trained demo model on {args.train_rows} rows (overrides {args.params or {}}) in "
              f"{time.perf_counter() - started:.1f} s: {model_dir}")
    else:
        model_dir = args.model
    model = load_model(model_dir)
    explainer = Explainer.for_model(model, spec)
    group = explainer.reference_group
    print(f"model: {model.version}  held-out auc: {model.manifest['metrics']['auc']:.4f}")
    print(f"cutoff reference group: {group.size} reference rows, PD {group.pd_min:.4f} to {group.pd_max:.4f} "
          f"(approval line {group.approval_line:.2f})")

    ref_frame, ref_latents = reference_source(model)
    group_frame = ref_frame.iloc[list(group.rows)].reset_index(drop=True)
    group_latents = ref_latents.iloc[list(group.rows)].reset_index(drop=True)

    frame, _, latents = demo.generate_with_latents(args.rows, args.seed)
    # What the model is given: the submitted fields plus the confirmed text-derived ones (as in training).
    scored = load_dataset(spec, n=args.rows, seed=args.seed).frame
    features = model.encoder.encode_frame(scored)
    raw = np.asarray(model.booster.predict(features, raw_score=True), dtype=np.float64)
    probabilities = model.calibration.pd_array(raw)
    denied = np.flatnonzero(probabilities >= spec.policy.cutoff + spec.policy.refer_band)
    print(f"fresh sample: {args.rows} applications (seed {args.seed})")
    print(f"denials: {len(denied)}")

    values = [{k: v for k, v in r.items() if v is not None}
              for r in scored.iloc[denied].to_dict("records")]
    started = time.perf_counter()
    explanations = explainer.explain_many(features[denied], values=values)
    elapsed = time.perf_counter() - started
    stated = [e.negative_ranked for e in explanations]

    truth = demo.true_attributions(frame.iloc[denied].reset_index(drop=True), group_frame,
                                   latents.iloc[denied].reset_index(drop=True), group_latents)
    inputs = {f.name for f in spec.model_inputs}
    observed = [name for name in demo.CONTRIBUTION_COLUMNS if name in inputs]
    truth_model_fields = top_fields(truth[observed], 4)
    truth_all = top_fields(truth, 4)
    seen = agreement(stated, truth_model_fields)
    everything = agreement(stated, truth_all)
    latent_top = np.mean([bool(t) and t[0] in demo.LATENT_FIELDS for t in truth_all])

    checks = {name: float(np.mean([getattr(e.checks, name).passed for e in explanations]))
              for name in ("additivity", "determinism", "faithfulness")}
    recourse = [e.recourse for e in explanations if e.recourse is not None]
    found = float(np.mean([r.found for r in recourse])) if recourse else 0.0
    print(f"explained {len(explanations)} denials in {elapsed:.1f} s (checks and recourse included)")
    print(f"checks passed: additivity {checks['additivity']:.3f}, determinism {checks['determinism']:.3f}, "
          f"faithfulness {checks['faithfulness']:.3f}; recourse found for {found:.3f}")
    print("truth = the largest positive exact SHAP value of the TRUE model against the same cutoff group")
    print(f"top_reason_matches_truth: {seen['top']:.3f}   "
          f"(true dominant cause among the {len(observed)} fields the model uses)")
    print(f"top4_overlap: {seen['top4_overlap']:.3f}   (share of the true top-4 among the stated reasons)")
    print(f"top_reason_in_true_top4: {seen['top_reason_in_true_top4']:.3f}")
    print(f"true_top_cause_in_stated_reasons: {seen['true_top_in_stated_reasons']:.3f}")
    print(f"top_reason_matches_truth_incl_latent: {everything['top']:.3f}   (all 14 causes; the true dominant "
          f"cause is a latent text-only one for {latent_top:.3f} of denials, which no model input reveals)")
    print(f"top4_overlap_incl_latent: {everything['top4_overlap']:.3f}")
    figures: dict[str, Any] = {"model_version": model.version, "train_rows": model.manifest["training_data"]["rows"],
                               "rows": args.rows, "seed": args.seed, "denials": len(denied),
                               "model_fields": seen, "including_latent": everything,
                               "latent_dominant_share": float(latent_top), "checks": checks,
                               "recourse_found": found, "reference_group": group.summary()}

    if args.diagnose:
        top1 = truth[observed].to_numpy()
        ordered = -np.sort(-top1, axis=1)
        margin = ordered[:, 0] - ordered[:, 1]
        matches = np.array([bool(s) and bool(t) and s[0] == t[0] for s, t in zip(stated, truth_model_fields,
                                                                                    strict=True)])
        print("agreement by how clearly the true dominant cause wins (gap to the runner-up, log-odds):")
        by_margin = {}
        for low, high in ((0.0, 0.05), (0.05, 0.1), (0.1, 0.2), (0.2, 0.4), (0.4, np.inf)):
            rows = (margin >= low) & (margin < high)
            if rows.any():
                print(f"  gap {low:.2f}-{high:.2f}: {rows.sum():5d} denials, "
                      f"top reason matches {matches[rows].mean():.3f}")
                by_margin[f"{low}-{high}"] = {"denials": int(rows.sum()), "match": float(matches[rows].mean())}
        started = time.perf_counter()
        inter = interventional(model, explainer, features[denied])
        inter_top = top_fields(inter, 4)
        inter_seen = agreement([tuple(t) for t in inter_top], truth_model_fields)
        print(f"interventional TreeSHAP vs the cutoff group ({time.perf_counter() - started:.1f} s): top matches "
              f"truth {inter_seen['top']:.3f}, top-4 overlap {inter_seen['top4_overlap']:.3f}")
        same_top = np.mean([bool(a) and bool(b) and a[0] == b[0] for a, b in zip(stated, inter_top, strict=True)])
        print(f"  path-dependent (shipped) and interventional agree on the top reason for {same_top:.3f}")
        oracle = top_fields(oracle_attributions(model, frame.iloc[denied], group_frame, group_latents), 4)
        oracle_seen = agreement([tuple(t) for t in oracle], truth_model_fields)
        print(f"ceiling: logistic regression on the true basis functions (exact forms, no latents, same training "
              f"rows): top matches truth {oracle_seen['top']:.3f}, top-4 overlap {oracle_seen['top4_overlap']:.3f}")
        figures["oracle"] = oracle_seen
        confusion: dict[str, int] = {}
        for s, t in zip(stated, truth_model_fields, strict=True):
            if s and t and s[0] != t[0]:
                key = f"{t[0]} -> {s[0]}"
                confusion[key] = confusion.get(key, 0) + 1
        worst = sorted(confusion.items(), key=lambda kv: -kv[1])[:8]
        print("  most frequent mismatches (true -> stated): " + ", ".join(f"{k} {v}" for k, v in worst))
        figures["diagnosis"] = {"by_margin": by_margin, "interventional": inter_seen,
                                "path_vs_interventional_top_agreement": float(same_top), "mismatches": worst}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
