"""Shared fixtures: personas, a trained demo model, and the demo product registered and approved.

Personas: ``officer`` decides, ``compliance`` reviews, ``admin`` approves models, ``outsider`` has an
account and no role at all.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from config.celery import app
from lending.models import ModelVersion, Product
from lending.roles import ADMIN, COMPLIANCE, OFFICER
from lending.services import model_version_approve, model_version_register, product_register
from scoring.artifact import read_manifest, save_model
from scoring.datasets import load_dataset
from scoring.spec import PRODUCTS_DIR, get_spec
from scoring.train import DEFAULT_PARAMS, train_product

SHARED_DATA = Path(os.environ.get("CANDOR_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def pytest_sessionstart(session: pytest.Session) -> None:
    # The real credit data is part of the test suite: missing data is a failure, never a skip.
    if not (SHARED_DATA / "heloc" / "heloc_dataset_v1.csv").exists():
        raise pytest.UsageError(f"{SHARED_DATA} is missing: the tests need ../shared/data")


@pytest.fixture(scope="session")
def demo_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo model trained once per test session (on a small generated sample, to stay fast).

    It keeps the earlier depth-3 parameters (scoring.train.DEFAULT_PARAMS): the tests' hand-picked applicant
    profiles (a clear denial, a referral, an approval) are set against this model. The production demo
    parameters (the additive grid fit on 2,000,000 rows) are trained and checked by
    tests/scoring/test_additive.py, tests/lending/test_commands.py and scripts/check_demo_reasons.py."""
    spec = get_spec("demo")
    dataset = load_dataset(spec, n=6000, seed=7)
    result = train_product(spec, dataset, seed=0, params={**DEFAULT_PARAMS, "monotone_fit": "per_tree"})
    return save_model(result, spec, dataset, tmp_path_factory.mktemp("models"))


def _user(username: str, role: str | None) -> User:
    user = User.objects.create_user(username=username, password="correct horse battery staple")
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def officer(db: None) -> User:
    return _user("olivia_officer", OFFICER)


@pytest.fixture
def compliance(db: None) -> User:
    return _user("carl_compliance", COMPLIANCE)


@pytest.fixture
def admin_user(db: None) -> User:
    return _user("ada_admin", ADMIN)


@pytest.fixture
def outsider(db: None) -> User:
    return _user("oscar_outsider", None)


@pytest.fixture
def demo_product(db: None) -> Product:
    spec = get_spec("demo")
    return product_register(spec=spec, spec_text=(PRODUCTS_DIR / "demo.toml").read_text(encoding="utf-8"))


@pytest.fixture
def demo_version(demo_product: Product, demo_model_path: Path) -> ModelVersion:
    """The demo model, registered but not approved."""
    return model_version_register(product=demo_product, path=demo_model_path,
                                  manifest=read_manifest(demo_model_path))


@pytest.fixture
def approved_demo(demo_version: ModelVersion, admin_user: User) -> ModelVersion:
    return model_version_approve(model_version=demo_version, approved_by=admin_user)


def _registered_and_approved(slug: str, path: Path, admin_user: User) -> ModelVersion:
    spec = get_spec(slug)
    product = product_register(spec=spec, spec_text=(PRODUCTS_DIR / f"{slug}.toml").read_text(encoding="utf-8"))
    version = model_version_register(product=product, path=path, manifest=read_manifest(path))
    return model_version_approve(model_version=version, approved_by=admin_user)


@pytest.fixture(scope="session")
def hmda_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Boston Fed HMDA product's model, trained once per session on the whole study (2,380 rows)."""
    spec = get_spec("hmda-boston")
    dataset = load_dataset(spec)
    return save_model(train_product(spec, dataset, seed=0), spec, dataset, tmp_path_factory.mktemp("hmda-models"))


@pytest.fixture
def hmda(db: None, hmda_model_path: Path, admin_user: User) -> ModelVersion:
    return _registered_and_approved("hmda-boston", hmda_model_path, admin_user)


@pytest.fixture(scope="session")
def german_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The German credit product's model, trained once per session (1,000 rows)."""
    spec = get_spec("german-credit")
    dataset = load_dataset(spec)
    return save_model(train_product(spec, dataset, seed=0), spec, dataset, tmp_path_factory.mktemp("german-models"))


@pytest.fixture
def german_credit(db: None, german_model_path: Path, admin_user: User) -> ModelVersion:
    return _registered_and_approved("german-credit", german_model_path, admin_user)


@pytest.fixture
def client_for() -> Callable[[User], Client]:
    def make(user: User) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return make


def demo_fields(**overrides: Any) -> dict[str, Any]:
    """A valid demo application as an API client sends it."""
    fields: dict[str, Any] = {
        "amount": "12000.00",
        "term_months": 36,
        "annual_income": "58000",
        "employment_length_years": 4,
        "housing": "rent",
        "loan_purpose_text": "Consolidating two credit cards into one payment",
        "employment_text": "I am a salaried accountant at a large company",
        "credit_score": 690,
        "delinquencies_2y": 0,
        "inquiries_6m": 1,
        "revolving_utilization": 35.5,
        "open_accounts": 7,
        "credit_history_months": 96,
        "public_records": 0,
        "applicant_name": "Jamie Example",
        "email": "jamie@example.com",
    }
    fields.update(overrides)
    return {k: v for k, v in fields.items() if v is not None}


@pytest.fixture
def eager_tasks() -> Iterator[None]:
    """Publishing runs the real task in this process (as a worker would), so the published path is tested."""
    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        yield
    finally:
        app.conf.task_always_eager = before
