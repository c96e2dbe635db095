"""Explanations: the outbox between a decision and its explanation, and storing what the worker computes.

A decision commits together with an ExplanationRequest (the outbox row); publishing to the broker happens
after commit. Every step is idempotent: a task delivered twice, or redelivered after its worker was
killed (acks_late), leaves exactly one Explanation per decision and explainer version.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import math
import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import BooleanField, Exists, F, Max, OuterRef, Q
from django.db.models.expressions import RawSQL
from django.utils import timezone

from audit.models import AuditEvent, Explanation, ExplanationBatch, ExplanationContext, ExplanationRequest
from audit.services import audit_record
from lending.models import Decision, ModelVersion, Product
from lending.selectors import inputs_from_snapshot, product_spec, scoring_model_for
from scoring.explain import EXPLAINER_VERSION, Explainer
from scoring.explain import Explanation as CoreExplanation
from scoring.spec import clean_value

logger = logging.getLogger(__name__)

# A request published this long ago without an explanation is published again by the sweep.
REPUBLISH_AFTER = timedelta(minutes=2)
BATCH_CHUNK_SIZE = 1000


def explanation_request_create(*, decision: Decision) -> ExplanationRequest:
    """Write the outbox row; call inside the decision's transaction. Publishes after commit."""
    request = ExplanationRequest.objects.create(decision=decision, created_at=decision.decided_at)
    decision_id = decision.pk
    transaction.on_commit(lambda: explanation_request_publish(decision_id=decision_id))
    return request


def explanation_request_publish(*, decision_id: int, record_success: bool = False) -> bool:
    """Send the explanation task to the broker. If the broker is down, record why and return False:
    the decision stands, and the sweep publishes the request later.

    On the request path a successful publish writes nothing (a second transaction would cost a disk
    sync per decision); the sweep records its own publications so it does not repeat them too often.
    """
    from audit.tasks import explanation_compute

    try:
        explanation_compute.apply_async(args=[decision_id], retry=False)
    except Exception as exc:
        logger.warning("could not publish explanation request for decision %s: %s", decision_id, exc)
        ExplanationRequest.objects.filter(decision_id=decision_id).update(
            publish_attempts=F("publish_attempts") + 1, last_error=f"{type(exc).__name__}: {exc}"[:2000])
        return False
    if record_success:
        ExplanationRequest.objects.filter(decision_id=decision_id).update(
            published_at=timezone.now(), publish_attempts=F("publish_attempts") + 1, last_error="")
    return True


def explanation_requests_pending(*, now: datetime | None = None, limit: int = 5000) -> list[int]:
    """Decisions still without an explanation whose request failed to publish, or was published (or made)
    long enough ago that it should have finished."""
    now = now or timezone.now()
    stale = now - REPUBLISH_AFTER
    unfinished = ExplanationRequest.objects.filter(completed_at__isnull=True)
    never_sent = unfinished.filter(published_at__isnull=True).filter(
        Q(publish_attempts__gt=0) | Q(created_at__lt=stale))
    sent_long_ago = unfinished.filter(published_at__lt=stale)
    pending = never_sent | sent_long_ago
    return list(pending.order_by("id").values_list("decision_id", flat=True)[:limit])


def explanation_requests_unfinished(*, limit: int = 10**9) -> list[int]:
    return list(ExplanationRequest.objects.filter(completed_at__isnull=True).order_by("id")
                .values_list("decision_id", flat=True)[:limit])


def explanation_outbox_sweep(*, now: datetime | None = None) -> tuple[int, int]:
    """Publish every pending request; returns (published, failed). Stops at the first broker failure."""
    published = 0
    pending = explanation_requests_pending(now=now)
    for decision_id in pending:
        if not explanation_request_publish(decision_id=decision_id, record_success=True):
            return published, len(pending) - published
        published += 1
    return published, 0


def extraction_evidence_publish(*, application_id: int) -> bool:
    """Send the evidence task of one application to the broker; False (logged) if the broker is down."""
    from audit.tasks import extraction_evidence_measure

    try:
        extraction_evidence_measure.apply_async(args=[application_id], retry=False)
    except Exception as exc:
        logger.warning("could not publish the evidence task of application %s: %s", application_id, exc)
        return False
    return True


