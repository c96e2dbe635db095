"""The fair-lending report page (issue 5, section 6): compliance only, AIR by race with its interval on the
Boston Fed HMDA product, stored decisions joined with their monitoring data, audited."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from audit.models import AuditEvent
from lending.models import ModelVersion, MonitoringData, Product
from lending.services import application_submit, model_version_approve, model_version_register, product_register
from scoring.artifact import read_manifest, save_model
from scoring.datasets import load_dataset
from scoring.spec import PRODUCTS_DIR, get_spec
from scoring.train import train_product

URL = "/compliance/fairness/"


@pytest.fixture(scope="session")
def hmda_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = get_spec("hmda-boston")
    dataset = load_dataset(spec)
    return save_model(train_product(spec, dataset, seed=0), spec, dataset, tmp_path_factory.mktemp("hmda-models"))


@pytest.fixture
def hmda(db: None, hmda_model_path: Path, admin_user: User) -> ModelVersion:
    spec = get_spec("hmda-boston")
    product = product_register(spec=spec, spec_text=(PRODUCTS_DIR / "hmda-boston.toml").read_text(encoding="utf-8"))
    version = model_version_register(product=product, path=hmda_model_path, manifest=read_manifest(hmda_model_path))
    return model_version_approve(model_version=version, approved_by=admin_user)


def _application(row: dict[str, Any]) -> dict[str, Any]:
    spec = get_spec("hmda-boston")
    out: dict[str, Any] = {}
    for field in spec.fields:
        if field.role in ("model_input", "monitoring_only") and field.name in row:
            value = row[field.name]
            if value is None or value != value:  # NaN
                continue
            out[field.name] = value.item() if hasattr(value, "item") else value
    return out


def test_reference_dataset_mode_shows_air_by_race_with_interval(hmda: ModelVersion, compliance: User,
                                                                 client_for: Callable[[User], Client]) -> None:
    response = client_for(compliance).get(URL, {"product": "hmda-boston", "dataset": "1"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "historical lender decisions" in html
    assert "By race" in html and "African American" in html
    # the AIR cell: a value and its [lower, upper] interval
    assert re.search(r"African American</td>\s*<td class=\"num\">0\.\d{3}<span class=\"ci\">\[0\.\d{3}, [01]\.\d{3}\]",
                     html), html[:2000]
    assert "<svg" in html and "four-fifths" in html
    event = AuditEvent.objects.filter(event_type="fairness.report_viewed").last()
    assert event is not None and event.data["mode"] == "dataset" and event.data["product"] == "hmda-boston"
    airs = [a for r in event.data["reports"] for a in r["airs"] if a["breakdown"] == "race"]
    assert airs and all(a["lower"] < a["air"] < a["upper"] for a in airs)


def test_stored_decisions_are_joined_with_monitoring_data(hmda: ModelVersion, officer: User, compliance: User,
                                                          client_for: Callable[[User], Client]) -> None:
    spec = get_spec("hmda-boston")
    frame = load_dataset(spec).frame
    product = Product.objects.get(slug="hmda-boston")
    rows = frame.iloc[list(range(0, 2380, 60))].to_dict("records")  # 40 applications
    for row in rows:
        application_submit(product=product, fields=_application(row), submitted_by=officer)
    assert MonitoringData.objects.count() == len(rows)
    response = client_for(compliance).get(URL, {"product": "hmda-boston", "since": "2000-01-01"})
    assert response.status_code == 200
    html = response.content.decode()
    assert f"n = {len(rows)} decisions" in html
    assert "By race" in html and "Override rate" in html
    event = AuditEvent.objects.filter(event_type="fairness.report_viewed").last()
    assert event is not None and event.data["mode"] == "decisions" and event.data["since"] == "2000-01-01"


def test_officers_are_refused(hmda: ModelVersion, officer: User, client_for: Callable[[User], Client]) -> None:
    assert client_for(officer).get(URL, {"product": "hmda-boston", "dataset": "1"}).status_code == 403
    assert Client().get(URL).status_code == 302


def test_product_without_monitoring_fields_says_so(approved_demo: ModelVersion, compliance: User,
                                                   client_for: Callable[[User], Client]) -> None:
    response = client_for(compliance).get(URL, {"product": "demo"})
    assert response.status_code == 200
    assert "no monitoring-only fields" in response.content.decode()
