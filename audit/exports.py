"""Exports of decisions for examiners (issue 5, checklist D/E): CSV, JSON Lines and a PDF summary, bundled as
a ZIP with a manifest of SHA-256 hashes, streamed in constant memory, each export an audit event.

Memory: rows come from the database in chunks (``.iterator(chunk_size=...)``, a server-side cursor on
PostgreSQL) and go straight into the ZIP member being written (``ZipFile.open(name, "w")``); the hashes in the
manifest are computed on the bytes as they are written. Nothing holds the whole export.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import html
import io
import json
import os
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Count, JSONField, OuterRef, QuerySet, Subquery
from django.utils import timezone

from audit.models import Explanation, ExplanationContext, ExportJob, Notice, ReasonStatement
from audit.services import audit_chain_head, audit_record
from lending.models import Decision, OfficerAction

CSV_CHUNK = 10_000
JSONL_CHUNK = 500
PROGRESS_EVERY = 10_000
# Up to this many decisions an export is built in the request; more go to the worker.
EXPORT_INLINE_MAX = 5_000

CSV_COLUMNS = (
    "decision_id", "application_id", "product", "decided_at", "model_outcome", "final_outcome",
    "probability_of_default", "model_version", "principal_reasons", "hmda_denial_codes",
    "explanation_checks_passed", "notice_pdf_sha256", "notice_sent_at",
)

Progress = Callable[[int], None]


@dataclass(frozen=True)
class ExportFilters:
    """``since``/``until`` are inclusive UTC days of ``decided_at``; ``outcome`` is the model's outcome."""

    since: dt.date | None = None
    until: dt.date | None = None
    product: str | None = None
    outcome: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"since": self.since.isoformat() if self.since else None,
                "until": self.until.isoformat() if self.until else None,
                "product": self.product or None, "outcome": self.outcome or None}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ExportFilters:
        return cls(since=dt.date.fromisoformat(raw["since"]) if raw.get("since") else None,
                   until=dt.date.fromisoformat(raw["until"]) if raw.get("until") else None,
                   product=raw.get("product") or None, outcome=raw.get("outcome") or None)


@dataclass(frozen=True)
class ExportResult:
    rows: int
    sha256: str
    size: int
    manifest: dict[str, Any]


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


def export_decisions(*, filters: ExportFilters) -> QuerySet[Decision]:
    decisions = Decision.objects.all()
    if filters.since:
        decisions = decisions.filter(decided_at__gte=_day_start(filters.since))
    if filters.until:
        decisions = decisions.filter(decided_at__lt=_day_start(filters.until + dt.timedelta(days=1)))
    if filters.product:
        decisions = decisions.filter(application__product__slug=filters.product)
    if filters.outcome:
        decisions = decisions.filter(outcome=filters.outcome)
    return decisions.order_by("decided_at", "id")


def _iso(moment: dt.datetime | None) -> str:
    return moment.astimezone(dt.UTC).isoformat() if moment is not None else ""


# --- CSV: one SQL query, one row per decision ------------------------------------------------------------------

def export_csv_rows(*, filters: ExportFilters) -> Iterator[tuple[Any, ...]]:
    """The CSV rows, one query with correlated subqueries for the final outcome, current reasons, latest
    explanation and current notice, streamed in chunks."""
    final = (OfficerAction.objects.filter(decision=OuterRef("pk")).exclude(outcome="")
             .order_by("-created_at", "-id").values("outcome")[:1])
    statement = ReasonStatement.objects.filter(decision=OuterRef("pk"), superseded_at__isnull=True)
    explanation = Explanation.objects.filter(decision=OuterRef("pk")).order_by("-computed_at", "-id")
    notice = Notice.objects.filter(decision=OuterRef("pk"), superseded_at__isnull=True,
                                   reason_statement__superseded_at__isnull=True)
    rows = (export_decisions(filters=filters)
            .annotate(x_final=Subquery(final),
                      x_reasons=Subquery(statement.values("reasons")[:1], output_field=JSONField()),
                      x_hmda=Subquery(statement.values("hmda")[:1], output_field=JSONField()),
                      x_checks=Subquery(explanation.values("checks_passed")[:1]),
                      x_notice_sha=Subquery(notice.values("pdf_sha256")[:1]),
                      x_notice_sent=Subquery(notice.values("sent_at")[:1]))
            .values_list("public_id", "application__public_id", "application__product__slug", "decided_at",
                         "outcome", "x_final", "probability_of_default", "model_version__version", "x_reasons",
                         "x_hmda", "x_checks", "x_notice_sha", "x_notice_sent")
            .iterator(chunk_size=CSV_CHUNK))
    for (public_id, application_id, product, decided_at, outcome, final_outcome, probability, version, reasons,
         hmda, checks, notice_sha, notice_sent) in rows:
        yield (
            str(public_id), str(application_id), product, _iso(decided_at), outcome, final_outcome or outcome,
            repr(probability), version,
            "|".join(f"{r['key']}: {r['text']}" for r in reasons) if reasons else "",
            "|".join(str(code) for code in hmda.get("codes", ())) if hmda else "",
            "" if checks is None else ("true" if checks else "false"),
            notice_sha or "", _iso(notice_sent),
        )


