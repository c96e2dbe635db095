"""A superseded decision's notice is withdrawn (issue 6): when an officer's correction of a text-derived value
re-scores an application, the old decision's adverse-action notice is kept exactly as rendered (and as sent)
but marked superseded with when and why, audited in the same transaction; a queued e-mail is never sent; the
customer's private link shows the current decision and says the earlier one was replaced; and the new
decision gets its own notice through the normal path."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core import mail
from django.test import Client

from audit.adverse import (
    adverse_action_prepare,
    notice_current,
    notice_deliver,
    notice_ensure,
    notices_due,
    reason_statement_ensure,
)
from audit.customer_views import STRINGS
from audit.explanations import explanation_record
from audit.models import AuditEvent, Notice, ReasonStatement
from lending.models import Decision, Extraction, ModelVersion
from lending.services import extraction_review
from tests.audit.test_adverse import DENIED, decide, link_from, visible_text


def correct_purpose(decision: Decision, officer: User, value: str = "car") -> Decision:
    extraction = Extraction.objects.get(application=decision.application, field="purpose_category")
    assert extraction.used_value != value
    new = extraction_review(extraction=extraction, officer=officer, value=value, comment="it is a food truck")
    assert new.pk != decision.pk and new.supersedes_id == decision.pk
    return new


def events(event_type: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(event_type=event_type).order_by("sequence"))


def page(token: str, **extra: Any) -> str:
    response = Client().get(f"/c/{token}/", **extra)
    assert response.status_code == 200
    return visible_text(response.content.decode())


def test_a_sent_notice_is_withdrawn_unaltered_and_the_link_shows_the_new_decision(
        approved_demo: ModelVersion, officer: User) -> None:
    decision = decide(approved_demo, officer, expect="denied", **DENIED)
    result = adverse_action_prepare(decision_id=decision.pk)
    assert result.sent and result.notice is not None
    old_notice = Notice.objects.get(pk=result.notice.pk)
    token = link_from(mail.outbox[-1])
    sent = len(mail.outbox)

    new = correct_purpose(decision, officer)

    old_notice_after = Notice.objects.get(pk=old_notice.pk)
    # Kept, never altered: the same bytes and hashes, the same sending record; marked withdrawn with why.
    assert bytes(old_notice_after.pdf) == bytes(old_notice.pdf) and old_notice_after.html == old_notice.html
    assert (old_notice_after.html_sha256, old_notice_after.pdf_sha256, old_notice_after.sent_at) == \
        (old_notice.html_sha256, old_notice.pdf_sha256, old_notice.sent_at)
    assert old_notice_after.superseded_at == new.decided_at
    assert str(new.public_id) in old_notice_after.withdrawn_cause
    assert "an officer corrected purpose_category" in old_notice_after.withdrawn_cause
    assert ReasonStatement.objects.get(pk=result.statement.pk).superseded_at == new.decided_at  # type: ignore[union-attr]
    assert notice_current(decision=decision) is None

    withdrawn = events("notice.withdrawn")
    assert len(withdrawn) == 1 and withdrawn[0].subject_id == str(old_notice.pk)
    assert withdrawn[0].data["was_sent"] is True and withdrawn[0].data["reference"] == old_notice.reference
    assert withdrawn[0].data["superseded_by"] == str(new.public_id)
    assert withdrawn[0].actor_id == officer.pk
    # Same transaction as the correction and re-score: the events are consecutive in the chain.
    chain = [e.event_type for e in AuditEvent.objects.filter(sequence__gte=events("extraction.corrected")[-1].sequence)
             .order_by("sequence")]
    assert chain[:5] == ["extraction.corrected", "decision.superseded", "decision.rescored", "reasons.withdrawn",
                         "notice.withdrawn"]

    # The customer's link now shows the current decision and says the earlier one was replaced.
    text = page(token)
    assert "replaced our earlier decision" in text and old_notice.reference in text and "is withdrawn" in text
    spanish = page(token, QUERY_STRING="lang=es")
    assert "reemplazamos nuestra decisión anterior" in spanish and "queda retirado" in spanish
    assert new.outcome == "denied"  # the corrected purpose still gives a denial with this profile
    assert Client().get(f"/c/{token}/notice.pdf").status_code == 404  # the new notice is not rendered yet

    # The new decision gets its own reasons and notice through the normal path (its explanation first).
    explanation_record(decision_id=new.pk)
    new_result = adverse_action_prepare(decision_id=new.pk)
    assert new_result.sent and new_result.notice is not None and new_result.notice.decision_id == new.pk
    assert len(mail.outbox) == sent + 1
    assert new_result.notice.reference in page(token)
    pdf = Client().get(f"/c/{token}/notice.pdf")
    assert pdf.status_code == 200 and bytes(pdf.content) == bytes(Notice.objects.get(pk=new_result.notice.pk).pdf)
    # Running the old decision's follow-up again does nothing.
    assert adverse_action_prepare(decision_id=decision.pk).notice is None and len(mail.outbox) == sent + 1


def test_a_queued_notice_of_a_superseded_decision_is_never_sent(approved_demo: ModelVersion, officer: User) -> None:
    decision = decide(approved_demo, officer, expect="denied", **DENIED)
    statement = reason_statement_ensure(decision=decision)
    assert statement is not None
    queued = notice_ensure(statement=statement)
    assert queued is not None and queued.sent_at is None
    assert any(item.notice == queued for item in notices_due())

    correct_purpose(decision, officer)

    queued.refresh_from_db()
    assert queued.superseded_at is not None and queued.withdrawn_cause
    assert events("notice.withdrawn")[-1].data["was_sent"] is False
    # The delivery that was queued finds the notice withdrawn and sends nothing, now or on a retry.
    assert notice_deliver(notice=queued) is False
    assert adverse_action_prepare(decision_id=decision.pk).sent is False
    assert mail.outbox == []
    queued.refresh_from_db()
    assert queued.sent_at is None
    # Compliance no longer sees it as due.
    assert all(item.notice != queued and item.decision.pk != decision.pk for item in notices_due())


def test_every_new_string_exists_in_both_languages() -> None:
    for key in ("replaced", "replaced_notice"):
        assert STRINGS["en"][key] and STRINGS["es"][key]
