"""Remove the records whose retention has run out (Reg B 1002.12(b): 25 months after the notice), never one
under legal hold; the removal is audited. Audit events themselves are never removed."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from audit.adverse import RETENTION_MONTHS, retention_purge


class Command(BaseCommand):
    help = f"Delete applications and their records kept longer than {RETENTION_MONTHS} months and not on hold."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="List what would be removed; remove nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        dry_run = bool(options["dry_run"])
        report = retention_purge(dry_run=dry_run)
        verb = "would remove" if dry_run else "removed"
        self.stdout.write(f"{verb} {len(report.applications)} application(s); "
                          f"{report.held} expired application(s) kept under legal hold")
        for name, count in report.counts.items():
            if count:
                self.stdout.write(f"  {name}: {count}")
        for public_id in report.applications:
            self.stdout.write(f"  application {public_id}")
