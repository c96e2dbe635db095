"""End to end: a denial made through the API gets, through a real Celery worker on a real broker (Redis with
PostgreSQL, the filesystem broker with SQLite), at most four reasons, a notice in HTML and PDF with every
required part, an e-mail with the PDF attached, and a working private link for the customer."""

from __future__ import annotations

import email
import email.policy
import hashlib
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from audit.adverse import notice_regenerate
from audit.models import AuditEvent, CustomerLink, Notice, ReasonStatement
from lending.models import ModelVersion
from scoring.adverse_action import EXAMPLE_BUREAU
from scoring.agencies import agency_for
from tests.audit.test_notices import _element, _regulation_ecoa_text, _text
from tests.conftest import demo_fields
from tests.e2e.workers import Worker, running, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

FILE_SEPARATOR = b"\n" + b"-" * 79 + b"\n"  # what Django's file e-mail backend writes between messages


def submit(client: Client, **overrides: Any) -> dict[str, Any]:
    response = client.post("/api/v1/applications", content_type="application/json",
                           data=json.dumps({"product": "demo", "fields": demo_fields(**overrides)}))
    assert response.status_code == 201, response.content
    return response.json()  # type: ignore[no-any-return]


def sent_messages(folder: Path) -> list[email.message.EmailMessage]:
    messages = []
    for path in sorted(folder.glob("*.log")):
        for chunk in path.read_bytes().split(FILE_SEPARATOR):
            if chunk.strip():
                messages.append(email.message_from_bytes(chunk, policy=email.policy.default))
    return messages  # type: ignore[return-value]


def pdf_text(pdf: bytes, tmp_path: Path) -> str | None:
    """The PDF's text by poppler's pdftotext, when the machine has it (the HTML is checked regardless, and the
    PDF is proven to be rendered from the same stored context by regenerating it)."""
    tool = shutil.which("pdftotext")
    if tool is None:
        return None
    path = tmp_path / "notice.pdf"
    path.write_bytes(pdf)
    return " ".join(subprocess.run([tool, "-enc", "UTF-8", str(path), "-"], check=True, capture_output=True,
                                   timeout=60).stdout.decode("utf-8").split())


def test_a_denial_made_through_the_api_gets_reasons_a_notice_an_email_and_a_customer_link(
        transactional_db: None, approved_demo: ModelVersion, officer: User, client_for: Callable[[User], Client],
        broker: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    client = client_for(officer)
    url, env = broker
    outbox = tmp_path / "mail"
    outbox.mkdir()
    worker_env = {**env, "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
                  "EMAIL_FILE_PATH": str(outbox), "CANDOR_PUBLIC_URL": "http://testserver"}
    with running(Worker(url, tmp_path / "worker.log", worker_env)):
        made = submit(client, credit_score=560, revolving_utilization=97.5)
        approved = submit(client, credit_score=780, revolving_utilization=10.0)
        assert (made["outcome"], approved["outcome"]) == ("denied", "approved")
        try:
            wait_for(lambda: Notice.objects.filter(sent_at__isnull=False).exists(), timeout=120,
                     what="the notice to be sent", interval=0.2)
        except AssertionError as exc:
            log = (tmp_path / "worker.log").read_text(errors="replace")
            raise AssertionError(f"{exc}; the worker's log ends:\n{log[-6000:]}") from None

    # --- the API: at most four reasons, the notice's URLs and hashes --------------------------------------
    body = client.get(made["links"]["self"]).json()
    reasons = body["reasons"]
    assert 1 <= len(reasons) <= 4
    assert [r["rank"] for r in reasons] == list(range(1, len(reasons) + 1))
    assert all(set(r) == {"rank", "field", "code", "text"} for r in reasons)
    assert client.get(approved["links"]["self"]).json()["reasons"] is None
    statement = ReasonStatement.objects.get()
    assert statement.source == "model" and len(statement.reasons) == len(reasons)
    notice = Notice.objects.get()
    assert body["notice"]["sha256"] == {"html": notice.html_sha256, "pdf": notice.pdf_sha256}
    assert body["customer_link"] is not None

    # --- the HTML notice: every required part, the ECOA paragraph verbatim -------------------------------
    html_response = client.get(body["notice"]["html"])
    assert html_response.status_code == 200
    page = html_response.content.decode()
    assert hashlib.sha256(html_response.content).hexdigest() == notice.html_sha256
    agency = agency_for("bank_over_10b", notice.notice_date)
    assert _text(_element(page, "ecoa-notice")) == _regulation_ecoa_text(agency.ecoa_text)
    text = _text(page)
    required = ["Candor Demo Bank, N.A.", "100 Example Street, Springfield, IL 62701",
                "We have denied your application for the Demo personal instalment loan.", "Jamie Example",
                "jamie@example.com", notice.reference, "Principal reasons for our decision",
                EXAMPLE_BUREAU.name, "1-800-555-0199", "played no part in our decision", "free copy of your report",
                "right to dispute", "Scores range from a low of 300 to a high of 850.", "560",
                "Consumer Lending Department, Candor Demo Bank, N.A.", "1-800-555-0100"]
    required += [r["customer_text"] for r in statement.reasons]
    for part in required:
        assert part in text, part
    reasons_section = _text(_element(page, "principal-reasons"))
    positions = [reasons_section.index(r["customer_text"]) for r in statement.reasons]
    assert positions == sorted(positions)

    # --- the PDF: the same letter ----------------------------------------------------------------------------
    pdf_response = client.get(body["notice"]["pdf"])
    assert pdf_response.status_code == 200 and pdf_response.content.startswith(b"%PDF-")
    assert hashlib.sha256(pdf_response.content).hexdigest() == notice.pdf_sha256
    # Rendered again here from the stored context, the worker's HTML and PDF come out byte for byte.
    assert notice_regenerate(notice=notice).unchanged
    printed = pdf_text(pdf_response.content, tmp_path)
    if printed is not None:
        assert _regulation_ecoa_text(agency.ecoa_text) in printed
        for part in required:
            assert part in printed, part

    # --- the e-mail, with the PDF -----------------------------------------------------------------------------
    messages = sent_messages(outbox)
    assert len(messages) == 1
    message = messages[0]
    assert message["To"] == "jamie@example.com"
    assert message["Subject"] == "Your application for credit: Demo personal instalment loan"
    attachments = list(message.iter_attachments())
    assert [a.get_filename() for a in attachments] == [f"notice-{notice.reference}.pdf"]
    assert attachments[0].get_content_type() == "application/pdf"
    assert attachments[0].get_content() == pdf_response.content
    plain = message.get_body(("plain",))
    assert plain is not None
    found = re.search(r"http://testserver(/c/[^/\s]+/)", plain.get_content())
    assert found, plain.get_content()

    # --- the customer's private link -------------------------------------------------------------------------
    customer = Client()
    own_page = customer.get(found.group(1))
    assert own_page.status_code == 200
    shown = _text(own_page.content.decode())
    for reason in statement.reasons:
        assert reason["customer_text"] in shown
    pdf_link = re.search(r'href="(/c/[^"]+/notice\.pdf)"', own_page.content.decode())
    assert pdf_link
    download = customer.get(pdf_link.group(1))
    assert download.status_code == 200 and download.content == pdf_response.content
    assert customer.get(found.group(1)[:-2] + "x/").status_code == 404

    assert CustomerLink.objects.count() == 1
    for event_type in ("reasons.stated", "notice.rendered", "customer_link.issued", "notice.sent"):
        assert AuditEvent.objects.filter(event_type=event_type).count() == 1, event_type
