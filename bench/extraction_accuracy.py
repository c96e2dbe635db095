"""How well does the language model read a loan's purpose from text nobody here wrote? Measured.

Data: the two Lending Club samples in ``$CANDOR_SHARED_DATA/lending_club`` (default ../shared/data),
rows of both files. Each row has Lending Club's own purpose category (``purpose``, chosen by the
borrower from a list) and, sometimes, the borrower's own description (``desc``: about 200 rows) and a
loan title (``title``). Two sources are read separately into the 14 purpose categories:

* ``desc``: the description, with Lending Club's "Borrower added on MM/DD/YY >" prefixes and HTML
  (``<br>``) removed;
* ``title``: the loan title (often Lending Club's default title for the category, so much easier).

For each source it prints n, accuracy and macro-F1 of the extractor (scoring.language's shipped
method for this field: a softmax head on the embeddings) and of a hand-written keyword baseline
(default: debt_consolidation, the majority class), and the majority-class rate; then the
alternatives it was chosen over, measured the same way, and coverage/accuracy at review thresholds;
then the shipped extractors on the demo generator's texts (our own templates: in-distribution).

Protocol (no tuning on evaluated rows): 5-fold cross-fitting over the rows. For each fold, the head
(and the category prior of the examples-only alternative) is fitted on the OTHER folds' rows (their
descriptions and titles) plus the hand-written examples of scoring/language_data/purpose_category.json
(weight 20), and the fold's descriptions and titles are read. No row is ever read by a fit that saw
it. ``--fit`` fits the shipped head and prior the same way on all rows and writes them to
scoring/language_data. The examples are hand-written; T = 0.05 is the encoder's training scale.

Run: ``.venv/bin/python bench/extraction_accuracy.py [--fit] [--demo-rows 2000]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import html
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import KFold

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scoring import demo
from scoring.language import DATA_DIR, Extractor, LocalMiniLM, head_path, load_catalogue, load_head, save_head

SHARED = Path(os.environ.get("CANDOR_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
FILES = ("lending_club_sample_JGFuentesC_2000.csv", "lending_club_sample_bbodami_1000.csv")
MAJORITY = "debt_consolidation"
FOLDS = 5
SEED = 0
HEAD_C = 1.0
FloatMatrix = npt.NDArray[np.float32]

# The keyword baseline: first rule that matches wins; nothing matches -> the majority class.
KEYWORD_RULES: tuple[tuple[str, str], ...] = (
    ("wedding", r"wedding|bride|honeymoon|engagement ring"),
    ("medical", r"medical|hospital|surgery|dental|dentist|doctor|medicine|health"),
    ("renewable_energy", r"solar|renewable|green energy|geothermal"),
    ("educational", r"tuition|college|school|education|student|degree"),
    ("house", r"down payment|home buying|buy(?:ing)? a (?:house|home)|closing costs|first home"),
    ("moving", r"\bmov(?:e|ing)\b|relocat"),
    ("vacation", r"vacation|\btrip\b|travel|cruise|holiday"),
    ("small_business", r"business|company|inventory|start-?up|equipment"),
    ("home_improvement", r"home improvement|remodel|renovat|kitchen|bathroom|roof|repairs? (?:to|on) (?:the|my|our) "
                         r"(?:house|home)|house|home"),
    ("car", r"\bcar\b|auto|vehicle|truck|motorcycle"),
    ("major_purchase", r"purchase|furniture|appliance|\bbuy"),
    ("debt_consolidation", r"consolidat|debts|bills|loans"),
    ("credit_card", r"credit card|card|refinanc"),
    ("debt_consolidation", r"debt"),
    ("other", r"\bother\b|personal|taxes|legal|funeral"),
)
_KEYWORD_PATTERNS = tuple((category, re.compile(pattern, re.IGNORECASE)) for category, pattern in KEYWORD_RULES)


def keyword_baseline(text: str) -> str:
    for category, pattern in _KEYWORD_PATTERNS:
        if pattern.search(text):
            return category
    return MAJORITY


def clean_desc(raw: object) -> str:
    """A borrower's description without Lending Club's "Borrower added on ... >" stamps and HTML."""
    if not isinstance(raw, str):
        return ""
    text = re.sub(r"(?i)<br\s*/?>", " ", raw)
    text = re.sub(r"<[^>]+>", " ", text)
    text = html.unescape(text)
    text = re.sub(r"(?i)\b(?:borrower|\d+)\s+added on \d{1,2}/\d{1,2}/\d{2,4}\s*>", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def load_rows() -> pd.DataFrame:
    frames = []
    for name in FILES:
        frame = pd.read_csv(SHARED / "lending_club" / name, usecols=["id", "desc", "title", "purpose"],
                            low_memory=False)
        frame["file"] = name
        frames.append(frame)
    rows = pd.concat(frames, ignore_index=True)
    rows = rows[rows["purpose"].notna()].reset_index(drop=True)
    rows["desc_clean"] = rows["desc"].map(clean_desc)
    rows["title_clean"] = rows["title"].fillna("").astype(str).str.strip()
    return rows


def fit_prior(purposes: Sequence[str], categories: Sequence[str]) -> dict[str, float]:
    """Category shares with one pseudo-count each (so no category is impossible)."""
    counts = pd.Series(list(purposes)).value_counts().reindex(list(categories)).fillna(0.0) + 1.0
    return {str(k): float(v) for k, v in (counts / counts.sum()).items()}


def training_set(rows: pd.DataFrame, desc_emb: FloatMatrix, title_emb: FloatMatrix, example_emb: FloatMatrix,
                 example_labels: Sequence[str]) -> tuple[FloatMatrix, list[str], npt.NDArray[np.float64]]:
    """Every text of ``rows`` (description and title) plus the hand-written examples (weight 20)."""
    has_desc = (rows["desc_clean"] != "").to_numpy()
    has_title = (rows["title_clean"] != "").to_numpy()
    x = np.vstack([desc_emb[has_desc], title_emb[has_title], example_emb])
    y = [*rows.loc[has_desc, "purpose"], *rows.loc[has_title, "purpose"], *example_labels]
    weights = np.concatenate([np.ones(int(has_desc.sum() + has_title.sum())), np.full(len(example_labels), 20.0)])
    return x, y, weights


def fit_head(x: FloatMatrix, y: Sequence[str], weights: npt.NDArray[np.float64]) -> LogisticRegression:
    return LogisticRegression(C=HEAD_C, max_iter=5000).fit(x, list(y), sample_weight=weights)


def scores(truth: Sequence[str], pred: Sequence[str]) -> tuple[float, float]:
    t, p = np.asarray(truth, dtype=object), np.asarray(pred, dtype=object)
    return float((t == p).mean()), float(f1_score(t, p, average="macro", zero_division=0))


def line(label: str, n: int, truth: Sequence[str], pred: Sequence[str]) -> str:
    acc, f1 = scores(truth, pred)
    return f"  {label:<46} n={n:<5} accuracy={acc:6.1%}  macro-F1={f1:.3f}"


def coverage_table(label: str, truth: Sequence[str], pred: Sequence[str], confidence: npt.NDArray[np.float64]) -> None:
    t, p = np.asarray(truth, dtype=object), np.asarray(pred, dtype=object)
    cells = []
    for threshold in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        kept = confidence >= threshold
        acc = float((t[kept] == p[kept]).mean()) if kept.any() else float("nan")
        cells.append(f"{threshold:.1f}: {kept.mean():4.0%} kept {acc:5.1%} right")
    print(f"  review threshold ({label})\n    " + " | ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--fit", action="store_true",
                        help="refit the shipped prior and head on all rows, write them to scoring/language_data")
    parser.add_argument("--demo-rows", type=int, default=2000)
    args = parser.parse_args()

    rows = load_rows()
    catalogue = load_catalogue("purpose_category")
    encoder = LocalMiniLM().load()
    started = time.perf_counter()
    desc_emb = encoder.encode(rows["desc_clean"].tolist())
    title_emb = encoder.encode(rows["title_clean"].tolist())
    example_labels = [c for c in catalogue.categories for _ in catalogue.examples[c]]
    example_emb = encoder.encode([e for c in catalogue.categories for e in catalogue.examples[c]])
    has_desc = (rows["desc_clean"] != "").to_numpy()
    has_title = (rows["title_clean"] != "").to_numpy()
    print(f"encoder: {encoder.version}")
    print(f"rows: {len(rows)} from {len(FILES)} files; with a description: {has_desc.sum()}; with a title: "
          f"{has_title.sum()}; encoded {2 * len(rows) + len(example_labels)} texts in "
          f"{time.perf_counter() - started:.1f} s")

    if args.fit:
        prior = fit_prior(rows["purpose"], catalogue.categories)
        path = DATA_DIR / f"{catalogue.field}.json"
        raw = json.loads(path.read_text(encoding="utf-8"))
        raw["prior"] = {"about": f"Share of each purpose among the {len(rows)} rows of the Lending Club samples "
                                 f"{', '.join(FILES)}, with one pseudo-count each; fitted by "
                                 "bench/extraction_accuracy.py --fit. Used only when the extractor reads by "
                                 "the examples (an encoder without a head).",
                        "shares": {k: round(v, 5) for k, v in prior.items()}}
        path.write_text(json.dumps(raw, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        x, y, weights = training_set(rows, desc_emb, title_emb, example_emb, example_labels)
        head = fit_head(x, y, weights)
        about = (f"Softmax regression (scikit-learn LogisticRegression, C={HEAD_C}) on {encoder.name} embeddings of "
                 f"the {has_desc.sum()} descriptions and {has_title.sum()} titles of the Lending Club samples "
                 f"{', '.join(FILES)} (label: Lending Club's purpose) and the hand-written examples of "
                 f"{catalogue.field}.json (weight 20); fitted by bench/extraction_accuracy.py --fit.")
        save_head(head_path(catalogue.field), [str(c) for c in head.classes_], head.coef_, head.intercept_,
                  encoder.name, about)
        check = load_head(catalogue.field)
        assert check is not None
        gap = np.abs(check.probabilities(x[:200]) - head.predict_proba(x[:200])).max()
        print(f"wrote the prior and the head ({len(y)} texts; max probability gap after float32 storage "
              f"{gap:.1e}) to {DATA_DIR}")
        return

    head = load_head(catalogue.field)
    shipped = Extractor(catalogue, encoder, threshold=0.5)
    print(f"shipped extractor: {shipped.model_version}")
    if head is None or shipped.head is None:
        raise SystemExit("no shipped head for this encoder; run with --fit first")

    # 5-fold cross-fitting over rows: the head and the prior are fitted on the other folds' rows
    # (their descriptions and titles) and the examples; the fold's descriptions and titles are read.
    n = len(rows)
    pred = {key: np.empty(n, dtype=object) for key in ("head_desc", "head_title", "proto_desc", "proto_title",
                                                       "zero_desc", "zero_title")}
    conf = {key: np.zeros(n) for key in ("head_desc", "head_title")}
    zero_shot = Extractor(catalogue, encoder, use_prior=False, head=False)
    for key, emb in (("zero_desc", desc_emb), ("zero_title", title_emb)):
        pred[key][:] = [zero_shot.categories[i] for i in zero_shot.probabilities(emb).argmax(axis=1)]
    for train, test in KFold(FOLDS, shuffle=True, random_state=SEED).split(rows):
        train_rows = rows.iloc[train]
        fold_head = fit_head(*training_set(train_rows, desc_emb[train], title_emb[train], example_emb,
                                           example_labels))
        order = [list(fold_head.classes_).index(c) for c in catalogue.categories]
        proto = Extractor(dataclasses.replace(catalogue, prior=fit_prior(train_rows["purpose"], catalogue.categories)),
                          encoder, head=False)
        for source, emb in (("desc", desc_emb[test]), ("title", title_emb[test])):
            p = fold_head.predict_proba(emb)[:, order]
            pred[f"head_{source}"][test] = [catalogue.categories[i] for i in p.argmax(axis=1)]
            conf[f"head_{source}"][test] = p.max(axis=1)
            pred[f"proto_{source}"][test] = [proto.categories[i] for i in proto.probabilities(emb).argmax(axis=1)]

    print()
    print(f"Protocol: {FOLDS}-fold cross-fitting over the {n} rows (KFold, shuffled, seed {SEED}): the head and the "
          "category prior")
    print("are fitted on the other folds' rows (their descriptions and titles) plus the hand-written examples, "
          "then the fold's")
    print("descriptions and titles are read. No evaluated row is ever in its own fit. The shipped head is the same "
          "fit on all rows.")
    for source, mask, column in (("desc", has_desc, "desc_clean"), ("title", has_title, "title_clean")):
        truth = rows.loc[mask, "purpose"].tolist()
        count = len(truth)
        majority = pd.Series(truth).value_counts()
        print(f"\nsource={source}  n={count}  majority class {majority.index[0]} = {majority.iloc[0] / count:.1%}")
        print(line("extractor (shipped method: head, cross-fitted)", count, truth, pred[f"head_{source}"][mask]))
        print(line("keyword baseline", count, truth, [keyword_baseline(t) for t in rows.loc[mask, column]]))
        print(line("majority class", count, truth, [str(majority.index[0])] * count))
        print("  alternatives measured the same way:")
        print(line("  examples + prior (cross-fitted)", count, truth, pred[f"proto_{source}"][mask]))
        print(line("  examples only (zero-shot, nothing fitted)", count, truth, pred[f"zero_{source}"][mask]))
        coverage_table(source, truth, pred[f"head_{source}"][mask], conf[f"head_{source}"][mask])

    # The demo product's own generated texts: our templates, so in-distribution (not the headline).
    frame, _, latents = demo.generate_with_latents(args.demo_rows, seed=20240)
    print(f"\ndemo generator ({args.demo_rows} applications, seed 20240; texts from our own templates), "
          "shipped extractors:")
    for text_field, target in (("loan_purpose_text", "purpose_category"), ("employment_text", "employment_type")):
        categories = demo.PURPOSE_CATEGORIES if target == "purpose_category" else demo.EMPLOYMENT_TYPES
        extractor = Extractor(load_catalogue(target), encoder, categories=categories, threshold=0.5)
        present = frame[text_field].notna().to_numpy()
        truth = latents.loc[present, target].tolist()
        p = extractor.probabilities(encoder.encode(frame.loc[present, text_field].tolist()))
        method = "head" if extractor.head is not None else "examples"
        print(line(f"{target} from {text_field} ({method})", len(truth), truth,
                   [extractor.categories[i] for i in p.argmax(axis=1)]))
        coverage_table(target, truth, [extractor.categories[i] for i in p.argmax(axis=1)], p.max(axis=1))


if __name__ == "__main__":
    main()
