"""The model artifact: one directory per trained model, ``<root>/<product slug>/<version>/``.

Files:

* ``model.txt``        the LightGBM booster in its text format
* ``encoder.json``     the feature encoder (scoring.features.FeatureEncoder.to_dict)
* ``calibration.json`` Platt scaling a, b (PD = sigmoid(a * margin + b))
* ``benchmark.json``   the logistic-regression benchmark as plain numbers
* ``reference.npy``    encoded features of up to 2,000 training rows: the explanation background
* ``manifest.json``    what the model is and how it was made (below)

The content hash is sha256 over every artifact file except the manifest, in sorted file-name order,
each fed as ``name``, a NUL byte, its length in decimal, a NUL byte, then its bytes (so file boundaries
are unambiguous). The version is ``<UTC yyyymmddTHHMMSSZ>-<first 8 hex digits of the content hash>``.
``scoring.predict.load_model`` recomputes the hash and refuses a directory whose files changed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import sklearn

from scoring.datasets import Dataset
from scoring.spec import ProductSpec
from scoring.train import TrainingResult

MANIFEST = "manifest.json"
MODEL_FILE = "model.txt"
ENCODER_FILE = "encoder.json"
CALIBRATION_FILE = "calibration.json"
BENCHMARK_FILE = "benchmark.json"
REFERENCE_FILE = "reference.npy"
ARTIFACT_FILES = (MODEL_FILE, ENCODER_FILE, CALIBRATION_FILE, BENCHMARK_FILE, REFERENCE_FILE)
ARTIFACT_FORMAT = 1


class ArtifactError(RuntimeError):
    """A model directory that is incomplete, altered or unreadable; the message names it."""


def json_bytes(payload: Mapping[str, Any]) -> bytes:
    return (json.dumps(payload, indent=2, sort_keys=True, allow_nan=False) + "\n").encode("utf-8")


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array, dtype=np.float64), allow_pickle=False)
    return buffer.getvalue()


def content_hash(files: Mapping[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        if name == MANIFEST:
            continue
        data = files[name]
        digest.update(name.encode() + b"\0" + str(len(data)).encode() + b"\0")
        digest.update(data)
    return digest.hexdigest()


def directory_hash(path: Path) -> str:
    """The content hash of the artifact files in a model directory, as they are on disk."""
    files: dict[str, bytes] = {}
    for name in ARTIFACT_FILES:
        file_path = path / name
        if not file_path.is_file():
            raise ArtifactError(f"model directory {str(path)!r} lacks {name}")
        files[name] = file_path.read_bytes()
    return content_hash(files)


def artifact_files(result: TrainingResult) -> dict[str, bytes]:
    return {
        MODEL_FILE: result.booster.model_to_string().encode("utf-8"),
        ENCODER_FILE: json_bytes(result.encoder.to_dict()),
        CALIBRATION_FILE: json_bytes(result.calibration.to_dict()),
        BENCHMARK_FILE: json_bytes(result.benchmark.to_dict()),
        REFERENCE_FILE: npy_bytes(result.reference),
    }


def build_manifest(result: TrainingResult, spec: ProductSpec, dataset: Dataset, digest: str,
                   trained_at: dt.datetime) -> dict[str, Any]:
    stamp = trained_at.astimezone(dt.UTC)
    return {
        "format": ARTIFACT_FORMAT,
        "product": spec.slug,
        "product_name": spec.name,
        "spec_version": spec.version,
        "spec_hash": spec.spec_hash,
        "version": f"{stamp:%Y%m%dT%H%M%SZ}-{digest[:8]}",
        "content_hash": digest,
        "content_hash_scheme": "sha256 over artifact files except manifest.json, sorted by name, each as "
                               "name NUL length NUL bytes",
        "files": list(ARTIFACT_FILES),
        "trained_at": stamp.isoformat(),
        "training_data": {"source": dataset.source, "sha256": dataset.source_sha256, **result.data},
        "libraries": {"python": platform.python_version(), "lightgbm": lgb.__version__,
                      "numpy": np.__version__, "sklearn": sklearn.__version__},
        "model": "lightgbm gbdt, monotone constraints, Platt-calibrated PD",
        "metrics": result.metrics,
        "hyperparameters": result.params,
        "seed": result.seed,
        "policy": {"cutoff": result.cutoff, "refer_band": result.refer_band},
        "feature_names": list(result.encoder.feature_names),
        "feature_field": list(result.encoder.feature_field),
        "monotone_constraints": list(result.encoder.monotone_constraints),
    }


def save_model(result: TrainingResult, spec: ProductSpec, dataset: Dataset, root_dir: str | Path, *,
               trained_at: dt.datetime | None = None) -> Path:
    """Write the model directory and return its path. Files are written to a temporary directory
    beside it and moved into place, so a reader never sees a half-written model."""
    if result.product != spec.slug:
        raise ArtifactError(f"training result is for {result.product!r}, spec is {spec.slug!r}")
    files = artifact_files(result)
    digest = content_hash(files)
    manifest = build_manifest(result, spec, dataset, digest, trained_at or dt.datetime.now(dt.UTC))
    product_dir = Path(root_dir) / spec.slug
    product_dir.mkdir(parents=True, exist_ok=True)
    final = product_dir / str(manifest["version"])
    if final.exists():
        raise ArtifactError(f"model directory {str(final)!r} already exists")
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=product_dir))
    try:
        for name, data in {**files, MANIFEST: json_bytes(manifest)}.items():
            (staging / name).write_bytes(data)
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def read_manifest(path: str | Path) -> dict[str, Any]:
    manifest_path = Path(path) / MANIFEST
    try:
        raw = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ArtifactError(f"{str(path)!r} is not a model directory (no {MANIFEST})") from exc
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{str(manifest_path)!r} is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ArtifactError(f"{str(manifest_path)!r} is not a JSON object")
    return raw


def model_versions(root_dir: str | Path, slug: str) -> list[Path]:
    """A product's model directories under ``root_dir``, oldest first (versions sort by time)."""
    product_dir = Path(root_dir) / slug
    if not product_dir.is_dir():
        return []
    return sorted(p for p in product_dir.iterdir() if p.is_dir() and (p / MANIFEST).is_file()
                  and not p.name.startswith("."))


def latest_model_dir(root_dir: str | Path, slug: str) -> Path | None:
    versions = model_versions(root_dir, slug)
    return versions[-1] if versions else None
