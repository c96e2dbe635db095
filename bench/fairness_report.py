"""The fair-lending report (issue 5, section 6) on German Credit and on the Boston Fed HMDA study.

German Credit: the german-credit model is trained with ``scoring.train.train_product`` on the full data
file (which sets 20% aside for its held-out metrics, seed 0), every one of the 1,000 applications is
scored (so 80% of them in-sample) and decided by the product's policy (``scoring.policy.policy_decide``
on the model's PD). Groups come from the monitoring-only fields: sex from personal_status_sex (A91, A93,
A94 male; A92, A95 female; german.doc attribute 9) and age 62 and over against under 62 (Reg B comment
6(b)(2)-2, "elderly"), and their intersection. The data has no lender decisions (every row was a granted
loan), so only the model's decisions are reported.

Boston Fed HMDA (``hmda-boston``, loader ``aer_hmda``): the same for race (afam) and marital status
(single), on the lender's historical decisions (the data's deny column) and on the model's decisions.

"Approved" is reported two ways for the model: the policy approved automatically (a referral to an
officer counts as not approved), and not denied (a referral counts as approved, which is how the
historical deny column reads). Scores: the model's PD (probability of default; for HMDA the
probability of denial), so a positive SMD means the protected group looks riskier to the model.

Run: ``.venv/bin/python bench/fairness_report.py``. Prints the reports, writes
``bench/out/fairness_report.json`` and the charts ``bench/out/fairness_german.svg``,
``bench/out/fairness_hmda_historical.svg`` and ``bench/out/fairness_hmda_model_not_denied.svg``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scoring.datasets import load_dataset
from scoring.fairness import (
    ELDERLY_LABEL,
    UNDER_ELDERLY_LABEL,
    FairnessReport,
    fairness_chart_svg,
    fairness_report,
    format_report,
    german_monitoring_groups,
    policy_outcomes,
)
from scoring.policy import APPROVED, DENIED
from scoring.spec import PRODUCTS_DIR, load_spec
from scoring.train import train_product

OUT = Path(__file__).resolve().parent / "out"
SEED = 0
AFAM = "African American"
NOT_AFAM = "not African American"
METRIC_KEYS = ("auc", "cv_auc", "cv_auc_std", "ks", "brier", "benchmark_auc", "benchmark_cv_auc")


def _scored(slug: str) -> tuple[Any, Any, np.ndarray, list[str], dict[str, Any]]:
    spec = load_spec(PRODUCTS_DIR / f"{slug}.toml")
    dataset = load_dataset(spec)
    result = train_product(spec, dataset, seed=SEED)
    pds = result.predict_pd(result.encoder.encode_frame(dataset.frame))
    outcomes = policy_outcomes(spec.policy, pds, dataset.frame)
    training = {key: result.metrics[key] for key in METRIC_KEYS}
    training["rows"] = result.data["rows"]
    training["policy"] = {"cutoff": spec.policy.cutoff, "refer_band": spec.policy.refer_band}
    training["outcomes"] = {o: outcomes.count(o) for o in ("approved", "referred", "denied")}
    return spec, dataset, pds, outcomes, training


def german() -> dict[str, Any]:
    spec, dataset, pds, outcomes, training = _scored("german-credit")
    frame = german_monitoring_groups(dataset.frame)
    frame["pd"] = pds
    frame["approved"] = [o == APPROVED for o in outcomes]
    frame["not_denied"] = [o != DENIED for o in outcomes]
    common: dict[str, Any] = {
        "group_columns": ["sex", "age_band"],
        "protected": {"sex": "female", "age_band": ELDERLY_LABEL},
        "control": {"sex": "male", "age_band": UNDER_ELDERLY_LABEL},
        "score_column": "pd",
        "intersections": [("sex", "age_band")],
    }
    reports = {
        "model_approved": fairness_report(
            frame, approved_column="approved",
            title="German Credit, model decisions: approved (a referral counts as not approved)", **common),
        "model_not_denied": fairness_report(
            frame, approved_column="not_denied",
            title="German Credit, model decisions: not denied (a referral counts as approved)", **common),
    }
    return {"product": spec.slug, "training": training, "reports": reports}


def hmda() -> dict[str, Any]:
    spec, dataset, pds, outcomes, training = _scored("hmda-boston")
    frame = pd.DataFrame({
        "race": [AFAM if v else NOT_AFAM for v in dataset.frame["afam"]],
        "marital_status": ["single" if v else "not single" for v in dataset.frame["single"]],
        "pd": pds,
        "historical_approved": dataset.y == 0,
        "approved": [o == APPROVED for o in outcomes],
        "not_denied": [o != DENIED for o in outcomes],
    })
    common: dict[str, Any] = {
        "group_columns": ["race", "marital_status"],
        "protected": {"race": AFAM, "marital_status": "single"},
        "control": {"race": NOT_AFAM, "marital_status": "not single"},
        "score_column": "pd",
        "intersections": [("race", "marital_status")],
    }
    reports = {
        "historical": fairness_report(
            frame, approved_column="historical_approved",
            title="Boston Fed HMDA, historical lender decisions: not denied (deny = no)", **common),
        "model_not_denied": fairness_report(
            frame, approved_column="not_denied",
            title="Boston Fed HMDA, model decisions: not denied (a referral counts as approved)", **common),
        "model_approved": fairness_report(
            frame, approved_column="approved",
            title="Boston Fed HMDA, model decisions: approved (a referral counts as not approved)", **common),
    }
    return {"product": spec.slug, "training": training, "reports": reports}


def _headline(name: str, report: FairnessReport, breakdown: str, protected: str) -> str:
    comparison = report.breakdown(breakdown).comparison(protected)
    air = comparison.air
    if air.value is None or air.lower is None or air.upper is None:
        return f"{name}: AIR {protected} vs {comparison.control}: n/a ({air.note})"
    flag = "below 4/5" if comparison.four_fifths_flag else "not below 4/5"
    return (f"{name}: AIR {protected} vs {comparison.control} = {air.value:.3f} "
            f"({100 * report.confidence:g}% CI {air.lower:.3f} to {air.upper:.3f}), {flag}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=OUT / "fairness_report.json")
    args = parser.parse_args()
    results = {"german-credit": german(), "hmda-boston": hmda()}
    for slug, result in results.items():
        print(f"== {slug}: training {json.dumps(result['training'])}")
        for report in result["reports"].values():
            print(format_report(report))
            print()
    print("== headline adverse impact ratios (Katz log-ratio interval)")
    german_reports = results["german-credit"]["reports"]
    hmda_reports = results["hmda-boston"]["reports"]
    for key, report in german_reports.items():
        print(_headline(f"german {key}", report, "sex", "female"))
        print(_headline(f"german {key}", report, "age_band", ELDERLY_LABEL))
        print(_headline(f"german {key}", report, "sex × age_band", f"female × {ELDERLY_LABEL}"))
    for key, report in hmda_reports.items():
        print(_headline(f"hmda {key}", report, "race", AFAM))
    OUT.mkdir(parents=True, exist_ok=True)
    payload = {slug: {"product": r["product"], "training": r["training"],
                      "reports": {key: report.to_dict() for key, report in r["reports"].items()}}
               for slug, r in results.items()}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    (OUT / "fairness_german.svg").write_text(
        fairness_chart_svg(german_reports["model_approved"], id_prefix="fairness-german"), encoding="utf-8")
    for key in ("historical", "model_not_denied"):
        (OUT / f"fairness_hmda_{key}.svg").write_text(
            fairness_chart_svg(hmda_reports[key], id_prefix=f"fairness-hmda-{key}"), encoding="utf-8")
    print(f"wrote {args.json} and the charts bench/out/fairness_german.svg, "
          "bench/out/fairness_hmda_historical.svg, bench/out/fairness_hmda_model_not_denied.svg")


if __name__ == "__main__":
    main()