def extraction_evidence_sweep(*, now: datetime | None = None, inline: bool = False) -> tuple[int, int]:
    """Recover language-model readings whose evidence was never measured (the worker's task was lost after
    the decision committed): publish their measurement, or with ``inline`` measure it here. Idempotent:
    ``extraction_evidence_ensure`` measures only readings that still have none, each once.
    Returns (applications handled, applications left: broker down or a measurement failed)."""
    from lending.selectors import extraction_applications_missing_evidence
    from lending.services import extraction_evidence_ensure

    pending = extraction_applications_missing_evidence(now=now)
    handled = 0
    for application_id in pending:
        if inline:
            try:
                extraction_evidence_ensure(application_id=application_id)
            except Exception:  # one bad application must not stop the sweep; logged, retried next time
                logger.exception("measuring the evidence of application %s failed", application_id)
                continue
        elif not extraction_evidence_publish(application_id=application_id):
            return handled, len(pending) - handled
        handled += 1
    return handled, len(pending) - handled


def explanation_context_for(*, result: CoreExplanation) -> ExplanationContext:
    """The stored context of an explanation (what every explanation of its model version shares)."""
    return explanation_context_get(content=result.stored_context())


def explanation_context_get(*, content: dict[str, Any]) -> ExplanationContext:
    """The stored context with this content, found by the SHA-256 of its canonical JSON or written once.
    Safe under concurrency: two workers writing the same context at once end with one row (get_or_create
    reads again after the unique constraint fires)."""
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), allow_nan=False)
    context, _ = ExplanationContext.objects.get_or_create(
        sha256=hashlib.sha256(canonical.encode()).hexdigest(),
        defaults={"content": content, "created_at": timezone.now()})
    return context


def _explanation_row(decision: Decision, result: CoreExplanation, now: datetime) -> Explanation:
    context = explanation_context_for(result=result)
    return Explanation(
        decision=decision,
        model_version_id=decision.model_version_id,
        explainer_version=result.explainer_version,
        method=result.method,
        base_value=result.base_value,
        output=result.output,
        checks_passed=result.checks.all_passed,
        payload=result.to_stored(context.content),
        context=context,
        computed_at=now,
    )


def _failed_checks(result: CoreExplanation) -> list[str]:
    return [name for name in ("additivity", "determinism", "faithfulness")
            if not getattr(result.checks, name).passed]


def explanation_compute_for(*, decision: Decision) -> CoreExplanation:
    """Explain a stored decision from its input snapshot with the model version that decided it."""
    spec = product_spec(product=decision.application.product)
    # Explaining a past decision is not serving: its version may since have been retired.
    model = scoring_model_for(model_version=decision.model_version, allow_unapproved=True)
    values = inputs_from_snapshot(spec=spec, snapshot=decision.inputs)
    return Explainer.for_model(model, spec).explain(values)


def explanation_record(*, decision_id: int) -> Explanation:
    """Compute and store the explanation of one decision, once. Safe to call any number of times."""
    existing = Explanation.objects.filter(decision_id=decision_id, explainer_version=EXPLAINER_VERSION).first()
    if existing is not None:
        ExplanationRequest.objects.filter(decision_id=decision_id, completed_at__isnull=True).update(
            completed_at=existing.computed_at)
        _evidence_ensure(existing.decision)
        return existing
    # A superseded decision is explained too: it stays in the record beside the one that replaced it.
    decision = Decision.all_objects.select_related("application__product", "model_version").get(pk=decision_id)
    result = explanation_compute_for(decision=decision)
    now = timezone.now()
    try:
        with transaction.atomic():
            explanation = _explanation_row(decision, result, now)
            explanation.save()
            ExplanationRequest.objects.filter(decision_id=decision_id).update(completed_at=now)
            audit_record(event_type="explanation.stored", subject=explanation, data={
                "decision": str(decision.public_id), "model_version": decision.model_version.version,
                "explainer_version": result.explainer_version, "checks_passed": result.checks.all_passed,
                "failed_checks": _failed_checks(result)})
            # Adverse action (issue 4): once this commits, state the reasons and send the notice of a denial.
            from audit.adverse import adverse_action_schedule
            adverse_action_schedule(decisions=[decision])
    except IntegrityError:
        # Another delivery of the same task got there first: keep its explanation.
        return Explanation.objects.get(decision_id=decision_id, explainer_version=EXPLAINER_VERSION)
    _evidence_ensure(decision)
    return explanation


