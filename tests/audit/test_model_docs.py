"""Model documentation (issue 5, section 7): every SR 11-7 heading, every registry field (checklist G(c)),
a PDF, and who may read it."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.test import Client

from audit.model_docs import model_doc_context, registry_fields
from lending.models import Decision, Extraction, ModelVersion
from lending.services import extraction_review
from scoring.language import load_head
from tests.conftest import demo_fields
from tests.lending.test_extraction import BAKERY

HEADINGS = ("Purpose and intended use", "Data lineage", "Fields and monotone directions",
            "Inputs read by the language model", "Performance",
            "Global importance", "Fair-lending summary", "Limitations and key assumptions", "Approval history")


def _url(version: ModelVersion) -> str:
    return f"/compliance/models/{version.product.slug}/{version.version}/"


def test_page_has_every_heading_and_registry_field(approved_demo: ModelVersion, compliance: User,
                                                   client_for: Callable[[User], Client]) -> None:
    response = client_for(compliance).get(_url(approved_demo))
    assert response.status_code == 200
    html = response.content.decode()
    for heading in HEADINGS:
        assert f">{heading}</h2>" in html, heading
    names = {f.name for f in ModelVersion._meta.concrete_fields}
    rows = registry_fields(approved_demo)
    assert {r["name"] for r in rows} == names
    for row in rows:
        assert f"<th>{row['label']}</th>" in html, row["label"]
    for value in (approved_demo.content_hash, approved_demo.spec_hash, approved_demo.training_data_sha256,
                  approved_demo.version, "ada_admin"):
        assert value in html
    # the plots are server-rendered SVG, the held-out split reproduced exactly
    assert html.count("<svg") >= 3
    assert "identical to the registered figure" in html
    assert "Not applicable" in html  # the demo product has no monitoring fields
    assert "model.approved" in html and "model.registered" in html


def test_pdf_renders(approved_demo: ModelVersion, admin_user: User, client_for: Callable[[User], Client]) -> None:
    response = client_for(admin_user).get(_url(approved_demo) + "doc.pdf")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")


def test_officers_read_anonymous_cannot(approved_demo: ModelVersion, officer: User, outsider: User,
                                        client_for: Callable[[User], Client]) -> None:
    assert client_for(officer).get(_url(approved_demo)).status_code == 200
    assert client_for(officer).get("/compliance/models/").status_code == 200
    anonymous = Client().get(_url(approved_demo))
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/accounts/login/")
    assert client_for(outsider).get(_url(approved_demo)).status_code == 403
    assert Client().get(_url(approved_demo) + "doc.pdf").status_code == 302
    assert client_for(officer).get("/compliance/models/demo/no-such-version/").status_code == 404


def test_the_language_model_inputs_are_documented_with_their_use_by_this_version(
        approved_demo: ModelVersion, officer: User, compliance: User, client_for: Callable[[User], Client],
        monkeypatch: pytest.MonkeyPatch) -> None:
    officer_client = client_for(officer)
    decided = []
    for text in (BAKERY, BAKERY, "We are putting a new roof on the house"):
        response = officer_client.post("/api/v1/applications", content_type="application/json",
                                       data=json.dumps({"product": "demo",
                                                        "fields": demo_fields(loan_purpose_text=text)}))
        assert response.status_code == 201, response.content
        decided.append(Decision.objects.get(public_id=response.json()["id"]))
    readings = [Extraction.objects.get(application=d.application, field="purpose_category") for d in decided]
    assert [r.value for r in readings] == ["small_business", "small_business", "home_improvement"]
    extraction_review(extraction=readings[0], officer=officer, value="home_improvement")  # corrected
    extraction_review(extraction=readings[2], officer=officer, value="home_improvement")  # confirmed

    context = model_doc_context(approved_demo)["language"]
    purpose = next(f for f in context["fields"] if f["field"] == "purpose_category")
    # Three applications, one re-scored into a second decision by the same version: still three readings.
    assert purpose["in_use"]["readings"] == 3 and purpose["in_use"]["reviewed"] == 2
    assert (purpose["in_use"]["confirmed"], purpose["in_use"]["corrected"], purpose["in_use"]["awaiting"]) == (1, 1, 1)
    assert purpose["in_use"]["corrected_share"] == 0.5
    assert purpose["in_use"]["corrections"] == [{"value": "small_business", "confirmed_value": "home_improvement",
                                                 "n": 1}]
    head = load_head("purpose_category")
    assert head is not None and purpose["head"]["digest"] == head.digest
    assert [t["file"] for t in purpose["head"]["training"]] == ["lending_club/lending_club_sample_JGFuentesC_2000.csv"]

    html = client_for(compliance).get(_url(approved_demo)).content.decode()
    assert ">Inputs read by the language model</h2>" in html
    assert "small_business → home_improvement (1)" in html
    assert "(50.0% of those reviewed were corrected)" in html
    assert head.digest in html and readings[0].provider_version in html
    # Another version's page counts only its own decisions' readings.
    copied = {f.name: getattr(approved_demo, f.name) for f in ModelVersion._meta.concrete_fields
              if f.name not in ("id", "version")}
    other = ModelVersion.objects.create(**copied, version="other")
    assert model_doc_context(other)["language"]["fields"][0]["in_use"]["readings"] == 0
    # A remote provider reads by the examples (the head reads only the local encoder's embeddings); a
    # misconfigured one is flagged, and the rest of the document still renders.
    monkeypatch.setenv("CANDOR_LM_PROVIDER", "openai")
    monkeypatch.setenv("CANDOR_LM_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("CANDOR_LM_MODEL", "a-larger-model")
    remote = model_doc_context(approved_demo)["language"]["fields"][0]
    assert remote["provider"] == "openai-compatible:127.0.0.1:9" and remote["provider_version"] == "a-larger-model"
    assert remote["head"] is None and remote["method"] == "similarity to the catalogue's hand-written examples"
    monkeypatch.setenv("CANDOR_LM_PROVIDER", "carrier-pigeon")
    response = client_for(compliance).get(_url(approved_demo))
    assert response.status_code == 200
    assert "misconfigured: CANDOR_LM_PROVIDER must be &#x27;local&#x27; or &#x27;openai&#x27;" in \
        response.content.decode()
