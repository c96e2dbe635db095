"""Training reaches the targets on the real data; the saved model restores exactly, verifies its content
hash, scores the same values to the same float bit for bit, and scores fast."""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from scoring.artifact import ARTIFACT_FILES, MANIFEST, ArtifactError, directory_hash, latest_model_dir
from scoring.datasets import Dataset
from scoring.predict import ScoringModel, clear_cache, load_model
from scoring.spec import ProductSpec
from scoring.train import TrainingResult, train_product

pytestmark = pytest.mark.slow

METRICS = ("auc", "ks", "brier", "cv_auc", "cv_auc_std", "benchmark_auc", "benchmark_cv_auc")


def _records(dataset: Dataset, count: int) -> list[dict[str, Any]]:
    return list(dataset.frame.head(count).to_dict("records"))


def test_heloc_reaches_target(heloc_trained: TrainingResult) -> None:
    metrics = heloc_trained.metrics
    assert metrics["cv_auc"] >= 0.795
    assert metrics["auc"] >= 0.79
    assert metrics["benchmark_cv_auc"] > 0.75
    assert heloc_trained.data["excluded_no_information"] == 588
    assert heloc_trained.calibration.a > 0
    assert 0.15 < metrics["brier"] < 0.2


def test_german_reaches_target(german_trained: TrainingResult) -> None:
    assert german_trained.metrics["cv_auc"] >= 0.78
    assert german_trained.calibration.a > 0
    assert not {"personal_status_sex", "age_years", "foreign_worker", "telephone"} & set(
        german_trained.encoder.feature_field)


def test_training_is_reproducible(german_spec: ProductSpec, german_data: Dataset,
                                  german_trained: TrainingResult) -> None:
    again = train_product(german_spec, german_data, seed=0)
    assert again.booster.model_to_string() == german_trained.booster.model_to_string()
    assert again.calibration == german_trained.calibration
    assert again.metrics["cv_auc"] == german_trained.metrics["cv_auc"]


@pytest.mark.parametrize("which", ["heloc", "german"])
def test_manifest(which: str, request: pytest.FixtureRequest) -> None:
    path: Path = request.getfixturevalue(f"{which}_model_dir")
    result: TrainingResult = request.getfixturevalue(f"{which}_trained")
    dataset: Dataset = request.getfixturevalue(f"{which}_data")
    spec: ProductSpec = request.getfixturevalue(f"{which}_spec")
    manifest = json.loads((path / MANIFEST).read_text())
    assert sorted(p.name for p in path.iterdir()) == sorted([*ARTIFACT_FILES, MANIFEST])
    assert manifest["product"] == spec.slug and manifest["spec_hash"] == spec.spec_hash
    assert manifest["training_data"]["sha256"] == dataset.source_sha256
    assert manifest["content_hash"] == directory_hash(path)
    assert manifest["version"] == path.name
    assert manifest["version"].endswith("-" + manifest["content_hash"][:8])
    assert manifest["trained_at"].endswith("+00:00")
    assert set(manifest["libraries"]) >= {"python", "lightgbm", "numpy", "sklearn"}
    for key in METRICS:
        assert manifest["metrics"][key] == result.metrics[key]
    assert manifest["feature_names"] == list(result.encoder.feature_names)
    assert manifest["feature_field"] == list(result.encoder.feature_field)
    assert manifest["seed"] == 0 and manifest["hyperparameters"]["num_boost_round"] > 0
    assert latest_model_dir(path.parent.parent, spec.slug) == path


@pytest.mark.parametrize("which", ["heloc", "german"])
def test_round_trip_scores_like_training(which: str, request: pytest.FixtureRequest) -> None:
    path: Path = request.getfixturevalue(f"{which}_model_dir")
    result: TrainingResult = request.getfixturevalue(f"{which}_trained")
    dataset: Dataset = request.getfixturevalue(f"{which}_data")
    model = load_model(path)
    assert load_model(path) is model  # cached per process
    frame = dataset.frame.head(300)
    expected = result.predict_pd(result.encoder.encode_frame(frame))
    np.testing.assert_allclose(model.score_frame(frame), expected, rtol=0, atol=1e-12)
    assert model.booster.model_to_string() == result.booster.model_to_string()
    assert np.array_equal(model.reference, result.reference, equal_nan=True)
    # The benchmark restores too.
    bench = result.benchmark.predict_proba(result.encoder.encode_frame(frame.head(5)))
    np.testing.assert_allclose([model.benchmark_score(r) for r in _records(dataset, 5)], bench, atol=1e-12)


@pytest.mark.parametrize("which", ["heloc", "german"])
def test_scores_are_bit_identical(which: str, request: pytest.FixtureRequest) -> None:
    model: ScoringModel = load_model(request.getfixturevalue(f"{which}_model_dir"))
    dataset: Dataset = request.getfixturevalue(f"{which}_data")
    rows = _records(dataset, 200)
    stored = [model.score(row) for row in rows]
    frame_scores = model.score_frame(dataset.frame.head(200))
    for row, value, from_frame in zip(rows, stored, frame_scores, strict=True):
        again = model.score(row)
        assert again.hex() == value.hex() == float(from_frame).hex()
        assert 0.0 < again < 1.0
        assert model.margin_row(row) == model.calibration.log_odds(model.raw_margin_row(row))
        assert math.isclose(1.0 / (1.0 + math.exp(-model.margin_row(row))), again, rel_tol=1e-12)
    # A fresh load of the same directory gives the same bits.
    clear_cache()
    reloaded = load_model(model.path)
    assert reloaded is not model
    assert [reloaded.score(row).hex() for row in rows] == [v.hex() for v in stored]


def test_treeshap_is_additive(heloc_model_dir: Path, heloc_data: Dataset) -> None:
    model = load_model(heloc_model_dir)
    for row in _records(heloc_data, 20):
        contrib = model.contributions_row(row)
        assert len(contrib) == len(model.feature_names) + 1
        assert math.isclose(float(contrib.sum()), model.raw_margin_row(row), abs_tol=1e-9)
        calibrated = model.calibration.a * contrib[:-1].sum() + model.calibration.log_odds(float(contrib[-1]))
        assert math.isclose(calibrated, model.margin_row(row), abs_tol=1e-9)


def test_single_row_latency(heloc_model_dir: Path, heloc_data: Dataset) -> None:
    model = load_model(heloc_model_dir)
    rows = _records(heloc_data, 500)
    for row in rows[:20]:
        model.score(row)
    times = []
    for row in rows:
        started = time.perf_counter()
        model.score(row)
        times.append(time.perf_counter() - started)
    assert float(np.percentile(times, 50)) < 0.001


def test_tampered_model_is_refused(german_model_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / german_model_dir.name
    shutil.copytree(german_model_dir, copy)
    load_model(copy)  # intact: loads
    clear_cache()
    model_file = copy / "model.txt"
    model_file.write_text(model_file.read_text().replace("leaf_value=", "leaf_value=1", 1))
    with pytest.raises(ArtifactError, match="altered"):
        load_model(copy)


def test_edited_manifest_hash_is_refused(german_model_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / german_model_dir.name
    shutil.copytree(german_model_dir, copy)
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["content_hash"] = "0" * 64
    (copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="altered"):
        load_model(copy)


def test_missing_file_is_refused(german_model_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / german_model_dir.name
    shutil.copytree(german_model_dir, copy)
    (copy / "calibration.json").unlink()
    with pytest.raises(ArtifactError, match=r"lacks calibration\.json"):
        load_model(copy)
