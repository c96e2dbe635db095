"""Writes. Each state change and its audit event commit in one transaction."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from audit.explanations import explanation_request_create
from audit.services import audit_record
from lending.errors import ExtractionReviewInvalid, InvalidApplication, LanguageModelUnavailable
from lending.models import (
    Application,
    Decision,
    Extraction,
    ManualReviewSwitch,
    ModelVersion,
    MonitoringData,
    OfficerAction,
    Product,
)
from lending.selectors import (
    inputs_from_snapshot,
    manual_review_enabled,
    model_version_serving,
    product_spec,
    scoring_model_for,
)
from scoring.language import Extraction as CoreExtraction
from scoring.language import LanguageConfigError, LanguageModelError, extract_application, review_threshold
from scoring.policy import REFERRED, policy_decide
from scoring.spec import ApplicationInvalid, ProductSpec, clean_value, json_safe, validate_fields


def product_register(*, spec: ProductSpec, spec_text: str, actor: AbstractBaseUser | None = None) -> Product:
    """Register a product from its spec, or record that its spec changed."""
    with transaction.atomic():
        product = Product.objects.select_for_update().filter(slug=spec.slug).first()
        now = timezone.now()
        if product is None:
            product = Product.objects.create(slug=spec.slug, name=spec.name, credit_type=spec.credit_type,
                                             spec_hash=spec.spec_hash, spec_text=spec_text, registered_at=now)
            audit_record(event_type="product.registered", subject=product, actor=actor,
                         data={"slug": spec.slug, "spec_hash": spec.spec_hash})
        elif product.spec_hash != spec.spec_hash:
            old_hash = product.spec_hash
            product.name, product.credit_type = spec.name, spec.credit_type
            product.spec_hash, product.spec_text, product.registered_at = spec.spec_hash, spec_text, now
            product.save()
            audit_record(event_type="product.spec_changed", subject=product, actor=actor,
                         data={"old_spec_hash": old_hash, "new_spec_hash": spec.spec_hash})
    return product


def model_version_register(*, product: Product, path: Path, manifest: Mapping[str, Any],
                           actor: AbstractBaseUser | None = None) -> ModelVersion:
    """Register a trained model directory. It cannot serve until approved."""
    try:
        stored_path = str(path.resolve().relative_to(settings.CANDOR_DATA_DIR))
    except ValueError:
        stored_path = str(path.resolve())
    with transaction.atomic():
        version = ModelVersion.objects.create(
            product=product,
            version=manifest["version"],
            path=stored_path,
            content_hash=manifest["content_hash"],
            spec_hash=manifest["spec_hash"],
            training_data_sha256=manifest["training_data"]["sha256"],
            manifest=dict(manifest),
            metrics=dict(manifest.get("metrics", {})),
            trained_at=datetime.fromisoformat(manifest["trained_at"]),
            registered_at=timezone.now(),
        )
        audit_record(event_type="model.registered", subject=version, actor=actor,
                     data={"product": product.slug, "version": version.version,
                           "content_hash": version.content_hash, "metrics": version.metrics})
    return version


class ApprovalRefused(Exception):
    pass


def model_version_approve(*, model_version: ModelVersion, approved_by: AbstractBaseUser) -> ModelVersion:
    """Approve a version for serving (SR 11-7 / SR 26-2: validated before use), audited."""
    with transaction.atomic():
        version = ModelVersion.objects.select_for_update().select_related("product").get(pk=model_version.pk)
        if version.status == ModelVersion.Status.APPROVED:
            return version
        if version.status == ModelVersion.Status.RETIRED:
            raise ApprovalRefused(f"model version {version.version} is retired and cannot be approved")
        if version.spec_hash != version.product.spec_hash:
            raise ApprovalRefused(f"model version {version.version} was trained on a different spec of "
                                  f"{version.product.slug!r} ({version.spec_hash[:12]}, current "
                                  f"{version.product.spec_hash[:12]}); retrain it")
        # Load it once: the content hash is checked, so a tampered artifact cannot be approved.
        scoring_model_for(model_version=version, allow_unapproved=True)
        version.status = ModelVersion.Status.APPROVED
        version.approved_by = approved_by  # type: ignore[assignment]
        version.approved_at = timezone.now()
        version.save(update_fields=["status", "approved_by", "approved_at"])
        audit_record(event_type="model.approved", subject=version, actor=approved_by,
                     data={"product": version.product.slug, "version": version.version,
                           "content_hash": version.content_hash, "old_status": "trained",
                           "new_status": "approved"})
    return version


def _split_values(spec: ProductSpec, cleaned: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    parts: dict[str, dict[str, Any]] = {"model_input": {}, "monitoring_only": {}, "identity": {}, "context": {}}
    for field_spec in spec.fields:
        if field_spec.name in cleaned:
            parts[field_spec.role][field_spec.name] = cleaned[field_spec.name]
    return parts


def inputs_sha256(inputs: Mapping[str, Any]) -> str:
    canonical = json.dumps(json_safe(inputs), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


# --- the language model in the decision path (issue 6) --------------------------------------------------

def _readings_needed(spec: ProductSpec, cleaned: Mapping[str, Any]) -> dict[str, str]:
    """Text-derived fields to read: {derived field: its text}. A field the request supplied is not read;
    a blank text leaves its field missing (the model scores missing values; nothing to review)."""
    needed: dict[str, str] = {}
    for field_spec in spec.derived_fields:
        if field_spec.name in cleaned:
            continue
        text = cleaned.get(field_spec.derived_from[0])
        if isinstance(text, str) and text.strip():
            needed[field_spec.name] = text
    return needed


def _extract(spec: ProductSpec, cleaned: Mapping[str, Any]) -> dict[str, CoreExtraction]:
    """Read the needed text-derived fields WITHOUT occlusion evidence: the words behind each reading are
    measured off the request path (``extraction_evidence_ensure``, in the explanation worker)."""
    needed = _readings_needed(spec, cleaned)
    if not needed:
        return {}
    texts = {spec.field(name).derived_from[0]: text for name, text in needed.items()}
    try:
        # The threshold is read per application, so a change of configuration applies without a restart;
        # the extractor for each threshold is still built once per process.
        readings = extract_application(spec, texts, evidence=False, threshold=review_threshold())
    except (LanguageModelError, LanguageConfigError) as exc:
        # No reading, no decision: scoring without a field the product reads would be a different model.
        raise LanguageModelUnavailable(f"the language model could not read the application's text: {exc}") from exc
    return {name: readings[name] for name in needed}


def _review_cause(spec: ProductSpec, extraction: CoreExtraction | Extraction) -> str:
    field_spec = spec.field(extraction.field)
    text_label = spec.field(field_spec.derived_from[0]).label
    value = field_spec.category_labels.get(extraction.value, extraction.value)
    return (f"the language model read {text_label!r} as {value!r} ({field_spec.label}) with confidence "
            f"{extraction.confidence:.2f}, below the review threshold {extraction.threshold:.2f}: an officer must "
            f"confirm or correct it")


def _referral_cause(*, manual_review: bool, review_causes: Sequence[str]) -> str:
    causes = (["manual review of every application is switched on"] if manual_review else []) + list(review_causes)
    return "; ".join(causes)


def _extraction_rows(application: Application, readings: Mapping[str, CoreExtraction],
                     now: datetime) -> list[Extraction]:
    rows = []
    for name, reading in readings.items():
        rows.append(Extraction.objects.create(
            application=application, field=name, text_field=reading.text_field, text_sha256=reading.text_sha256,
            value=reading.value, confidence=reading.confidence, threshold=reading.threshold,
            needs_review=reading.needs_review,
            candidates=[[value, round(score, 6)] for value, score in reading.alternatives],
            provider=reading.provider, provider_version=reading.model_version, created_at=now))
    return rows


def _extraction_event(extraction: Extraction, actor: AbstractBaseUser | None) -> None:
    audit_record(event_type="extraction.recorded", subject=extraction, actor=actor, data={
        "application": str(extraction.application.public_id), "field": extraction.field,
        "text_field": extraction.text_field, "text_sha256": extraction.text_sha256, "value": extraction.value,
        "confidence": extraction.confidence, "threshold": extraction.threshold,
        "needs_review": extraction.needs_review, "candidates": extraction.candidates,
        "provider": extraction.provider, "provider_version": extraction.provider_version})


def application_submit(*, product: Product, fields: Any, submitted_by: AbstractBaseUser) -> Decision:
    """Validate, read the free text, score and decide an application; store it, what the language model
    read, its decision and the audit events together.

    Invalid input raises InvalidApplication naming each bad field, before anything is written. A
    text-derived field the request did not supply is read from its text by the language model (loaded once
    per process); a reading below the review threshold sends the application to an officer whatever the
    score, with the cause stated on the decision.
    """
    spec = product_spec(product=product)
    try:
        cleaned = validate_fields(spec, fields)
    except ApplicationInvalid as exc:
        raise InvalidApplication("the application has invalid fields", fields=exc.errors) from exc
    model_version = model_version_serving(product=product)
    model = scoring_model_for(model_version=model_version)
    readings = _extract(spec, cleaned)
    cleaned = {**cleaned, **{name: reading.value for name, reading in readings.items()}}
    parts = _split_values(spec, cleaned)
    inputs = parts["model_input"]
    probability = float(model.score(inputs))
    verdict = policy_decide(spec.policy, probability, inputs)
    review_causes = [_review_cause(spec, reading) for reading in readings.values() if reading.needs_review]
    now = timezone.now()
    snapshot = json_safe(inputs)
    with transaction.atomic(durable=True):
        # EU AI Act Art. 14: while the switch is on, a person decides every application. A reading the
        # language model is unsure of goes to a person too (issue 6).
        manual_review = manual_review_enabled()
        outcome = REFERRED if manual_review or review_causes else verdict.outcome
        application = Application.objects.create(
            product=product,
            values=json_safe({**inputs, **parts["context"]}),
            identity=json_safe(parts["identity"]),
            submitted_by=submitted_by,
            submitted_at=now,
            completed_at=now,
        )
        if parts["monitoring_only"]:
            MonitoringData.objects.create(application=application, values=json_safe(parts["monitoring_only"]))
        decision = Decision.objects.create(
            application=application,
            model_version=model_version,
            outcome=outcome,
            probability_of_default=probability,
            inputs=snapshot,
            inputs_sha256=inputs_sha256(inputs),
            cutoff=spec.policy.cutoff,
            refer_band=spec.policy.refer_band,
            knockout=verdict.knockout.name if verdict.knockout else "",
            knockout_reason=verdict.knockout.reason if verdict.knockout else "",
            manual_review=manual_review,
            referral_cause=_referral_cause(manual_review=manual_review, review_causes=review_causes),
            decided_at=now,
        )
        audit_record(event_type="application.submitted", subject=application, actor=submitted_by,
                     data={"product": product.slug, "spec_hash": spec.spec_hash})
        for extraction in _extraction_rows(application, readings, now):
            _extraction_event(extraction, submitted_by)
        # EU AI Act Art. 12 logging: input hash, model version, output.
        audit_record(event_type="decision.made", subject=decision, actor=submitted_by,
                     data={"application": str(application.public_id), "outcome": decision.outcome,
                           "probability_of_default": probability, "model_version": model_version.version,
                           "model_content_hash": model_version.content_hash,
                           "inputs_sha256": decision.inputs_sha256, "knockout": decision.knockout,
                           "policy_outcome": verdict.outcome, "manual_review": manual_review,
                           "referral_cause": decision.referral_cause,
                           "extracted": {name: reading.value for name, reading in readings.items()}})
        explanation_request_create(decision=decision)
    return decision


def _rescore_version(decision: Decision) -> tuple[ModelVersion, str]:
    """The model version a correction re-scores with: the one that made the decision, so that the corrected
    value is the only change; if it is no longer approved, the product's serving version (stated)."""
    if decision.model_version.is_approved:
        return decision.model_version, "the model version that made the superseded decision"
    serving = model_version_serving(product=decision.application.product)
    return serving, (f"the serving model version: {decision.model_version.version} is "
                     f"{decision.model_version.status}")


