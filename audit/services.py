"""Writes to the audit log. Call inside the transaction of the change being recorded."""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.utils import timezone

from audit.chain import GENESIS_HASH, ChainReport, event_hash, verify_rows
from audit.models import AuditChainHead, AuditEvent


def _json_clean(data: dict[str, Any]) -> dict[str, Any]:
    # Decimals, dates and UUIDs become strings exactly as DjangoJSONEncoder writes them.
    return json.loads(json.dumps(data, cls=DjangoJSONEncoder))  # type: ignore[no-any-return]


def audit_record(
    *,
    event_type: str,
    subject: models.Model | tuple[str, str],
    actor: AbstractBaseUser | AnonymousUser | None = None,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one audit event. Refuses to run outside a transaction: the event must commit or roll back
    together with the change it records."""
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        raise RuntimeError("audit_record must run inside the transaction of the change it records")
    if isinstance(subject, tuple):
        subject_type, subject_id = subject
    else:
        subject_type, subject_id = subject._meta.label_lower, str(subject.pk)
    user = actor if actor is not None and actor.is_authenticated else None
    head = _chain_head_locked()
    event = AuditEvent(
        event_time=timezone.now(),
        event_type=event_type,
        actor=user,
        actor_name=user.get_username() if user is not None else "system",
        subject_type=subject_type,
        subject_id=str(subject_id),
        data=_json_clean(data or {}),
        sequence=head.sequence + 1,
        prev_hash=head.hash,
    )
    event.hash = event_hash(sequence=event.sequence, event_time=event.event_time, event_type=event.event_type,
                            actor_id=user.pk if user is not None else None, actor_name=event.actor_name,
                            subject_type=event.subject_type, subject_id=event.subject_id, data=event.data,
                            prev_hash=event.prev_hash)
    event.save()
    head.sequence, head.hash, head.updated_at = event.sequence, event.hash, event.event_time
    head.save(update_fields=["sequence", "hash", "updated_at"])
    return event


def _chain_head_locked() -> AuditChainHead:
    """The chain head, locked until the transaction ends, so appends are serialised and never fork."""
    head = AuditChainHead.objects.select_for_update().filter(pk=1).first()
    if head is None:
        head = AuditChainHead.objects.create(pk=1, sequence=0, hash=GENESIS_HASH, updated_at=timezone.now())
        head = AuditChainHead.objects.select_for_update().get(pk=1)
    return head


def audit_chain_head() -> AuditChainHead:
    head = AuditChainHead.objects.filter(pk=1).first()
    return head or AuditChainHead(sequence=0, hash=GENESIS_HASH, updated_at=timezone.now())


def audit_chain_verify() -> ChainReport:
    """Walk the whole chain in sequence order (streamed, constant memory) and report every problem."""
    head = AuditChainHead.objects.filter(pk=1).first()
    rows = (AuditEvent.objects.order_by("sequence")
            .values_list("id", "sequence", "event_time", "event_type", "actor_id", "actor_name", "subject_type",
                         "subject_id", "data", "prev_hash", "hash").iterator(chunk_size=5000))
    return verify_rows(rows, head_sequence=head.sequence if head else None, head_hash=head.hash if head else None)
