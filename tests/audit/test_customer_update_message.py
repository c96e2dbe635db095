"""A customer who was sent a denial notice and whose application then ends up approved is told so
(audit.customer_messages): one stored, audited message per withdrawn-and-sent notice, queued in the
transaction that made the approval, e-mailed once after commit with a fresh private link (English or Spanish,
the notice's language), never sent if the approval is superseded first; nothing when no notice was sent.

The delivery runs through the real Celery task (eager, as a worker would run it) and Django's locmem e-mail
backend; nothing that stays on the machine is mocked.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable
from typing import Any
from unittest import mock

from django.contrib.auth.models import User
from django.core import mail
from django.core.management import call_command
from django.db import transaction
from django.test import Client

from audit import tasks
from audit.adverse import adverse_action_prepare, notice_deliver, notice_ensure, reason_statement_ensure
from audit.customer_messages import (
    customer_message_deliver,
    customer_message_record_mailed,
    customer_message_sync,
    customer_messages_due,
)
from audit.models import AuditEvent, CustomerLink, CustomerMessage, Notice
from audit.notices import format_date
from audit.services import audit_chain_verify
from lending.models import Decision, ModelVersion
from lending.services import officer_decide
from tests.audit.test_adverse import DENIED, decide, link_from, visible_text
from tests.audit.test_notice_withdrawn import correct_purpose

# The language model reads this text as "small_business"; with this profile the session's demo model denies it
# (PD 0.31, cutoff 0.30) and approves the same applicant once the purpose is corrected to debt consolidation
# (PD 0.19, below the 0.20 referral band).
BAKERY = "I am opening a small bakery and need equipment"
BORDERLINE = {"credit_score": 650, "revolving_utilization": 60.0, "loan_purpose_text": BAKERY}
CORRECTED = "debt_consolidation"
# What the customer's message must never contain: internal names, codes, scores, model identifiers, reasons.
INTERNAL = ("purpose_category", "small_business", "debt_consolidation", "credit_score", "probability",
            "revolving_utilization", "model", "bakery", "reason")


def events(event_type: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(event_type=event_type).order_by("sequence"))


def denied_and_notified(version: ModelVersion, officer: User, identity: dict[str, Any] | None = None,
                        **overrides: Any) -> tuple[Decision, Notice]:
    decision = decide(version, officer, expect="denied", identity=identity, **{**BORDERLINE, **overrides})
    result = adverse_action_prepare(decision_id=decision.pk)
    assert result.sent and result.notice is not None
    return decision, Notice.objects.get(pk=result.notice.pk)


def approve_by_correction(decision: Decision, officer: User, capture: Callable[..., Any]) -> Decision:
    """The officer's correction, committed: its after-commit work (the message's delivery) runs."""
    with capture(execute=True):
        new = correct_purpose(decision, officer, CORRECTED)
    assert new.outcome == "approved", new.probability_of_default
    return new


def page(token: str, **extra: Any) -> str:
    response = Client().get(f"/c/{token}/", **extra)
    assert response.status_code == 200
    return visible_text(response.content.decode())


def test_a_rescore_to_approval_after_a_sent_notice_sends_one_message_once(
        approved_demo: ModelVersion, officer: User, eager_tasks: None,
        django_capture_on_commit_callbacks: Callable[..., Any]) -> None:
    decision, notice = denied_and_notified(approved_demo, officer)
    assert notice.language == "en" and len(mail.outbox) == 1

    new = approve_by_correction(decision, officer, django_capture_on_commit_callbacks)

    message = CustomerMessage.objects.get()
    assert (message.decision_id, message.kind, message.language, message.channel, message.email) == \
        (new.pk, "approved_after_notice", "en", "email", "jamie@example.com")
    assert list(message.notices.all()) == [notice] and message.officer_action is None
    assert message.sent_at is not None and message.delivery_claimed_at is None and message.superseded_at is None
    assert len(mail.outbox) == 2
    sent = mail.outbox[-1]
    assert sent.to == ["jamie@example.com"] and sent.subject == message.subject
    assert sent.subject == "Update on your application for the Demo personal instalment loan"
    body = sent.body
    assert "We have reviewed your application for the" in body
    assert (f"Our notice of {format_date(notice.notice_date, 'en')} (reference {notice.reference}) "
            "no longer applies.") in body
    assert "Your application is approved." in body and body.startswith("Dear Jamie Example,")
    # Stored as sent, except the link's token (a bearer credential: only its hash is ever stored); the hash is
    # of the body exactly as sent, so a forwarded e-mail can be matched to the record.
    token = link_from(sent)
    assert token not in message.body and CustomerMessage.LINK_MARKER in message.body
    assert re.sub(r"https?://\S+/c/[^/\s]+/", CustomerMessage.LINK_MARKER, body) == message.body
    assert message.body_sha256 == hashlib.sha256(body.encode()).hexdigest()
    assert message.link is not None and message.link.decision_id == new.pk
    assert CustomerLink.objects.get(pk=message.link.pk).revoked_at is None
    # Nothing beyond the facts: no internal names, codes, scores or reasons.
    for word in INTERNAL:
        assert word not in body.lower(), word

    # The link works and shows the approved decision.
    text = page(token)
    assert "was approved on" in text and "denied" not in text.lower()

    # A redelivered task, a rerun of the sync and the sweep send nothing more.
    tasks.customer_message_deliver(message.pk)
    tasks.customer_message_deliver.delay(message.pk)
    assert customer_message_deliver(message=message) is True
    with transaction.atomic():
        assert customer_message_sync(decision=Decision.objects.select_for_update().get(pk=new.pk), actor=officer,
                                     now=new.decided_at, cause="rerun") is None
    tasks.adverse_action_sweep()
    assert len(mail.outbox) == 2 and CustomerMessage.objects.count() == 1

    # Audited: queued in the correction's transaction (right after the withdrawal), sent once; the chain holds.
    queued, sent_events = events("customer_message.queued"), events("customer_message.sent")
    assert len(queued) == 1 and len(sent_events) == 1
    assert queued[0].subject_id == sent_events[0].subject_id == str(message.pk)
    assert queued[0].actor_id == officer.pk
    assert queued[0].data["notices"][0]["reference"] == notice.reference
    withdrawn = events("notice.withdrawn")[-1]
    assert queued[0].sequence == withdrawn.sequence + 1
    assert sent_events[0].data["body_sha256"] == message.body_sha256
    assert sent_events[0].data["customer_link"] == message.link.pk
    report = audit_chain_verify()
    assert report.ok, report.problems


def test_a_spanish_customer_gets_the_message_in_spanish(
        approved_demo: ModelVersion, officer: User, eager_tasks: None,
        django_capture_on_commit_callbacks: Callable[..., Any]) -> None:
    decision, notice = denied_and_notified(approved_demo, officer, identity={"language": "es"},
                                           applicant_name="Ana Ejemplo")
    assert notice.language == "es" and "Hemos denegado" in mail.outbox[0].body + notice.html

    approve_by_correction(decision, officer, django_capture_on_commit_callbacks)

    message = CustomerMessage.objects.get()
    assert message.language == "es" and message.sent_at is not None
    body = mail.outbox[-1].body
    assert body.startswith("Estimado(a) Ana Ejemplo:")
    assert "Hemos revisado de nuevo su solicitud de" in body
    assert (f"Nuestro aviso del {format_date(notice.notice_date, 'es')} (referencia {notice.reference}) "
            "ya no tiene efecto.") in body
    assert "Su solicitud ha sido aprobada." in body and "Este enlace es personal" in body
    assert mail.outbox[-1].subject.startswith("Novedades sobre su solicitud de")
    for word in INTERNAL:
        assert word not in body.lower(), word
    assert "fue aprobada el" in page(link_from(mail.outbox[-1]), QUERY_STRING="lang=es")


def test_a_notice_withdrawn_before_it_was_sent_gives_no_message(
        approved_demo: ModelVersion, officer: User, eager_tasks: None,
        django_capture_on_commit_callbacks: Callable[..., Any]) -> None:
    decision = decide(approved_demo, officer, expect="denied", **BORDERLINE)
    statement = reason_statement_ensure(decision=decision)
    assert statement is not None
    queued = notice_ensure(statement=statement)
    assert queued is not None and queued.sent_at is None

    approve_by_correction(decision, officer, django_capture_on_commit_callbacks)

    assert notice_deliver(notice=queued) is False
    assert not CustomerMessage.objects.exists() and mail.outbox == []
    assert events("customer_message.queued") == [] and customer_messages_due() == []
    assert audit_chain_verify().ok


def test_an_officer_approving_a_sent_denial_tells_the_customer_once(
        approved_demo: ModelVersion, officer: User, eager_tasks: None,
        django_capture_on_commit_callbacks: Callable[..., Any]) -> None:
    decision = decide(approved_demo, officer, expect="denied", **DENIED)
    notice = adverse_action_prepare(decision_id=decision.pk).notice
    assert notice is not None and len(mail.outbox) == 1

    with django_capture_on_commit_callbacks(execute=True):
        action = officer_decide(decision=decision, officer=officer, action="override", comment="verified income")

    message = CustomerMessage.objects.get()
    assert message.decision_id == decision.pk and message.officer_action_id == action.pk
    assert list(message.notices.all()) == [notice] and message.sent_at is not None
    assert len(mail.outbox) == 2 and notice.reference in mail.outbox[-1].body
    assert "was approved on" in page(link_from(mail.outbox[-1]))
    # Approving again (a second officer) announces nothing new: the notice has its message.
    with django_capture_on_commit_callbacks(execute=True):
        officer_decide(decision=decision, officer=officer, action="approve", comment="second look")
    assert CustomerMessage.objects.count() == 1 and len(mail.outbox) == 2
    assert len(events("customer_message.queued")) == 1 and len(events("customer_message.sent")) == 1
    assert audit_chain_verify().ok


def test_an_approval_superseded_before_sending_is_never_announced(
        approved_demo: ModelVersion, officer: User, django_capture_on_commit_callbacks: Callable[..., Any]) -> None:
    decision = decide(approved_demo, officer, expect="denied", **DENIED)
    notice = adverse_action_prepare(decision_id=decision.pk).notice
    assert notice is not None and len(mail.outbox) == 1
    # Approved, but the message's delivery has not run yet (the task is still in the queue) ...
    officer_decide(decision=decision, officer=officer, action="override", comment="verified income")
    message = CustomerMessage.objects.get()
    assert message.sent_at is None and [item.message for item in customer_messages_due()] == [message]
    # ... when another officer denies after all.
    officer_decide(decision=decision, officer=officer, action="deny", factors=["credit_score"],
                   comment="income not verified")

    message.refresh_from_db()
    assert message.superseded_at is not None and "no longer stands" in message.withdrawn_cause
    assert customer_message_deliver(message=message) is False
    tasks.customer_message_deliver(message.pk)
    assert len(mail.outbox) == 1 and customer_messages_due() == []
    assert len(events("customer_message.withdrawn")) == 1
    # Approved once more: the sent notice is announced again, by a new message (the first one released it).
    officer_decide(decision=decision, officer=officer, action="approve", comment="income verified")
    again = CustomerMessage.objects.exclude(pk=message.pk).get()
    assert notice in again.notices.all() and again.superseded_at is None
    assert customer_message_deliver(message=again) is True and len(mail.outbox) == 2


def test_without_an_email_address_the_message_is_due_by_post_until_mailed(
        approved_demo: ModelVersion, officer: User, compliance: User,
        client_for: Callable[[User], Client]) -> None:
    decision = decide(approved_demo, officer, expect="denied", email=None, identity={"address": "1 Main St"},
                      **DENIED)
    notice = adverse_action_prepare(decision_id=decision.pk).notice
    assert notice is not None and notice.delivery_channel == "mail"
    from audit.adverse import notice_record_mailed

    notice_record_mailed(notice=notice, mailed_by=compliance)
    officer_decide(decision=decision, officer=officer, action="override", comment="verified income")

    message = CustomerMessage.objects.get()
    assert message.channel == "mail" and CustomerMessage.LINK_MARKER not in message.body
    assert message.body_sha256 == hashlib.sha256(message.body.encode()).hexdigest()
    assert customer_message_deliver(message=message) is False and not mail.outbox
    assert [item.message for item in customer_messages_due()] == [message]
    due_page = client_for(compliance).get("/compliance/notices/")
    assert due_page.status_code == 200 and notice.reference in visible_text(due_page.content.decode())
    # Compliance reads the text to post on the page itself (compliance staff are not admin-site users).
    assert message.subject in visible_text(due_page.content.decode())
    assert "/admin/" not in due_page.content.decode()
    out = io.StringIO()
    call_command("notices_due", stdout=out)
    listed = [line for line in out.getvalue().splitlines() if line.startswith("message ")]
    assert listed == [f"message {message.created_at:%Y-%m-%d} decision {decision.public_id} {notice.reference}: "
                      "to be mailed by post (no e-mail address)"]
    customer_message_record_mailed(message=message, mailed_by=compliance)
    assert customer_messages_due() == []
    assert events("customer_message.sent")[-1].data["channel"] == "mail"


def test_a_notice_that_goes_out_while_an_officer_approves_is_announced_after_it_went(
        approved_demo: ModelVersion, officer: User, eager_tasks: None,
        django_capture_on_commit_callbacks: Callable[..., Any]) -> None:
    decision = decide(approved_demo, officer, expect="denied", **DENIED)
    statement = reason_statement_ensure(decision=decision)
    assert statement is not None
    notice = notice_ensure(statement=statement)
    assert notice is not None
    real_send = mail.EmailMessage.send

    def approve_while_sending(message: mail.EmailMessage, fail_silently: bool = False) -> int:
        if message.attachments:  # the notice: the delivery has claimed it; the officer approves before it returns
            officer_decide(decision=decision, officer=officer, action="override", comment="verified income")
            assert not CustomerMessage.objects.exists()  # not sent yet: nothing to announce
        return real_send(message, fail_silently=fail_silently)

    with mock.patch.object(mail.EmailMessage, "send", autospec=True, side_effect=approve_while_sending), \
            django_capture_on_commit_callbacks(execute=True):
        assert notice_deliver(notice=notice) is True

    notice.refresh_from_db()
    assert notice.sent_at is not None and notice.superseded_at is not None
    message = CustomerMessage.objects.get()
    assert list(message.notices.all()) == [notice] and message.sent_at is not None
    assert len(mail.outbox) == 2 and notice.reference in mail.outbox[-1].body
    assert events("customer_message.queued")[0].data["cause"].startswith(f"notice {notice.reference} was sent")


def test_compliance_may_read_the_messages_and_nobody_may_edit_them(compliance: User, officer: User) -> None:
    assert compliance.has_perm("audit.view_customermessage")
    assert not officer.has_perm("audit.view_customermessage")
    for user in (compliance, officer):
        assert not any(user.has_perm(f"audit.{verb}_customermessage") for verb in ("add", "change", "delete"))