def _check_review_value(spec: ProductSpec, extraction: Extraction, value: Any) -> str:
    field_spec = spec.field(extraction.field)
    try:
        cleaned = clean_value(field_spec, value.strip() if isinstance(value, str) else value)
    except ValueError as exc:
        raise ExtractionReviewInvalid(f"{field_spec.label}: {exc}", fields={extraction.field: [str(exc)]}) from None
    return str(cleaned)


def extraction_review(*, extraction: Extraction, officer: AbstractBaseUser, value: Any,
                      comment: str = "") -> Decision:
    """An officer confirms or corrects what the language model read; returns the application's current decision.

    * The same value as the reading: confirmed (audited); the decision stands, since its inputs do not change.
    * Another value: corrected, and the application is re-scored with it (``_rescore_version``) into a NEW
      decision; the old decision is kept, marked superseded. The correction, the re-score and a new
      explanation request commit in one transaction, each audited.
    A value outside the field's categories raises ExtractionReviewInvalid naming the field; nothing is stored.
    """
    application = extraction.application
    spec = product_spec(product=application.product)
    chosen = _check_review_value(spec, extraction, value)
    now = timezone.now()
    with transaction.atomic(durable=True):
        locked = Extraction.objects.select_for_update().get(pk=extraction.pk)
        current = (Decision.objects.select_for_update().select_related("application__product", "model_version")
                   .get(application=application))
        old_value = locked.used_value
        if chosen == old_value:
            if locked.status != Extraction.Status.EXTRACTED:
                return current  # already reviewed with this value: nothing changes
            _review(locked, Extraction.Status.CONFIRMED, chosen, officer, now)
            audit_record(event_type="extraction.confirmed", subject=locked, actor=officer, data={
                "application": str(application.public_id), "field": locked.field, "value": chosen,
                "confidence": locked.confidence, "decision": str(current.public_id), "comment": comment.strip()})
            return current
        _review(locked, Extraction.Status.CORRECTED, chosen, officer, now)
        audit_record(event_type="extraction.corrected", subject=locked, actor=officer, data={
            "application": str(application.public_id), "field": locked.field, "model_value": locked.value,
            "old_value": old_value, "new_value": chosen, "confidence": locked.confidence,
            "decision": str(current.public_id), "comment": comment.strip()})
        return _rescore(spec, current, {locked.field: chosen}, officer, now,
                        cause=f"an officer corrected {locked.field} from {old_value!r} to {chosen!r}")


