"""How well does the language model read a loan's purpose from text nobody here wrote? Measured.

Data: the two Lending Club samples in ``$CANDOR_SHARED_DATA/lending_club`` (default ../shared/data),
copied from two unrelated public repositories (no loan id in both). Each row has Lending Club's own
purpose category (``purpose``, chosen by the borrower from a list) and, sometimes, the borrower's own
description (``desc``: 199 rows, all issued 2007-2014) and a loan title (``title``). Two sources are
read separately into the 14 purpose categories:

* ``desc``: the description, cleaned of Lending Club's page furniture: the "Borrower added on
  MM/DD/YY >" stamps, HTML (``<br>``), links, a trailing "null", and a stamped paragraph repeated
  word for word;
* ``title``: the loan title (often Lending Club's default title for the category, so much easier).

Protocol (no row is read by a fit that saw it; nothing tuned on the evaluated rows):

* TRAINING file: lending_club_sample_JGFuentesC_2000.csv. The shipped head
  (``scoring/language_data/purpose_category.head.npz``) and the category prior are fitted on its
  rows only, plus the hand-written examples of ``purpose_category.json``. ``--fit`` rebuilds them
  (deterministic: float32 encoder, lbfgs, KFold seed 0) and stores their provenance in the head.
* HELD-OUT file: lending_club_sample_bbodami_1000.csv. Its descriptions and titles are the headline
  figures; the shipped head is read from disk and evaluated on them as shipped. The choices of the
  method (description correction on, C = 1) were made by 5-fold cross-validation inside the
  training file.
* For the variance of so small a test: the same method fitted the other way round (on the held-out
  file, read on the training file), and both directions pooled, so all 199 descriptions are read by
  a fit that never saw their file.

The method: softmax regression (LogisticRegression, C = 1) on the sentence embeddings of the
training rows' descriptions and titles plus the examples (weight 20), then a "description
correction": titles outnumber descriptions 15 to 1 and a title that says "credit card" is nearly
always ``credit_card``, while a description that talks of credit cards is more often
``debt_consolidation``. So a per-category shift of the logits is fitted by maximum likelihood
(L2 penalty 0.01) on out-of-fold readings of the training file's descriptions (5 folds, seed 0) and
added to the head's bias.

For each source it prints n, accuracy and macro-F1 of the shipped extractor, of a hand-written
keyword baseline (nothing matches -> debt_consolidation) and of the majority class; the alternatives
measured the same way; coverage/accuracy at review thresholds; the blind readers (people or other
annotators who read the same descriptions from the text alone, ``blind_readings.py``) against the
same labels; the evidence for the ceiling (how far the description alone determines Lending Club's
label); then the shipped extractors on the demo
generator's texts (our own templates: in-distribution). Figures go to ``bench/out/extraction_accuracy.json``.

Run: ``.venv/bin/python bench/extraction_accuracy.py [--fit] [--demo-rows 2000]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import html
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.optimize import minimize
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import KFold

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scoring import demo
from scoring.language import (
    DATA_DIR,
    Catalogue,
    Extractor,
    LinearHead,
    LocalMiniLM,
    head_path,
    load_catalogue,
    load_head,
    save_head,
)

SHARED = Path(os.environ.get("CANDOR_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
TRAIN_FILE = "lending_club_sample_JGFuentesC_2000.csv"
TEST_FILE = "lending_club_sample_bbodami_1000.csv"
MAJORITY = "debt_consolidation"
FOLDS = 5
SEED = 0
HEAD_C = 1.0
EXAMPLE_WEIGHT = 20.0
CORRECTION_PENALTY = 0.01
OUT = Path(__file__).resolve().parent / "out"
READINGS = Path(__file__).resolve().parent / "data" / "lending_club_desc_blind_readings.csv"
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


_STAMP = re.compile(r"(?i)\b(?:borrower|\d+)\s+added on \d{1,2}/\d{1,2}/\d{2,4}\s*>")


def clean_desc(raw: object) -> str:
    """A borrower's description without Lending Club's page furniture.

    Removes the "Borrower added on MM/DD/YY >" stamps, HTML tags and entities, links, a trailing
    "null" (an empty field the site appended), and paragraphs repeated word for word (the site
    stamped each resubmission). The borrower's own words are kept as written.
    """
    if not isinstance(raw, str):
        return ""
    text = re.sub(r"(?i)<br\s*/?>", " ", raw)
    text = re.sub(r"<[^>]+>", " ", text)
    text = html.unescape(text)
    text = re.sub(r"(?i)\bhttps?://\S+", " ", text)
    paragraphs: list[str] = []
    for part in _STAMP.split(text):
        part = re.sub(r"\s+", " ", part).strip()
        part = re.sub(r"(?i)\s*\bnull$", "", part).strip()
        if part and part.lower() not in (p.lower() for p in paragraphs):
            paragraphs.append(part)
    return " ".join(paragraphs)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_rows(name: str) -> pd.DataFrame:
    frame = pd.read_csv(SHARED / "lending_club" / name, usecols=["id", "desc", "title", "purpose"], low_memory=False)
    frame = frame[frame["purpose"].notna()].reset_index(drop=True)
    frame["file"] = name
    frame["stamped"] = frame["desc"].fillna("").astype(str).str.contains(_STAMP)
    frame["desc_clean"] = frame["desc"].map(clean_desc)
    frame["title_clean"] = frame["title"].fillna("").astype(str).str.strip()
    return frame


@dataclasses.dataclass(frozen=True)
class Encoded:
    """One file's rows and their embeddings (a row without a description or title has a zero row)."""

    rows: pd.DataFrame
    desc: FloatMatrix
    title: FloatMatrix

    @property
    def has_desc(self) -> npt.NDArray[np.bool_]:
        present: npt.NDArray[np.bool_] = (self.rows["desc_clean"] != "").to_numpy(dtype=bool)
        return present

    @property
    def has_title(self) -> npt.NDArray[np.bool_]:
        present: npt.NDArray[np.bool_] = (self.rows["title_clean"] != "").to_numpy(dtype=bool)
        return present

    def subset(self, index: npt.NDArray[np.int_]) -> Encoded:
        return Encoded(self.rows.iloc[index].reset_index(drop=True), self.desc[index], self.title[index])