def export_csv_write(*, filters: ExportFilters, out: BinaryIO, progress: Progress | None = None) -> int:
    """Write the CSV (UTF-8, header first) to a binary stream; returns the number of decisions."""
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=False)  # type: ignore[type-var]
    writer = csv.writer(text)
    writer.writerow(CSV_COLUMNS)
    count = 0
    for row in export_csv_rows(filters=filters):
        writer.writerow(row)
        count += 1
        if progress is not None and count % PROGRESS_EVERY == 0:
            progress(count)
    text.flush()
    text.detach()
    return count


# --- JSON Lines: the full record of each decision ---------------------------------------------------------------

def _chunks(ids: Iterator[int], size: int) -> Iterator[list[int]]:
    while chunk := list(islice(ids, size)):
        yield chunk


def export_records(*, filters: ExportFilters) -> Iterator[dict[str, Any]]:
    """The full record of each decision: application values, decision, latest explanation, current reasons,
    notice metadata and hashes, officer actions. A few queries per chunk of decisions."""
    ids = export_decisions(filters=filters).values_list("id", flat=True).iterator(chunk_size=CSV_CHUNK)
    for chunk in _chunks(ids, JSONL_CHUNK):
        decisions = (Decision.objects.filter(pk__in=chunk).select_related("application__product", "model_version")
                     .order_by("decided_at", "id"))
        explanations: dict[int, Explanation] = {}
        for item in Explanation.objects.filter(decision_id__in=chunk).order_by("decision_id", "computed_at", "id"):
            explanations[item.decision_id] = item  # the latest wins
        # The explanations' shared contexts (a handful, one per model version), read once per chunk.
        contexts = ExplanationContext.objects.in_bulk({e.context_id for e in explanations.values()
                                                       if e.context_id is not None})
        for item in explanations.values():
            if item.context_id is not None:
                item.context = contexts[item.context_id]
        statements = {s.decision_id: s for s in ReasonStatement.objects.filter(decision_id__in=chunk,
                                                                               superseded_at__isnull=True)}
        notices: dict[int, list[Notice]] = {}
        for n in Notice.objects.filter(decision_id__in=chunk).defer("html", "pdf", "context").order_by("created_at",
                                                                                                        "id"):
            notices.setdefault(n.decision_id, []).append(n)
        actions: dict[int, list[OfficerAction]] = {}
        for a in OfficerAction.objects.filter(decision_id__in=chunk).select_related("officer").order_by(
                "created_at", "id"):
            actions.setdefault(a.decision_id, []).append(a)
        for decision in decisions:
            application = decision.application
            explanation = explanations.get(decision.pk)
            statement = statements.get(decision.pk)
            decided = [a for a in actions.get(decision.pk, []) if a.outcome]
            yield {
                "decision": {
                    "id": str(decision.public_id), "decided_at": _iso(decision.decided_at),
                    "model_outcome": decision.outcome, "final_outcome": decided[-1].outcome if decided
                    else decision.outcome,
                    "probability_of_default": decision.probability_of_default,
                    "model_version": decision.model_version.version,
                    "model_content_hash": decision.model_version.content_hash,
                    "inputs": decision.inputs, "inputs_sha256": decision.inputs_sha256, "cutoff": decision.cutoff,
                    "refer_band": decision.refer_band, "knockout": decision.knockout,
                    "knockout_reason": decision.knockout_reason, "manual_review": decision.manual_review},
                "application": {"id": str(application.public_id), "product": application.product.slug,
                                "values": application.values, "submitted_at": _iso(application.submitted_at),
                                "completed_at": _iso(application.completed_at)},
                "explanation": None if explanation is None else {
                    "explainer_version": explanation.explainer_version, "method": explanation.method,
                    "checks_passed": explanation.checks_passed, "computed_at": _iso(explanation.computed_at),
                    "payload": explanation.document},
                "reasons": None if statement is None else {
                    "source": statement.source, "reasons": statement.reasons, "hmda": statement.hmda,
                    "knockout_reason": statement.knockout_reason, "created_at": _iso(statement.created_at)},
                "notices": [{"reference": n.reference, "language": n.language, "html_sha256": n.html_sha256,
                             "pdf_sha256": n.pdf_sha256, "notice_date": n.notice_date.isoformat(),
                             "due_at": _iso(n.due_at), "sent_at": _iso(n.sent_at),
                             "channel": n.delivery_channel, "superseded_at": _iso(n.superseded_at)}
                            for n in notices.get(decision.pk, [])],
                "officer_actions": [{"officer": a.officer.get_username(), "action": a.action, "outcome": a.outcome,
                                     "factors": a.factors, "comment": a.comment, "created_at": _iso(a.created_at)}
                                    for a in actions.get(decision.pk, [])],
            }