def _review(extraction: Extraction, status: str, value: str, officer: AbstractBaseUser, now: datetime) -> None:
    extraction.status, extraction.confirmed_value = status, value
    extraction.reviewed_by, extraction.reviewed_at = officer, now  # type: ignore[assignment]
    extraction.save(update_fields=["status", "confirmed_value", "reviewed_by", "reviewed_at"])


def _rescore(spec: ProductSpec, old: Decision, changes: Mapping[str, Any], officer: AbstractBaseUser,
             now: datetime, *, cause: str) -> Decision:
    """Score the old decision's inputs with ``changes`` into a new current decision (inside the caller's
    transaction); the old one is marked superseded, never changed otherwise."""
    version, version_rule = _rescore_version(old)
    model = scoring_model_for(model_version=version)
    values = {**inputs_from_snapshot(spec=spec, snapshot=old.inputs), **changes}
    inputs = {name: value for name, value in values.items() if spec.field(name).is_model_input}
    probability = float(model.score(inputs))
    verdict = policy_decide(spec.policy, probability, inputs)
    manual_review = manual_review_enabled()
    waiting = [_review_cause(spec, e) for e in Extraction.objects.filter(application_id=old.application_id)
               if e.awaiting_review]
    outcome = REFERRED if manual_review or waiting else verdict.outcome
    # The old decision leaves the "current" set before the new one enters it (one current per application).
    Decision.all_objects.filter(pk=old.pk).update(superseded_at=now)
    decision = Decision.objects.create(
        application=old.application, model_version=version, outcome=outcome, probability_of_default=probability,
        inputs=json_safe(inputs), inputs_sha256=inputs_sha256(inputs), cutoff=spec.policy.cutoff,
        refer_band=spec.policy.refer_band, knockout=verdict.knockout.name if verdict.knockout else "",
        knockout_reason=verdict.knockout.reason if verdict.knockout else "", manual_review=manual_review,
        referral_cause=_referral_cause(manual_review=manual_review, review_causes=waiting),
        decided_at=now, supersedes=old)
    audit_record(event_type="decision.superseded", subject=old, actor=officer, data={
        "application": str(old.application.public_id), "superseded_by": str(decision.public_id),
        "outcome": old.outcome, "cause": cause})
    audit_record(event_type="decision.rescored", subject=decision, actor=officer, data={
        "application": str(old.application.public_id), "supersedes": str(old.public_id), "cause": cause,
        "outcome": decision.outcome, "old_outcome": old.outcome, "probability_of_default": probability,
        "old_probability_of_default": old.probability_of_default, "model_version": version.version,
        "model_content_hash": version.content_hash, "model_version_rule": version_rule,
        "inputs_sha256": decision.inputs_sha256, "knockout": decision.knockout, "policy_outcome": verdict.outcome,
        "manual_review": manual_review, "referral_cause": decision.referral_cause, "changes": json_safe(changes)})
    # Reg B 1002.9: the old decision's reasons and notice no longer state the creditor's action: withdrawn
    # (kept, never altered; a queued e-mail is not sent), audited in this transaction. The new decision's
    # own notice follows its explanation through the normal path if it is adverse.
    from audit.adverse import adverse_action_withdraw_superseded

    adverse_action_withdraw_superseded(decision=old, superseded_by=decision, actor=officer, cause=cause, now=now)
    # A denial notice the customer was sent no longer stands: if the re-score approves, tell them (queued
    # here, sent after commit); a queued message announcing the old decision's approval is withdrawn.
    from audit.customer_messages import customer_message_sync

    customer_message_sync(decision=decision, actor=officer, now=now, cause=cause)
    explanation_request_create(decision=decision)
    return decision


