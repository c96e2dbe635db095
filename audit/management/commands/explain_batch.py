"""Re-explain a product's decisions over Celery in chunks, with a progress bar; resumable."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.explanations import explanation_batch_progress, explanation_batch_start
from lending.errors import DomainError
from lending.selectors import product_get


def _since(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"--since must be a date or datetime like 2026-01-31, got {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = ("Explain every decision of a product (optionally since a date) that has no explanation from the "
            "current explainer yet, fanned out over the Celery workers. Interrupted? Run it again: it "
            "picks up only what is still missing.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--product", required=True)
        parser.add_argument("--since", help="only decisions made on or after this date (UTC)")
        parser.add_argument("--chunk-size", type=int, default=1000)
        parser.add_argument("--no-wait", action="store_true", help="enqueue and return without a progress bar")
        parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for the workers")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            product = product_get(slug=options["product"])
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        since = _since(options.get("since"))
        batch = explanation_batch_start(product=product, since=since, requested_by="manage.py explain_batch",
                                        chunk_size=options["chunk_size"])
        self.stdout.write(f"batch {batch.pk}: {batch.total} decisions to explain in {batch.chunks} chunks")
        if options["no_wait"] or batch.total == 0:
            return
        deadline = time.monotonic() + options["timeout"]
        started = time.monotonic()
        while True:
            explained, total = explanation_batch_progress(product=product, since=since)
            self._bar(explained, total, time.monotonic() - started)
            if explained >= total:
                break
            if time.monotonic() > deadline:
                sys.stderr.write("\n")
                raise CommandError(f"timed out with {total - explained} decisions unexplained; are workers "
                                   "running? Run the command again to resume.")
            # Each poll counts the portfolio: poll gently so the bar does not slow the workers it watches.
            time.sleep(2.0)
        sys.stderr.write("\n")
        self.stdout.write(f"explained: {explained} of {total}")

    def _bar(self, done: int, total: int, elapsed: float) -> None:
        width = 40
        filled = int(width * done / total) if total else width
        rate = done / elapsed if elapsed > 0 else 0.0
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {rate:,.0f}/s")
        sys.stderr.flush()
