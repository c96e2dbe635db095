"""Place, release or list legal holds from the command line (Reg B 1002.12(b)(4)), as the compliance page does.

    manage.py legal_hold place --application <application or decision id> --matter "Doe v. Lender" \
        --reason "Subpoena 2026-117" --by carl
    manage.py legal_hold release --hold 12 --note "Dismissed with prejudice" --by carl
    manage.py legal_hold list [--all]

Each change is audited under the named user, who must hold the matching permission."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.adverse import (
    LegalHoldInvalid,
    legal_hold_application,
    legal_hold_place,
    legal_hold_release,
    legal_holds_list,
)
from audit.models import LegalHold


def _user(username: str, permission: str) -> AbstractBaseUser:
    try:
        user = get_user_model().objects.get(username=username, is_active=True)
    except get_user_model().DoesNotExist:
        raise CommandError(f"--by: no active user {username!r}") from None
    if not user.has_perm(permission):
        raise CommandError(f"--by: {username} lacks the permission {permission}")
    return user


class Command(BaseCommand):
    help = "Place, release or list legal holds; each change is written to the audit log."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        place = sub.add_parser("place", help="hold an application's records for a matter")
        place.add_argument("--application", required=True, help="the application's or its decision's public id")
        place.add_argument("--matter", required=True, help="the investigation, examination or action")
        place.add_argument("--reason", required=True)
        place.add_argument("--by", required=True, help="the compliance user placing it")
        release = sub.add_parser("release", help="release a hold at the matter's final disposition")
        release.add_argument("--hold", required=True, type=int, help="the hold's number (see list)")
        release.add_argument("--note", required=True, help="the final disposition")
        release.add_argument("--by", required=True, help="the compliance user releasing it")
        listing = sub.add_parser("list", help="list active holds")
        listing.add_argument("--all", action="store_true", help="include released holds")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "place":
            user = _user(options["by"], "audit.add_legalhold")
            try:
                application = legal_hold_application(identifier=options["application"])
                hold = legal_hold_place(application=application, placed_by=user, matter=options["matter"],
                                        reason=options["reason"])
            except LegalHoldInvalid as exc:
                details = "; ".join(f"--{name}: {p}" for name, ps in exc.fields.items() for p in ps)
                raise CommandError(details or exc.message) from None
            self.stdout.write(f"hold {hold.pk} placed on application {application.public_id} for {hold.matter}")
        elif action == "release":
            user = _user(options["by"], "audit.change_legalhold")
            if not options["note"].strip():
                raise CommandError("--note: say how the matter was finally disposed of")
            try:
                hold = LegalHold.objects.get(pk=options["hold"])
            except LegalHold.DoesNotExist:
                raise CommandError(f"--hold: no hold {options['hold']}") from None
            if not hold.active:
                raise CommandError(f"--hold: hold {hold.pk} was already released on {hold.released_at:%Y-%m-%d}")
            legal_hold_release(hold=hold, released_by=user, note=options["note"])
            self.stdout.write(f"hold {hold.pk} on application {hold.application.public_id} released")
        else:
            for hold in legal_holds_list(active_only=not options["all"]):
                state = "active" if hold.active else f"released {hold.released_at:%Y-%m-%d}"
                self.stdout.write(f"{hold.pk}\t{hold.application.public_id}\t{hold.matter}\t"
                                  f"{hold.placed_at:%Y-%m-%d}\t{state}")