def extraction_evidence_ensure(*, application_id: int) -> int:
    """Measure and store, once, the evidence of an application's readings that have none yet: the words
    whose deletion lowers the chosen category's probability, with that drop (occlusion), each audited.
    Off the request path (the explanation worker calls it). Returns how many readings got evidence.

    A measurement that fails (the provider errs, the stored text is not the text that was read) is
    counted on each reading with its error, in its own transaction, and raised again; at the
    ``Extraction.EVIDENCE_MAX_ATTEMPTS``-th failure the reading is given up (the sweeps skip it) and
    ``extraction.evidence_failed`` tells compliance. A database that is down is not the measurement's
    fault and counts nothing (the task retries it)."""
    pending = list(Extraction.objects.filter(application_id=application_id, evidence__isnull=True)
                   .select_related("application__product"))
    if not pending:
        return 0
    application = pending[0].application
    try:
        readings = _evidence_readings(application, pending)
    except (OperationalError, InterfaceError):
        raise
    except Exception as exc:
        extraction_evidence_failed(extractions=pending, error=f"{type(exc).__name__}: {exc}")
        raise
    now = timezone.now()
    done = 0
    with transaction.atomic():
        for extraction in Extraction.objects.select_for_update().filter(pk__in=[e.pk for e in pending]):
            reading = readings.get(extraction.field)
            if extraction.evidence is not None or reading is None:
                continue
            extraction.evidence = {
                # The reading the words were measured for: the stored one, unless the re-read differs (shown).
                "value": reading.value, "confidence": round(reading.confidence, 6),
                "provider_version": reading.model_version,
                "spans": [{"text": e.text, "start": e.start, "end": e.end, "score": round(e.score, 6)}
                          for e in reading.evidence]}
            extraction.evidence_measured_at = now
            extraction.save(update_fields=["evidence", "evidence_measured_at"])
            audit_record(event_type="extraction.evidence_measured", subject=extraction, data={
                "application": str(application.public_id), "field": extraction.field,
                "method": "occlusion: drop in the chosen category's probability when the word is deleted",
                **extraction.evidence})
            done += 1
    return done


