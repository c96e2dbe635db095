"""End to end: decisions made through the API are explained by a real Celery worker on a real broker
(Redis with PostgreSQL, the filesystem broker with SQLite), nothing is lost when the broker is down,
and a worker killed mid-batch leaves exactly one explanation per decision."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent, Explanation, ExplanationBatch, ExplanationRequest
from lending.models import Application, Decision, ModelVersion
from lending.selectors import product_spec, scoring_model_for
from lending.services import inputs_sha256
from scoring.datasets import load_dataset
from scoring.policy import policy_decide
from scoring.spec import json_safe, validate_fields
from tests.conftest import demo_fields
from tests.e2e.workers import RedisServer, Worker, running, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

# The batch sweep every 2 s, for batches that have not moved for 8 s (deployed: 60 s and 300 s).
STALL_SWEEP = {"CANDOR_BATCH_SWEEP_SECONDS": "2", "CANDOR_BATCH_STALL_SECONDS": "8"}


def submit(client: Client, **overrides: Any) -> dict[str, Any]:
    response = client.post(
        "/api/v1/applications",
        data=json.dumps({"product": "demo", "fields": demo_fields(**overrides)}),
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    return response.json()  # type: ignore[no-any-return]


def test_decisions_made_through_the_api_are_explained_by_a_real_worker(
    transactional_db: None,
    approved_demo: ModelVersion,
    officer: User,
    client_for: Callable[[User], Client],
    broker: tuple[str, dict[str, str]],
    tmp_path: Path,
) -> None:
    client = client_for(officer)
    url, env = broker
    with running(Worker(url, tmp_path / "worker.log", env)):
        made = [
            submit(client, credit_score=score, revolving_utilization=util)
            for score, util in ((780, 10.0), (640, 85.0), (560, 97.5))
        ]
        wait_for(lambda: Explanation.objects.count() == 3, timeout=60, what="three explanations")

    for decision in made:
        body = client.get(decision["links"]["self"]).json()
        explanation = body["explanation"]
        assert explanation is not None
        assert explanation["reference"] == "cutoff"
        assert {"additivity", "determinism", "faithfulness"} <= set(explanation["checks"])
        assert explanation["checks"]["additivity"]["passed"] is True
        total = explanation["base_value"] + sum(explanation["attributions"].values())
        assert abs(total - explanation["output"]) <= 1e-6
        # The explanation's output is the decision's own score, on the log-odds scale.
        from math import exp

        assert abs(1 / (1 + exp(-explanation["output"])) - body["probability_of_default"]) < 1e-9
        if body["outcome"] != "approved":
            assert explanation["recourse"] is not None
    assert ExplanationRequest.objects.filter(completed_at__isnull=True).count() == 0
    assert AuditEvent.objects.filter(event_type="explanation.stored").count() == 3


def test_with_the_broker_down_decisions_succeed_and_are_explained_once_it_is_back(
    transactional_db: None,
    approved_demo: ModelVersion,
    officer: User,
    client_for: Callable[[User], Client],
    own_redis: RedisServer,
    tmp_path: Path,
) -> None:
    client = client_for(officer)
    own_redis.stop()

    made = [submit(client, credit_score=600 + i, annual_income=str(40000 + 100 * i)) for i in range(100)]

    assert len({m["id"] for m in made}) == 100
    assert ExplanationRequest.objects.filter(published_at__isnull=True).count() == 100
    own_redis.start()
    # The worker's periodic sweep (celery beat) publishes the outbox by itself: no manual step.
    worker = Worker(own_redis.url, tmp_path / "worker.log", {"CANDOR_OUTBOX_SWEEP_SECONDS": "1"}, beat=True)
    with running(worker):
        wait_for(
            lambda: Explanation.objects.count() == 100,
            timeout=120,
            what="100 explanations after the outage",
            interval=0.5,
        )
    assert Explanation.objects.values("decision").distinct().count() == 100


def bulk_decisions(version: ModelVersion, user: User, n: int, seed: int) -> None:
    """n real decisions (scored by the model, decided by the policy) written in bulk, for batch tests."""
    product = version.product
    spec = product_spec(product=product)
    model = scoring_model_for(model_version=version)
    # The demo generator's rows with the confirmed text-derived values, as the demo model is trained on.
    frame = load_dataset(spec, n=n, seed=seed).frame
    now = timezone.now()
    applications, decisions = [], []
    for row in frame.to_dict(orient="records"):
        values = validate_fields(spec, {k: v for k, v in row.items() if v is not None and v == v})
        inputs = {f.name: values[f.name] for f in spec.model_inputs if f.name in values}
        probability = model.score(inputs)
        verdict = policy_decide(spec.policy, probability, inputs)
        application = Application(
            product=product, values=json_safe(inputs), submitted_by=user, submitted_at=now, completed_at=now
        )
        applications.append(application)
        decisions.append(
            Decision(
                application=application,
                model_version=version,
                outcome=verdict.outcome,
                probability_of_default=probability,
                inputs=json_safe(inputs),
                inputs_sha256=inputs_sha256(inputs),
                cutoff=spec.policy.cutoff,
                refer_band=spec.policy.refer_band,
                decided_at=now,
                knockout=verdict.knockout.name if verdict.knockout else "",
                knockout_reason=verdict.knockout.reason if verdict.knockout else "",
            )
        )
    Application.objects.bulk_create(applications, batch_size=2000)
    for decision in decisions:
        decision.application_id = decision.application.pk
    Decision.objects.bulk_create(decisions, batch_size=2000)


def test_a_worker_killed_mid_batch_leaves_exactly_one_explanation_per_decision(
    transactional_db: None,
    approved_demo: ModelVersion,
    officer: User,
    broker: tuple[str, dict[str, str]],
    tmp_path: Path,
) -> None:
    bulk_decisions(approved_demo, officer, 10_000, seed=99)
    url, env = broker
    first = Worker(url, tmp_path / "worker-1.log", env)
    first.start()
    try:
        call_command("explain_batch", "--product", "demo", "--chunk-size", "500", "--no-wait")
        wait_for(lambda: Explanation.objects.count() >= 2_000, timeout=120, what="the batch to be under way")
    finally:
        first.kill()
    killed_at = Explanation.objects.count()
    assert killed_at < 10_000, "the batch finished before the kill; the test proves nothing"

    # With the beat's batch sweep, as deployed: Redis redelivers a killed worker's tasks, but a message the
    # worker had popped and not yet recorded is lost (seen here once in many runs); the sweep publishes what
    # a stalled batch lacks.
    with running(Worker(url, tmp_path / "worker-2.log", {**env, **STALL_SWEEP}, beat=True)):
        wait_for(lambda: Explanation.objects.count() >= 10_000, timeout=300, what="the batch to finish", interval=0.5)
        # Nothing more arrives later: redelivered chunks find their work already done.
        call_command("explain_batch", "--product", "demo", "--no-wait")

    assert Explanation.objects.count() == 10_000
    assert Explanation.objects.values("decision").distinct().count() == 10_000
    # What the batch stored (the compact stored form and its shared context) reads back as exactly the
    # explanation the single-decision path computes for the same decision.
    from audit.explanations import explanation_compute_for

    assert Explanation.objects.values("context").distinct().count() == 1
    for stored in list(Explanation.objects.select_related("context").order_by("decision_id"))[::499]:
        assert stored.payload["format"] == 2 and "reference_values" not in stored.payload
        decision = Decision.objects.select_related("application__product", "model_version").get(pk=stored.decision_id)
        assert stored.document == json.loads(explanation_compute_for(decision=decision).to_json())
    print(
        f"killed with {killed_at} of 10000 stored; after restart: {Explanation.objects.count()}, "
        f"distinct decisions {Explanation.objects.values('decision').distinct().count()}"
    )


def _drop_one_queued_message(url: str, env: dict[str, str]) -> None:
    """Lose one queued chunk message in the broker itself, as a worker killed between taking it and
    recording it would: the oldest on Redis's list, one message file of the filesystem broker."""
    if url.startswith("filesystem://"):
        files = sorted((Path(env["CELERY_FILESYSTEM_DIR"]) / "in").glob("*.msg"))
        assert files, "no message queued"
        files[0].unlink()
        return
    import redis

    client = redis.Redis.from_url(url)
    assert client.rpop("celery") is not None, "no message queued"


