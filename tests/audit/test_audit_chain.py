"""The tamper-evident audit log: every event chains to the one before; audit_verify names an altered,
removed or inserted event; on PostgreSQL a trigger refuses UPDATE and DELETE."""

from __future__ import annotations

import io
import itertools

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from audit.models import AuditEvent
from audit.services import audit_chain_head, audit_record


def record(n: int) -> list[AuditEvent]:
    events = []
    for i in range(n):
        with transaction.atomic():
            events.append(audit_record(event_type="test.event", subject=("test", str(i)), data={"i": i, "x": 0.1 * i}))
    return events


def verify() -> str:
    out = io.StringIO()
    call_command("audit_verify", stdout=out)
    return out.getvalue()


def raw(sql: str, params: list[object] | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])


def test_events_chain_and_the_head_follows(db: None) -> None:
    events = record(5)

    assert [e.sequence for e in events] == [1, 2, 3, 4, 5]
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(events))
    head = audit_chain_head()
    assert (head.sequence, head.hash) == (5, events[-1].hash)
    assert "audit chain intact" in verify()


def test_the_orm_refuses_to_change_or_delete_an_event(db: None) -> None:
    event = record(1)[0]
    event.data = {"i": 99}
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=event.pk).update(data={})
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=event.pk).delete()


def test_an_altered_event_is_named(db: None) -> None:
    events = record(4)
    target = events[2]
    _with_trigger_off("UPDATE audit_auditevent SET data = %s WHERE id = %s", ['{"i": 2, "x": 999}', target.pk])

    with pytest.raises(CommandError) as failure:
        verify()

    assert f"event id {target.pk}" in str(failure.value)
    assert "altered" in str(failure.value)


def test_a_removed_event_is_named(db: None) -> None:
    events = record(4)
    _with_trigger_off("DELETE FROM audit_auditevent WHERE id = %s", [events[1].pk])

    with pytest.raises(CommandError) as failure:
        verify()

    assert "events 2 to 2 are missing (removed)" in str(failure.value)


def test_an_inserted_event_is_named(db: None) -> None:
    events = record(3)
    forged_sequence = 2
    raw("INSERT INTO audit_auditevent (event_time, event_type, actor_name, subject_type, subject_id, data, sequence, "
        "prev_hash, hash) SELECT event_time, 'forged', 'mallory', 'x', 'y', '{}', %s, prev_hash, %s FROM "
        "audit_auditevent WHERE id = %s", [forged_sequence * 1000, "f" * 64, events[1].pk])

    with pytest.raises(CommandError) as failure:
        verify()

    forged = AuditEvent.objects.get(event_type="forged")
    assert f"event id {forged.pk}" in str(failure.value)


def _with_trigger_off(sql: str, params: list[object]) -> None:
    if connection.vendor == "postgresql":
        raw("SET CONSTRAINTS ALL IMMEDIATE")  # fire pending FK checks, so the table can be altered
        raw("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only")
        raw(sql, params)
        raw("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_append_only")
    else:
        raw(sql, params)


def test_on_postgresql_the_trigger_refuses_update_and_delete(db: None) -> None:
    event = record(1)[0]
    if connection.vendor != "postgresql":
        # SQLite (the embedded default) has no such trigger; the ORM guards above are what protect it.
        assert connection.vendor == "sqlite"
        return
    for sql in ("UPDATE audit_auditevent SET data = '{}' WHERE id = %s", "DELETE FROM audit_auditevent WHERE id = %s"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            raw(sql, [event.pk])
    assert "audit chain intact" in verify()
