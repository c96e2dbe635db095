"""Telling the customer that a denial they were sent no longer stands.

A customer who was sent an adverse action notice (``Notice.sent_at``) and whose application then ends up
approved (a re-score straight to approval, or an officer's approval) is written to: we reviewed the
application again, the notice of <date> (reference <ref>) no longer applies, the application is approved,
and a fresh private link to their page. Nothing else: no reasons, no scores, nothing on a prohibited basis.

``customer_message_sync`` runs inside the transaction of every state change that can make or unmake an
approval, with the application's current decision locked. It queues one message for the sent-and-withdrawn
notices no live message announces yet (audited ``customer_message.queued``; a partial unique constraint
holds one live message per notice), and withdraws a queued message whose approval no longer stands
(audited ``customer_message.withdrawn``; its notices are released for a later approval to announce).
After commit ``audit.tasks.customer_message_deliver`` sends it once: claimed with a conditional update,
released on failure for a bounded retry, audited ``customer_message.sent``. Without an e-mail address
the message is for compliance to post (``customer_messages_due``, the notices-due page and command).
A notice withdrawn before it was sent gives no message: the customer only ever sees the current decision.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from audit.adverse import (
    DELIVERY_LEASE,
    EMAIL_TIMEOUT_SECONDS,
    customer_link_issue,
    customer_link_url,
    decision_final,
)
from audit.models import CustomerLink, CustomerMessage, CustomerMessageNotice, Notice
from audit.notices import Language, format_date
from audit.services import audit_record
from lending.models import Decision

logger = logging.getLogger(__name__)

SUBJECT = {"en": "Update on your application for the {product}",
           "es": "Novedades sobre su solicitud de {product}"}
GREETING = {"en": "Dear {name},", "es": "Estimado(a) {name}:"}
REVIEWED = {"en": "We have reviewed your application for the {product} again.",
            "es": "Hemos revisado de nuevo su solicitud de {product}."}
NO_LONGER_APPLIES = {"en": "Our notice of {date} (reference {reference}) no longer applies.",
                     "es": "Nuestro aviso del {date} (referencia {reference}) ya no tiene efecto."}
APPROVED = {"en": "Your application is approved.", "es": "Su solicitud ha sido aprobada."}
LINK = {"en": "You can see our decision on your private page:\n\n{link}\n\n"
              "This link is personal to you: please do not share it.",
        "es": "Puede ver nuestra decisión en su página privada:\n\n{link}\n\n"
              "Este enlace es personal: no lo comparta."}


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def customer_message_text(*, language: Language, notices: Sequence[Notice], email: bool) -> tuple[str, str]:
    """(subject, body) of the message announcing that ``notices`` no longer apply, in the notices' words
    for the applicant, product and creditor; an e-mail carries ``CustomerMessage.LINK_MARKER`` where the
    private link goes, a letter has no link."""
    latest = notices[-1].context
    lines = [GREETING[language].format(name=latest["applicant_name"]),
             REVIEWED[language].format(product=latest["product_name"]),
             "\n".join(NO_LONGER_APPLIES[language].format(date=format_date(n.notice_date, language),
                                                          reference=n.reference) for n in notices),
             APPROVED[language]]
    if email:
        lines.append(LINK[language].format(link=CustomerMessage.LINK_MARKER))
    creditor = "\n".join(part for part in (latest["creditor_name"], latest["creditor_address"],
                                           latest["creditor_phone"]) if part)
    body = "\n\n".join([*lines, creditor]) + "\n"
    return SUBJECT[language].format(product=latest["product_name"]), body


# --- queueing and withdrawing, inside the state change's transaction ----------------------------------------

def _approval_stands(decision: Decision) -> bool:
    return decision.is_current and decision_final(decision=decision).outcome == Decision.Outcome.APPROVED


def _sent_notices_unannounced(decision: Decision) -> list[Notice]:
    """The application's denial notices that were sent and no longer stand, that no live message announces."""
    announced = CustomerMessageNotice.objects.filter(notice=OuterRef("pk"), released_at__isnull=True)
    return list(Notice.objects.filter(decision__application_id=decision.application_id, sent_at__isnull=False,
                                      superseded_at__isnull=False)
                .exclude(Exists(announced)).defer("html", "pdf").order_by("sent_at", "id"))


