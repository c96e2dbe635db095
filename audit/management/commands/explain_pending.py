"""Publish explanation requests the broker never received (it was down when the decision committed), and
the evidence measurements of language-model readings that never got theirs."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.explanations import (
    explanation_outbox_sweep,
    explanation_record,
    explanation_requests_unfinished,
    extraction_evidence_sweep,
)


class Command(BaseCommand):
    help = ("Publish pending explanation requests and missing evidence measurements to the broker (what the "
            "periodic sweeps do), or with "
            "--inline compute them in this process without a broker.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--inline", action="store_true", help="compute here instead of publishing")
        parser.add_argument("--retry-failed-evidence", action="store_true",
                            help="first let the sweeps try again the evidence measurements they gave up after "
                                 "repeated failures (once the cause is fixed)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["retry_failed_evidence"]:
            from lending.services import extraction_evidence_retry

            self.stdout.write(f"{extraction_evidence_retry()} given-up evidence measurements will be tried again")
        if options["inline"]:
            pending = explanation_requests_unfinished()
            for decision_id in pending:
                explanation_record(decision_id=decision_id)
            self.stdout.write(f"explained {len(pending)} pending decisions in process")
            measured, failed = extraction_evidence_sweep(inline=True)
            self.stdout.write(f"measured the missing evidence of {measured} applications in process")
            if failed:
                raise CommandError(f"measuring the evidence of {failed} applications failed; see the log")
            return
        published, failed = explanation_outbox_sweep()
        self.stdout.write(f"published {published} pending explanation requests")
        if failed:
            raise CommandError(f"{failed} requests could not be published: is the broker running?")
        published, failed = extraction_evidence_sweep()
        self.stdout.write(f"published {published} missing evidence measurements")
        if failed:
            raise CommandError(f"{failed} evidence measurements could not be published: is the broker running?")
