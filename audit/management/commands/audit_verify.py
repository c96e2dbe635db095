"""Walk the audit chain and name every altered, removed or inserted event."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.services import audit_chain_verify


class Command(BaseCommand):
    help = ("Verify the tamper-evident audit chain. Exits non-zero and names each problem if any event was "
            "altered, removed or inserted; prints the head hash to keep outside the system.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print the result as JSON")
        parser.add_argument("--expect-head", help="a head hash kept earlier: it must still be in the chain")

    def handle(self, *args: Any, **options: Any) -> None:
        report = audit_chain_verify()
        problems = [str(p) for p in report.problems]
        if options.get("expect_head"):
            from audit.models import AuditEvent

            if not AuditEvent.objects.filter(hash=options["expect_head"]).exists():
                problems.append(f"the head hash kept earlier ({options['expect_head'][:12]}...) is no longer "
                                "in the chain")
        if options["json"]:
            self.stdout.write(json.dumps({"ok": not problems, "events": report.events,
                                          "head_sequence": report.head_sequence, "head_hash": report.head_hash,
                                          "problems": problems}))
        else:
            self.stdout.write(f"events: {report.events}")
            self.stdout.write(f"head: {report.head_sequence} {report.head_hash}")
        if problems:
            raise CommandError("audit chain broken:\n" + "\n".join(problems))
        if not options["json"]:
            self.stdout.write("audit chain intact")
