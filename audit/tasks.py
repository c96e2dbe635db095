"""Celery tasks: thin, idempotent, passing ids. Each fetches by id and calls a service."""

from __future__ import annotations

import logging
import smtplib

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_process_init, worker_ready
from django.db import InterfaceError, OperationalError

from audit import adverse, explanations

logger = logging.getLogger(__name__)

# Transient database trouble is retried with exponential backoff and jitter, a bounded number of times.
RETRYABLE = (OperationalError, InterfaceError)


@shared_task(autoretry_for=RETRYABLE, retry_backoff=2, retry_backoff_max=60, retry_jitter=True, max_retries=6,
             acks_late=True, reject_on_worker_lost=True)
def explanation_compute(decision_id: int) -> None:
    explanations.explanation_record(decision_id=decision_id)


@shared_task(autoretry_for=RETRYABLE, retry_backoff=2, retry_backoff_max=60, retry_jitter=True, max_retries=6,
             acks_late=True, reject_on_worker_lost=True, soft_time_limit=600, time_limit=660)
def explanation_batch_chunk(batch_id: int, decision_ids: list[int]) -> None:
    explanations.explanation_batch_chunk_run(batch_id=batch_id, decision_ids=decision_ids)


@shared_task(acks_late=True)
def explanation_outbox_sweep() -> None:
    explanations.explanation_outbox_sweep()


@shared_task(acks_late=True)
def explanation_batch_sweep() -> None:
    """Batches that have not moved for ``CANDOR_BATCH_STALL_SECONDS`` get what they lack published again."""
    from datetime import timedelta

    from django.conf import settings

    resumed = explanations.explanation_batches_resume(
        stalled_for=timedelta(seconds=settings.CANDOR_BATCH_STALL_SECONDS))
    if resumed:
        logger.info("resumed %s decisions of stalled explanation batches", resumed)


# --- language-model evidence (issue 6) -------------------------------------------------------------------
# Occlusion runs the language model once per word: slow, so bounded like the explanation of a batch chunk.

@shared_task(autoretry_for=RETRYABLE, retry_backoff=2, retry_backoff_max=60, retry_jitter=True, max_retries=6,
             acks_late=True, reject_on_worker_lost=True, soft_time_limit=300, time_limit=360)
def extraction_evidence_measure(application_id: int) -> None:
    """Measure the evidence of an application's readings that have none. Idempotent: measured ones are kept."""
    from lending.services import extraction_evidence_ensure

    extraction_evidence_ensure(application_id=application_id)


@shared_task(acks_late=True)
def extraction_evidence_sweep() -> None:
    """Readings still without evidence long after the decision (the task was lost) are published again."""
    explanations.extraction_evidence_sweep()


# --- adverse action (issue 4) -----------------------------------------------------------------------------
# Sending e-mail may fail transiently too (SMTP errors, timeouts): retried with the same bounded backoff.
DELIVERY_RETRYABLE = (*RETRYABLE, smtplib.SMTPException, ConnectionError, TimeoutError)


@shared_task(autoretry_for=DELIVERY_RETRYABLE, retry_backoff=2, retry_backoff_max=300, retry_jitter=True,
             max_retries=6, acks_late=True, reject_on_worker_lost=True, soft_time_limit=120, time_limit=180)
def adverse_action_prepare(decision_id: int) -> None:
    """State the reasons, render and store the notice, issue the customer link, send the e-mail. Idempotent."""
    adverse.adverse_action_prepare(decision_id=decision_id)


@shared_task(autoretry_for=DELIVERY_RETRYABLE, retry_backoff=2, retry_backoff_max=300, retry_jitter=True,
             max_retries=6, acks_late=True, reject_on_worker_lost=True, soft_time_limit=900, time_limit=960)
def adverse_action_prepare_many(decision_ids: list[int]) -> None:
    """The same for a chunk of a batch re-explanation; decisions already done are skipped quickly."""
    for decision_id in decision_ids:
        try:
            adverse.adverse_action_prepare(decision_id=decision_id)
        except (*DELIVERY_RETRYABLE, SoftTimeLimitExceeded):
            raise
        except Exception:  # one bad decision must not stop the chunk; it shows on the compliance page
            logger.exception("adverse action for decision %s failed", decision_id)


@shared_task(autoretry_for=DELIVERY_RETRYABLE, retry_backoff=2, retry_backoff_max=300, retry_jitter=True,
             max_retries=6, acks_late=True, reject_on_worker_lost=True, soft_time_limit=120, time_limit=180)