def _evidence_ensure(decision: Decision) -> None:
    """After the explanation (so as not to delay it): measure the evidence of the application's language-model
    readings that have none yet (issue 6; too slow for the request path). A failure is logged and retried by
    the next delivery or ``explain_pending``; the explanation stands."""
    from lending.services import extraction_evidence_ensure

    try:
        extraction_evidence_ensure(application_id=decision.application_id)
    except Exception:
        logger.exception("measuring the language-model evidence of application %s failed", decision.application_id)


def explanation_latest(*, decision: Decision) -> Explanation | None:
    # The shared context comes in the same query: every reader expands the row with it (.document).
    return decision.explanations.select_related("context").order_by("-computed_at", "-id").first()


# --- batch re-explanation ------------------------------------------------------------------------------

def _unexplained(product: Product, since: datetime | None) -> Any:
    decisions = Decision.objects.filter(application__product=product)
    if since is not None:
        decisions = decisions.filter(decided_at__gte=since)
    done = Explanation.objects.filter(explainer_version=EXPLAINER_VERSION).values("decision_id")
    return decisions.exclude(pk__in=done)


def explanation_batch_progress(*, product: Product, since: datetime | None) -> tuple[int, int]:
    """(explained, total) decisions of a product (since a date) for the current explainer version."""
    decisions = Decision.objects.filter(application__product=product)
    if since is not None:
        decisions = decisions.filter(decided_at__gte=since)
    total = decisions.count()
    return total - _unexplained(product, since).count(), total


def explanation_batch_start(*, product: Product, since: datetime | None, requested_by: str,
                            chunk_size: int = BATCH_CHUNK_SIZE) -> ExplanationBatch:
    """Fan out every decision that has no explanation yet over Celery, in chunks. Running it again after
    an interruption picks up only what is still missing."""
    from audit.tasks import explanation_batch_chunk

    ids = list(_unexplained(product, since).order_by("id").values_list("id", flat=True))
    chunks = [ids[i:i + chunk_size] for i in range(0, len(ids), chunk_size)]
    with transaction.atomic():
        batch = ExplanationBatch.objects.create(
            product=product, since=since, explainer_version=EXPLAINER_VERSION, total=len(ids),
            chunks=len(chunks), requested_by=requested_by, created_at=timezone.now())
        audit_record(event_type="explanation.batch_started", subject=batch, data={
            "product": product.slug, "since": since.isoformat() if since else None, "decisions": len(ids),
            "chunks": len(chunks), "requested_by": requested_by})
    for chunk in chunks:
        explanation_batch_chunk.apply_async(args=[batch.pk, chunk])
    return batch


BATCH_PROGRESS_EVENTS = ("explanation.batch_started", "explanation.batch_chunk_stored", "explanation.batch_resumed")


def explanation_batch_last_progress(batch: ExplanationBatch) -> datetime:
    """When the batch last moved: started, stored a chunk, or was resumed (its audit events say)."""
    latest = AuditEvent.objects.filter(subject_type=ExplanationBatch._meta.label_lower, subject_id=str(batch.pk),
                                       event_type__in=BATCH_PROGRESS_EVENTS).aggregate(at=Max("event_time"))["at"]
    return max(batch.created_at, latest) if latest is not None else batch.created_at


