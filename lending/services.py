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
from django.db import transaction
from django.utils import timezone

from audit.explanations import explanation_request_create
from audit.services import audit_record
from lending.errors import InvalidApplication
from lending.models import (
    Application,
    Decision,
    ManualReviewSwitch,
    ModelVersion,
    MonitoringData,
    OfficerAction,
    Product,
)
from lending.selectors import manual_review_enabled, model_version_serving, product_spec, scoring_model_for
from scoring.policy import REFERRED, policy_decide
from scoring.spec import ApplicationInvalid, ProductSpec, json_safe, validate_fields


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


def application_submit(*, product: Product, fields: Any, submitted_by: AbstractBaseUser) -> Decision:
    """Validate, score and decide an application; store it, its decision and the audit events together.

    Invalid input raises InvalidApplication naming each bad field, before anything is written.
    """
    spec = product_spec(product=product)
    try:
        cleaned = validate_fields(spec, fields)
    except ApplicationInvalid as exc:
        raise InvalidApplication("the application has invalid fields", fields=exc.errors) from exc
    model_version = model_version_serving(product=product)
    model = scoring_model_for(model_version=model_version)
    parts = _split_values(spec, cleaned)
    inputs = parts["model_input"]
    probability = float(model.score(inputs))
    verdict = policy_decide(spec.policy, probability, inputs)
    now = timezone.now()
    snapshot = json_safe(inputs)
    with transaction.atomic(durable=True):
        # EU AI Act Art. 14: while the switch is on, a person decides every application.
        manual_review = manual_review_enabled()
        outcome = REFERRED if manual_review else verdict.outcome
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
            decided_at=now,
        )
        audit_record(event_type="application.submitted", subject=application, actor=submitted_by,
                     data={"product": product.slug, "spec_hash": spec.spec_hash})
        # EU AI Act Art. 12 logging: input hash, model version, output.
        audit_record(event_type="decision.made", subject=decision, actor=submitted_by,
                     data={"application": str(application.public_id), "outcome": decision.outcome,
                           "probability_of_default": probability, "model_version": model_version.version,
                           "model_content_hash": model_version.content_hash,
                           "inputs_sha256": decision.inputs_sha256, "knockout": decision.knockout,
                           "policy_outcome": verdict.outcome, "manual_review": manual_review})
        explanation_request_create(decision=decision)
    return decision


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