def _withdraw(messages: Sequence[CustomerMessage], *, current: Decision, actor: AbstractBaseUser | None,
              now: dt.datetime, cause: str) -> None:
    for message in messages:
        why = (f"the approval it announced (decision {message.decision.public_id}) no longer stands on "
               f"{now.isoformat()}: {cause}")
        if not CustomerMessage.objects.filter(pk=message.pk, sent_at__isnull=True, superseded_at__isnull=True) \
                .update(superseded_at=now, withdrawn_cause=why):
            continue
        CustomerMessageNotice.objects.filter(message=message, released_at__isnull=True).update(released_at=now)
        audit_record(event_type="customer_message.withdrawn", subject=message, actor=actor, data={
            "decision": str(message.decision.public_id), "current_decision": str(current.public_id),
            "was_claimed": message.delivery_claimed_at is not None, "withdrawn_at": now, "cause": cause})


def _queue(decision: Decision, notices: Sequence[Notice], *, actor: AbstractBaseUser | None, now: dt.datetime,
           cause: str) -> CustomerMessage:
    latest = notices[-1]
    language: Language = "es" if latest.language == "es" else "en"
    email = latest.email.strip()
    subject, body = customer_message_text(language=language, notices=notices, email=bool(email))
    final = decision_final(decision=decision)
    message = CustomerMessage.objects.create(
        kind=CustomerMessage.Kind.APPROVED_AFTER_NOTICE, decision=decision, officer_action=final.action,
        language=language, channel=CustomerMessage.Channel.EMAIL if email else CustomerMessage.Channel.MAIL,
        email=email, subject=subject, body=body,
        # A letter is posted exactly as stored; an e-mail's hash is set when it goes, with its link in it.
        body_sha256="" if email else _sha256(body), created_at=now)
    CustomerMessageNotice.objects.bulk_create(
        [CustomerMessageNotice(message=message, notice=notice) for notice in notices])
    audit_record(event_type="customer_message.queued", subject=message, actor=actor, data={
        "decision": str(decision.public_id), "kind": message.kind,
        "officer_action": final.action.pk if final.action is not None else None,
        "notices": [{"reference": n.reference, "sent_at": n.sent_at, "notice_date": n.notice_date}
                    for n in notices],
        "language": language, "channel": message.channel, "subject": subject, "body_sha256": message.body_sha256,
        "cause": cause})
    return message


def customer_message_sync(*, decision: Decision, actor: AbstractBaseUser | None, now: dt.datetime,
                          cause: str) -> CustomerMessage | None:
    """Bring the application's messages in line with its current decision ``decision`` (locked by the caller,
    inside the transaction of the change): withdraw queued messages whose approval no longer stands; if the
    final outcome is an approval, queue one message for the sent denial notices no live message announces,
    sent after commit. Returns the message queued now, if any. Idempotent: a rerun queues nothing more."""
    pending = list(CustomerMessage.objects.select_for_update().select_related("decision")
                   .filter(decision__application_id=decision.application_id, sent_at__isnull=True,
                           superseded_at__isnull=True))
    approved = _approval_stands(decision)
    stale = [m for m in pending if not approved or m.decision_id != decision.pk]
    _withdraw(stale, current=decision, actor=actor, now=now, cause=cause)
    if not approved:
        return None
    notices = _sent_notices_unannounced(decision)
    if not notices:
        return None
    message = _queue(decision, notices, actor=actor, now=now, cause=cause)
    message_id = message.pk
    if message.channel == CustomerMessage.Channel.EMAIL:
        transaction.on_commit(lambda: customer_message_publish(message_ids=[message_id]))
    return message


def customer_message_sync_current(*, application_id: int, actor: AbstractBaseUser | None, cause: str) -> None:
    """``customer_message_sync`` for an application's current decision, locking it (call inside a transaction)."""
    current = (Decision.objects.select_for_update().select_related("application")
               .filter(application_id=application_id).first())
    if current is not None:
        customer_message_sync(decision=current, actor=actor, now=timezone.now(), cause=cause)


def customer_message_publish(*, message_ids: Sequence[int]) -> bool:
    """Send the delivery task(s) to the broker; a broker failure is logged and the messages stay due
    (``customer_messages_due``; ``manage.py notices_due --prepare`` sends them)."""
    from audit.tasks import customer_message_deliver as deliver_one

    try:
        for message_id in dict.fromkeys(message_ids):
            deliver_one.apply_async(args=[message_id], retry=False)
    except Exception as exc:  # any broker failure: the messages stay visible as due
        logger.warning("could not publish customer messages %s: %s", list(message_ids)[:20], exc)
        return False
    return True


# --- delivery, after commit -----------------------------------------------------------------------------------

