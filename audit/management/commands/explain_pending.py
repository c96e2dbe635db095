"""Publish explanation requests the broker never received (it was down when the decision committed)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.explanations import explanation_outbox_sweep, explanation_record, explanation_requests_unfinished


class Command(BaseCommand):
    help = ("Publish pending explanation requests to the broker (what the periodic sweep does), or with "
            "--inline compute them in this process without a broker.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--inline", action="store_true", help="compute here instead of publishing")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["inline"]:
            pending = explanation_requests_unfinished()
            for decision_id in pending:
                explanation_record(decision_id=decision_id)
            self.stdout.write(f"explained {len(pending)} pending decisions in process")
            return
        published, failed = explanation_outbox_sweep()
        self.stdout.write(f"published {published} pending explanation requests")
        if failed:
            raise CommandError(f"{failed} requests could not be published: is the broker running?")