def export_jsonl_write(*, filters: ExportFilters, out: BinaryIO, progress: Progress | None = None) -> int:
    count = 0
    for record in export_records(filters=filters):
        out.write(json.dumps(record, cls=DjangoJSONEncoder, sort_keys=True, ensure_ascii=False).encode() + b"\n")
        count += 1
        if progress is not None and count % PROGRESS_EVERY == 0:
            progress(count)
    return count


# --- PDF summary --------------------------------------------------------------------------------------------

def export_summary_pdf(*, filters: ExportFilters, generated_at: dt.datetime, head_sequence: int,
                       head_hash: str) -> bytes:
    from weasyprint import HTML

    counts = (export_decisions(filters=filters).order_by().values("application__product__slug", "outcome")
              .annotate(n=Count("id")).order_by("application__product__slug", "outcome"))
    rows = "".join(f"<tr><td>{html.escape(c['application__product__slug'])}</td><td>{html.escape(c['outcome'])}"
                   f"</td><td>{c['n']}</td></tr>" for c in counts)
    total = sum(c["n"] for c in counts)
    f = filters.as_dict()
    page = f"""<!doctype html><html><head><meta charset="utf-8"><style>
body {{ font-family: sans-serif; font-size: 10pt; }} table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #999; padding: 2pt 6pt; }} code {{ font-size: 8pt; }}</style></head><body>
<h1>Candor decision export: summary</h1>
<p>Decided from {html.escape(f['since'] or 'the beginning')} to {html.escape(f['until'] or 'now')} (UTC days,
inclusive); product: {html.escape(f['product'] or 'all')}; model outcome: {html.escape(f['outcome'] or 'all')}.</p>
<p>Generated at {html.escape(_iso(generated_at))}. Decisions: {total}.</p>
<table><tr><th>Product</th><th>Model outcome</th><th>Decisions</th></tr>{rows}</table>
<p>Audit chain head at export time: sequence {head_sequence}, hash <code>{html.escape(head_hash)}</code>.</p>
</body></html>"""
    return HTML(string=page).write_pdf()  # type: ignore[no-any-return]


# --- the ZIP ---------------------------------------------------------------------------------------------------

class _HashingSink(io.RawIOBase):
    """Passes bytes through to a ZIP member, counting and hashing them for the manifest."""

    def __init__(self, target: BinaryIO) -> None:
        self.target, self.digest, self.size = target, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.digest.update(view)
        self.size += len(view)
        self.target.write(view)
        return len(view)


