"""Applications through the API and the HTML form: one request decides; bad input stores nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from audit.models import AuditEvent
from lending.auth import api_token_create
from lending.models import Application, Decision, ModelVersion, MonitoringData
from lending.selectors import inputs_from_snapshot, product_spec, scoring_model_for
from tests.conftest import demo_fields

API = "/api/v1/applications"


def post(client: Client, body: Any, **extra: Any) -> Any:
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(API, data=data, content_type="application/json", **extra)


def assert_nothing_stored() -> None:
    assert Application.objects.count() == 0
    assert Decision.objects.count() == 0
    assert MonitoringData.objects.count() == 0
    assert not AuditEvent.objects.filter(event_type__in=["application.submitted", "decision.made"]).exists()


@pytest.fixture
def officer_client(officer: User, approved_demo: ModelVersion, client_for: Callable[[User], Client]) -> Client:
    return client_for(officer)


def test_a_valid_application_is_decided_in_one_request(officer_client: Client, approved_demo: ModelVersion) -> None:
    response = post(officer_client, {"product": "demo", "fields": demo_fields()})

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["outcome"] in ("approved", "denied", "referred")
    assert 0.0 < body["probability_of_default"] < 1.0
    assert body["model_version"] == approved_demo.version
    assert body["explanation"] is None
    assert response["Location"] == body["links"]["self"]
    decision = Decision.objects.get(public_id=body["id"])
    assert decision.probability_of_default == body["probability_of_default"]
    assert decision.inputs["amount"] == "12000.00"  # money kept exact
    assert "email" not in decision.inputs and "loan_purpose_text" not in decision.inputs
    assert decision.application.identity["email"] == "jamie@example.com"
    submitted = AuditEvent.objects.get(subject_type="lending.application", subject_id=str(decision.application.pk))
    made = AuditEvent.objects.get(subject_type="lending.decision", subject_id=str(decision.pk))
    assert (submitted.event_type, made.event_type) == ("application.submitted", "decision.made")
    assert made.actor_name == "olivia_officer"
    assert made.data["model_version"] == approved_demo.version
    assert made.data["inputs_sha256"] == decision.inputs_sha256


@pytest.mark.parametrize(
    ("fields", "bad_field", "words"),
    [
        (demo_fields(amount="lots"), "amount", "must be a number"),
        (demo_fields(amount=95000), "amount", "at most 40000"),
        (demo_fields(term_months=36.5), "term_months", "whole number"),
        (demo_fields(credit_score=200), "credit_score", "at least 300"),
        (demo_fields(housing="castle"), "housing", "must be one of"),
        (demo_fields(favourite_colour="blue"), "favourite_colour", "not a field"),
        (demo_fields(annual_income=None), "annual_income", "is required"),
        (demo_fields(amount=True), "amount", "not true/false"),
        (demo_fields(loan_purpose_text="x" * 1001), "loan_purpose_text", "at most 1000 characters"),
    ],
    ids=["malformed", "out-of-range", "not-whole", "below-min", "unknown-category", "unknown-field",
         "missing", "boolean-for-number", "text-too-long"],
)
def test_a_bad_field_is_named_and_nothing_is_stored(officer_client: Client, fields: dict[str, Any],
                                                     bad_field: str, words: str) -> None:
    response = post(officer_client, {"product": "demo", "fields": fields})

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_application"
    assert list(body["errors"]) == [bad_field]
    assert words in " ".join(body["errors"][bad_field])
    assert_nothing_stored()


def test_every_bad_field_is_reported_at_once(officer_client: Client) -> None:
    fields = demo_fields(amount=-5, credit_score="high", housing=None)
    response = post(officer_client, {"product": "demo", "fields": fields})

    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"amount", "credit_score", "housing"}
    assert_nothing_stored()


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ("{not json", "body"),
        ([1, 2], "body"),
        ({"fields": demo_fields()}, "product"),
        ({"product": "demo"}, "fields"),
        ({"product": "demo", "fields": [1]}, "fields"),
        ({"product": "no-such-product", "fields": demo_fields()}, "product"),
        ({"product": "demo", "fields": demo_fields(), "amount": 5}, "amount"),
    ],
    ids=["invalid-json", "not-an-object", "no-product", "no-fields", "fields-not-object", "unknown-product",
         "stray-top-level-key"],
)
def test_a_malformed_request_is_refused_naming_what_is_wrong(officer_client: Client, body: Any, key: str) -> None:
    response = post(officer_client, body)

    assert response.status_code == 400
    assert key in response.json()["errors"]
    assert_nothing_stored()


def test_anonymous_requests_are_refused(approved_demo: ModelVersion) -> None:
    response = post(Client(), {"product": "demo", "fields": demo_fields()})
    assert response.status_code == 401
    assert Client().get("/api/v1/products/demo").status_code == 401
    assert_nothing_stored()


def test_a_user_without_a_role_cannot_submit(outsider: User, approved_demo: ModelVersion,
                                             client_for: Callable[[User], Client]) -> None:
    response = post(client_for(outsider), {"product": "demo", "fields": demo_fields()})
    assert response.status_code == 403
    assert_nothing_stored()


def test_a_token_authenticates_an_api_client(officer: User, approved_demo: ModelVersion) -> None:
    key = api_token_create(user=officer, name="loan-origination-system")
    client = Client(enforce_csrf_checks=True)

    response = post(client, {"product": "demo", "fields": demo_fields()}, HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 201
    forged = post(client, {"product": "demo", "fields": demo_fields()}, HTTP_AUTHORIZATION="Token nope")
    assert forged.status_code == 401


def test_a_session_client_needs_the_csrf_token(officer: User, approved_demo: ModelVersion) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(officer)
    response = post(client, {"product": "demo", "fields": demo_fields()})
    assert response.status_code == 403
    assert_nothing_stored()


def test_an_unapproved_model_never_scores(officer: User, demo_version: ModelVersion,
                                          client_for: Callable[[User], Client]) -> None:
    response = post(client_for(officer), {"product": "demo", "fields": demo_fields()})

    assert response.status_code == 409
    assert response.json()["code"] == "no_approved_model"
    assert_nothing_stored()
    with pytest.raises(Exception, match="not approved"):
        scoring_model_for(model_version=demo_version)


def test_the_product_describes_its_fields_for_a_form(officer_client: Client) -> None:
    body = officer_client.get("/api/v1/products/demo").json()

    fields = {f["name"]: f for f in body["fields"]}
    assert fields["amount"] == {"name": "amount", "label": "Loan amount", "type": "number", "source": "applicant",
                                "required": True, "unit": "USD", "min": 1000.0, "max": 40000.0}
    assert fields["credit_score"]["source"] == "bureau"
    assert [c["value"] for c in fields["housing"]["categories"]] == ["own", "mortgage", "rent", "other"]
    assert officer_client.get("/api/v1/products/nope").status_code == 404


def test_rescoring_a_stored_snapshot_gives_the_stored_score_bit_for_bit(officer_client: Client) -> None:
    for overrides in ({}, {"amount": "39999.99", "credit_score": 560}, {"revolving_utilization": 99.25}):
        post(officer_client, {"product": "demo", "fields": demo_fields(**overrides)})
    for decision in Decision.objects.select_related("model_version", "application__product"):
        decision.refresh_from_db()  # the values as the database returns them
        spec = product_spec(product=decision.application.product)
        model = scoring_model_for(model_version=decision.model_version)

        again = model.score(inputs_from_snapshot(spec=spec, snapshot=decision.inputs))

        assert again.hex() == decision.probability_of_default.hex()


def test_a_knockout_denies_whatever_the_score(officer_client: Client) -> None:
    body = post(officer_client, {"product": "demo", "fields": demo_fields(public_records=5, credit_score=820)}).json()
    assert body["outcome"] == "denied"
    assert body["knockout_reason"] == "public_records"


def test_the_decision_can_be_read_back(officer_client: Client) -> None:
    created = post(officer_client, {"product": "demo", "fields": demo_fields()}).json()
    again = officer_client.get(created["links"]["self"]).json()
    assert again == created


class TestTheHtmlForm:
    def test_it_decides_a_valid_application(self, officer_client: Client) -> None:
        form = {k: str(v) for k, v in demo_fields().items()}
        response = officer_client.post("/apply/demo/", form)

        assert response.status_code == 302
        decision = Decision.objects.get()
        assert response["Location"] == f"/decisions/{decision.public_id}/"
        page = officer_client.get(response["Location"])
        assert decision.get_outcome_display() in page.content.decode()

    def test_it_re_renders_with_the_same_errors_and_stores_nothing(self, officer_client: Client) -> None:
        form = {k: str(v) for k, v in demo_fields(amount="95000", housing="castle").items()}
        response = officer_client.post("/apply/demo/", form)

        assert response.status_code == 400
        html = response.content.decode()
        assert "must be at most 40000, got 95000" in html
        assert "must be one of" in html
        assert 'value="Jamie Example"' in html  # what was typed is kept
        assert_nothing_stored()
