"""The audit chain's head for compliance: shown on the audit page and downloadable as JSON (sequence, hash,
time) to keep outside the system; ``audit_verify --expect-head`` later proves the kept head is still in the
chain."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import transaction
from django.test import Client

from audit.models import AuditEvent
from audit.services import audit_record
from tests.audit.test_audit_chain import _with_trigger_off


def record(n: int) -> None:
    for i in range(n):
        with transaction.atomic():
            audit_record(event_type="test.event", subject=("test", str(i)), data={"i": i})


def test_compliance_sees_the_head_and_downloads_it(compliance: User, client_for: Callable[[User], Client]) -> None:
    record(3)
    newest = AuditEvent.objects.order_by("-sequence").first()
    assert newest is not None
    client = client_for(compliance)

    page = client.get("/compliance/audit/").content.decode()
    assert f'<code id="head-hash">{newest.hash}</code>' in page
    assert f"<strong>Sequence:</strong> {newest.sequence}" in page

    download = client.get("/compliance/audit/?format=json")
    assert download["Content-Disposition"] == f'attachment; filename="candor-audit-head-{newest.sequence}.json"'
    kept = json.loads(download.content)
    assert (kept["sequence"], kept["hash"]) == (newest.sequence, newest.hash)
    assert dt.datetime.fromisoformat(kept["as_of"]) == newest.event_time
    assert dt.datetime.fromisoformat(kept["exported_at"]) >= newest.event_time


def test_a_kept_head_verifies_later_and_its_loss_is_named(compliance: User,
                                                          client_for: Callable[[User], Client]) -> None:
    record(3)
    kept = json.loads(client_for(compliance).get("/compliance/audit/?format=json").content)
    record(2)  # the chain grows after the head was kept: still fine
    out = io.StringIO()
    call_command("audit_verify", "--expect-head", kept["hash"], stdout=out)
    assert "audit chain intact" in out.getvalue()

    # Someone with database access rewrites history up to the kept event: whatever else the chain shows, the
    # head kept outside the system is no longer in it, and verification says so.
    _with_trigger_off("UPDATE audit_auditevent SET hash = %s WHERE hash = %s", ["e" * 64, kept["hash"]])
    with pytest.raises(CommandError, match=r"head hash kept earlier .* is no longer in the chain"):
        call_command("audit_verify", "--expect-head", kept["hash"], stdout=io.StringIO())


def test_officers_cannot_see_or_download_the_head(officer: User, client_for: Callable[[User], Client]) -> None:
    record(1)
    client = client_for(officer)
    assert client.get("/compliance/audit/").status_code == 403
    assert client.get("/compliance/audit/?format=json").status_code == 403
