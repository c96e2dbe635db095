"""Replay (issue 5): a stored decision decided again from its snapshot and model version gives the same score,
explanation, reasons and notice; a tampered value is named with both values. Every replay is audited."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth.models import User
from django.db import connection
from django.test import Client

from audit.adverse import adverse_action_prepare, notice_current
from audit.models import AuditEvent
from audit.replay import decision_replay
from lending.models import Decision, ModelVersion
from tests.audit.test_adverse import APPROVED, DENIED, decide


def test_a_fresh_denial_replays_identical(approved_demo: ModelVersion, officer: User, compliance: User) -> None:
    decision = decide(approved_demo, officer, expect="denied", **DENIED)
    adverse_action_prepare(decision_id=decision.pk)
    assert notice_current(decision=decision) is not None

    report = decision_replay(decision=decision, actor=compliance)

    assert report.identical, report.differences
    assert set(report.compared) == {"inputs_sha256", "probability_of_default", "explanation", "reasons", "notice"}
    event = AuditEvent.objects.get(event_type="decision.replayed")
    assert event.actor == compliance
    assert event.subject_id == str(decision.pk)
    assert event.data["identical"] is True


def test_an_unexplained_approval_replays_what_exists(approved_demo: ModelVersion, officer: User) -> None:
    decision = decide(approved_demo, officer, explain=False, expect="approved", **APPROVED)
    report = decision_replay(decision=decision)
    assert report.identical
    assert report.compared == ("inputs_sha256", "probability_of_default")
    assert len(report.not_compared) == 3


def test_a_tampered_probability_is_named_with_both_values(approved_demo: ModelVersion, officer: User,
                                                          compliance: User) -> None:
    decision = decide(approved_demo, officer, expect="denied", **DENIED)
    original = decision.probability_of_default
    with connection.cursor() as cursor:
        cursor.execute("UPDATE lending_decision SET probability_of_default = %s WHERE id = %s",
                       [original + 1e-9, decision.pk])
    decision = Decision.objects.get(pk=decision.pk)

    report = decision_replay(decision=decision, actor=compliance)

    assert not report.identical
    [difference] = report.differences
    assert difference.field == "probability_of_default"
    assert repr(original + 1e-9) in difference.stored and (original + 1e-9).hex() in difference.stored
    assert repr(original) in difference.replayed and original.hex() in difference.replayed
    event = AuditEvent.objects.get(event_type="decision.replayed")
    assert event.data["identical"] is False
    assert event.data["differences"][0]["field"] == "probability_of_default"


def test_the_replay_page(approved_demo: ModelVersion, officer: User, compliance: User,
                         client_for: Callable[[User], Client]) -> None:
    decision = decide(approved_demo, officer, expect="denied", **DENIED)
    url = f"/compliance/decisions/{decision.public_id}/replay"
    client = client_for(compliance)
    page = client.get(url)
    assert page.status_code == 200 and b"Replay now" in page.content
    assert not AuditEvent.objects.filter(event_type="decision.replayed").exists()
    result = client.post(url)
    assert result.status_code == 200 and b"Identical" in result.content
    assert AuditEvent.objects.filter(event_type="decision.replayed").count() == 1
    assert client_for(officer).post(url).status_code == 403