def test_a_batch_whose_chunk_message_is_lost_is_finished_by_the_sweep(
    transactional_db: None,
    approved_demo: ModelVersion,
    officer: User,
    broker: tuple[str, dict[str, str]],
    tmp_path: Path,
) -> None:
    bulk_decisions(approved_demo, officer, 2_000, seed=7)
    url, env = broker
    # No worker yet: the chunks wait in the broker, and one of them is lost there.
    call_command("explain_batch", "--product", "demo", "--chunk-size", "500", "--no-wait")
    _drop_one_queued_message(url, env)

    with running(Worker(url, tmp_path / "worker.log", {**env, **STALL_SWEEP}, beat=True)):
        wait_for(lambda: Explanation.objects.count() >= 2_000, timeout=240, what="the batch to finish", interval=0.5)
        wait_for(lambda: ExplanationBatch.objects.filter(status=ExplanationBatch.Status.DONE).exists(), timeout=60,
                 what="the batch to be marked done")

    assert Explanation.objects.count() == 2_000
    assert Explanation.objects.values("decision").distinct().count() == 2_000
    resumed = [e.data for e in AuditEvent.objects.filter(event_type="explanation.batch_resumed").order_by("id")]
    if url.startswith("filesystem://"):
        # That broker cannot redeliver, so a worker that starts publishes at once what a batch lacks.
        assert resumed and resumed[0]["stalled_for_seconds"] is None
    else:
        # Redis never saw the lost message again: the sweep published the 500 decisions once the batch stalled.
        assert resumed and resumed[0]["stalled_for_seconds"] == 8.0 and resumed[0]["decisions"] == 500
