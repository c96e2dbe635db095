"""The feature encoder: features map to exactly one model-input field, special values become NaN plus an
indicator, it survives JSON, and encode_row agrees with encode_frame bit for bit."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest

from scoring.datasets import Dataset
from scoring.features import FeatureEncoder, no_information_rows
from scoring.spec import ProductSpec, validate_fields


def _rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
            for row in frame.to_dict("records")]


def _bits(array: np.ndarray) -> bytes:
    return np.ascontiguousarray(array, dtype=np.float64).tobytes()


@pytest.mark.parametrize("mode", ["onehot", "native"])
def test_encode_row_matches_encode_frame_german(german_spec: ProductSpec, german_data: Dataset,
                                                mode: str) -> None:
    encoder = FeatureEncoder.from_spec(german_spec, german_data.frame, category_mode=mode)
    matrix = encoder.encode_frame(german_data.frame)
    rows = np.vstack([encoder.encode_row(row) for row in _rows(german_data.frame)])
    assert _bits(rows) == _bits(matrix)
    # Cleaned values (Decimal money, ints, category strings) encode to the same bits as the frame's.
    for i in (0, 1, 500, 999):
        raw = {k: (str(v) if isinstance(v, float) else v) for k, v in _rows(german_data.frame)[i].items()}
        cleaned = validate_fields(german_spec, raw)
        assert isinstance(cleaned["credit_amount"], Decimal)
        assert _bits(encoder.encode_row(cleaned)) == _bits(matrix[i])


def test_encode_row_matches_encode_frame_heloc(heloc_spec: ProductSpec, heloc_data: Dataset) -> None:
    encoder = FeatureEncoder.from_spec(heloc_spec, heloc_data.frame)
    frame = heloc_data.frame.iloc[::7]
    rows = np.vstack([encoder.encode_row(row) for row in _rows(frame)])
    assert _bits(rows) == _bits(encoder.encode_frame(frame))


def test_features_belong_to_model_inputs(german_spec: ProductSpec, german_data: Dataset) -> None:
    encoder = FeatureEncoder.from_spec(german_spec, german_data.frame)
    inputs = [f.name for f in german_spec.model_inputs]
    assert len(encoder.feature_names) == len(encoder.feature_field) == encoder.n_features
    assert set(encoder.feature_field) == set(inputs)
    for monitoring in ("personal_status_sex", "age_years", "foreign_worker", "telephone"):
        assert monitoring not in encoder.feature_field
        assert not any(name.startswith(monitoring) for name in encoder.feature_names)
    # Features of a field are contiguous and in spec order.
    assert list(dict.fromkeys(encoder.feature_field)) == inputs
    assert encoder.monotone_constraints[encoder.feature_names.index("duration_months")] == 1


def test_heloc_special_values(heloc_spec: ProductSpec, heloc_data: Dataset) -> None:
    encoder = FeatureEncoder.from_spec(heloc_spec, heloc_data.frame)
    names = encoder.feature_names
    assert "MSinceMostRecentDelq=-7" in names and "MSinceMostRecentDelq=-8" in names
    assert "MSinceMostRecentDelq=-9" in names  # the no-bureau-record rows carry -9 everywhere
    values = {f.name: 5 for f in heloc_spec.model_inputs}
    values["MSinceMostRecentDelq"] = -7
    values["MaxDelq2PublicRecLast12M"] = 9  # "all other": a special value, not a severity
    row = encoder.encode_row(values)
    assert math.isnan(row[names.index("MSinceMostRecentDelq")])
    assert row[names.index("MSinceMostRecentDelq=-7")] == 1.0
    assert row[names.index("MSinceMostRecentDelq=-8")] == 0.0
    assert math.isnan(row[names.index("MaxDelq2PublicRecLast12M")])
    assert row[names.index("ExternalRiskEstimate")] == 5.0
    # Monotone constraints sit on the main feature only, with FICO's directions.
    mono = dict(zip(names, encoder.monotone_constraints, strict=True))
    assert mono["ExternalRiskEstimate"] == -1 and mono["NumInqLast6M"] == 1 and mono["NumTotalTrades"] == 0
    assert mono["MSinceMostRecentDelq=-7"] == 0
    excluded = no_information_rows(heloc_spec, heloc_data.frame)
    assert int(excluded.sum()) == 588


def test_missing_and_unknown_values(german_spec: ProductSpec) -> None:
    encoder = FeatureEncoder.from_spec(german_spec, category_mode="onehot")
    row = encoder.encode_row({"duration_months": None, "purpose": "A999"})
    assert math.isnan(row[encoder.feature_names.index("duration_months")])
    assert all(row[i] == 0.0 for i, f in enumerate(encoder.feature_field) if f == "purpose")
    native = FeatureEncoder.from_spec(german_spec, category_mode="native")
    assert math.isnan(native.encode_row({"purpose": "A999"})[native.feature_names.index("purpose")])
    assert native.encode_row({"purpose": "A41"})[native.feature_names.index("purpose")] == 1.0


@pytest.mark.parametrize("mode", ["onehot", "native"])
def test_json_round_trip(german_spec: ProductSpec, german_data: Dataset, mode: str) -> None:
    encoder = FeatureEncoder.from_spec(german_spec, german_data.frame, category_mode=mode)
    restored = FeatureEncoder.from_dict(json.loads(json.dumps(encoder.to_dict())))
    assert restored.feature_names == encoder.feature_names
    assert restored.feature_field == encoder.feature_field
    assert restored.monotone_constraints == encoder.monotone_constraints
    assert restored.categorical_features == encoder.categorical_features
    assert _bits(restored.encode_frame(german_data.frame)) == _bits(encoder.encode_frame(german_data.frame))