def _email(message: CustomerMessage, url: str) -> tuple[EmailMessage, str]:
    body = message.body.replace(CustomerMessage.LINK_MARKER, url)
    email = EmailMessage(subject=message.subject, body=body, from_email=settings.DEFAULT_FROM_EMAIL,
                         to=[message.email], connection=get_connection(timeout=EMAIL_TIMEOUT_SECONDS))
    return email, body


def _still_stands(message: CustomerMessage) -> bool:
    """Whether the approval a queued message announces still stands; withdraws the message if not."""
    if _approval_stands(message.decision):
        return True
    with transaction.atomic():
        customer_message_sync_current(application_id=message.decision.application_id, actor=None,
                                      cause="found at delivery: the approval no longer stands")
    return False


def customer_message_deliver(*, message: CustomerMessage) -> bool:
    """E-mail the message with a new private link, once; True if it is (now) sent.

    Claimed with a conditional update so two workers never both send; a failed send releases the claim
    (and revokes the unused link) for the task's retry. A withdrawn message is never sent.
    """
    if message.sent_at is not None:
        return True
    if message.channel != CustomerMessage.Channel.EMAIL or not message.email:
        return False  # postal mail: compliance sees it on the due page
    if message.superseded_at is not None or not _still_stands(message):
        return False
    now = timezone.now()
    claimed = (CustomerMessage.objects.filter(pk=message.pk, sent_at__isnull=True, superseded_at__isnull=True)
               .filter(Q(delivery_claimed_at__isnull=True) | Q(delivery_claimed_at__lt=now - DELIVERY_LEASE))
               .update(delivery_claimed_at=now))
    if not claimed:
        return CustomerMessage.objects.filter(pk=message.pk, sent_at__isnull=False).exists()
    link: CustomerLink | None = None
    try:
        token, link = customer_link_issue(decision=message.decision)
        email, sent_body = _email(message, customer_link_url(token))
        email.send(fail_silently=False)
    except Exception:
        CustomerMessage.objects.filter(pk=message.pk, delivery_claimed_at=now).update(delivery_claimed_at=None)
        if link is not None:
            CustomerLink.objects.filter(pk=link.pk).update(revoked_at=timezone.now())
        raise
    sent_at = timezone.now()
    body_sha256 = _sha256(sent_body)
    with transaction.atomic():
        CustomerMessage.objects.filter(pk=message.pk).update(sent_at=sent_at, delivery_claimed_at=None, link=link,
                                                            body_sha256=body_sha256)
        audit_record(event_type="customer_message.sent", subject=message, actor=None, data={
            "decision": str(message.decision.public_id), "channel": "email", "customer_link": link.pk,
            "subject": message.subject, "body_sha256": body_sha256, "sent_at": sent_at,
            "notices": list(message.notices.values_list("reference", flat=True))})
    message.sent_at, message.link, message.body_sha256 = sent_at, link, body_sha256
    return True


def customer_message_record_mailed(*, message: CustomerMessage, mailed_by: AbstractBaseUser,
                                   mailed_at: dt.datetime | None = None) -> CustomerMessage:
    """Record that a message without an e-mail address went out by post, as stored."""
    mailed_at = mailed_at or timezone.now()
    with transaction.atomic():
        if CustomerMessage.objects.filter(pk=message.pk, sent_at__isnull=True, superseded_at__isnull=True).update(
                sent_at=mailed_at, channel=CustomerMessage.Channel.MAIL):
            message.refresh_from_db()
            audit_record(event_type="customer_message.sent", subject=message, actor=mailed_by, data={
                "decision": str(message.decision.public_id), "channel": "mail", "subject": message.subject,
                "body_sha256": message.body_sha256, "sent_at": mailed_at,
                "notices": list(message.notices.values_list("reference", flat=True))})
    return message


# --- compliance: what is due -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MessageDue:
    message: CustomerMessage
    problem: str


def customer_messages_due(*, limit: int = 500) -> list[MessageDue]:
    """Queued messages not sent yet, oldest first: letters to post, and e-mails still to go."""
    due: QuerySet[CustomerMessage] = (CustomerMessage.objects.filter(sent_at__isnull=True, superseded_at__isnull=True)
                                      .select_related("decision__application__product")
                                      .order_by("created_at", "id")[:limit])
    return [MessageDue(message, "to be mailed by post (no e-mail address)"
                       if message.channel == CustomerMessage.Channel.MAIL else "e-mail not sent yet")
            for message in due]


def customer_message_deliver_due() -> list[tuple[CustomerMessage, bool]]:
    """Send every e-mail message still due, here and now (``notices_due --prepare``)."""
    return [(item.message, customer_message_deliver(message=item.message)) for item in customer_messages_due()
            if item.message.channel == CustomerMessage.Channel.EMAIL]

