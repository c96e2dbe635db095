"""One chunk of a batch re-explanation (audit.explanations.explanation_batch_chunk_run), on the database the
suite runs on: what it skips, what it stores, and what its audit event says.

The end-to-end tests run chunks through real workers; these pin the chunk's own contract, including on
PostgreSQL the array-parameter queries that read the chunk's decisions and the ones already explained."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from unittest import mock

from django.contrib.auth.models import User
from django.utils import timezone

from audit import adverse
from audit.explanations import (
    _store_rows,
    explanation_batch_chunk_run,
    explanation_batch_last_progress,
    explanation_batches_resume,
)
from audit.models import AuditEvent, Explanation, ExplanationBatch
from audit.services import audit_record
from lending.models import Decision, ModelVersion
from scoring.explain import EXPLAINER_VERSION
from tests.audit.test_adverse import APPROVED, DENIED, decide


def _batch(version: ModelVersion, total: int) -> ExplanationBatch:
    return ExplanationBatch.objects.create(product=version.product, explainer_version=EXPLAINER_VERSION,
                                           total=total, requested_by="test", created_at=timezone.now())


def _chunk_events(batch: ExplanationBatch) -> list[dict[str, Any]]:
    return [e.data for e in AuditEvent.objects.filter(event_type="explanation.batch_chunk_stored",
                                                      subject_id=str(batch.pk)).order_by("id")]


def test_a_chunk_explains_what_is_unexplained_and_a_second_delivery_stores_nothing(
        approved_demo: ModelVersion, officer: User) -> None:
    first = decide(approved_demo, officer, explain=True, expect="denied", **DENIED)  # a single-decision task came first
    rest = [decide(approved_demo, officer, explain=False, expect="approved", **APPROVED),
            decide(approved_demo, officer, explain=False, expect="denied", **DENIED)]
    single = Explanation.objects.get(decision=first)
    batch = _batch(approved_demo, 3)
    ids = [first.pk, *(d.pk for d in rest)]

    with mock.patch.object(adverse, "adverse_action_publish", autospec=True):
        assert explanation_batch_chunk_run(batch_id=batch.pk, decision_ids=ids) == 2
        assert explanation_batch_chunk_run(batch_id=batch.pk, decision_ids=ids) == 0  # redelivered

    assert sorted(Explanation.objects.values_list("decision_id", flat=True)) == sorted(ids)
    assert Explanation.objects.get(decision=first) == single  # the earlier explanation is left as it was
    events = _chunk_events(batch)
    assert [e["stored"] for e in events] == [2, 0]
    assert events[0]["decision_ids"] == [d.pk for d in rest] and events[1]["decision_ids"] == []
    for decision in rest:
        stored = Explanation.objects.get(decision=decision)
        assert stored.model_version_id == decision.model_version_id
        assert stored.document["decision"] == decision.outcome
    batch.refresh_from_db()
    assert batch.status == ExplanationBatch.Status.DONE


def test_a_chunk_leaves_out_a_decision_that_was_superseded_meanwhile(
        approved_demo: ModelVersion, officer: User) -> None:
    kept, replaced = (decide(approved_demo, officer, explain=False, expect="approved", **APPROVED) for _ in range(2))
    Decision.all_objects.filter(pk=replaced.pk).update(superseded_at=timezone.now())
    batch = _batch(approved_demo, 2)

    with mock.patch.object(adverse, "adverse_action_publish", autospec=True):
        assert explanation_batch_chunk_run(batch_id=batch.pk, decision_ids=[replaced.pk, kept.pk]) == 1

    assert list(Explanation.objects.values_list("decision_id", flat=True)) == [kept.pk]
    assert _chunk_events(batch)[0]["decision_ids"] == [kept.pk]


def test_a_chunk_of_unknown_ids_stores_nothing_and_says_so(approved_demo: ModelVersion) -> None:
    batch = _batch(approved_demo, 0)
    assert explanation_batch_chunk_run(batch_id=batch.pk, decision_ids=[10**9, 10**9 + 1]) == 0
    assert not Explanation.objects.exists()
    assert _chunk_events(batch)[0]["stored"] == 0


def test_storing_claims_only_the_rows_it_stored_when_another_delivery_came_first(
        approved_demo: ModelVersion, officer: User) -> None:
    """The race the explained-yet lookup cannot close: another delivery stores one of the chunk's
    explanations between the lookup and the chunk's own write. The write skips it (on PostgreSQL the COPY
    fails on the unique constraint and the chunk falls back to skipping conflicts) and names only the rows it
    stored, so that the chunk's audit event never claims another delivery's explanation."""
    decisions = [decide(approved_demo, officer, explain=False, expect="approved", **APPROVED) for _ in range(2)]
    batch = _batch(approved_demo, 2)
    with mock.patch.object(adverse, "adverse_action_publish", autospec=True):
        explanation_batch_chunk_run(batch_id=batch.pk, decision_ids=[d.pk for d in decisions])
    kept, again = (Explanation.objects.get(decision=d) for d in decisions)
    rows = [(e.decision_id, e.model_version_id, e.explainer_version, e.method, e.base_value, e.output,
             e.checks_passed, json.dumps(e.payload), e.computed_at + timedelta(seconds=1), e.context_id)
            for e in (kept, again)]
    Explanation.objects.filter(pk=again.pk).delete()  # as if only the other delivery's row were there

    assert _store_rows(rows) == [again.decision_id]

    assert Explanation.objects.get(decision_id=kept.decision_id) == kept  # untouched, not duplicated
    stored = Explanation.objects.get(decision_id=again.decision_id)
    assert stored.computed_at == rows[1][8] and stored.payload == again.payload


def test_the_batch_sweep_leaves_alone_a_batch_that_moved_within_the_stall_window(
        approved_demo: ModelVersion, officer: User) -> None:
    # (A stalled batch being published again, through a real broker and worker, is the end-to-end test
    # tests/e2e/test_explanation_worker.py::test_a_batch_whose_chunk_message_is_lost_is_finished_by_the_sweep.)
    decide(approved_demo, officer, explain=False, expect="approved", **APPROVED)
    batch = _batch(approved_demo, 1)
    ExplanationBatch.objects.filter(pk=batch.pk).update(created_at=timezone.now() - timedelta(hours=1))
    batch.refresh_from_db()
    assert explanation_batch_last_progress(batch) == batch.created_at
    audit_record(event_type="explanation.batch_chunk_stored", subject=batch, data={"batch": batch.pk, "stored": 0})
    moved = AuditEvent.objects.get(event_type="explanation.batch_chunk_stored", subject_id=str(batch.pk)).event_time
    assert explanation_batch_last_progress(batch) == moved
    # Another batch's events and other event types do not count as this batch moving.
    audit_record(event_type="explanation.batch_chunk_stored", subject=("audit.explanationbatch", str(batch.pk + 1)),
                 data={})
    audit_record(event_type="explanation.computed", subject=batch, data={})
    assert explanation_batch_last_progress(batch) == moved

    assert explanation_batches_resume(stalled_for=timedelta(minutes=5), now=moved + timedelta(minutes=4)) == 0
    assert not AuditEvent.objects.filter(event_type="explanation.batch_resumed").exists()
