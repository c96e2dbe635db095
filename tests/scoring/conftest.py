"""Shared fixtures for the scoring tests: shipped specs, their datasets, and (slow) trained models.

The shared data files (``$CANDOR_SHARED_DATA``, or ``<repo>/../shared/data``) are part of the test
suite: missing data is a failure, never a skip. Tests that train are marked ``slow``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scoring.artifact import save_model
from scoring.datasets import Dataset, load_dataset
from scoring.spec import PRODUCTS_DIR, ProductSpec, load_spec
from scoring.train import TrainingResult, train_product


def spec_text(slug: str) -> str:
    return (PRODUCTS_DIR / f"{slug}.toml").read_text(encoding="utf-8")


def edit_field(text: str, field_name: str, old: str, new: str) -> str:
    """Replace ``old`` by ``new`` inside the ``[[fields]]`` block of ``field_name`` only."""
    blocks = re.split(r"(?m)^(?=\[\[fields\]\])", text)
    hits = 0
    for i, block in enumerate(blocks):
        if re.search(rf'(?m)^name = "{re.escape(field_name)}"$', block):
            assert old in block, f"{old!r} not in the block of {field_name}"
            blocks[i] = block.replace(old, new)
            hits += 1
    assert hits == 1, f"field {field_name} not found exactly once"
    return "".join(blocks)


@pytest.fixture(scope="session")
def heloc_spec() -> ProductSpec:
    return load_spec(PRODUCTS_DIR / "heloc.toml")


@pytest.fixture(scope="session")
def german_spec() -> ProductSpec:
    return load_spec(PRODUCTS_DIR / "german-credit.toml")


@pytest.fixture(scope="session")
def heloc_data(heloc_spec: ProductSpec) -> Dataset:
    return load_dataset(heloc_spec)


@pytest.fixture(scope="session")
def german_data(german_spec: ProductSpec) -> Dataset:
    return load_dataset(german_spec)


@pytest.fixture(scope="session")
def heloc_trained(heloc_spec: ProductSpec, heloc_data: Dataset) -> TrainingResult:
    return train_product(heloc_spec, heloc_data, seed=0)


@pytest.fixture(scope="session")
def german_trained(german_spec: ProductSpec, german_data: Dataset) -> TrainingResult:
    return train_product(german_spec, german_data, seed=0)


@pytest.fixture(scope="session")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def heloc_model_dir(heloc_trained: TrainingResult, heloc_spec: ProductSpec, heloc_data: Dataset,
                    model_root: Path) -> Path:
    return save_model(heloc_trained, heloc_spec, heloc_data, model_root)


@pytest.fixture(scope="session")
def german_model_dir(german_trained: TrainingResult, german_spec: ProductSpec, german_data: Dataset,
                     model_root: Path) -> Path:
    return save_model(german_trained, german_spec, german_data, model_root)