def explanation_batches_resume(*, chunk_size: int = BATCH_CHUNK_SIZE, stalled_for: timedelta | None = None,
                               now: datetime | None = None) -> int:
    """Publish again, in chunks, the decisions that running batches still lack; returns how many.

    A chunk's message can be lost. Kombu's filesystem transport (the embedded default) removes a message
    from its folder when a worker takes it, so a chunk held by a worker killed mid-task is gone: a worker on
    that broker calls this when it starts (``audit.tasks``). Redis redelivers a task whose worker died, but
    not a message the worker had popped and not yet recorded as unacknowledged when it was killed (seen
    here: one chunk of twenty never ran again). So the beat's ``explanation-batch-sweep`` calls this with
    ``stalled_for``, for the batches that have not moved for that long, on any broker. Chunks still
    queued may be published twice; a chunk skips the decisions already explained, so nothing is duplicated.
    """
    from audit.tasks import explanation_batch_chunk

    published = 0
    now = now or timezone.now()
    for batch in ExplanationBatch.objects.filter(status=ExplanationBatch.Status.RUNNING).select_related("product"):
        if stalled_for is not None and now - explanation_batch_last_progress(batch) < stalled_for:
            continue
        ids = list(_unexplained(batch.product, batch.since).order_by("id").values_list("id", flat=True))
        if not ids:
            continue
        chunks = [ids[i:i + chunk_size] for i in range(0, len(ids), chunk_size)]
        with transaction.atomic():
            audit_record(event_type="explanation.batch_resumed", subject=batch,
                         data={"batch": batch.pk, "decisions": len(ids), "chunks": len(chunks),
                               "stalled_for_seconds": stalled_for.total_seconds() if stalled_for else None})
        for chunk in chunks:
            explanation_batch_chunk.apply_async(args=[batch.pk, chunk])
        published += len(ids)
    return published


def _store_rows(rows: Sequence[tuple[Any, ...]]) -> list[int]:
    """Insert explanations and return the decision ids of the ones this call stored: a row some other
    delivery already stored is skipped, never duplicated, and not claimed.

    A row: (decision_id, model_version_id, explainer_version, method, base_value, output, checks_passed,
    payload as JSON text, computed_at, context_id); every row of one call has the same computed_at."""
    if not rows:
        return []
    if connection.vendor == "postgresql":
        try:
            with transaction.atomic():
                _copy_rows(rows)
                return [r[0] for r in rows]
        except IntegrityError:
            pass  # a concurrent single-decision task stored one of these: fall back to skipping conflicts
    Explanation.objects.bulk_create(
        [Explanation(decision_id=r[0], model_version_id=r[1], explainer_version=r[2], method=r[3], base_value=r[4],
                     output=r[5], checks_passed=r[6], payload=json.loads(r[7]), computed_at=r[8], context_id=r[9])
         for r in rows],
        batch_size=500, ignore_conflicts=True)
    # Which rows went in: bulk_create with ignore_conflicts does not say, so ask for the rows that carry this
    # call's own computed_at (another delivery's rows carry their own time).
    ours = set(Explanation.objects.filter(decision_id__in=[r[0] for r in rows], explainer_version=rows[0][2],
                                          computed_at=rows[0][8]).order_by().values_list("decision_id", flat=True))
    return [r[0] for r in rows if r[0] in ours]