def encode_file(encoder: LocalMiniLM, name: str) -> Encoded:
    rows = load_rows(name)
    return Encoded(rows, encoder.encode(rows["desc_clean"].tolist()), encoder.encode(rows["title_clean"].tolist()))


@dataclasses.dataclass(frozen=True)
class Examples:
    texts: list[str]
    labels: list[str]
    embeddings: FloatMatrix


def fit_prior(purposes: Sequence[str], categories: Sequence[str]) -> dict[str, float]:
    """Category shares with one pseudo-count each (so no category is impossible)."""
    counts = pd.Series(list(purposes)).value_counts().reindex(list(categories)).fillna(0.0) + 1.0
    return {str(k): float(v) for k, v in (counts / counts.sum()).items()}


def training_set(data: Encoded, examples: Examples) -> tuple[FloatMatrix, list[str], npt.NDArray[np.float64]]:
    """Every description and title of ``data`` plus the hand-written examples (weight 20)."""
    has_desc, has_title = data.has_desc, data.has_title
    x = np.vstack([data.desc[has_desc], data.title[has_title], examples.embeddings])
    y = [*data.rows.loc[has_desc, "purpose"], *data.rows.loc[has_title, "purpose"], *examples.labels]
    weights = np.concatenate([np.ones(int(has_desc.sum() + has_title.sum())),
                              np.full(len(examples.labels), EXAMPLE_WEIGHT)])
    return x, y, weights


def fit_head(data: Encoded, examples: Examples) -> LogisticRegression:
    x, y, weights = training_set(data, examples)
    return LogisticRegression(C=HEAD_C, max_iter=5000).fit(x, y, sample_weight=weights)


