"""Record retention (Reg B 1002.12(b)): 25 months after the notice, never while on legal hold, audited; with a
controlled clock."""

from __future__ import annotations

import datetime as dt
import io

import time_machine
from django.contrib.auth.models import User
from django.core.management import call_command

from audit.adverse import (
    add_months,
    adverse_action_prepare,
    customer_link_issue,
    customer_request_create,
    legal_hold_place,
    legal_hold_release,
    retention_purge,
    retention_until,
)
from audit.models import AuditEvent, CustomerRequest, Explanation, LegalHold, Notice, ReasonStatement
from lending.models import Application, Decision, ModelVersion, MonitoringData, OfficerAction
from lending.services import officer_decide
from tests.audit.test_adverse import APPROVED, DENIED, decide

OLD = dt.datetime(2023, 1, 10, 12, 0, tzinfo=dt.UTC)
YOUNG = dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.UTC)
PURGE_DAY = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)


def at(moment: dt.datetime) -> time_machine.travel:
    return time_machine.travel(moment, tick=False)


def test_add_months_keeps_the_day_or_takes_the_months_last() -> None:
    assert add_months(dt.datetime(2023, 1, 10, tzinfo=dt.UTC), 25) == dt.datetime(2025, 2, 10, tzinfo=dt.UTC)
    assert add_months(dt.datetime(2023, 1, 31, tzinfo=dt.UTC), 1) == dt.datetime(2023, 2, 28, tzinfo=dt.UTC)
    assert add_months(dt.datetime(2022, 1, 31, tzinfo=dt.UTC), 25) == dt.datetime(2024, 2, 29, tzinfo=dt.UTC)
    assert add_months(dt.datetime(2025, 3, 1, tzinfo=dt.UTC), -25) == dt.datetime(2023, 2, 1, tzinfo=dt.UTC)
    assert add_months(dt.datetime(2023, 12, 15, tzinfo=dt.UTC), 1) == dt.datetime(2024, 1, 15, tzinfo=dt.UTC)


def test_a_record_is_kept_25_months_after_its_notice(approved_demo: ModelVersion, officer: User) -> None:
    with at(OLD):
        decision = decide(approved_demo, officer, expect="denied", **DENIED)
    with at(OLD + dt.timedelta(days=3)):
        assert adverse_action_prepare(decision_id=decision.pk).sent  # notified three days later
    until = retention_until(application=decision.application)
    assert until == dt.datetime(2025, 2, 13, 12, 0, tzinfo=dt.UTC)
    with at(until - dt.timedelta(seconds=1)):
        assert retention_purge().applications == ()
    with at(until):
        assert retention_purge().applications == (str(decision.application.public_id),)


def test_purge_spares_held_and_young_records_removes_old_ones_and_audits_it(approved_demo: ModelVersion,
                                                                            officer: User, compliance: User) -> None:
    with at(OLD):
        old_denial = decide(approved_demo, officer, expect="denied", **DENIED)
        held_denial = decide(approved_demo, officer, expect="denied", **DENIED)
        old_approval = decide(approved_demo, officer, expect="approved", **APPROVED)
        unnotified = decide(approved_demo, officer, expect="denied", applicant_name=None, **DENIED)
        reopened = decide(approved_demo, officer, expect="denied", **DENIED)
        overridden = decide(approved_demo, officer, expect="approved", **APPROVED)
        for decision in (old_denial, held_denial, unnotified, reopened):
            adverse_action_prepare(decision_id=decision.pk)
        hold = legal_hold_place(application=held_denial.application, placed_by=compliance, matter="Doe v. Lender",
                                reason="Subpoena 2024-117 (civil action pending)")
    with at(OLD + dt.timedelta(days=5)):
        officer_decide(decision=overridden, officer=officer, action="override", factors=["amount"])
        adverse_action_prepare(decision_id=overridden.pk)
    with at(YOUNG):
        young = decide(approved_demo, officer, expect="denied", **DENIED)
        adverse_action_prepare(decision_id=young.pk)
    with at(dt.datetime(2024, 12, 1, tzinfo=dt.UTC)):
        _token, link = customer_link_issue(decision=reopened)
        customer_request_create(link=link, kind="review", message="Please look again", language="en")
    assert Notice.objects.filter(sent_at__isnull=False).count() == 5
    events_before = AuditEvent.objects.count()

    with at(PURGE_DAY):
        preview = retention_purge(dry_run=True)
        assert Application.objects.count() == 7 and AuditEvent.objects.count() == events_before
        report = retention_purge()

    removed = {old_denial, old_approval, overridden}
    expected = sorted(str(d.application.public_id) for d in removed)
    assert sorted(preview.applications) == sorted(report.applications) == expected
    assert report.held == 1
    remaining = set(Decision.objects.all())
    assert remaining == {held_denial, unnotified, reopened, young}
    assert report.counts["notices"] == 2 and report.counts["officer_actions"] == 1
    for model in (Explanation, ReasonStatement, Notice):
        assert not model.objects.filter(decision__in=[d.pk for d in removed]).exists()
    assert not OfficerAction.objects.filter(decision_id=overridden.pk).exists()
    assert LegalHold.objects.get() == hold and CustomerRequest.objects.count() == 1
    # The purge is audited; the audit events of what went are all still there.
    event = AuditEvent.objects.get(event_type="retention.purged")
    assert sorted(event.data["applications"]) == expected
    assert sorted(event.data["decisions"]) == sorted(str(d.public_id) for d in removed)
    assert event.data["kept_by_legal_hold"] == 1
    assert AuditEvent.objects.count() == events_before + 1
    assert AuditEvent.objects.filter(event_type="decision.made", subject_id=str(old_denial.pk)).exists()

    # Once the hold is released (audited) the held record goes at the next purge; nothing else does.
    with at(PURGE_DAY + dt.timedelta(days=1)):
        legal_hold_release(hold=hold, released_by=compliance)
        second = retention_purge()
    assert second.applications == (str(held_denial.application.public_id),)
    assert set(Decision.objects.all()) == {unnotified, reopened, young}
    assert AuditEvent.objects.filter(event_type__in=("legal_hold.placed", "legal_hold.released")).count() == 2


def test_monitoring_data_goes_with_its_application(approved_demo: ModelVersion, officer: User) -> None:
    with at(OLD):
        decision = decide(approved_demo, officer, expect="approved", **APPROVED)
        MonitoringData.objects.create(application=decision.application, values={"sex": "F"})
    with at(PURGE_DAY):
        report = retention_purge()
    assert report.counts["monitoring_data"] == 1 and not MonitoringData.objects.exists()


def test_the_command_lists_and_removes(approved_demo: ModelVersion, officer: User) -> None:
    with at(OLD):
        decision = decide(approved_demo, officer, expect="approved", **APPROVED)
    public_id = str(decision.application.public_id)
    with at(PURGE_DAY):
        out = io.StringIO()
        call_command("purge_expired", "--dry-run", stdout=out)
        assert "would remove 1 application(s)" in out.getvalue() and public_id in out.getvalue()
        assert Application.objects.count() == 1
        out = io.StringIO()
        call_command("purge_expired", stdout=out)
        assert "removed 1 application(s)" in out.getvalue()
    assert not Application.objects.exists()
    assert AuditEvent.objects.filter(event_type="retention.purged").count() == 1