def _copy_rows(rows: Sequence[tuple[Any, ...]]) -> int:
    """PostgreSQL COPY: several times faster than INSERT for a chunk of explanations. The payload goes over
    as the JSON text ``Explanation.to_stored_json`` made, parsed once by the server into jsonb."""
    columns = ("decision_id", "model_version_id", "explainer_version", "method", "base_value", "output",
               "checks_passed", "payload", "computed_at", "context_id")
    table = Explanation._meta.db_table
    with connection.cursor() as cursor:
        raw = cursor.cursor
        # A payload is ~4 KB of JSON: PostgreSQL compresses it (TOAST). Its default, pglz, costs the server
        # about as much as everything else in the COPY together; lz4 (PostgreSQL 14+, when built with it)
        # about a tenth, and reads back faster. For this transaction only; readers need nothing.
        raw.execute("SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' "
                    "AND 'lz4' = ANY(enumvals)")
        if raw.fetchone() is not None:
            raw.execute("SET LOCAL default_toast_compression = 'lz4'")
        # COPY's text format written directly: tab-separated, backslash the only escape. Ids are ints, the
        # versions plain text, the floats their repr (read back exactly), the payload JSON text whose only
        # special characters are backslashes (json escapes every control character). Anything else goes
        # through psycopg's own row formatting.
        plain = re.compile(r"[A-Za-z0-9._:+-]*")  # text that needs no escaping in COPY's text format
        lines: list[str] | None = []
        for decision_id, version_id, explainer_version, method, base_value, output, passed, payload, at, \
                context_id in rows:
            if not (type(decision_id) is int and type(version_id) is int and type(context_id) is int
                    and type(base_value) is float
                    and type(output) is float and math.isfinite(base_value) and math.isfinite(output)
                    and type(payload) is str and type(passed) is bool and at.tzinfo is not None
                    and plain.fullmatch(explainer_version) and plain.fullmatch(method)
                    and "\t" not in payload and "\n" not in payload and "\r" not in payload):
                lines = None
                break
            lines.append(f"{decision_id}\t{version_id}\t{explainer_version}\t{method}\t{base_value!r}\t"
                         f"{output!r}\t{'t' if passed else 'f'}\t{payload.replace(chr(92), chr(92) * 2)}\t"
                         f"{at.isoformat()}\t{context_id}\n")
        # The raw cursor raises psycopg's own errors; wrapped, a duplicate is Django's IntegrityError, which
        # _store_rows answers by skipping the conflicting rows (unwrapped it failed the whole chunk).
        with connection.wrap_database_errors, \
                raw.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
            if lines is not None:
                copy.write("".join(lines).encode())
            else:
                for row in rows:
                    copy.write_row(row)
    return len(rows)


def explanation_batch_chunk_run(*, batch_id: int, decision_ids: Iterable[int]) -> int:
    """Explain and store one chunk of a batch. Idempotent: explained decisions are skipped.

    Reads only what the explainer needs (id, model version, outcome, input snapshot), explains the chunk
    with one ``explain_many`` per model version, and writes the explanations with one COPY."""
    # The chunk allocates hundreds of thousands of short-lived, acyclic objects; the cyclic garbage
    # collector would walk the worker's whole heap again and again for nothing. Off for the chunk only.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _batch_chunk(batch_id=batch_id, decision_ids=decision_ids)
    finally:
        if collecting:
            gc.enable()