def description_correction(log_p: npt.NDArray[np.float64], labels: Sequence[str], classes: Sequence[str],
                           penalty: float = CORRECTION_PENALTY) -> npt.NDArray[np.float64]:
    """The per-class logit shift that best fits these descriptions' labels (maximum likelihood, L2).

    ``log_p`` are a head's log-probabilities for descriptions it did not see; the shift b minimises
    mean(-log softmax(log_p + b)[label]) + penalty / 2 * |b|^2 (convex; L-BFGS, deterministic).
    """
    index = np.array([list(classes).index(label) for label in labels])
    counts = np.bincount(index, minlength=len(classes)).astype(np.float64)
    n = float(len(index))

    def objective(shift: npt.NDArray[np.float64]) -> tuple[float, npt.NDArray[np.float64]]:
        z = log_p + shift
        top = z.max(axis=1, keepdims=True)
        log_norm = top[:, 0] + np.log(np.exp(z - top).sum(axis=1))
        p = np.exp(z - log_norm[:, None])
        loss = float((log_norm - z[np.arange(len(index)), index]).mean() + penalty / 2 * shift @ shift)
        grad = (p.sum(axis=0) - counts) / n + penalty * shift
        return loss, grad

    result = minimize(objective, np.zeros(len(classes)), jac=True, method="L-BFGS-B")
    shift: npt.NDArray[np.float64] = np.asarray(result.x, dtype=np.float64)
    return shift


@dataclasses.dataclass(frozen=True)
class FittedHead:
    classes: tuple[str, ...]
    weights: npt.NDArray[np.float64]
    intercept: npt.NDArray[np.float64]
    correction: npt.NDArray[np.float64]
    oof_descriptions: int

    @property
    def bias(self) -> npt.NDArray[np.float64]:
        return self.intercept + self.correction

    def probabilities(self, embeddings: FloatMatrix, corrected: bool = True) -> npt.NDArray[np.float64]:
        logits = np.asarray(embeddings, dtype=np.float64) @ self.weights.T + (self.bias if corrected
                                                                                else self.intercept)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        result: npt.NDArray[np.float64] = p / p.sum(axis=1, keepdims=True)
        return result


def fit_method(data: Encoded, examples: Examples) -> FittedHead:
    """The head on all of ``data``, plus the description correction from out-of-fold readings."""
    head = fit_head(data, examples)
    classes = tuple(str(c) for c in head.classes_)
    log_parts, labels = [], []
    for train, test in KFold(FOLDS, shuffle=True, random_state=SEED).split(data.rows):
        fold = fit_head(data.subset(train), examples)
        held = data.subset(test)
        proba = np.zeros((int(held.has_desc.sum()), len(classes)))
        proba[:, [classes.index(str(c)) for c in fold.classes_]] = fold.predict_proba(held.desc[held.has_desc])
        log_parts.append(np.log(np.maximum(proba, 1e-12)))
        labels.extend(held.rows.loc[held.has_desc, "purpose"])
    correction = description_correction(np.vstack(log_parts), labels, classes)
    return FittedHead(classes=classes, weights=np.asarray(head.coef_, dtype=np.float64),
                      intercept=np.asarray(head.intercept_, dtype=np.float64), correction=correction,
                      oof_descriptions=len(labels))


def scores(truth: Sequence[str], pred: Sequence[str]) -> tuple[float, float]:
    t, p = np.asarray(truth, dtype=object), np.asarray(pred, dtype=object)
    return float((t == p).mean()), float(f1_score(t, p, average="macro", zero_division=0))


def line(label: str, truth: Sequence[str], pred: Sequence[str], figures: dict[str, Any]) -> str:
    acc, f1 = scores(truth, pred)
    figures[label] = {"n": len(truth), "accuracy": round(acc, 4), "macro_f1": round(f1, 4)}
    # A normal-approximation 95% interval: with n in the tens, the figures move by several points.
    half = 1.96 * np.sqrt(acc * (1 - acc) / max(len(truth), 1))
    return (f"  {label:<50} n={len(truth):<5} accuracy={acc:6.1%} (±{half:4.1%})  macro-F1={f1:.3f}")


