"""Loaders: the real files give the documented rows and bad rates; a lender's CSV with a missing column
or a missing file fails with a message naming it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scoring.datasets import Dataset, DatasetError, load_dataset, resolve_data_path, shared_data_dir
from scoring.spec import ProductSpec, parse_spec

from .conftest import spec_text


def test_heloc_loader(heloc_data: Dataset, heloc_spec: ProductSpec) -> None:
    # All rows; the 588 with no bureau record (every attribute -9) are dropped by training, not here.
    assert len(heloc_data) == 10_459
    assert int(heloc_data.y.sum()) == 5_459
    assert heloc_data.y.dtype == np.int8
    assert list(heloc_data.frame.columns) == list(heloc_spec.field_names)
    assert all(str(dtype) == "int64" for dtype in heloc_data.frame.dtypes)
    assert int((heloc_data.frame == -9).all(axis=1).sum()) == 588
    assert len(heloc_data.source_sha256) == 64
    assert heloc_data.source.endswith("heloc_dataset_v1.csv")


def test_german_loader(german_data: Dataset, german_spec: ProductSpec) -> None:
    assert len(german_data) == 1_000
    assert german_data.bad_rate == pytest.approx(0.30)
    frame = german_data.frame
    assert list(frame.columns) == list(german_spec.field_names)
    first = frame.iloc[0].to_dict()
    assert first["checking_account_status"] == "A11" and isinstance(first["checking_account_status"], str)
    assert first["duration_months"] == 6 and first["credit_amount"] == 1169.0
    assert first["personal_status_sex"] == "A93" and first["age_years"] == 67
    for field_spec in german_spec.fields:
        if field_spec.type == "category":
            assert set(frame[field_spec.name]) <= set(field_spec.categories), field_spec.name


def test_source_hash_is_the_file_hash(german_data: Dataset, german_spec: ProductSpec) -> None:
    import hashlib

    expected = hashlib.sha256(resolve_data_path(german_spec).read_bytes()).hexdigest()
    assert german_data.source_sha256 == expected


def test_shared_data_dir_follows_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                            german_spec: ProductSpec) -> None:
    monkeypatch.setenv("CANDOR_SHARED_DATA", str(tmp_path))
    assert shared_data_dir() == tmp_path
    assert resolve_data_path(german_spec) == tmp_path / "german" / "german.data"
    with pytest.raises(DatasetError, match=r"german\.data.*does not exist"):
        load_dataset(german_spec)


LENDER_SPEC = '''
slug = "lender-loan"
credit_type = "consumer_instalment"
[data]
loader = "csv"
[policy]
cutoff = 0.3
refer_band = 0.05
[reasons.utilisation]
text = "Proportion of revolving credit limits in use is too high"
[reasons.tenure]
text = "Time as a customer of this bank is too short"
[[fields]]
name = "utilisation"
type = "number"
unit = "percent"
min = 0
max = 200
source = "bureau"
role = "model_input"
monotone = "increasing"
reason = "utilisation"
[[fields]]
name = "tenure_months"
type = "integer"
min = 0
max = 900
source = "applicant"
role = "model_input"
reason = "tenure"
[[fields]]
name = "channel"
type = "category"
categories = ["branch", "web"]
source = "applicant"
role = "context"
required = false
'''


def test_lender_csv(tmp_path: Path) -> None:
    spec = parse_spec(LENDER_SPEC)
    path = tmp_path / "loans.csv"
    path.write_text("utilisation,tenure_months,channel,target,extra\n12.5,30,web,0,x\n99,2,branch,1,y\n")
    data = load_dataset(spec, path)
    assert list(data.frame.columns) == ["utilisation", "tenure_months", "channel"]
    assert data.y.tolist() == [0, 1]
    assert data.frame["tenure_months"].tolist() == [30, 2]
    assert data.frame["utilisation"].tolist() == [12.5, 99.0]


def test_lender_csv_missing_column_is_named(tmp_path: Path) -> None:
    spec = parse_spec(LENDER_SPEC)
    path = tmp_path / "loans.csv"
    path.write_text("utilisation,target\n12.5,0\n")
    with pytest.raises(DatasetError, match="tenure_months"):
        load_dataset(spec, path)


def test_lender_csv_needs_target(tmp_path: Path) -> None:
    spec = parse_spec(LENDER_SPEC)
    path = tmp_path / "loans.csv"
    path.write_text("utilisation,tenure_months\n12.5,3\n")
    with pytest.raises(DatasetError, match="'target'"):
        load_dataset(spec, path)
    path.write_text("utilisation,tenure_months,target\n12.5,3,2\n")
    with pytest.raises(DatasetError, match="only 0 and 1"):
        load_dataset(spec, path)


def test_lender_csv_missing_file_is_named(tmp_path: Path) -> None:
    spec = parse_spec(LENDER_SPEC)
    missing = tmp_path / "nowhere" / "loans.csv"
    with pytest.raises(DatasetError, match=str(missing).replace(".", r"\.")):
        load_dataset(spec, missing)


def test_unknown_category_in_data_is_named(tmp_path: Path) -> None:
    spec = parse_spec(spec_text("german-credit"))
    source = resolve_data_path(spec).read_text().replace("A11 ", "A19 ", 1)
    path = tmp_path / "german.data"
    path.write_text(source)
    with pytest.raises(DatasetError, match=r"checking_account_status.*A19"):
        load_dataset(spec, path)
