"""The fair-lending report page (issue 5, section 6): compliance only, AIR by race with its interval on the
Boston Fed HMDA product, stored decisions joined with their monitoring data, audited."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import User
from django.test import Client

from audit.models import AuditEvent
from lending.models import ModelVersion, MonitoringData, Product
from lending.services import application_submit
from scoring.datasets import load_dataset
from scoring.fairness import ELDERLY_LABEL, UNDER_ELDERLY_LABEL
from scoring.spec import get_spec

URL = "/compliance/fairness/"


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


def test_german_credit_reports_sex_age_62_and_their_intersection(german_credit: ModelVersion, compliance: User,
                                                                 client_for: Callable[[User], Client]) -> None:
    response = client_for(compliance).get(URL, {"product": "german-credit", "dataset": "1"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "By sex" in html and "By age_band" in html and "By sex × age_band" in html
    for protected in ("female", ELDERLY_LABEL):
        # the protected group's AIR cell against its control: a value and its [lower, upper] interval
        assert re.search(re.escape(protected) + r"</td>\s*<td class=\"num\">[01]\.\d{3}<span class=\"ci\">"
                         r"\[[01]\.\d{3}, [0-9]\.\d{3}\]", html), protected
    assert "male (control)" in html and f"{UNDER_ELDERLY_LABEL} (control)" in html
    assert html.count("<svg") == 1  # the German data has no lender decisions: one report, one chart
    event = AuditEvent.objects.filter(event_type="fairness.report_viewed").last()
    assert event is not None
    breakdowns = {a["breakdown"] for r in event.data["reports"] for a in r["airs"]}
    assert breakdowns == {"sex", "age_band", "sex × age_band"}