def coverage_table(label: str, truth: Sequence[str], pred: Sequence[str], confidence: npt.NDArray[np.float64]) -> None:
    t, p = np.asarray(truth, dtype=object), np.asarray(pred, dtype=object)
    cells = []
    for threshold in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        kept = confidence >= threshold
        acc = float((t[kept] == p[kept]).mean()) if kept.any() else float("nan")
        cells.append(f"{threshold:.1f}: {kept.mean():4.0%} kept {acc:5.1%} right")
    print(f"  review threshold ({label})\n    " + " | ".join(cells))


def labels_of(classes: Sequence[str], p: npt.NDArray[np.float64]) -> list[str]:
    return [classes[i] for i in p.argmax(axis=1)]


def provenance(train: Encoded, examples: Examples, catalogue: Catalogue, encoder: LocalMiniLM,
               fitted: FittedHead) -> dict[str, Any]:
    import sklearn

    def described(name: str, data: Encoded | None) -> dict[str, Any]:
        entry: dict[str, Any] = {"file": f"lending_club/{name}",
                                 "sha256": file_sha256(SHARED / "lending_club" / name)}
        if data is not None:
            entry.update(rows=len(data.rows), descriptions=int(data.has_desc.sum()), titles=int(data.has_title.sum()))
        return entry

    return {
        "built_by": ".venv/bin/python bench/extraction_accuracy.py --fit",
        "built_on": dt.datetime.now(dt.UTC).date().isoformat(),
        "data_origin": "Lending Club public loan data, copied as listed in ../shared/data/README.md",
        "label": "purpose (Lending Club's own category)",
        "training_files": [described(TRAIN_FILE, train)],
        "held_out_files": [described(TEST_FILE, None)],
        "examples": {"catalogue": f"{catalogue.field}.json", "count": len(examples.texts), "weight": EXAMPLE_WEIGHT,
                     "sha256": hashlib.sha256(json.dumps(examples.texts).encode("utf-8")).hexdigest()},
        "method": (f"LogisticRegression(C={HEAD_C}, lbfgs) on the embeddings of the training rows' cleaned "
                   "descriptions and titles plus the examples; bias = intercept + description correction "
                   f"(per-class logit shift, maximum likelihood with L2 {CORRECTION_PENALTY}, on "
                   f"{fitted.oof_descriptions} out-of-fold description readings, KFold({FOLDS}, shuffle, "
                   f"random_state={SEED}))"),
        "seed": SEED,
        "correction": {c: round(float(v), 5) for c, v in zip(fitted.classes, fitted.correction, strict=True)},
        "encoder": encoder.name,
        "encoder_version": encoder.version,
        "scikit_learn": sklearn.__version__,
    }


