"""Scoring with a saved model: ``load_model(path).score(values)`` gives the probability of default.

The single-application path avoids pandas: the encoder writes a float64 vector, LightGBM predicts the
raw margin on a (1, n) array with one thread, and Platt scaling turns it into a PD with Python floats.
The same values give the same float, bit for bit; ``score_frame`` computes each row the same way, so it
agrees with ``score`` bit for bit too.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from scoring.artifact import (
    BENCHMARK_FILE,
    CALIBRATION_FILE,
    ENCODER_FILE,
    MODEL_FILE,
    REFERENCE_FILE,
    ArtifactError,
    directory_hash,
    read_manifest,
)
from scoring.calibration import Calibration, LogisticBenchmark
from scoring.features import FeatureEncoder
from scoring.spec import ProductSpec


class ScoringModel:
    """A loaded, verified model directory."""

    def __init__(self, path: Path, manifest: Mapping[str, Any], encoder: FeatureEncoder, booster: lgb.Booster,
                 calibration: Calibration, benchmark: LogisticBenchmark) -> None:
        self.path = path
        self.manifest: Mapping[str, Any] = manifest
        self.encoder = encoder
        self.booster = booster
        self.calibration = calibration
        self.benchmark = benchmark
        self._reference: np.ndarray | None = None
        self._lock = threading.Lock()

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def product(self) -> str:
        return str(self.manifest["product"])

    @property
    def spec_hash(self) -> str:
        return str(self.manifest["spec_hash"])

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.encoder.feature_names

    @property
    def feature_field(self) -> tuple[str, ...]:
        return self.encoder.feature_field

    @property
    def cutoff(self) -> float:
        return float(self.manifest["policy"]["cutoff"])

    @property
    def refer_band(self) -> float:
        return float(self.manifest["policy"]["refer_band"])

    def matches_spec(self, spec: ProductSpec) -> bool:
        """Whether this model was trained for exactly this spec text."""
        return spec.slug == self.product and spec.spec_hash == self.spec_hash

    @property
    def reference(self) -> np.ndarray:
        """Encoded features of training rows (the explanation background), loaded on first use."""
        if self._reference is None:
            with self._lock:
                if self._reference is None:
                    self._reference = np.load(self.path / REFERENCE_FILE, allow_pickle=False)
        return self._reference

    # --- scoring -----------------------------------------------------------------------------------

    def features(self, values: Mapping[str, Any]) -> np.ndarray:
        """The (1, n_features) float64 feature row for one application."""
        return self.encoder.encode_row(values).reshape(1, -1)

    def raw_margin_row(self, values: Mapping[str, Any]) -> float:
        """The booster's raw margin (uncalibrated log-odds) for one application."""
        return float(self.booster.predict(self.features(values), raw_score=True, num_threads=1)[0])

    def margin_row(self, values: Mapping[str, Any]) -> float:
        """Calibrated log-odds of default for one application: a * raw margin + b."""
        return self.calibration.log_odds(self.raw_margin_row(values))

    def score(self, values: Mapping[str, Any]) -> float:
        """Probability of default for one application (cleaned values, as validate_fields returns)."""
        return self.calibration.pd(self.raw_margin_row(values))

    def score_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """Probabilities of default for every row of a frame whose columns are spec field names."""
        margins = self.booster.predict(self.encoder.encode_frame(frame), raw_score=True)
        return np.array([self.calibration.pd(float(m)) for m in margins], dtype=np.float64)

    def contributions_row(self, values: Mapping[str, Any]) -> np.ndarray:
        """Exact TreeSHAP contributions of each feature to the raw margin, plus the expected margin as the
        last element (LightGBM ``pred_contrib``). Multiply by calibration.a (and map the base value with
        a * base + b) for calibrated log-odds."""
        out: np.ndarray = self.booster.predict(self.features(values), pred_contrib=True, num_threads=1)[0]
        return out

    def benchmark_score(self, values: Mapping[str, Any]) -> float:
        """The logistic benchmark's probability of default for one application."""
        encoder = FeatureEncoder.from_dict(self.benchmark.encoder) \
            if self.benchmark.encoder.get("category_mode") != self.encoder.category_mode else self.encoder
        return float(self.benchmark.predict_proba(encoder.encode_row(values))[0])


_CACHE: dict[str, ScoringModel] = {}
_CACHE_LOCK = threading.Lock()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"cannot read {str(path)!r}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ArtifactError(f"{str(path)!r} is not a JSON object")
    return raw


def _load_uncached(path: Path) -> ScoringModel:
    manifest = read_manifest(path)
    actual = directory_hash(path)
    expected = manifest.get("content_hash")
    if actual != expected:
        raise ArtifactError(f"model directory {str(path)!r} has been altered: content hash {actual} does not "
                            f"match the manifest's {expected}")
    version = str(manifest.get("version", ""))
    if not version.endswith(f"-{actual[:8]}"):
        raise ArtifactError(f"model directory {str(path)!r}: version {version!r} does not end in its "
                            "content hash")
    try:
        encoder = FeatureEncoder.from_dict(_read_json(path / ENCODER_FILE))
        calibration = Calibration.from_dict(_read_json(path / CALIBRATION_FILE))
        benchmark = LogisticBenchmark.from_dict(_read_json(path / BENCHMARK_FILE))
        booster = lgb.Booster(model_str=(path / MODEL_FILE).read_text(encoding="utf-8"))
    except (KeyError, TypeError, ValueError, lgb.basic.LightGBMError) as exc:
        raise ArtifactError(f"model directory {str(path)!r} cannot be loaded: {exc}") from exc
    if list(encoder.feature_names) != list(manifest.get("feature_names", [])) \
            or booster.num_feature() != encoder.n_features:
        raise ArtifactError(f"model directory {str(path)!r}: encoder and booster features disagree")
    return ScoringModel(path, manifest, encoder, booster, calibration, benchmark)


def load_model(path: str | Path) -> ScoringModel:
    """Load a model directory once per process (cached by resolved path), verifying its content hash."""
    resolved = Path(path).resolve()
    key = str(resolved)
    model = _CACHE.get(key)
    if model is None:
        with _CACHE_LOCK:
            model = _CACHE.get(key)
            if model is None:
                model = _load_uncached(resolved)
                _CACHE[key] = model
    return model


def clear_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()
