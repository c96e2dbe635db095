"""The customer's own page behind a private link: what it shows, what it must never show, who gets a 404,
the request form, both languages, and the PDF."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core import mail, signing
from django.test import Client
from django.utils import timezone

from audit.adverse import CUSTOMER_LINK_SALT, FIELD_LABELS_ES, adverse_action_prepare, customer_requests_open
from audit.customer_views import STRINGS
from audit.models import AuditEvent, CustomerLink, CustomerRequest, Notice
from lending.models import Decision, ModelVersion
from lending.services import officer_decide
from scoring.adverse_action import PRODUCT_REASON_ES
from scoring.reasons import FORM_C1_FCRA_KEY_FACTOR_ES, FORM_C1_TEXT_ES
from scoring.spec import ProductSpec, get_spec, shipped_specs
from tests.audit.test_adverse import DENIED, decide, link_from, visible_text


@pytest.fixture
def denied(approved_demo: ModelVersion, officer: User) -> tuple[Decision, str]:
    """A denied applicant and the token from the e-mail they got; another applicant was denied too."""
    decision = decide(approved_demo, officer, expect="denied", **DENIED)
    assert adverse_action_prepare(decision_id=decision.pk).sent
    token = link_from(mail.outbox[-1])
    other = decide(approved_demo, officer, expect="denied", applicant_name="Riley Other",
                   email="riley@other.example", credit_score=600, revolving_utilization=90.0, delinquencies_2y=2)
    assert adverse_action_prepare(decision_id=other.pk).sent
    return decision, token


def page_url(token: str) -> str:
    return f"/c/{token}/"


def get(token: str, **extra: Any) -> Any:
    return Client().get(page_url(token), **extra)


# --- what the page shows ------------------------------------------------------------------------------

def test_the_page_shows_the_decision_reasons_recourse_score_rights_and_the_pdf(denied: tuple[Decision, str]) -> None:
    decision, token = denied
    response = get(token)
    assert response.status_code == 200
    page = response.content.decode()
    text = visible_text(page)
    statement = decision.reason_statements.get()
    assert "We were unable to approve your application for the Demo personal instalment loan" in text
    assert "made by our automated credit scoring system" in text
    reasons = re.search(r'<ol id="reasons">(.*?)</ol>', page, re.S)
    assert reasons is not None
    assert [visible_text(item) for item in re.findall(r"<li>(.*?)</li>", reasons.group(1), re.S)] == \
        [r["customer_text"] for r in statement.reasons]
    # What would change the outcome: labels and formatted values from the stored, verified recourse.
    recourse = decision.explanations.get().document["recourse"]
    assert recourse["found"] and recourse["verified"]
    spec = get_spec("demo")
    for name, _old, _new in recourse["changes"]:
        assert f"{spec.field(name).label}:" in text
    assert "$12,000" in text or "36 months" in text or "75%" in text
    # FCRA: the score, its range, the bureau, the right to a free report and to dispute.
    for part in ("Your credit score", "630", "Scores range from a low of 300 to a high of 850.",
                 "Example Credit Bureau, Inc.", "1-800-555-0199", "free copy of your credit report",
                 "dispute"):
        assert part in text, part
    # Rights: the ECOA notice, GDPR Art. 22 and AI Act Art. 86.
    assert "The Federal Equal Credit Opportunity Act prohibits creditors" in text
    assert "1700 G Street NW, Washington DC 20552" in text
    assert "Article 22" in text and "Article 86" in text
    pdf = Client().get(f"/c/{token}/notice.pdf")
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    assert pdf.content == bytes(Notice.objects.get(decision=decision).pdf)
    assert f'href="/c/{token}/notice.pdf"' in page
    # Private: not cached, not indexed, the token never sent on as a referrer.
    assert response["Cache-Control"] == "no-store, private"
    assert response["Referrer-Policy"] == "same-origin"  # the token never leaves our origin
    assert "noindex" in response["X-Robots-Tag"]


def _allowed_wordings(spec: ProductSpec) -> list[str]:
    """Customer wording that legitimately contains ordinary words which are also field names ("amount")."""
    wordings = [f.label for f in spec.fields]
    wordings += [FIELD_LABELS_ES.get((spec.slug, f.name), "") for f in spec.fields]
    for key in {f.reason for f in spec.fields if f.reason} | {rule.reason for rule in spec.policy.knockouts}:
        reason = spec.reason_for(key)
        wordings += [reason.text, reason.customer_text, reason.fcra_key_factor, FORM_C1_TEXT_ES.get(key, ""),
                     FORM_C1_FCRA_KEY_FACTOR_ES.get(key, ""), *(PRODUCT_REASON_ES.get((spec.slug, key)) or ("", ""))]
    return sorted({w for w in wordings if w}, key=len, reverse=True)


@pytest.mark.parametrize("lang", ["en", "es"])
def test_the_page_never_shows_field_names_attributions_model_ids_or_another_applicant(
        denied: tuple[Decision, str], lang: str) -> None:
    decision, token = denied
    page = get(token, QUERY_STRING=f"lang={lang}").content.decode()
    spec = get_spec("demo")
    # Every field name of the product: identifier-like ones nowhere in the HTML; plain words ("amount",
    # "housing", "email") only inside the customer wording that legitimately contains them.
    scrubbed = page
    for wording in _allowed_wordings(spec):
        scrubbed = scrubbed.replace(wording, " ")
    for name in spec.field_names:
        assert not re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", scrubbed, re.I), name
    for other_spec in shipped_specs().values():
        for name in other_spec.field_names:
            if "_" in name or name != name.lower():
                assert name not in page, name
    # Reason keys and codes are internal too.
    for reason in decision.reason_statements.get().reasons:
        assert f">{reason['key']}<" not in page and f'"{reason["key"]}"' not in page
    # No raw attribution or probability.
    explanation = decision.explanations.get()
    text = visible_text(page)
    numbers = [decision.probability_of_default, explanation.base_value, explanation.output]
    for key in ("attributions", "attributions_all", "probability_attributions", "feature_attributions"):
        numbers += list(explanation.document[key].values())
    for value in numbers:
        if value:
            for shown in (repr(value), f"{value:.2f}", f"{value:.3f}", f"{value:.4f}"):
                assert shown not in text or shown in ("0.00", "-0.00"), shown
    assert not re.search(r"\d\.\d{3,}", text)
    # No model identifiers, hashes or versions.
    version = decision.model_version
    for secret in (version.version, version.content_hash, version.content_hash[:12], version.spec_hash,
                   version.training_data_sha256, decision.inputs_sha256, explanation.explainer_version,
                   str(decision.public_id), str(decision.application.public_id)):
        assert secret not in page, secret
    assert "model_version" not in page and "explainer" not in page.lower()
    # Nothing of the other applicant.
    assert "Riley Other" not in page and "riley@other.example" not in page


def test_the_page_is_in_spanish_by_query_or_accept_language(denied: tuple[Decision, str]) -> None:
    decision, token = denied
    statement = decision.reason_statements.get()
    for response in (get(token, QUERY_STRING="lang=es"), get(token, HTTP_ACCEPT_LANGUAGE="es-MX,es;q=0.9")):
        page = response.content.decode()
        assert '<html lang="es">' in page and response["Content-Language"] == "es"
        text = visible_text(page)
        assert STRINGS["es"]["title"] in text and STRINGS["es"]["reasons_heading"] in text
        for reason in statement.reasons:
            assert reason["customer_text_es"] in text
        assert "Monto del préstamo" in text or "Plazo" in text or "Utilización del crédito rotativo" in text
        # The official English ECOA text is there too (Reg B 1002.4(e)).
        assert "The Federal Equal Credit Opportunity Act prohibits creditors" in text
        for key in ("outcome_denied", "review_rights", "submit"):
            assert STRINGS["en"][key].split("{")[0] not in text
    english = get(token, HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9,es;q=0.5")
    assert '<html lang="en">' in english.content.decode()
    assert '<a href="/c/' in english.content.decode() and "lang=es" in english.content.decode()


def test_every_string_of_the_page_exists_in_both_languages() -> None:
    assert set(STRINGS["en"]) == set(STRINGS["es"])
    for language in ("en", "es"):
        assert all(value for key, value in STRINGS[language].items() if key != "ecoa_english"), language
        assert all(STRINGS["en"][k].count("{") == STRINGS[language][k].count("{") for k in STRINGS["en"])


def test_no_javascript_and_accessible_markup(denied: tuple[Decision, str]) -> None:
    _decision, token = denied
    page = get(token).content.decode()
    assert "<script" not in page.lower() and not re.search(r"\son\w+\s*=", page)
    assert "http://" not in page and "https://" not in page
    assert page.count("<h1>") == 1 and "<main>" in page
    for control_id in re.findall(r'<(?:input|textarea)[^>]*\bid="([^"]+)"', page):
        assert f'for="{control_id}"' in page, control_id
    assert "<fieldset" in page and "<legend>" in page
    assert 'name="csrfmiddlewaretoken"' in page


def test_after_an_officer_approves_the_page_says_so_without_reasons(denied: tuple[Decision, str],
                                                                   officer: User) -> None:
    decision, token = denied
    officer_decide(decision=decision, officer=officer, action="approve", factors=[], comment="Verified")
    response = get(token)
    text = visible_text(response.content.decode())
    assert "was approved on" in text and "made by one of our loan officers" in text
    assert 'id="reasons"' not in response.content.decode() and "notice.pdf" not in response.content.decode()
    assert Client().get(f"/c/{token}/notice.pdf").status_code == 404


# --- who gets a 404 --------------------------------------------------------------------------------------

def _tampered(token: str) -> str:
    last = token[-1]
    return token[:-1] + ("A" if last != "A" else "B")


def test_forged_and_tampered_tokens_get_a_plain_404_without_a_database_query(
        denied: tuple[Decision, str], django_assert_num_queries: Any) -> None:
    _decision, token = denied
    forged_with_other_key = signing.dumps({"t": "x" * 43, "x": 4102444800}, key="not-our-secret-key-at-all",
                                          salt=CUSTOMER_LINK_SALT)
    _payload, _, signature = token.rpartition(":")
    swapped_payload = signing.dumps({"t": "y" * 43, "x": 4102444800}, salt=CUSTOMER_LINK_SALT).rpartition(":")[0]
    wrong_salt = signing.dumps({"t": "z" * 43, "x": 4102444800}, salt="another-salt")
    bodies = set()
    for bad in ("nonsense", _tampered(token), forged_with_other_key, f"{swapped_payload}:{signature}", wrong_salt,
                token.replace(":", "%3A", 1)[::-1]):
        with django_assert_num_queries(0):
            page = Client().get(page_url(bad))
            pdf = Client().get(f"/c/{bad}/notice.pdf")
        assert page.status_code == 404 and pdf.status_code == 404, bad
        bodies.add(page.content)
    assert bodies == {b"Not found\n"}
    assert get(token).status_code == 200


def test_a_validly_signed_unknown_or_revoked_token_gets_the_same_404(denied: tuple[Decision, str]) -> None:
    decision, token = denied
    unknown = signing.dumps({"t": "q" * 43, "x": int((timezone.now() + dt.timedelta(days=5)).timestamp())},
                            salt=CUSTOMER_LINK_SALT)
    assert get(unknown).status_code == 404 and get(unknown).content == b"Not found\n"
    CustomerLink.objects.filter(decision=decision).update(revoked_at=timezone.now())
    response = get(token)
    assert response.status_code == 404 and response.content == b"Not found\n"


def test_an_expired_link_gets_a_plain_404(denied: tuple[Decision, str], django_assert_num_queries: Any) -> None:
    decision, token = denied
    link = CustomerLink.objects.get(decision=decision)
    assert link.expires_at - link.created_at == dt.timedelta(days=90)
    with time_machine.travel(link.expires_at - dt.timedelta(minutes=1), tick=False):
        assert get(token).status_code == 200
    with time_machine.travel(link.expires_at + dt.timedelta(seconds=1), tick=False):
        with django_assert_num_queries(0):  # the signed expiry refuses it before the database
            response = get(token)
        assert response.status_code == 404 and response.content == b"Not found\n"
    # Cut short in the database (e.g. by compliance): refused too.
    CustomerLink.objects.filter(pk=link.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert get(token).status_code == 404


# --- the request form --------------------------------------------------------------------------------------

def _csrf_client(token: str, lang: str = "en") -> tuple[Client, str]:
    client = Client(enforce_csrf_checks=True)
    page = client.get(page_url(token), {"lang": lang}).content.decode()
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert match
    return client, match.group(1)


def test_a_customer_asks_for_a_human_review_and_it_reaches_the_officers(
        denied: tuple[Decision, str], officer: User, outsider: User, client_for: Callable[[User], Client]) -> None:
    decision, token = denied
    client, csrf = _csrf_client(token)

    response = client.post(f"{page_url(token)}?lang=en", {"kind": "review", "message": "My income has risen.",
                                                          "csrfmiddlewaretoken": csrf})

    assert response.status_code == 303
    assert response["Location"] == f"{page_url(token)}?lang=en&sent=1"
    request = CustomerRequest.objects.get()
    assert (request.decision, request.kind, request.message, request.language) == \
        (decision, "review", "My income has risen.", "en")
    assert list(customer_requests_open()) == [request]
    event = AuditEvent.objects.get(event_type="customer_request.created")
    assert event.subject_id == str(request.pk) and event.data["kind"] == "review"
    assert STRINGS["en"]["sent"] in visible_text(client.get(response["Location"]).content.decode())
    queue = client_for(officer).get("/officer/customer-requests/")
    assert queue.status_code == 200 and "My income has risen." in queue.content.decode()
    assert client_for(outsider).get("/officer/customer-requests/").status_code == 403


def test_the_form_needs_the_csrf_token(denied: tuple[Decision, str]) -> None:
    _decision, token = denied
    response = Client(enforce_csrf_checks=True).post(page_url(token), {"kind": "review"})
    assert response.status_code == 403 and not CustomerRequest.objects.exists()


@pytest.mark.parametrize(("lang", "data", "error"), [
    ("en", {"kind": "information", "message": "  "}, STRINGS["en"]["error_message_required"]),
    ("en", {"message": "hello"}, STRINGS["en"]["error_kind"]),
    ("es", {"kind": "information"}, STRINGS["es"]["error_message_required"]),
    ("en", {"kind": "review", "message": "x" * 5001}, STRINGS["en"]["error_message_long"]),
])
def test_a_form_with_problems_is_shown_again_with_them(denied: tuple[Decision, str], lang: str,
                                                       data: dict[str, str], error: str) -> None:
    _decision, token = denied
    client, csrf = _csrf_client(token, lang)
    response = client.post(f"{page_url(token)}?lang={lang}", {**data, "csrfmiddlewaretoken": csrf})
    assert response.status_code == 400
    assert error in visible_text(response.content.decode())
    assert not CustomerRequest.objects.exists()


def test_information_with_a_message_is_accepted(denied: tuple[Decision, str]) -> None:
    _decision, token = denied
    client, csrf = _csrf_client(token, "es")
    response = client.post(f"{page_url(token)}?lang=es", {"kind": "information", "message": "Adjunto mi nómina.",
                                                           "csrfmiddlewaretoken": csrf})
    assert response.status_code == 303
    assert CustomerRequest.objects.get().language == "es"
