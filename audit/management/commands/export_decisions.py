"""Export decisions to a ZIP (CSV, JSON Lines, PDF summary, manifest): the same code as the compliance page.

    python manage.py export_decisions --since 2026-01-01 --until 2026-03-31 --product demo --outcome denied \
        --out /tmp/export.zip
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.exports import ExportFilters, export_job_create
from audit.models import ExportJob
from lending.models import Decision, Product


def _date(raw: str) -> dt.date:
    try:
        return dt.date.fromisoformat(raw)
    except ValueError as exc:
        raise CommandError(f"not a date (YYYY-MM-DD): {raw!r}") from exc


class Command(BaseCommand):
    help = "Export decisions (by decided_at day, product and model outcome) to a ZIP with a SHA-256 manifest."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", type=_date, help="first day decided (UTC), inclusive")
        parser.add_argument("--until", type=_date, help="last day decided (UTC), inclusive")
        parser.add_argument("--product", help="product slug")
        parser.add_argument("--outcome", choices=Decision.Outcome.values, help="model outcome")
        parser.add_argument("--out", required=True, type=Path, help="where to write the ZIP")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["product"] and not Product.objects.filter(slug=options["product"]).exists():
            raise CommandError(f"no product {options['product']!r}")
        filters = ExportFilters(since=options["since"], until=options["until"], product=options["product"],
                                outcome=options["outcome"])
        out: Path = options["out"].resolve()
        # Built here (not in the worker) and audited like any other export.
        job = export_job_create(filters=filters, requested_by=None, path=out, run_inline=True)
        if job.status != ExportJob.Status.DONE:
            raise CommandError(f"export failed: {job.error}")
        self.stdout.write(f"{job.rows_done} decisions -> {out} ({job.size} bytes, sha256 {job.sha256})")