def _member(zf: zipfile.ZipFile, name: str, write: Callable[[BinaryIO], Any]) -> tuple[dict[str, Any], Any]:
    with zf.open(name, "w", force_zip64=True) as raw:
        sink = _HashingSink(raw)  # type: ignore[arg-type]
        buffered = io.BufferedWriter(sink, buffer_size=1 << 20)
        result = write(buffered)  # type: ignore[arg-type]
        buffered.flush()
    return {"name": name, "sha256": sink.digest.hexdigest(), "size": sink.size}, result


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def export_build(*, filters: ExportFilters, path: Path, progress: Progress | None = None,
                 generated_at: dt.datetime | None = None) -> ExportResult:
    """Write the export ZIP to ``path`` (atomically: a ``.part`` file renamed at the end)."""
    generated_at = generated_at or timezone.now()
    head = audit_chain_head()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    csv_rows = [0]

    def csv_progress(n: int) -> None:
        csv_rows[0] = n
        if progress is not None:
            progress(n // 2)

    def jsonl_progress(n: int) -> None:
        if progress is not None:
            progress((csv_rows[0] + n) // 2)

    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        csv_entry, rows = _member(zf, "decisions.csv",
                                  lambda out: export_csv_write(filters=filters, out=out, progress=csv_progress))
        csv_rows[0] = rows
        jsonl_entry, _ = _member(zf, "decisions.jsonl",
                                 lambda out: export_jsonl_write(filters=filters, out=out, progress=jsonl_progress))
        pdf = export_summary_pdf(filters=filters, generated_at=generated_at, head_sequence=head.sequence,
                                 head_hash=head.hash)
        pdf_entry, _ = _member(zf, "summary.pdf", lambda out: out.write(pdf))
        manifest = {"format": "candor-decision-export/1", "generated_at": _iso(generated_at),
                    "filters": filters.as_dict(), "rows": rows,
                    "audit_head": {"sequence": head.sequence, "hash": head.hash},
                    "files": [csv_entry, jsonl_entry, pdf_entry]}
        zf.writestr("manifest.json", json.dumps(manifest, indent=2, sort_keys=True))
    os.replace(partial, path)
    return ExportResult(rows=rows, sha256=file_sha256(path), size=path.stat().st_size, manifest=manifest)


# --- jobs -------------------------------------------------------------------------------------------------------

def exports_dir() -> Path:
    return Path(settings.CANDOR_DATA_DIR) / "exports"


def export_job_create(*, filters: ExportFilters, requested_by: AbstractBaseUser | None,
                      path: Path | None = None, run_inline: bool | None = None) -> ExportJob:
    """Record the request (audited); build it now if small (or ``run_inline``), else in the worker after commit."""
    total = export_decisions(filters=filters).count()
    inline = total <= EXPORT_INLINE_MAX if run_inline is None else run_inline
    with transaction.atomic():
        job = ExportJob.objects.create(filters=filters.as_dict(), requested_by=requested_by, rows_total=total,
                                       created_at=timezone.now())
        job.path = str(path) if path is not None else str(exports_dir() / f"candor-export-{job.public_id}.zip")
        ExportJob.objects.filter(pk=job.pk).update(path=job.path)
        audit_record(event_type="export.requested", subject=job, actor=requested_by,
                     data={"filters": job.filters, "rows_total": total, "inline": inline})
        if not inline:
            from audit.tasks import export_run

            job_id = job.pk
            transaction.on_commit(lambda: export_run.delay(job_id))
    if inline:
        export_job_run(job_id=job.pk)
        job.refresh_from_db()
    return job


def export_job_run(*, job_id: int) -> ExportJob:
    """Build a job's ZIP. Idempotent: only the delivery that claims the pending job builds it."""
    now = timezone.now()
    if not ExportJob.objects.filter(pk=job_id, status=ExportJob.Status.PENDING).update(
            status=ExportJob.Status.RUNNING, started_at=now):
        return ExportJob.objects.get(pk=job_id)
    job = ExportJob.objects.get(pk=job_id)
    filters = ExportFilters.from_dict(job.filters)

    def progress(done: int) -> None:
        ExportJob.objects.filter(pk=job_id).update(rows_done=done)

    try:
        result = export_build(filters=filters, path=Path(job.path), progress=progress, generated_at=now)
    except Exception as exc:
        with transaction.atomic():
            ExportJob.objects.filter(pk=job_id).update(status=ExportJob.Status.FAILED, finished_at=timezone.now(),
                                                       error=f"{type(exc).__name__}: {exc}"[:2000])
            audit_record(event_type="export.failed", subject=job, data={"filters": job.filters,
                                                                        "error": f"{type(exc).__name__}: {exc}"})
        raise
    with transaction.atomic():
        ExportJob.objects.filter(pk=job_id).update(
            status=ExportJob.Status.DONE, rows_done=result.rows, rows_total=result.rows, sha256=result.sha256,
            size=result.size, manifest=result.manifest, finished_at=timezone.now())
        audit_record(event_type="export.completed", subject=job, actor=job.requested_by, data={
            "filters": job.filters, "rows": result.rows, "zip_sha256": result.sha256, "zip_size": result.size,
            "manifest": result.manifest})
    return ExportJob.objects.get(pk=job_id)


def export_jobs_recent(*, limit: int = 50) -> QuerySet[ExportJob]:
    return ExportJob.objects.select_related("requested_by").order_by("-created_at", "-id")[:limit]

