"""Model documentation (issue 5, section 7): every SR 11-7 heading, every registry field (checklist G(c)),
a PDF, and who may read it."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth.models import User
from django.test import Client

from audit.model_docs import registry_fields
from lending.models import ModelVersion

HEADINGS = ("Purpose and intended use", "Data lineage", "Fields and monotone directions", "Performance",
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
