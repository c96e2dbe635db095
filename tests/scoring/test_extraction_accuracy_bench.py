"""The Lending Club accuracy benchmark's own parts: cleaning, the description correction, and the
shipped head's provenance (it must say where it came from, and that the evaluation file was held out)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bench import extraction_accuracy as bench
from scoring.language import LanguageConfigError, LinearHead, load_catalogue, load_head, save_head
from tests.conftest import SHARED_DATA


def test_clean_desc_removes_lending_club_furniture_and_keeps_the_words() -> None:
    raw = ("  Borrower added on 03/13/13 > Debt Consolidation &amp; car repair<br><br> "
           "Borrower added on 03/14/13 > Debt consolidation &amp; CAR REPAIR<br/> Borrower added on 3/15/2013 > "
           "See http://example.com/x?y=1 for the car. null")
    assert bench.clean_desc(raw) == "Debt Consolidation & car repair See for the car."
    assert bench.clean_desc("I want to pay off my <b>cards</b>") == "I want to pay off my cards"
    assert bench.clean_desc(float("nan")) == "" and bench.clean_desc(None) == ""
    assert bench.clean_desc("  Borrower added on 01/02/12 > <br>") == ""


def test_the_description_correction_fits_the_label_shares() -> None:
    # A head that knows nothing (equal log-probabilities) on texts labelled 60/30/10: the shift that
    # maximises the likelihood makes softmax(shift) the label shares.
    labels = ["a"] * 60 + ["b"] * 30 + ["c"] * 10
    shift = bench.description_correction(np.zeros((100, 3)), labels, ["a", "b", "c"], penalty=1e-9)
    shares = np.exp(shift) / np.exp(shift).sum()
    assert shares == pytest.approx([0.6, 0.3, 0.1], abs=1e-4)
    # A head that already reads every text right needs (almost) no shift; the penalty keeps it small.
    sure = np.log(np.where(np.eye(3)[[0] * 5 + [1] * 5 + [2] * 5] > 0, 0.98, 0.01))
    small = bench.description_correction(sure, ["a"] * 5 + ["b"] * 5 + ["c"] * 5, ["a", "b", "c"])
    assert np.abs(small).max() < 0.05


def test_the_shipped_head_says_where_it_came_from() -> None:
    head = load_head("purpose_category")
    assert head is not None
    provenance = head.provenance
    assert provenance["built_by"] == ".venv/bin/python bench/extraction_accuracy.py --fit"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", provenance["built_on"])
    assert provenance["seed"] == bench.SEED and provenance["encoder"] == head.encoder
    trained = {Path(entry["file"]).name: entry for entry in provenance["training_files"]}
    held_out = {Path(entry["file"]).name: entry for entry in provenance["held_out_files"]}
    assert set(trained) == {bench.TRAIN_FILE} and set(held_out) == {bench.TEST_FILE}
    assert not set(trained) & set(held_out), "the evaluation file must never be in the fit"
    assert trained[bench.TRAIN_FILE]["descriptions"] > 100 and trained[bench.TRAIN_FILE]["titles"] > 1000
    # The sha256 are those of the data files here: the head was fitted on exactly this data.
    for name, entry in {**trained, **held_out}.items():
        data = (SHARED_DATA / "lending_club" / name).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest(), name
    catalogue = load_catalogue("purpose_category")
    examples = [e for c in catalogue.categories for e in catalogue.examples[c]]
    assert provenance["examples"]["sha256"] == hashlib.sha256(json.dumps(examples).encode("utf-8")).hexdigest()
    assert set(provenance["correction"]) == set(head.classes)
    # The stored bias includes the correction: the shipped bias is not the bare regression's.
    assert np.abs(np.array([provenance["correction"][c] for c in head.classes])).max() > 0.01


def test_a_head_round_trips_with_its_provenance(tmp_path: Path) -> None:
    weights, bias = np.arange(6, dtype=np.float64).reshape(2, 3) / 10, np.array([0.5, -0.5])
    save_head(tmp_path / "f.head.npz", ["a", "b"], weights, bias, "enc", "about", {"seed": 7, "files": ["x"]})
    head = load_head("f", tmp_path)
    assert head is not None
    assert head.provenance == {"seed": 7, "files": ["x"]} and head.classes == ("a", "b")
    assert np.allclose(head.weights, weights) and np.allclose(head.bias, bias)
    save_head(tmp_path / "g.head.npz", ["a", "b"], weights, bias, "enc", "about")
    assert load_head("g", tmp_path).provenance == {}  # type: ignore[union-attr]
    # A head file from before provenance existed still loads.
    with (tmp_path / "h.head.npz").open("wb") as handle:
        np.savez_compressed(handle, classes=np.array(["a", "b"]), weights=weights.astype(np.float32),
                            bias=bias.astype(np.float32), encoder=np.array("enc"), about=np.array("about"))
    assert load_head("h", tmp_path).provenance == {}  # type: ignore[union-attr]
    with (tmp_path / "i.head.npz").open("wb") as handle:
        np.savez_compressed(handle, classes=np.array(["a", "b"]), weights=weights.astype(np.float32),
                            bias=bias.astype(np.float32), encoder=np.array("enc"), about=np.array("about"),
                            provenance=np.array("[1, 2]"))
    with pytest.raises(LanguageConfigError, match="provenance must be a JSON object"):
        load_head("i", tmp_path)


def _head(training_file: str, sha256: str) -> LinearHead:
    return LinearHead(classes=("a",), weights=np.zeros((1, 2)), bias=np.zeros(1), encoder="enc", digest="0" * 64,
                      provenance={"training_files": [{"file": f"lending_club/{training_file}", "sha256": sha256}]})


def test_the_benchmark_refuses_a_head_that_saw_the_evaluation_file() -> None:
    fitted = bench.FittedHead(classes=("a",), weights=np.zeros((1, 2)), intercept=np.zeros(1),
                              correction=np.zeros(1), oof_descriptions=0)
    with pytest.raises(SystemExit, match="held out"):
        bench.check_shipped(_head(bench.TEST_FILE, "0" * 64), fitted)
    with pytest.raises(SystemExit, match="was not fitted on this"):
        bench.check_shipped(_head(bench.TRAIN_FILE, "0" * 64), fitted)


def test_the_blind_readings_cover_every_description_once_with_valid_categories() -> None:
    readings = pd.read_csv(bench.READINGS, dtype={"file": str})
    categories = set(load_catalogue("purpose_category").categories)
    readers = [c for c in readings.columns if c.startswith("reader_")]
    assert len(readers) >= 2 and not readings.isna().any().any()
    for name in (bench.TRAIN_FILE, bench.TEST_FILE):
        rows = bench.load_rows(name)
        described = set(rows.loc[rows["desc_clean"] != "", "id"].astype(int))
        assert set(readings.loc[readings["file"] == name, "id"]) == described, name
    assert not readings.duplicated(["file", "id"]).any()
    for reader in readers:
        assert set(readings[reader]) <= categories, reader
        assert set(readings[reader.replace("reader", "clarity")]) <= {"clear", "ambiguous", "none"}, reader


def test_the_blind_sheet_hides_ids_titles_and_labels_and_collect_refuses_a_partial_reading(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench import blind_readings

    blind_readings.write_sheet(tmp_path)
    sheet = pd.read_csv(tmp_path / "descriptions.csv", dtype=str)
    assert list(sheet.columns) == ["key", "description"] and len(sheet) == 199
    keymap = json.loads((tmp_path / "keymap.json").read_text(encoding="utf-8"))
    assert set(keymap) == set(sheet["key"])
    # The sheet is the committed readings' sheet: the same shuffle gives the same key to each loan.
    readings = pd.read_csv(bench.READINGS, dtype={"file": str})
    assert {(v["file"], v["id"]) for v in keymap.values()} == set(zip(readings["file"], readings["id"], strict=True))

    monkeypatch.setattr(blind_readings, "READINGS", tmp_path / "out" / "readings.csv")
    reading = pd.DataFrame({"key": sheet["key"], "category": "debt_consolidation", "clarity": "clear"})
    reading.iloc[1:].to_csv(tmp_path / "reader_1.csv", index=False)
    with pytest.raises(SystemExit, match="every key of the sheet exactly once"):
        blind_readings.collect(tmp_path)
    reading.assign(category=["cars", *reading["category"][1:]]).to_csv(tmp_path / "reader_1.csv", index=False)
    with pytest.raises(SystemExit, match=r"unknown categories \['cars'\]"):
        blind_readings.collect(tmp_path)
    reading.to_csv(tmp_path / "reader_1.csv", index=False)
    blind_readings.collect(tmp_path)
    collected = pd.read_csv(tmp_path / "out" / "readings.csv")
    assert list(collected.columns) == ["file", "id", "reader_1", "clarity_1"] and len(collected) == 199


def test_blind_readers_counts_agreement_with_the_label_and_between_readers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    readings = pd.DataFrame({"file": [bench.TEST_FILE] * 4, "id": [1, 2, 3, 4],
                             "reader_1": ["car", "car", "medical", "other"], "clarity_1": ["clear"] * 3 + ["none"],
                             "reader_2": ["car", "car", "medical", "car"], "clarity_2": ["clear"] * 4})
    path = tmp_path / "bench" / "data" / "readings.csv"
    path.parent.mkdir(parents=True)
    readings.to_csv(path, index=False)
    monkeypatch.setattr(bench, "READINGS", path)
    read = {bench.TEST_FILE: pd.DataFrame({"file": [bench.TEST_FILE] * 4, "id": [1, 2, 3, 4],
                                           "purpose": ["car", "house", "medical", "other"],
                                           "predicted": ["car", "car", "other", "other"]})}
    figures: dict[str, Any] = {}
    bench.blind_readers(read, figures)
    held_out = figures["blind_readers"]["held-out"]
    assert held_out["reader_1_accuracy"] == 0.75 and held_out["reader_2_accuracy"] == 0.5
    assert held_out["extractor_accuracy"] == 0.5 and held_out["readers_agree"] == 0.75
    assert held_out["extractor_agrees_with_reader_1"] == 0.75 and set(figures["blind_readers"]) == {"held-out"}
    # Where the readers agree (rows 1, 2, 3: car, car, medical), the extractor reads 2 of 3 as they do.
    assert held_out["consensus_n"] == 3
    assert held_out["extractor_agrees_with_consensus"] == pytest.approx(2 / 3, abs=1e-4)
    assert "uncorrected_accuracy" not in held_out
    assert held_out["clear_to_all"] == 3 and held_out["reader_1_accuracy_where_clear"] == pytest.approx(2 / 3, abs=1e-4)
    assert "reader_1 75.0%" in capsys.readouterr().out
    uncorrected = {bench.TEST_FILE: read[bench.TEST_FILE].assign(uncorrected=["car", "house", "medical", "car"])}
    bench.blind_readers(uncorrected, figures)
    assert figures["blind_readers"]["held-out"]["uncorrected_accuracy"] == 0.75
    assert figures["blind_readers"]["held-out"]["uncorrected_agrees_with_consensus"] == pytest.approx(2 / 3, abs=1e-4)
    # A reading that misses a described row is refused, not averaged over what is there.
    readings.iloc[:3].to_csv(path, index=False)
    with pytest.raises(SystemExit, match="lacks a reading"):
        bench.blind_readers(read, {})