def write_fit(train: Encoded, examples: Examples, catalogue: Catalogue, encoder: LocalMiniLM) -> None:
    prior = fit_prior(train.rows["purpose"], catalogue.categories)
    path = DATA_DIR / f"{catalogue.field}.json"
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw["prior"] = {"about": f"Share of each purpose among the {len(train.rows)} rows of the Lending Club sample "
                             f"{TRAIN_FILE} (the training file; {TEST_FILE} is held out), with one pseudo-count "
                             "each; fitted by bench/extraction_accuracy.py --fit. Used only when the extractor "
                             "reads by the examples (an encoder without a head).",
                    "shares": {k: round(v, 5) for k, v in prior.items()}}
    path.write_text(json.dumps(raw, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    fitted = fit_method(train, examples)
    about = (f"Softmax regression on {encoder.name} embeddings of the {int(train.has_desc.sum())} descriptions and "
             f"{int(train.has_title.sum())} titles of {TRAIN_FILE} (label: Lending Club's purpose) and the "
             f"hand-written examples of {catalogue.field}.json (weight {EXAMPLE_WEIGHT:g}), with a description "
             f"correction added to the bias; {TEST_FILE} is held out. Fitted by bench/extraction_accuracy.py --fit; "
             "see provenance.")
    save_head(head_path(catalogue.field), fitted.classes, fitted.weights, fitted.bias, encoder.name, about,
              provenance(train, examples, catalogue, encoder, fitted))
    check = load_head(catalogue.field)
    assert check is not None
    x = train.desc[train.has_desc]
    gap = np.abs(check.probabilities(x) - fitted.probabilities(x)).max()
    print(f"wrote the prior and the head to {DATA_DIR} (max probability gap after float32 storage {gap:.1e})")
    print("description correction:", json.dumps(check.provenance["correction"]))


def check_shipped(head: LinearHead, fitted: FittedHead) -> None:
    """Refuse to evaluate a head that saw the held-out file; show that the shipped head is this fit."""
    trained_on = {entry["file"].rsplit("/", 1)[-1]: entry["sha256"]
                  for entry in head.provenance.get("training_files", [])}
    if TEST_FILE in trained_on or not trained_on:
        raise SystemExit(f"the shipped head's provenance does not show {TEST_FILE} held out; run with --fit")
    if trained_on.get(TRAIN_FILE) != file_sha256(SHARED / "lending_club" / TRAIN_FILE):
        raise SystemExit(f"the shipped head was not fitted on this {TRAIN_FILE}; run with --fit")
    order = [fitted.classes.index(c) for c in head.classes]
    gap_w = float(np.abs(head.weights - fitted.weights[order]).max())
    gap_b = float(np.abs(head.bias - fitted.bias[order]).max())
    print(f"shipped head: built {head.provenance.get('built_on')} from {TRAIN_FILE} (sha256 "
          f"{trained_on[TRAIN_FILE][:12]}...); refitted now from the data: max |Δweight| {gap_w:.1e}, "
          f"max |Δbias| {gap_b:.1e} (float32 storage)")


def ceiling_evidence(rows: pd.DataFrame, figures: dict[str, Any]) -> None:
    """How far does a description alone determine Lending Club's label? Counted, not guessed."""
    desc = rows[rows["desc_clean"] != ""]
    n = len(desc)
    card = re.compile(r"(?i)credit\s*cards?|\bcards?\b|\bcc'?s?\b|visa|mastercard|amex")
    other = re.compile(r"(?i)\bloans?\b|\bbills?\b|medical|hospital|student|\bcar\b|\bauto|mortgage|line of credit|"
                       r"\bhome|\bhouse|business|wedding|school|tuition|\btax|vehicle|repair")
    card_only = desc[desc["desc_clean"].map(lambda t: bool(card.search(t)) and not other.search(t))]
    split = card_only["purpose"].value_counts()
    print(f"\nceiling: how far the description alone decides the label (all {n} descriptions, both files)")
    print(f"  {len(card_only)} descriptions speak only of paying credit cards (no other debt or purpose named); "
          f"their labels: {', '.join(f'{k} {v}' for k, v in split.items())}.")
    print(f"  Whatever reads such a text gets at least {len(card_only) - int(split.iloc[0])} of them wrong, so "
          f"no reader of descriptions can pass {1 - (len(card_only) - int(split.iloc[0])) / n:.1%} even if "
          "every other description were read right.")

    def normalised(text: str) -> str:
        tokens = re.sub(r"[^a-z ]", " ", text.lower()).split()
        half = len(tokens) // 2
        return " ".join(tokens[:half] if len(tokens) % 2 == 0 and tokens[:half] == tokens[half:] else tokens)

    groups = desc.groupby(desc["desc_clean"].map(normalised))["purpose"].agg(lambda s: sorted(set(s)))
    conflicting = groups[groups.map(len) > 1]
    for text, labels in conflicting.items():
        print(f"  the same words, {' and '.join(labels)}: {text!r}")
    silent = desc[~desc["desc_clean"].map(lambda t: any(p.search(t) for _, p in _KEYWORD_PATTERNS))]
    print(f"  {len(silent)} descriptions name no purpose word at all (labels: "
          f"{', '.join(f'{k} {v}' for k, v in silent['purpose'].value_counts().items())}).")
    figures["ceiling"] = {"descriptions": n, "card_only": len(card_only),
                          "card_only_labels": {str(k): int(v) for k, v in split.items()},
                          "bound_from_card_only": round(1 - (len(card_only) - int(split.iloc[0])) / n, 4),
                          "same_words_different_labels": {str(k): v for k, v in conflicting.items()},
                          "no_purpose_word": len(silent)}


def blind_readers(read: dict[str, pd.DataFrame], figures: dict[str, Any]) -> None:
    """The same descriptions read blind by annotators (``blind_readings.py``): the label's share of the errors.

    ``read`` holds, per file, the described rows' loan ids, Lending Club's purpose and the extractor's
    reading (by a fit that never saw that file), and optionally (``uncorrected``) the same head's reading
    without the description correction, which leans towards the labels' shares rather than the words.
    """
    if not READINGS.exists():
        print(f"\nblind readers: no {READINGS.name}; see bench/blind_readings.py")
        return
    readings = pd.read_csv(READINGS, dtype={"file": str})
    readers = sorted(c for c in readings.columns if c.startswith("reader_"))
    print(f"\nblind readers: {len(readers)} annotators read every description from its text alone (no title, "
          f"label or loan id; {READINGS.relative_to(READINGS.parents[2])})")
    out: dict[str, Any] = {}
    parts = [(label, name) for label, name in (("held-out", TEST_FILE), ("training", TRAIN_FILE)) if name in read]
    for label, name in [*parts, *([("pooled", None)] if len(parts) > 1 else [])]:
        rows = pd.concat(read.values(), ignore_index=True) if name is None else read[name]
        joined = rows.merge(readings if name is None else readings[readings["file"] == name], on=["file", "id"],
                            how="left", validate="one_to_one")
        if joined[readers].isna().any().any():
            raise SystemExit(f"{READINGS.name} lacks a reading of some {label} descriptions; rerun blind_readings.py")
        truth = joined["purpose"].to_numpy(dtype=object)
        entry: dict[str, Any] = {"n": len(joined)}
        cells = []
        for reader in readers:
            agree = float((joined[reader].to_numpy(dtype=object) == truth).mean())
            entry[f"{reader}_accuracy"] = round(agree, 4)
            cells.append(f"{reader} {agree:5.1%}")
        clear = (joined[[f"clarity_{r.split('_')[1]}" for r in readers]] == "clear").all(axis=1).to_numpy()
        extractor = float((joined["predicted"].to_numpy(dtype=object) == truth).mean())
        with_readers = float((joined["predicted"] == joined[readers[0]]).mean())
        agreed = (joined[readers].nunique(axis=1) == 1).to_numpy()
        both = float(agreed.mean())
        with_consensus = float((joined.loc[agreed, "predicted"] == joined.loc[agreed, readers[0]]).mean())
        clear_acc = (float((joined.loc[clear, readers[0]].to_numpy(dtype=object) == truth[clear]).mean())
                     if clear.any() else float("nan"))
        entry.update(readers_agree=round(both, 4), extractor_accuracy=round(extractor, 4),
                     extractor_agrees_with_reader_1=round(with_readers, 4),
                     extractor_agrees_with_consensus=round(with_consensus, 4), consensus_n=int(agreed.sum()),
                     clear_to_all=int(clear.sum()),
                     reader_1_accuracy_where_clear=round(clear_acc, 4) if clear.any() else None)
        print(f"  {label:<9} n={len(joined):<4} agree with Lending Club's label: {', '.join(cells)}, the extractor "
              f"{extractor:5.1%}; all readers agree with each other on {both:5.1%}; the extractor agrees with "
              f"reader_1 {with_readers:5.1%} and with the readers where they agree (n={int(agreed.sum())}) "
              f"{with_consensus:5.1%}; where every reader called the text clear (n={int(clear.sum())}) "
              f"reader_1 agrees with the label {clear_acc:5.1%}")
        if "uncorrected" in joined:
            plain = joined["uncorrected"].to_numpy(dtype=object)
            plain_label = float((plain == truth).mean())
            plain_consensus = float((plain[agreed] == joined.loc[agreed, readers[0]].to_numpy(dtype=object)).mean())
            entry.update(uncorrected_accuracy=round(plain_label, 4),
                         uncorrected_agrees_with_consensus=round(plain_consensus, 4))
            print(f"  {'':<9} the head without the description correction: {plain_label:5.1%} with the label, "
                  f"{plain_consensus:5.1%} with the readers where they agree")
        out[label] = entry
    figures["blind_readers"] = out


def read_source(label: str, data: Encoded, source: str, shipped: Extractor, fitted_alt: FittedHead,
                proto: Extractor, zero_shot: Extractor, majority: str, figures: dict[str, Any]) -> None:
    mask = data.has_desc if source == "desc" else data.has_title
    emb = (data.desc if source == "desc" else data.title)[mask]
    column = "desc_clean" if source == "desc" else "title_clean"
    truth = data.rows.loc[mask, "purpose"].tolist()
    counts = pd.Series(truth).value_counts()
    print(f"\nsource={source}  {label}  n={len(truth)}  its most common label {counts.index[0]} = "
          f"{counts.iloc[0] / len(truth):.1%}")
    out: dict[str, Any] = {}
    p = shipped.probabilities(emb)
    print(line("extractor (shipped head, as shipped)", truth, labels_of(shipped.categories, p), out))
    print(line("keyword baseline", truth, [keyword_baseline(t) for t in data.rows.loc[mask, column]], out))
    print(line(f"majority class of the training file ({majority})", truth, [majority] * len(truth), out))
    print("  alternatives measured the same way:")
    print(line("  head without the description correction", truth,
               labels_of(fitted_alt.classes, fitted_alt.probabilities(emb, corrected=False)), out))
    print(line("  examples + training-file prior (no head)", truth,
               labels_of(proto.categories, proto.probabilities(emb)), out))
    print(line("  examples only (zero-shot, nothing fitted)", truth,
               labels_of(zero_shot.categories, zero_shot.probabilities(emb)), out))
    coverage_table(source, truth, labels_of(shipped.categories, p), p.max(axis=1))
    figures[f"{source}:{label}"] = out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--fit", action="store_true",
                        help="refit the shipped prior and head on the training file; write them to "
                             "scoring/language_data")
    parser.add_argument("--demo-rows", type=int, default=2000)
    parser.add_argument("--json", type=Path, default=OUT / "extraction_accuracy.json")
    args = parser.parse_args()

    catalogue = load_catalogue("purpose_category")
    # float32 whatever the CPU: the fit must be reproducible bit for bit on any machine.
    encoder = LocalMiniLM(dtype="float32").load()
    started = time.perf_counter()
    train, test = encode_file(encoder, TRAIN_FILE), encode_file(encoder, TEST_FILE)
    texts = [e for c in catalogue.categories for e in catalogue.examples[c]]
    examples = Examples(texts, [c for c in catalogue.categories for _ in catalogue.examples[c]], encoder.encode(texts))
    print(f"encoder: {encoder.version}; encoded in {time.perf_counter() - started:.1f} s")
    for role, data in (("training", train), ("held-out", test)):
        print(f"{role} file {data.rows['file'].iloc[0]}: {len(data.rows)} rows, {int(data.has_desc.sum())} "
              f"descriptions ({int(data.rows['stamped'].sum())} carried 'Borrower added on' stamps; none is empty "
              f"once cleaned), {int(data.has_title.sum())} titles")
    print(f"examples: {len(texts)} hand-written ({catalogue.tag})")

    if args.fit:
        write_fit(train, examples, catalogue, encoder)
        return

    head = load_head(catalogue.field)
    if head is None:
        raise SystemExit("no shipped head; run with --fit first")
    fitted = fit_method(train, examples)
    check_shipped(head, fitted)
    shipped = Extractor(catalogue, encoder, threshold=0.5)
    if shipped.head is None:
        raise SystemExit(f"the shipped head does not read {encoder.name} embeddings")
    majority = str(train.rows["purpose"].value_counts().index[0])
    proto = Extractor(dataclasses.replace(catalogue, prior=fit_prior(train.rows["purpose"], catalogue.categories)),
                      encoder, head=False)
    zero_shot = Extractor(catalogue, encoder, use_prior=False, head=False)
    figures: dict[str, Any] = {"train_file": TRAIN_FILE, "test_file": TEST_FILE}

    print(f"\n== held out: {TEST_FILE}, read by the shipped head (fitted on {TRAIN_FILE} only)")
    for source in ("desc", "title"):
        read_source("held-out file", test, source, shipped, fitted, proto, zero_shot, majority, figures)

    # The other way round, for the variance of so small a test: fit on the held-out file, read the
    # training file; pooled, every description is read by a fit that never saw its file.
    reverse = fit_method(test, examples)
    print(f"\n== the same method fitted the other way round (on {TEST_FILE}), read on {TRAIN_FILE}")
    pooled: dict[str, tuple[list[str], list[str], list[str]]] = {}
    read_by_file: dict[str, pd.DataFrame] = {}
    for source in ("desc", "title"):
        mask_tr, mask_te = (train.has_desc, test.has_desc) if source == "desc" else (train.has_title, test.has_title)
        emb_tr = (train.desc if source == "desc" else train.title)[mask_tr]
        emb_te = (test.desc if source == "desc" else test.title)[mask_te]
        column = "desc_clean" if source == "desc" else "title_clean"
        truth_tr = train.rows.loc[mask_tr, "purpose"].tolist()
        pred_tr = labels_of(reverse.classes, reverse.probabilities(emb_tr))
        out: dict[str, Any] = {}
        print(line(f"{source}: extractor method, fitted on {TEST_FILE[:27]}", truth_tr, pred_tr, out))
        print(line(f"{source}: keyword baseline", truth_tr,
                   [keyword_baseline(t) for t in train.rows.loc[mask_tr, column]], out))
        figures[f"{source}:reverse"] = out
        truth_te = test.rows.loc[mask_te, "purpose"].tolist()
        pred_te = labels_of(shipped.categories, shipped.probabilities(emb_te))
        keywords = [keyword_baseline(t) for t in [*train.rows.loc[mask_tr, column], *test.rows.loc[mask_te, column]]]
        pooled[source] = (truth_tr + truth_te, pred_tr + pred_te, keywords)
        if source == "desc":
            # The same readings without the description correction, for the blind readers' comparison.
            plain_tr = labels_of(reverse.classes, reverse.probabilities(emb_tr, corrected=False))
            plain_te = labels_of(fitted.classes, fitted.probabilities(emb_te, corrected=False))
            for data, mask, pred, plain in ((train, mask_tr, pred_tr, plain_tr), (test, mask_te, pred_te, plain_te)):
                rows = data.rows.loc[mask, ["file", "id", "purpose"]].reset_index(drop=True)
                read_by_file[str(rows["file"].iloc[0])] = rows.assign(id=rows["id"].astype(int), predicted=pred,
                                                                      uncorrected=plain)
    print("\n== both directions pooled (every text read by a fit that never saw its file)")
    for source, (truth, pred, keywords) in pooled.items():
        out = {}
        print(line(f"{source}: extractor method", truth, pred, out))
        print(line(f"{source}: keyword baseline", truth, keywords, out))
        figures[f"{source}:pooled"] = out

    blind_readers(read_by_file, figures)
    ceiling_evidence(pd.concat([train.rows, test.rows], ignore_index=True), figures)

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
        out = {}
        print(line(f"{target} from {text_field} ({method})", truth, labels_of(extractor.categories, p), out))
        coverage_table(target, truth, labels_of(extractor.categories, p), p.max(axis=1))
        figures[f"demo:{target}"] = out

    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