def _evidence_readings(application: Application, pending: Sequence[Extraction]) -> Mapping[str, CoreExtraction]:
    """Read the application's texts again with occlusion evidence; the texts must be the ones first read."""
    spec = product_spec(product=application.product)
    texts = {e.text_field: application.values.get(e.text_field) for e in pending}
    # The threshold changes only whether a reading needs review, never the reading: the default one will do.
    readings = extract_application(spec, texts, evidence=True)
    for extraction in pending:
        reading = readings.get(extraction.field)
        if reading is not None and reading.text_sha256 != extraction.text_sha256:
            raise ValueError(f"application {application.public_id}: the stored text of {extraction.text_field} "
                             "is not the text that was read")
    return readings


def extraction_evidence_failed(*, extractions: Sequence[Extraction], error: str) -> list[Extraction]:
    """Count a failed evidence measurement on each reading still without evidence; the readings that reach
    ``EVIDENCE_MAX_ATTEMPTS`` now are given up, each with an audit event. Returns those given up."""
    applications = {e.pk: str(e.application.public_id) for e in extractions}
    abandoned = []
    with transaction.atomic():
        for extraction in Extraction.objects.select_for_update().filter(
                pk__in=[e.pk for e in extractions], evidence__isnull=True,
                evidence_attempts__lt=Extraction.EVIDENCE_MAX_ATTEMPTS):
            extraction.evidence_attempts += 1
            extraction.evidence_error = error[:2000]
            extraction.save(update_fields=["evidence_attempts", "evidence_error"])
            if extraction.evidence_abandoned:
                audit_record(event_type="extraction.evidence_failed", subject=extraction, data={
                    "application": applications[extraction.pk], "field": extraction.field,
                    "attempts": extraction.evidence_attempts, "error": extraction.evidence_error})
                abandoned.append(extraction)
    return abandoned


