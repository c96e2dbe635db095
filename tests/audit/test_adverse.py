"""Adverse action through the services: stated reasons, the stored notice, its delivery, officer decisions,
what compliance sees as due, and the API. The worker's part (explanation, then the follow-up task) is called
directly here; tests/e2e/test_adverse_action_e2e.py runs it through a real worker.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import smtplib
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client
from django.utils import timezone

from audit import adverse
from audit.adverse import (
    OfficerDecisionInvalid,
    adverse_action_prepare,
    customer_link_resolve,
    decision_final,
    hmda_for,
    notice_current,
    notice_due_at,
    notice_record_mailed,
    notice_regenerate,
    notices_due,
    reason_statement_current,
)
from audit.explanations import explanation_record
from audit.models import AuditEvent, CustomerLink, Notice, ReasonStatement
from audit.notices import ECOA_NOTICE_EN
from lending.models import Application, Decision, ModelVersion
from lending.selectors import product_spec
from lending.services import application_submit, officer_decide
from scoring.adverse_action import principal_reasons
from scoring.spec import get_spec
from tests.conftest import demo_fields

# Inputs the session's demo model decides clearly (PD well away from the 0.20/0.30 policy lines).
DENIED = {"credit_score": 630, "revolving_utilization": 75.0, "delinquencies_2y": 1}  # denied, recourse found
DENIED_HARD = {"credit_score": 540, "delinquencies_2y": 4, "revolving_utilization": 120, "inquiries_6m": 8}
APPROVED = {"credit_score": 780, "revolving_utilization": 10.0}
KNOCKOUT = {"public_records": 5, "credit_score": 780}


def decide(version: ModelVersion, user: User, *, explain: bool = True, identity: dict[str, Any] | None = None,
           expect: str | None = None, **overrides: Any) -> Decision:
    """A decision made as the API makes it, explained as the worker explains it."""
    decision = application_submit(product=version.product, fields=demo_fields(**overrides), submitted_by=user)
    if expect is not None:
        assert decision.outcome == expect, f"{overrides} gave {decision.outcome} ({decision.probability_of_default})"
    if identity is not None:
        Application.objects.filter(pk=decision.application_id).update(
            identity={**decision.application.identity, **identity})
        decision.application.refresh_from_db()
    if explain:
        explanation_record(decision_id=decision.pk)
    return decision


def link_from(message: mail.EmailMessage) -> str:
    match = re.search(r"https?://\S+/c/([^/\s]+)/", message.body)
    assert match, message.body
    return match.group(1)


def events(event_type: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(event_type=event_type))


def visible_text(page: str) -> str:
    import html

    page = re.sub(r"<(style|title)[^>]*>.*?</\1>", " ", page, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


# --- a model denial, end to end in one process ---------------------------------------------------------

def test_a_denial_gets_its_reasons_a_stored_notice_an_email_and_a_link(approved_demo: ModelVersion,
                                                                        officer: User) -> None:
    decision = decide(approved_demo, officer, expect="denied", **DENIED)

    result = adverse_action_prepare(decision_id=decision.pk)

    statement = result.statement
    assert statement is not None and statement.source == "model"
    explanation = decision.explanations.get()
    # The reasons are exactly principal_reasons of the stored explanation, with the ranking and the
    # attributions behind them (checklist A3(b)).
    expected = principal_reasons(get_spec("demo"), attributions=explanation.document["attributions"],
                                 knockout_reason=None)
    assert [r["key"] for r in statement.reasons] == [r.key for r in expected]
    assert 1 <= len(statement.reasons) <= 4
    assert [r["rank"] for r in statement.reasons] == list(range(1, len(statement.reasons) + 1))
    assert statement.ranking == explanation.document["negative_ranked"]
    assert statement.attributions == explanation.document["attributions"]
    assert statement.explanation == explanation
    assert statement.hmda is None  # a consumer instalment loan is not HMDA-reportable
    for reason in statement.reasons:
        assert reason["attribution"] is not None and reason["attribution"] > 0

    notice = result.notice
    assert notice is not None and result.sent
    assert notice.pdf.tobytes().startswith(b"%PDF-") if hasattr(notice.pdf, "tobytes") else \
        bytes(notice.pdf).startswith(b"%PDF-")
    assert notice.html_sha256 == hashlib.sha256(notice.html.encode()).hexdigest()
    assert notice.pdf_sha256 == hashlib.sha256(bytes(notice.pdf)).hexdigest()
    assert notice.language == "en" and notice.delivery_channel == "email" and notice.email == "jamie@example.com"
    assert notice.due_at == decision.application.completed_at + dt.timedelta(days=30)
    assert notice.sent_at is not None and notice.sent_at <= notice.due_at
    text = visible_text(notice.html)
    for reason in statement.reasons:
        assert reason["customer_text"] in text
    assert " ".join(ECOA_NOTICE_EN.split("{agency}")[0].split()) in text
    # What would change the outcome, in the customer's terms (labels and units, never field names).
    assert "Revolving utilisation:" in text and "%" in text
    assert "revolving_utilization" not in notice.html

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["jamie@example.com"]
    assert message.subject == "Your application for credit: Demo personal instalment loan"
    (name, content, mimetype), = message.attachments
    assert name == f"notice-{notice.reference}.pdf" and mimetype == "application/pdf"
    assert content == bytes(notice.pdf)
    link = customer_link_resolve(token=link_from(message))
    assert link is not None and link.decision == decision

    for event_type in ("reasons.stated", "notice.rendered", "customer_link.issued", "notice.sent"):
        assert len(events(event_type)) == 1, event_type
    assert events("notice.sent")[0].data["on_time"] is True


def test_running_the_follow_up_again_changes_nothing(approved_demo: ModelVersion, officer: User) -> None:
    decision = decide(approved_demo, officer, expect="denied", **DENIED)
    first = adverse_action_prepare(decision_id=decision.pk)
    for _ in range(3):
        again = adverse_action_prepare(decision_id=decision.pk)
        assert again.statement == first.statement and again.notice == first.notice and again.sent
    assert ReasonStatement.objects.filter(decision=decision).count() == 1
    assert Notice.objects.filter(decision=decision).count() == 1
    assert CustomerLink.objects.filter(decision=decision).count() == 1
    assert len(mail.outbox) == 1
    assert len(events("notice.sent")) == 1 and len(events("reasons.stated")) == 1


def test_a_regenerated_notice_has_the_stored_hashes(approved_demo: ModelVersion, officer: User) -> None:
    decision = decide(approved_demo, officer, expect="denied", **DENIED)
    notice = adverse_action_prepare(decision_id=decision.pk).notice
    assert notice is not None
    stored = Notice.objects.get(pk=notice.pk)

    regenerated = notice_regenerate(notice=stored)

    assert regenerated.html_sha256 == stored.html_sha256
    assert regenerated.pdf_sha256 == stored.pdf_sha256
    assert regenerated.unchanged
    # A changed byte in the stored context would show.
    stored.context = {**stored.context, "applicant_name": "Someone Else"}
    assert not notice_regenerate(notice=stored).unchanged


def test_a_knockout_reason_comes_first(approved_demo: ModelVersion, officer: User) -> None:
    decision = decide(approved_demo, officer, expect="denied", **KNOCKOUT)
    statement = adverse_action_prepare(decision_id=decision.pk).statement
    assert statement is not None
    first = statement.reasons[0]
    assert (first["key"], first["source"], first["field"]) == ("public_records", "knockout", "public_records")
    assert len(statement.reasons) <= 4


def test_an_unused_input_is_never_a_reason(approved_demo: ModelVersion, officer: User) -> None:
    decision = decide(approved_demo, officer, expect="denied", **DENIED_HARD)
    statement = adverse_action_prepare(decision_id=decision.pk).statement
    assert statement is not None
    model_inputs = {f.name for f in get_spec("demo").model_inputs}
    for reason in statement.reasons:
        assert set(reason["fields"]) <= model_inputs


def test_an_approval_gets_no_reasons_and_no_notice(approved_demo: ModelVersion, officer: User) -> None:
    decision = decide(approved_demo, officer, expect="approved", **APPROVED)
    result = adverse_action_prepare(decision_id=decision.pk)
    assert (result.statement, result.notice, result.sent) == (None, None, False)
    assert not ReasonStatement.objects.exists() and not mail.outbox


def test_a_denial_waits_for_its_explanation(approved_demo: ModelVersion, officer: User) -> None:
    decision = decide(approved_demo, officer, explain=False, expect="denied", **DENIED)
    assert adverse_action_prepare(decision_id=decision.pk).statement is None
    explanation_record(decision_id=decision.pk)
    assert adverse_action_prepare(decision_id=decision.pk).sent


# --- officers (Reg B comments 9(b)(2)-6 and -7; checklist A5) --------------------------------------------

def test_model_approved_officer_denied_notice_shows_only_the_officers_factors(approved_demo: ModelVersion,
                                                                              officer: User) -> None:
    decision = decide(approved_demo, officer, expect="approved", **APPROVED)
    factors = ["annual_income", "other: The collateral documents you gave us could not be verified"]

    action = officer_decide(decision=decision, officer=officer, action="override", factors=factors,
                            comment="Income does not support the amount after verification")

    assert action.outcome == "denied" and decision_final(decision=decision).outcome == "denied"
    result = adverse_action_prepare(decision_id=decision.pk)
    statement, notice = result.statement, result.notice
    assert statement is not None and notice is not None and result.sent
    assert statement.source == "officer" and statement.officer_action == action
    assert [(r["key"], r["source"]) for r in statement.reasons] == [("income_insufficient", "officer"),
                                                                      ("other", "officer")]
    text = visible_text(notice.html)
    assert "Income insufficient for amount of credit requested" in text
    assert "The collateral documents you gave us could not be verified" in text
    assert "One of our loan officers reviewed your application" in text
    # Nothing of the model's own reasons: for this approval they would be these fields' reasons.
    model_reasons = principal_reasons(get_spec("demo"), attributions=statement.attributions, knockout_reason=None)
    for reason in model_reasons:
        if reason.key != "income_insufficient":
            assert reason.customer_text not in text, reason.key
    # No model recourse on an officer's denial.
    assert "What could change our decision" not in text
    event = events("decision.officer_action")[0]
    assert event.actor == officer
    assert event.data | {} == event.data and event.data["old_outcome"] == "approved"
    assert event.data["new_outcome"] == "denied" and event.data["factors"] == factors


def test_a_referred_decision_waits_for_the_officer(approved_demo: ModelVersion, officer: User) -> None:
    decision = decide(approved_demo, officer, expect="denied", **DENIED)
    Decision.objects.filter(pk=decision.pk).update(outcome="referred")  # a gray-band application
    decision.refresh_from_db()
    assert adverse_action_prepare(decision_id=decision.pk).statement is None

    officer_decide(decision=decision, officer=officer, action="deny",
                   factors=["revolving_utilization", "delinquencies_2y"])
    result = adverse_action_prepare(decision_id=decision.pk)

    assert result.statement is not None and result.statement.source == "officer"
    assert [r["key"] for r in result.statement.reasons] == ["revolving_utilization", "delinquent_obligations"]
    assert result.sent


def test_an_officer_who_confirms_a_denial_restates_the_reasons_and_a_new_notice_supersedes(
        approved_demo: ModelVersion, officer: User) -> None:
    decision = decide(approved_demo, officer, expect="denied", **DENIED)
    first = adverse_action_prepare(decision_id=decision.pk).notice
    assert first is not None

    officer_decide(decision=decision, officer=officer, action="deny", factors=["delinquencies_2y"])
    second = adverse_action_prepare(decision_id=decision.pk).notice

    assert second is not None and second != first
    first.refresh_from_db()
    assert first.superseded_by == second and first.superseded_at is not None
    assert notice_current(decision=decision) == second
    assert ReasonStatement.objects.filter(decision=decision, superseded_at__isnull=True).count() == 1
    assert Notice.objects.filter(decision=decision, superseded_at__isnull=True).count() == 1
    assert [r["key"] for r in reason_statement_current(decision=decision).reasons] == ["delinquent_obligations"]
    assert len(mail.outbox) == 2
    # The model's statement is never stated again, however often the task runs.
    adverse_action_prepare(decision_id=decision.pk)
    assert reason_statement_current(decision=decision).source == "officer"


def test_an_officer_approval_withdraws_the_reasons_and_the_notice(approved_demo: ModelVersion, officer: User,
                                                                  client_for: Callable[[User], Client]) -> None:
    decision = decide(approved_demo, officer, expect="denied", **DENIED)
    adverse_action_prepare(decision_id=decision.pk)

    officer_decide(decision=decision, officer=officer, action="override", factors=[], comment="Verified income")

    assert decision_final(decision=decision).outcome == "approved"
    assert reason_statement_current(decision=decision) is None and notice_current(decision=decision) is None
    assert len(events("reasons.withdrawn")) == 1
    assert adverse_action_prepare(decision_id=decision.pk).statement is None
    body = client_for(officer).get(f"/api/v1/decisions/{decision.public_id}").json()
    assert body["reasons"] is None and body["notice"] is None


@pytest.mark.parametrize(("action", "factors", "field"), [
    ("deny", [], "factors"),
    ("deny", ["internal_policy"], "factors"),
    ("deny", ["other:"], "factors"),
    ("deny", ["email"], "factors"),  # not a model input
    ("deny", ["amount", "term_months", "credit_score", "delinquencies_2y", "inquiries_6m"], "factors"),
    ("override", ["amount"], "action"),  # a referred decision has no model outcome to override
    ("escalate", [], "action"),
])
def test_factors_that_cannot_be_stated_keep_nothing(approved_demo: ModelVersion, officer: User, action: str,
                                                    factors: list[str], field: str) -> None:
    decision = decide(approved_demo, officer, explain=False, expect="denied", **DENIED)
    if action == "override":
        Decision.objects.filter(pk=decision.pk).update(outcome="referred")
        decision.refresh_from_db()
    with pytest.raises(OfficerDecisionInvalid) as raised:
        officer_decide(decision=decision, officer=officer, action=action, factors=factors)
    assert field in raised.value.fields
    assert not decision.officer_actions.exists() and not events("decision.officer_action")


def test_an_officer_denial_of_a_knockout_must_state_the_knockout(approved_demo: ModelVersion, officer: User) -> None:
    decision = decide(approved_demo, officer, expect="denied", **KNOCKOUT)
    with pytest.raises(OfficerDecisionInvalid, match="knockout"):
        officer_decide(decision=decision, officer=officer, action="deny", factors=["amount"])
    officer_decide(decision=decision, officer=officer, action="deny", factors=["public_records", "amount"])


def test_a_request_for_information_changes_no_outcome(approved_demo: ModelVersion, officer: User) -> None:
    decision = decide(approved_demo, officer, expect="denied", **DENIED)
    adverse_action_prepare(decision_id=decision.pk)
    statement = reason_statement_current(decision=decision)
    officer_decide(decision=decision, officer=officer, action="request_info", comment="Pay slips, please")
    assert decision_final(decision=decision).outcome == "denied"
    assert reason_statement_current(decision=decision) == statement


# --- the notice: language, HMDA, what cannot be rendered, delivery --------------------------------------------

def test_a_spanish_applicant_gets_a_spanish_notice_and_email(approved_demo: ModelVersion, officer: User) -> None:
    decision = decide(approved_demo, officer, identity={"language": "es"}, expect="denied", **DENIED)
    notice = adverse_action_prepare(decision_id=decision.pk).notice
    assert notice is not None and notice.language == "es"
    assert '<html lang="es">' in notice.html
    assert "Razones principales de nuestra decisión" in notice.html
    # The recourse names what the applicant can change in Spanish (which fields depends on the model).
    assert any(label in visible_text(notice.html)
               for label in ("Plazo", "Monto del préstamo", "Utilización del crédito rotativo"))
    assert mail.outbox[0].subject == "Su solicitud de crédito: Demo personal instalment loan"
    assert "Estimado(a) Jamie Example" in mail.outbox[0].body


def test_an_officers_other_reason_without_spanish_wording_goes_out_in_english(approved_demo: ModelVersion,
                                                                              officer: User) -> None:
    decision = decide(approved_demo, officer, identity={"language": "es"}, expect="denied", **DENIED)
    officer_decide(decision=decision, officer=officer, action="deny", factors=["other: Missing title documents"])
    notice = adverse_action_prepare(decision_id=decision.pk).notice
    assert notice is not None and notice.language == "en"


def test_hmda_codes_are_kept_for_dwelling_secured_products_only() -> None:
    heloc = get_spec("heloc")
    reasons = principal_reasons(heloc, attributions={"ExternalRiskEstimate": 0.4, "NumInqLast6M": 0.3,
                                                     "NetFractionRevolvingBurden": 0.2, "AverageMInFile": 0.1,
                                                     "MSinceMostRecentDelq": 0.05}, knockout_reason=None)
    hmda = hmda_for(heloc, reasons)
    assert hmda is not None and 1 <= len(hmda["codes"]) <= 4 and 10 not in hmda["codes"]
    assert hmda["codes"] == list(dict.fromkeys(r.hmda_code for r in reasons))[:4]
    demo = get_spec("demo")
    assert hmda_for(demo, principal_reasons(demo, attributions={"amount": 0.2}, knockout_reason=None)) is None
    # "Other" (code 9) carries its text (HMDA edit V671-1).
    other = principal_reasons(heloc, attributions={}, knockout_reason=None, officer_factors=["other: Flood zone"])
    assert hmda_for(heloc, other) == {"codes": [9], "other_text": "Flood zone"}


def test_a_notice_that_cannot_be_rendered_is_recorded_once_and_shows_as_due(approved_demo: ModelVersion,
                                                                            officer: User) -> None:
    decision = decide(approved_demo, officer, explain=True, expect="denied", applicant_name=None, **DENIED)
    for _ in range(2):
        result = adverse_action_prepare(decision_id=decision.pk)
        assert result.statement is not None and result.notice is None
    assert "applicant's name" in result.statement.notice_error
    assert len(events("notice.incomplete")) == 1
    due = [item for item in notices_due() if item.decision == decision]
    assert len(due) == 1 and "applicant's name" in due[0].problem and due[0].notice is None


def test_without_an_email_address_the_notice_is_due_by_post_until_mailed(approved_demo: ModelVersion, officer: User,
                                                                         compliance: User) -> None:
    decision = decide(approved_demo, officer, expect="denied", email=None, identity={"address": "1 Main St"},
                      **DENIED)
    notice = adverse_action_prepare(decision_id=decision.pk).notice
    assert notice is not None and notice.delivery_channel == "mail" and notice.sent_at is None and not mail.outbox
    assert [item.notice for item in notices_due()] == [notice]
    notice_record_mailed(notice=notice, mailed_by=compliance)
    assert notices_due() == [] and events("notice.sent")[0].data["channel"] == "mail"


def test_a_failed_send_is_retried_without_a_second_link_living_on(approved_demo: ModelVersion, officer: User) -> None:
    decision = decide(approved_demo, officer, expect="denied", **DENIED)
    with mock.patch.object(mail.EmailMessage, "send", autospec=True,
                           side_effect=smtplib.SMTPServerDisconnected("gone")), \
            pytest.raises(smtplib.SMTPServerDisconnected):
        adverse_action_prepare(decision_id=decision.pk)
    notice = Notice.objects.get(decision=decision)
    assert notice.sent_at is None and notice.delivery_claimed_at is None
    assert CustomerLink.objects.get(decision=decision).revoked_at is not None

    assert adverse_action_prepare(decision_id=decision.pk).sent
    assert CustomerLink.objects.filter(decision=decision, revoked_at__isnull=True).count() == 1
    assert len(mail.outbox) == 1


def test_a_claimed_delivery_is_not_sent_twice(approved_demo: ModelVersion, officer: User) -> None:
    decision = decide(approved_demo, officer, expect="denied", **DENIED)
    with mock.patch.object(adverse, "notice_deliver", autospec=True, return_value=False):
        notice = adverse_action_prepare(decision_id=decision.pk).notice
    assert notice is not None
    Notice.objects.filter(pk=notice.pk).update(delivery_claimed_at=timezone.now())  # another worker is sending
    assert not adverse.notice_deliver(notice=notice) and not mail.outbox
    Notice.objects.filter(pk=notice.pk).update(delivery_claimed_at=timezone.now() - dt.timedelta(hours=1))
    assert adverse.notice_deliver(notice=notice) and len(mail.outbox) == 1  # the claim's worker died


# --- due dates (Reg B 1002.9(a)(1); checklist A2) ---------------------------------------------------------

def test_due_dates_with_a_frozen_clock() -> None:
    completed = dt.datetime(2026, 3, 2, 15, 30, tzinfo=dt.UTC)
    assert notice_due_at(completed_at=completed)[0] == dt.datetime(2026, 4, 1, 15, 30, tzinfo=dt.UTC)
    counteroffer = dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC)
    due, rule = notice_due_at(completed_at=completed, counteroffer_at=counteroffer)
    assert due == dt.datetime(2026, 6, 8, 9, 0, tzinfo=dt.UTC) and "90 days" in rule


def test_compliance_sees_what_is_due_and_overdue(approved_demo: ModelVersion, officer: User, compliance: User,
                                                 outsider: User, client_for: Callable[[User], Client]) -> None:
    with time_machine.travel(dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC), tick=False):
        late = decide(approved_demo, officer, expect="denied", email=None, identity={"address": "1 Main St"}, **DENIED)
        adverse_action_prepare(decision_id=late.pk)
    with time_machine.travel(dt.datetime(2026, 3, 25, 12, 0, tzinfo=dt.UTC), tick=False):
        fresh = decide(approved_demo, officer, explain=False, expect="denied", **DENIED)
    with time_machine.travel(dt.datetime(2026, 4, 2, 12, 0, tzinfo=dt.UTC), tick=False):
        items = notices_due()
        assert [(item.decision, item.overdue) for item in items] == [(late, True), (fresh, False)]
        page = client_for(compliance).get("/compliance/notices/")
        assert page.status_code == 200
        text = visible_text(page.content.decode())
        assert "2 due, of which 1 overdue" in text and "Overdue" in text
        assert "to be mailed by post" in text and "reasons not stated yet" in text
        assert client_for(outsider).get("/compliance/notices/").status_code == 403
        assert Client().get("/compliance/notices/").status_code == 302


# --- the API -------------------------------------------------------------------------------------------

def test_the_api_shows_reasons_notice_and_customer_link_once_they_exist(
        approved_demo: ModelVersion, officer: User, compliance: User, outsider: User,
        client_for: Callable[[User], Client], django_assert_max_num_queries: Any) -> None:
    decision = decide(approved_demo, officer, expect="denied", **DENIED)
    url = f"/api/v1/decisions/{decision.public_id}"
    before = client_for(officer).get(url).json()
    assert (before["reasons"], before["notice"], before["customer_link"]) == (None, None, None)

    adverse_action_prepare(decision_id=decision.pk)
    client = client_for(officer)
    client.get(url)
    # Session, user, permissions, decision, explanation, reasons, notice, link.
    with django_assert_max_num_queries(10):
        body = client.get(url).json()

    statement = reason_statement_current(decision=decision)
    assert body["reasons"] == [{"rank": r["rank"], "field": r["field"], "code": r["key"], "text": r["text"]}
                               for r in statement.reasons]
    notice = notice_current(decision=decision)
    assert body["notice"]["sha256"] == {"html": notice.html_sha256, "pdf": notice.pdf_sha256}
    for user in (officer, compliance):
        html = client_for(user).get(body["notice"]["html"])
        assert html.status_code == 200 and hashlib.sha256(html.content).hexdigest() == notice.html_sha256
        pdf = client_for(user).get(body["notice"]["pdf"])
        assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
        assert hashlib.sha256(pdf.content).hexdigest() == notice.pdf_sha256
    assert client_for(outsider).get(body["notice"]["pdf"]).status_code == 403
    assert Client().get(body["notice"]["html"]).status_code == 302
    link = body["customer_link"]
    assert link["expires_at"] and link["issue"] == f"/api/v1/decisions/{decision.public_id}/customer-link"
    assert "/c/" not in str(body)  # the private URL is in the customer's e-mail only


def test_an_officer_can_issue_a_fresh_private_link(approved_demo: ModelVersion, officer: User, compliance: User,
                                                   client_for: Callable[[User], Client]) -> None:
    decision = decide(approved_demo, officer, expect="denied", **DENIED)
    adverse_action_prepare(decision_id=decision.pk)
    issue = f"/api/v1/decisions/{decision.public_id}/customer-link"

    response = client_for(officer).post(issue)

    assert response.status_code == 201
    url = response.json()["url"]
    assert Client().get(url[url.index("/c/"):]).status_code == 200
    event = events("customer_link.issued")[-1]
    assert event.actor == officer
    assert client_for(compliance).post(issue).status_code == 403


# --- wiring: the explanation hook ----------------------------------------------------------------------------

def test_storing_the_explanation_of_a_denial_publishes_the_follow_up_after_commit(
        approved_demo: ModelVersion, officer: User, django_capture_on_commit_callbacks: Any) -> None:
    denied = decide(approved_demo, officer, explain=False, expect="denied", **DENIED)
    approved = decide(approved_demo, officer, explain=False, expect="approved", **APPROVED)
    with mock.patch.object(adverse, "adverse_action_publish", autospec=True) as publish:
        with django_capture_on_commit_callbacks(execute=True):
            explanation_record(decision_id=denied.pk)
            explanation_record(decision_id=approved.pk)
        publish.assert_called_once_with(decision_ids=[denied.pk])


def test_a_batch_chunk_publishes_one_follow_up_for_its_denials_after_commit(
        approved_demo: ModelVersion, officer: User, django_capture_on_commit_callbacks: Any) -> None:
    from audit.explanations import explanation_batch_chunk_run
    from audit.models import ExplanationBatch

    denials = [decide(approved_demo, officer, explain=False, expect="denied", **DENIED) for _ in range(2)]
    approved = decide(approved_demo, officer, explain=False, expect="approved", **APPROVED)
    batch = ExplanationBatch.objects.create(product=approved_demo.product, explainer_version="x", total=3,
                                            requested_by="test", created_at=timezone.now())
    with mock.patch.object(adverse, "adverse_action_publish", autospec=True) as publish:
        with django_capture_on_commit_callbacks(execute=True):
            explanation_batch_chunk_run(batch_id=batch.pk, decision_ids=[d.pk for d in (*denials, approved)])
        publish.assert_called_once_with(decision_ids=[d.pk for d in denials])


def test_the_tasks_are_thin_idempotent_and_bounded() -> None:
    from audit import tasks

    for task in (tasks.adverse_action_prepare, tasks.adverse_action_prepare_many):
        assert task.acks_late and task.reject_on_worker_lost
        assert task.max_retries == 6 and task.retry_backoff and task.retry_jitter
        assert task.soft_time_limit and task.time_limit
    assert product_spec  # the selectors the tasks use are importable without a worker
