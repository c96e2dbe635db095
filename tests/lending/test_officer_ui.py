"""The officer's pages: the queue puts the refer band first, a decision page shows the explanation, an
officer can override with factors, a compliance user cannot decide, and the admin's manual-review switch
sends every new application to an officer."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from audit.explanations import explanation_record
from audit.models import AuditEvent
from lending.models import Decision, ModelVersion, OfficerAction
from tests.conftest import demo_fields


def submit(client: Client, **overrides: Any) -> Decision:
    response = client.post(
        "/api/v1/applications",
        data=json.dumps({"product": "demo", "fields": demo_fields(**overrides)}),
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    return Decision.objects.get(public_id=response.json()["id"])


@pytest.fixture
def officer_client(officer: User, approved_demo: ModelVersion, client_for: Callable[[User], Client]) -> Client:
    return client_for(officer)


def outcomes_in_queue_order(client: Client) -> list[str]:
    html = client.get("/decisions/").content.decode()
    order = []
    for decision in Decision.objects.all():
        order.append((html.index(str(decision.public_id)), decision.outcome))
    return [outcome for _, outcome in sorted(order)]


def test_the_queue_puts_undecided_referrals_first(officer_client: Client) -> None:
    outcomes = set()
    for score in (820, 540, 700, 640, 600, 660, 680):
        outcomes.add(submit(officer_client, credit_score=score, revolving_utilization=40.0).outcome)
    if "referred" not in outcomes:
        pytest.fail(f"the fixture applications produced no referral ({outcomes}); adjust the scores")

    order = outcomes_in_queue_order(officer_client)

    first_other = next(i for i, outcome in enumerate(order) if outcome != "referred")
    assert all(outcome == "referred" for outcome in order[:first_other])
    assert "referred" not in order[first_other:]


def test_the_decision_page_draws_the_explanation_and_its_checks(officer_client: Client) -> None:
    decision = submit(officer_client, credit_score=560, revolving_utilization=95.0)
    explanation_record(decision_id=decision.pk)

    html = officer_client.get(f"/decisions/{decision.public_id}/").content.decode()

    assert "<svg" in html and "Explanation waterfall" in html
    assert "Additivity: passed" in html
    assert "automation bias" in html


def test_an_officer_overrides_an_approval_with_the_factors_relied_on(officer_client: Client, officer: User) -> None:
    decision = submit(officer_client, credit_score=800, revolving_utilization=5.0)
    assert decision.outcome == "approved"

    response = officer_client.post(
        f"/decisions/{decision.public_id}/act",
        {"action": "override", "factors": ["delinquencies_2y"], "other_factor": "", "comment": "Recent late payments"},
    )

    assert response.status_code == 302
    action = OfficerAction.objects.get(decision=decision)
    assert (action.action, action.outcome, action.factors) == ("override", "denied", ["delinquencies_2y"])
    event = AuditEvent.objects.get(event_type="decision.officer_action", subject_id=str(decision.pk))
    assert event.actor == officer and event.data["old_outcome"] == "approved" and event.data["new_outcome"] == "denied"


def test_a_compliance_user_cannot_decide(
    approved_demo: ModelVersion, officer_client: Client, compliance: User, client_for: Callable[[User], Client]
) -> None:
    decision = submit(officer_client)
    client = client_for(compliance)

    assert client.get(f"/decisions/{decision.public_id}/").status_code == 200
    response = client.post(f"/decisions/{decision.public_id}/act", {"action": "deny", "factors": ["amount"]})

    assert response.status_code == 403
    assert not OfficerAction.objects.exists()


def test_the_manual_review_switch_refers_every_new_application(
    officer_client: Client, admin_user: User, officer: User, client_for: Callable[[User], Client]
) -> None:
    assert client_for(officer).post("/manual-review", {"enabled": "on", "reason": "x"}).status_code == 403
    admin = client_for(admin_user)
    admin.post("/manual-review", {"enabled": "on", "reason": "Model drift under investigation"})

    strong = submit(officer_client, credit_score=820, revolving_utilization=3.0)

    assert strong.outcome == "referred" and strong.manual_review
    made = AuditEvent.objects.get(event_type="decision.made", subject_id=str(strong.pk))
    assert made.data["policy_outcome"] == "approved" and made.data["manual_review"] is True
    assert AuditEvent.objects.filter(event_type="manual_review.switched", actor=admin_user).exists()
    admin.post("/manual-review", {"reason": "Drift resolved"})
    assert submit(officer_client, credit_score=820, revolving_utilization=3.0).outcome == "approved"


def test_the_officer_reads_recourse_in_labels_and_formatted_values(officer_client: Client) -> None:
    """Recourse on the officer page names the spec's labels with values as people write them ($, %, months),
    never internal field names such as revolving_utilization."""
    import re

    from tests.audit.test_adverse import DENIED

    decision = submit(officer_client, **DENIED)
    assert decision.outcome == "denied"
    explanation = explanation_record(decision_id=decision.pk)
    recourse = explanation.document["recourse"]
    assert recourse is not None and recourse["found"], recourse
    html = officer_client.get(f"/decisions/{decision.public_id}/").content.decode()
    card = html[html.index("What would change the outcome"):]
    card = card[:card.index("</div>")]
    assert "Revolving utilisation:" in card and re.search(r"\d% instead of \d+(\.\d)?%", card), card
    for name in ("revolving_utilization", "term_months", "annual_income", "credit_score"):
        assert name not in card