def customer_message_deliver(message_id: int) -> None:
    """E-mail a customer message (a denial notice no longer stands: approved). Idempotent: a sent or withdrawn
    message is left alone, and a redelivered task finds the claim or the sending recorded."""
    from audit.customer_messages import customer_message_deliver as deliver
    from audit.models import CustomerMessage

    message = CustomerMessage.objects.select_related("decision__application").filter(pk=message_id).first()
    if message is not None:
        deliver(message=message)


# --- a worker starting on a broker that cannot redeliver ---------------------------------------------------

@worker_ready.connect
def explanation_batches_recover(**_: object) -> None:
    """On the filesystem broker (the embedded default), a chunk taken by a worker that was killed is lost:
    publish what running batches still lack (``explanations.explanation_batches_resume``). Never fails the
    worker: a problem is logged, and ``manage.py explain_batch`` resumes by hand."""
    from django.conf import settings

    if not str(settings.CELERY_BROKER_URL).startswith("filesystem://"):
        return
    try:
        resumed = explanations.explanation_batches_resume()
        if resumed:
            logger.info("resumed %s decisions of interrupted explanation batches", resumed)
    except Exception:
        logger.exception("could not resume interrupted explanation batches")


# --- worker processes: warm before the first task ---------------------------------------------------------

@worker_process_init.connect
def explainer_warm(**_: object) -> None:
    """In each worker process, once: numba threads per process (``CANDOR_WORKER_THREADS``, default 1: the
    prefork processes are the parallelism), then a ready explainer for every approved model version (model
    loaded, explainer tables built, the numba kernels compiled or loaded from their cache) by explaining
    one reference applicant, so that the first decision's explanation does not pay for any of it.
    ``CANDOR_WORKER_WARM=0`` skips the warm-up. Never fails the worker: a problem is logged."""
    import os
    import time

    started = time.monotonic()
    try:
        import numba

        threads = int(os.environ.get("CANDOR_WORKER_THREADS", "1"))
        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    except Exception:
        logger.exception("could not set the worker's numba threads")
    if os.environ.get("CANDOR_WORKER_WARM", "1") == "0":
        return
    try:
        from django.db import close_old_connections

        from lending.models import ModelVersion
        from lending.selectors import product_spec, scoring_model_for
        from scoring.explain import Explainer, decode_features

        warmed = 0
        for version in ModelVersion.objects.filter(status=ModelVersion.Status.APPROVED).select_related("product"):
            spec = product_spec(product=version.product)
            model = scoring_model_for(model_version=version)
            explainer = Explainer.for_model(model, spec)
            rows = model.reference[:64]
            explainer.explain_many([decode_features(model.encoder, spec, row) for row in rows])
            explainer.explain(decode_features(model.encoder, spec, rows[0]))
            if spec.derived_fields:
                # The language model that measures the evidence of text readings: loaded once per process.
                from scoring.language import extract_application

                extract_application(spec, {f.derived_from[0]: "warm up" for f in spec.derived_fields})
            warmed += 1
        close_old_connections()
        logger.info("explainer warm: %d approved model version(s) in %.1f s", warmed, time.monotonic() - started)
    except Exception:
        logger.exception("explainer warm-up failed")


# --- exports (issue 5) -------------------------------------------------------------------------------------

@shared_task(autoretry_for=RETRYABLE, retry_backoff=2, retry_backoff_max=60, retry_jitter=True, max_retries=3,
             acks_late=True, reject_on_worker_lost=True, soft_time_limit=3600, time_limit=3660)
def export_run(job_id: int) -> None:
    """Build an export ZIP. Idempotent: a job already claimed or done is left alone."""
    from audit import exports

    exports.export_job_run(job_id=job_id)


@shared_task(acks_late=True)
def adverse_action_sweep() -> None:
    """Catch up denials whose reasons, notice or e-mail never happened, and customer messages whose e-mail
    never went (e.g. the broker was down when the follow-up was published). Idempotent: each step checks
    whether it is already done."""
    from audit.adverse import adverse_action_publish, decisions_needing_adverse_action
    from audit.customer_messages import customer_message_publish, customer_messages_due

    pending = decisions_needing_adverse_action()
    if pending:
        adverse_action_publish(decision_ids=pending)
    messages = [item.message.pk for item in customer_messages_due()
                if item.message.channel == item.message.Channel.EMAIL]
    if messages:
        customer_message_publish(message_ids=messages)
