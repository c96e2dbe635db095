"""Writes to the audit log. Call inside the transaction of the change being recorded."""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.utils import timezone

from audit.models import AuditEvent


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
    return AuditEvent.objects.create(
        event_time=timezone.now(),
        event_type=event_type,
        actor=user,
        actor_name=user.get_username() if user is not None else "system",
        subject_type=subject_type,
        subject_id=subject_id,
        data=_json_clean(data or {}),
    )
