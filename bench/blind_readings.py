"""Blind readings of the Lending Club descriptions: how often does a careful reader agree with the label?

The purpose benchmark (``extraction_accuracy.py``) measures the extractor against Lending Club's own
``purpose``, which the borrower picked from a list, sometimes at odds with what the same borrower then
wrote. To tell the extractor's errors from the label's, people (or any annotator) read the same
descriptions *blind* and pick a category from the text alone; their agreement with Lending Club is
the accuracy a reader of the description can reach, and their agreement with each other shows
whether the text decides the purpose at all.

``sheet DIR``: writes ``DIR/descriptions.csv`` (key, description: every cleaned description of both
files, shuffled with a fixed seed, with no loan id, title or label) and ``DIR/keymap.json`` (key ->
file and loan id; keep it away from the readers). Give each reader only ``descriptions.csv`` and the
category list; each writes ``DIR/reader_<n>.csv`` with ``key,category,clarity`` (clarity: clear,
ambiguous or none).

``collect DIR``: joins the readers' files with the key map into ``bench/data/lending_club_desc_blind_readings.csv``
(file, loan id, each reader's category and clarity): our annotations, keyed by Lending Club's loan id;
no text or label of the data set is copied. ``extraction_accuracy.py`` reads it.

Run: ``.venv/bin/python bench/blind_readings.py sheet /tmp/blind`` then, once read,
``.venv/bin/python bench/blind_readings.py collect /tmp/blind``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from extraction_accuracy import READINGS, TEST_FILE, TRAIN_FILE, load_rows

SHUFFLE_SEED = 7
CLARITY = ("clear", "ambiguous", "none")


def write_sheet(folder: Path) -> None:
    entries: list[tuple[str, int, str]] = []
    for name in (TRAIN_FILE, TEST_FILE):
        rows = load_rows(name)
        described = rows[rows["desc_clean"] != ""]
        entries.extend((name, int(loan_id), text) for loan_id, text in zip(described["id"], described["desc_clean"],
                                                                           strict=True))
    random.Random(SHUFFLE_SEED).shuffle(entries)
    keys = [f"r{i:03d}" for i in range(len(entries))]
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"key": keys, "description": [text for _, _, text in entries]}).to_csv(
        folder / "descriptions.csv", index=False)
    keymap = {key: {"file": name, "id": loan_id} for key, (name, loan_id, _) in zip(keys, entries, strict=True)}
    (folder / "keymap.json").write_text(json.dumps(keymap, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(entries)} descriptions to {folder / 'descriptions.csv'} and the key map beside it")


def read_reader(path: Path, keys: set[str], categories: set[str]) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype=str)
    problems = []
    if list(frame.columns) != ["key", "category", "clarity"]:
        problems.append(f"columns {list(frame.columns)}, expected key, category, clarity")
    elif set(frame["key"]) != keys or frame["key"].duplicated().any():
        problems.append("it does not give every key of the sheet exactly once")
    else:
        bad_category = sorted(set(frame["category"]) - categories)
        bad_clarity = sorted(set(frame["clarity"]) - set(CLARITY))
        if bad_category:
            problems.append(f"unknown categories {bad_category}")
        if bad_clarity:
            problems.append(f"unknown clarity values {bad_clarity}")
    if problems:
        raise SystemExit(f"{path}: " + "; ".join(problems))
    return frame.set_index("key")


def collect(folder: Path) -> None:
    from scoring.language import load_catalogue

    keymap = json.loads((folder / "keymap.json").read_text(encoding="utf-8"))
    categories = set(load_catalogue("purpose_category").categories)
    readers = sorted(folder.glob("reader_*.csv"))
    if not readers:
        raise SystemExit(f"no reader_<n>.csv in {folder}")
    out = pd.DataFrame({"file": [keymap[k]["file"] for k in keymap], "id": [keymap[k]["id"] for k in keymap]},
                       index=list(keymap))
    for number, path in enumerate(readers, start=1):
        reading = read_reader(path, set(keymap), categories)
        out[f"reader_{number}"] = reading["category"]
        out[f"clarity_{number}"] = reading["clarity"]
    out = out.sort_values(["file", "id"])
    READINGS.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(READINGS, index=False)
    print(f"wrote {len(out)} readings by {len(readers)} readers to {READINGS}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("action", choices=("sheet", "collect"))
    parser.add_argument("folder", type=Path)
    args = parser.parse_args()
    if args.action == "sheet":
        write_sheet(args.folder)
    else:
        collect(args.folder)


if __name__ == "__main__":
    main()
