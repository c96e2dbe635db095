"""Small, JSON-serialisable model parts used at scoring time: Platt calibration and the logistic benchmark.

Platt scaling maps the tree model's raw margin m (log-odds) to a probability of default
PD = sigmoid(a * m + b) with a > 0. The calibrated log-odds a * m + b is an affine function of the
margin, so exact TreeSHAP attributions of the margin stay exact and additive in calibrated log-odds:
each attribution scales by ``a`` and the base value becomes ``a * base + b``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def sigmoid_array(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))
    return out


@dataclass(frozen=True)
class Calibration:
    """Platt scaling: PD = sigmoid(a * margin + b)."""

    a: float
    b: float
    method: str = "platt"
    fitted_on: str = ""

    def __post_init__(self) -> None:
        if not self.a > 0:
            raise ValueError(f"Platt slope a must be positive, got {self.a}")

    def log_odds(self, margin: float) -> float:
        return self.a * margin + self.b

    def pd(self, margin: float) -> float:
        return sigmoid(self.a * margin + self.b)

    def pd_array(self, margins: np.ndarray) -> np.ndarray:
        return sigmoid_array(self.a * np.asarray(margins, dtype=np.float64) + self.b)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "a": self.a, "b": self.b, "fitted_on": self.fitted_on}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Calibration:
        if raw.get("method", "platt") != "platt":
            raise ValueError(f"unknown calibration method {raw.get('method')!r}")
        return cls(a=float(raw["a"]), b=float(raw["b"]), fitted_on=str(raw.get("fitted_on", "")))


@dataclass(frozen=True)
class LogisticBenchmark:
    """L2 logistic regression on standardised features; NaN imputed with the training mean plus a
    0/1 missing indicator for each feature that had NaN in training. Stored as plain numbers."""

    feature_names: tuple[str, ...]
    means: tuple[float, ...]
    scales: tuple[float, ...]
    indicator_features: tuple[int, ...]  # indices of features that get a missing indicator
    indicator_means: tuple[float, ...]
    indicator_scales: tuple[float, ...]
    coefficients: tuple[float, ...]  # len(feature_names) + len(indicator_features)
    intercept: float
    C: float
    encoder: Mapping[str, Any]  # the FeatureEncoder dict the benchmark's features come from

    def design(self, features: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(np.asarray(features, dtype=np.float64))
        means = np.asarray(self.means)
        missing = np.isnan(x)
        filled = np.where(missing, means, x)
        parts = [(filled - means) / np.asarray(self.scales)]
        if self.indicator_features:
            ind = missing[:, list(self.indicator_features)].astype(np.float64)
            parts.append((ind - np.asarray(self.indicator_means)) / np.asarray(self.indicator_scales))
        return np.hstack(parts)

    def margin(self, features: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.design(features) @ np.asarray(self.coefficients) + self.intercept
        return out

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return sigmoid_array(self.margin(features))

    def to_dict(self) -> dict[str, Any]:
        return {"model": "logistic_regression_l2", "C": self.C, "feature_names": list(self.feature_names),
                "means": list(self.means), "scales": list(self.scales),
                "indicator_features": list(self.indicator_features),
                "indicator_means": list(self.indicator_means),
                "indicator_scales": list(self.indicator_scales),
                "coefficients": list(self.coefficients), "intercept": self.intercept,
                "encoder": dict(self.encoder)}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> LogisticBenchmark:
        def floats(key: str) -> tuple[float, ...]:
            return tuple(float(v) for v in raw[key])

        return cls(feature_names=tuple(str(n) for n in raw["feature_names"]), means=floats("means"),
                   scales=floats("scales"),
                   indicator_features=tuple(int(i) for i in raw["indicator_features"]),
                   indicator_means=floats("indicator_means"), indicator_scales=floats("indicator_scales"),
                   coefficients=floats("coefficients"), intercept=float(raw["intercept"]), C=float(raw["C"]),
                   encoder=dict(raw["encoder"]))


def standardisation(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and scales (std, or 1 where a column is constant)."""
    means = np.nanmean(x, axis=0) if x.size else np.zeros(x.shape[1])
    means = np.where(np.isnan(means), 0.0, means)
    scales = np.nanstd(x, axis=0) if x.size else np.ones(x.shape[1])
    scales = np.where(~np.isfinite(scales) | (scales < 1e-12), 1.0, scales)
    return means, scales


def as_floats(values: Sequence[float] | np.ndarray) -> tuple[float, ...]:
    return tuple(float(v) for v in values)