def _explained_already(ids: Sequence[int]) -> set[int]:
    """Which of a chunk's decisions already have an explanation of this explainer version (a redelivered
    chunk, or single-decision tasks that came first).

    On PostgreSQL one index probe per id, spelled so that the planner cannot choose otherwise: as
    ``decision_id IN (2,000 ids)`` it chose a parallel scan of the whole table (its statistics lag behind a
    table that a batch fills in seconds), 20-25 ms a chunk and growing with the table, against 2 ms."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT u.id FROM unnest(%s::bigint[]) AS u(id) CROSS JOIN LATERAL ("
                "SELECT 1 FROM audit_explanation e "
                "WHERE e.decision_id = u.id AND e.explainer_version = %s LIMIT 1) AS explained",
                [list(ids), EXPLAINER_VERSION])
            return {int(row[0]) for row in cursor.fetchall()}
    # order_by(): not the model's default ordering (newest first), which would sort the ids for nothing.
    return set(Explanation.objects.filter(decision_id__in=ids, explainer_version=EXPLAINER_VERSION)
               .order_by().values_list("decision_id", flat=True))


def _id_in(ids: Sequence[int]) -> Q | RawSQL:
    """``id IN ids`` for a chunk's thousands of decisions; on PostgreSQL ``id = ANY(array)``, one parameter:
    with 2,000 placeholders psycopg (splitting the query text) and Django (preparing each) took a good part of
    the 7 us a decision that this and the lookup above saved the worker."""
    if connection.vendor == "postgresql":
        # Constant SQL: the ids go as one parameter.
        return RawSQL('"lending_decision"."id" = ANY(%s::bigint[])', [list(ids)],
                      output_field=BooleanField())
    return Q(pk__in=ids)


def _batch_chunk(*, batch_id: int, decision_ids: Iterable[int]) -> int:
    ids = [int(i) for i in decision_ids]
    done = _explained_already(ids)
    todo = [i for i in ids if i not in done]
    found = list(Decision.objects.filter(_id_in(todo)).order_by("id")
                 .values_list("id", "model_version_id", "outcome", "inputs"))
    now = timezone.now()
    rows: list[tuple[Any, ...]] = []
    by_version: dict[int, list[tuple[int, int, str, Any]]] = {}
    for item in found:
        by_version.setdefault(item[1], []).append(item)
    for version_id, group in by_version.items():
        version = ModelVersion.objects.select_related("product").get(pk=version_id)
        spec = product_spec(product=version.product)
        model = scoring_model_for(model_version=version, allow_unapproved=True)
        # inputs_from_snapshot for every row, with each (field, stored value) cleaned once per chunk: the
        # same clean_value of the same value gives the same result (terms, scores and categories repeat).
        cleaned: dict[tuple[str, type, Any], Any] = {}
        values = []
        for _, _, _, inputs in group:
            row: dict[str, Any] = {}
            for name, value in inputs.items():
                if value is None:
                    continue
                key = (name, type(value), value)
                try:
                    row[name] = cleaned[key]
                except KeyError:
                    row[name] = cleaned[key] = clean_value(spec.field(name), value)
                except TypeError:  # an unhashable value: clean it directly
                    row[name] = clean_value(spec.field(name), value)
            values.append(row)
        # Straight to the stored form (the same JSON as Explanation.to_stored_json of each explanation).
        explained = Explainer.for_model(model, spec).explain_many_stored(values)
        context_id = explanation_context_get(content=explained.context).pk
        for (decision_id, _, _, _), text, output, passed in zip(group, explained.texts, explained.outputs,
                                                                explained.checks_passed, strict=True):
            rows.append((decision_id, version_id, explained.explainer_version, explained.method,
                         explained.base_value, output, passed, text, now, context_id))
    # Adverse action (issue 4) looks at each decision's id and outcome, and acts on the denials only.
    decisions = [Decision(pk=decision_id, outcome=outcome) for decision_id, _, outcome, _ in found
                 if outcome == Decision.Outcome.DENIED]
    with transaction.atomic():
        stored_ids = _store_rows(rows)
        # Every decision of the chunk has its explanation now, whoever stored it: its request is complete.
        ExplanationRequest.objects.filter(decision_id__in=[r[0] for r in rows],
                                          completed_at__isnull=True).update(completed_at=now)
        # The event names what this delivery stored, nothing that another one did.
        ours = set(stored_ids)
        failed = [r[0] for r in rows if not r[6] and r[0] in ours]
        audit_record(event_type="explanation.batch_chunk_stored", subject=("audit.explanationbatch", str(batch_id)),
                     data={"batch": batch_id, "stored": len(stored_ids), "decision_ids": stored_ids,
                           "explainer_version": EXPLAINER_VERSION, "failed_checks_decision_ids": failed})
        # Adverse action (issue 4): once this commits, the denials of the chunk get their reasons and notices
        # (one task for the chunk; decisions already done are skipped).
        from audit.adverse import adverse_action_schedule
        adverse_action_schedule(decisions=decisions)
        remaining = ExplanationBatch.objects.filter(pk=batch_id, status=ExplanationBatch.Status.RUNNING)
        batch = remaining.first()
        if batch is not None:
            # Finished when no decision of the product (since the date) lacks an explanation of this version:
            # newest first, stopping at the first one found. A batch explains roughly in id order, so while it
            # runs the answer comes at once; only the last chunk walks the whole portfolio.
            scope = Decision.objects.filter(application__product_id=batch.product_id)
            if batch.since is not None:
                scope = scope.filter(decided_at__gte=batch.since)
            explained = Explanation.objects.filter(decision_id=OuterRef("pk"), explainer_version=EXPLAINER_VERSION)
            if not list(scope.filter(~Exists(explained)).order_by("-pk").values_list("pk", flat=True)[:1]):
                remaining.update(status=ExplanationBatch.Status.DONE, finished_at=now)
    return len(stored_ids)
