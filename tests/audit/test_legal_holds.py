"""Legal holds (Reg B 1002.12(b)(4)) from the compliance page and the command line: placed for a named matter,
released at final disposition, each change audited in its own transaction, bad input named by field and nothing
stored. Carl (compliance) holds and releases; Olivia (officer) may not; the purge keeps what is held."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client

from audit.adverse import adverse_action_prepare, legal_hold_place, retention_purge
from audit.models import AuditEvent, LegalHold
from lending.models import Decision, ModelVersion
from tests.audit.test_adverse import DENIED, decide

MATTER = "CFPB CID 2026-0042"


@pytest.fixture
def denial(approved_demo: ModelVersion, officer: User) -> Decision:
    return decide(approved_demo, officer, explain=False, expect="denied", **DENIED)


def hold_events() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(event_type__startswith="legal_hold."))


def test_compliance_places_a_hold_by_decision_id_and_it_is_audited(
        denial: Decision, compliance: User, client_for: Callable[[User], Client]) -> None:
    client = client_for(compliance)
    response = client.post("/compliance/legal-holds/", {
        "application": str(denial.public_id), "matter": MATTER, "reason": "Civil investigative demand received"})
    assert response.status_code == 302
    hold = LegalHold.objects.get()
    assert (hold.application_id, hold.matter, hold.placed_by) == (denial.application_id, MATTER, compliance)
    assert hold.active
    [event] = hold_events()
    assert (event.event_type, event.actor, event.subject_id) == ("legal_hold.placed", compliance, str(hold.pk))
    assert event.data == {"application": str(denial.application.public_id), "matter": MATTER,
                          "reason": "Civil investigative demand received"}
    page = client.get("/compliance/legal-holds/").content.decode()
    assert MATTER in page and "On hold" in page and str(denial.public_id) in page


def test_a_hold_by_application_id_works_too(denial: Decision, compliance: User,
                                            client_for: Callable[[User], Client]) -> None:
    client_for(compliance).post("/compliance/legal-holds/", {
        "application": str(denial.application.public_id), "matter": MATTER, "reason": "Subpoena"})
    assert LegalHold.objects.get().application_id == denial.application_id


@pytest.mark.parametrize(("form", "field", "message"), [
    ({"application": "not-an-id", "matter": MATTER, "reason": "x"}, "application", "is not an application"),
    ({"application": "6f1c1f4e-0000-4000-8000-000000000000", "matter": MATTER, "reason": "x"}, "application",
     "no application or decision has the id"),
    ({"application": "{id}", "matter": "   ", "reason": "x"}, "matter", "This field is required"),
    ({"application": "{id}", "matter": MATTER, "reason": ""}, "reason", "This field is required"),
])
def test_bad_input_is_named_by_field_and_nothing_is_stored(
        denial: Decision, compliance: User, client_for: Callable[[User], Client],
        form: dict[str, str], field: str, message: str) -> None:
    data = {key: value.replace("{id}", str(denial.public_id)) for key, value in form.items()}
    response = client_for(compliance).post("/compliance/legal-holds/", data)
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert list(errors) == [field] and message in errors[field][0]
    assert not LegalHold.objects.exists() and not hold_events()


def test_the_same_matter_cannot_be_held_twice_but_another_matter_can(
        denial: Decision, compliance: User, client_for: Callable[[User], Client]) -> None:
    client = client_for(compliance)
    data = {"application": str(denial.public_id), "matter": MATTER, "reason": "CID"}
    assert client.post("/compliance/legal-holds/", data).status_code == 302
    again = client.post("/compliance/legal-holds/", data)
    assert again.status_code == 400 and "already on hold" in again.context["form"].errors["matter"][0]
    assert client.post("/compliance/legal-holds/", {**data, "matter": "Doe v. Lender"}).status_code == 302
    assert LegalHold.objects.filter(released_at__isnull=True).count() == 2 and len(hold_events()) == 2


def test_compliance_releases_a_hold_with_a_note_once(denial: Decision, compliance: User,
                                                     client_for: Callable[[User], Client]) -> None:
    hold = legal_hold_place(application=denial.application, placed_by=compliance, matter=MATTER, reason="CID")
    client = client_for(compliance)
    refused = client.post(f"/compliance/legal-holds/{hold.pk}/release", {"note": "  "})
    assert refused.status_code == 302
    hold.refresh_from_db()
    assert hold.active and len(hold_events()) == 1

    client.post(f"/compliance/legal-holds/{hold.pk}/release", {"note": "CID closed without action"})
    hold.refresh_from_db()
    assert not hold.active and hold.released_by == compliance and hold.release_note == "CID closed without action"
    released = AuditEvent.objects.get(event_type="legal_hold.released")
    assert released.actor == compliance
    assert (released.data["matter"], released.data["note"]) == (MATTER, "CID closed without action")

    client.post(f"/compliance/legal-holds/{hold.pk}/release", {"note": "again"})  # a second release changes nothing
    hold.refresh_from_db()
    assert hold.release_note == "CID closed without action" and len(hold_events()) == 2
    assert "No active legal holds" in client.get("/compliance/legal-holds/").content.decode()
    assert "CID closed without action" in client.get("/compliance/legal-holds/?released=1").content.decode()


def test_an_officer_can_neither_see_nor_place_nor_release_holds(
        denial: Decision, officer: User, compliance: User, client_for: Callable[[User], Client]) -> None:
    hold = legal_hold_place(application=denial.application, placed_by=compliance, matter=MATTER, reason="CID")
    client = client_for(officer)
    assert client.get("/compliance/legal-holds/").status_code == 403
    assert client.post("/compliance/legal-holds/", {
        "application": str(denial.public_id), "matter": "Other", "reason": "x"}).status_code == 403
    assert client.post(f"/compliance/legal-holds/{hold.pk}/release", {"note": "done"}).status_code == 403
    hold.refresh_from_db()
    assert hold.active and LegalHold.objects.count() == 1 and len(hold_events()) == 1


def test_the_command_places_lists_and_releases_under_a_named_user(denial: Decision, compliance: User,
                                                                  officer: User) -> None:
    out = io.StringIO()
    call_command("legal_hold", "place", "--application", str(denial.public_id), "--matter", MATTER,
                 "--reason", "CID", "--by", compliance.username, stdout=out)
    hold = LegalHold.objects.get()
    assert f"hold {hold.pk} placed" in out.getvalue()
    listing = io.StringIO()
    call_command("legal_hold", "list", stdout=listing)
    assert MATTER in listing.getvalue() and "active" in listing.getvalue()

    with pytest.raises(CommandError, match="lacks the permission"):
        call_command("legal_hold", "release", "--hold", str(hold.pk), "--note", "done", "--by", officer.username)
    with pytest.raises(CommandError, match=r"--matter: .*already on hold"):
        call_command("legal_hold", "place", "--application", str(denial.public_id), "--matter", MATTER,
                     "--reason", "CID", "--by", compliance.username)
    with pytest.raises(CommandError, match="--application"):
        call_command("legal_hold", "place", "--application", "nope", "--matter", "M", "--reason", "r",
                     "--by", compliance.username)
    assert LegalHold.objects.count() == 1 and len(hold_events()) == 1

    call_command("legal_hold", "release", "--hold", str(hold.pk), "--note", "Settled", "--by", compliance.username,
                 stdout=io.StringIO())
    hold.refresh_from_db()
    assert not hold.active and [e.event_type for e in hold_events()] == ["legal_hold.placed", "legal_hold.released"]
    with pytest.raises(CommandError, match="already released"):
        call_command("legal_hold", "release", "--hold", str(hold.pk), "--note", "x", "--by", compliance.username)
    empty = io.StringIO()
    call_command("legal_hold", "list", stdout=empty)
    assert empty.getvalue() == ""


def test_a_hold_placed_on_the_page_keeps_the_record_from_the_purge(
        approved_demo: ModelVersion, officer: User, compliance: User, client_for: Callable[[User], Client]) -> None:
    with time_machine.travel(dt.datetime(2023, 1, 10, 12, tzinfo=dt.UTC), tick=False):
        held = decide(approved_demo, officer, expect="denied", **DENIED)
        adverse_action_prepare(decision_id=held.pk)
        client_for(compliance).post("/compliance/legal-holds/", {
            "application": str(held.public_id), "matter": MATTER, "reason": "CID"})
    with time_machine.travel(dt.datetime(2025, 6, 1, tzinfo=dt.UTC), tick=False):
        report = retention_purge()
    assert report.applications == () and report.held == 1
    assert Decision.objects.filter(pk=held.pk).exists()