def extraction_evidence_retry(*, application_ids: Sequence[int] | None = None) -> int:
    """Let the sweeps try again the readings they gave up (after fixing the cause), audited. Returns how many."""
    scope = Extraction.objects.filter(evidence__isnull=True,
                                      evidence_attempts__gte=Extraction.EVIDENCE_MAX_ATTEMPTS)
    if application_ids is not None:
        scope = scope.filter(application_id__in=list(application_ids))
    with transaction.atomic():
        given_up = list(scope.select_for_update(of=("self",)).select_related("application"))
        for extraction in given_up:
            audit_record(event_type="extraction.evidence_retry", subject=extraction, data={
                "application": str(extraction.application.public_id), "field": extraction.field,
                "attempts": extraction.evidence_attempts, "error": extraction.evidence_error})
        Extraction.objects.filter(pk__in=[e.pk for e in given_up]).update(evidence_attempts=0)
    return len(given_up)


def officer_decide(*, decision: Decision, officer: AbstractBaseUser, action: str, factors: Sequence[str] = (),
                   comment: str = "") -> OfficerAction:
    """An officer approves, denies, overrides the model or asks for information (EU AI Act Art. 14), audited
    with the old and new outcome in the same transaction.

    The final outcome is the latest deciding action's (``audit.adverse.decision_final``). A denial states
    exactly the officer's factors as its reasons (Reg B comments 9(b)(2)-6 and -7): model-input names,
    reason keys or "other: <specific wording>"; factors that cannot be stated raise
    ``OfficerDecisionInvalid`` and nothing is kept. After commit the notice is prepared (again).
    """
    from audit.adverse import adverse_action_publish, decision_final, officer_outcome, officer_statement_record
    from audit.customer_messages import customer_message_sync

    cleaned = [str(factor).strip() for factor in factors if str(factor).strip()]
    with transaction.atomic(durable=True):
        locked = (Decision.objects.select_for_update().select_related("application__product", "model_version")
                  .get(pk=decision.pk))
        before = decision_final(decision=locked)
        outcome = officer_outcome(decision=locked, action=action)
        officer_action = OfficerAction.objects.create(decision=locked, officer=officer, action=action, outcome=outcome,
                                                      factors=cleaned, comment=comment.strip(),
                                                      created_at=timezone.now())
        # EU AI Act Art. 12/14 logging: overrides with the overseer's id, old and new values.
        audit_record(event_type="decision.officer_action", subject=locked, actor=officer, data={
            "officer_action": officer_action.pk, "action": action, "factors": cleaned, "comment": comment.strip(),
            "model_outcome": locked.outcome, "old_outcome": before.outcome, "new_outcome": outcome or before.outcome})
        officer_statement_record(decision=locked, action=officer_action)
        if outcome:
            # An approval after a denial notice went out: the customer is told (sent after commit). A denial
            # after a queued approval message: the message is withdrawn, never sent.
            customer_message_sync(decision=locked, actor=officer, now=officer_action.created_at,
                                  cause=f"an officer's decision ({action}) on decision {locked.public_id}")
        decision_id = locked.pk
        transaction.on_commit(lambda: adverse_action_publish(decision_ids=[decision_id]))
    return officer_action


def manual_review_set(*, enabled: bool, changed_by: AbstractBaseUser, reason: str) -> ManualReviewSwitch:
    """Turn manual review of every new application on or off (admin only; checked by the caller)."""
    if not reason.strip():
        raise InvalidApplication("say why", fields={"reason": ["is required: say why the switch changes"]})
    with transaction.atomic():
        switch = ManualReviewSwitch.objects.create(enabled=enabled, reason=reason.strip(), changed_by=changed_by,
                                                   changed_at=timezone.now())
        audit_record(event_type="manual_review.switched", subject=switch, actor=changed_by,
                     data={"enabled": enabled, "reason": switch.reason})
    return switch
