"""The audit log: append-only events, each written in the same transaction as the change it records."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: Any) -> int:
        raise PermissionError("audit events are append-only: they are never updated")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise PermissionError("audit events are append-only: they are never deleted")


class AuditEvent(models.Model):
    """One thing that happened, as an auditor needs to see it.

    ``actor`` is who did it (None for the system itself, e.g. an automated decision); ``actor_name``
    keeps the username even if the account is later renamed. ``subject_type``/``subject_id`` say what it
    happened to; ``data`` holds the details (old and new values where something changed).
    """

    event_time = models.DateTimeField(db_index=True)
    event_type = models.CharField(max_length=64, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                              related_name="+")
    actor_name = models.CharField(max_length=150, blank=True)
    subject_type = models.CharField(max_length=64)
    subject_id = models.CharField(max_length=64)
    data = models.JSONField(default=dict)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ("id",)
        indexes = [models.Index(fields=("subject_type", "subject_id"))]

    def __str__(self) -> str:
        return f"{self.event_time:%Y-%m-%d %H:%M:%S} {self.event_type} {self.subject_type}:{self.subject_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise PermissionError("audit events are append-only: they are never updated")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise PermissionError("audit events are append-only: they are never deleted")
