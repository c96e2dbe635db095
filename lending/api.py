"""The JSON API, version 1."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from lending.auth import api_view, problem
from lending.errors import DomainError
from lending.models import Decision
from lending.selectors import decision_get, product_get, product_spec
from lending.services import application_submit
from scoring.spec import FieldSpec


def _field_description(field_spec: FieldSpec) -> dict[str, Any]:
    described: dict[str, Any] = {
        "name": field_spec.name,
        "label": field_spec.label,
        "type": field_spec.type,
        "source": field_spec.source,
        "required": field_spec.required,
    }
    if field_spec.unit:
        described["unit"] = field_spec.unit
    if field_spec.minimum is not None:
        described["min"] = field_spec.minimum
    if field_spec.maximum is not None:
        described["max"] = field_spec.maximum
    if field_spec.categories:
        described["categories"] = [
            {"value": c, "label": field_spec.category_labels.get(c, c)} for c in field_spec.categories]
    if field_spec.special_values:
        described["special_values"] = {str(k): v for k, v in field_spec.special_values.items()}
    if field_spec.type == "text":
        described["max_length"] = field_spec.max_length
    return described


@require_GET
@api_view(permission="lending.view_product")
def product_detail(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        product = product_get(slug=slug)
    except DomainError as exc:
        return problem(exc.status, exc.message, code=exc.code)
    spec = product_spec(product=product)
    return JsonResponse({
        "slug": spec.slug,
        "name": spec.name,
        "description": spec.description,
        "credit_type": spec.credit_type,
        "currency": spec.currency,
        # What a client submits: applicant and bureau fields. Text-derived fields are read by the language
        # model from their text field; a client may send one itself (it is then not read).
        "fields": [_field_description(f) for f in spec.submitted_fields],
        "derived_fields": [{**_field_description(f), "derived_from": list(f.derived_from)}
                           for f in spec.derived_fields],
    })


def explanation_body(decision: Decision) -> dict[str, Any] | None:
    """The stored explanation as officers and compliance read it; None until the worker has stored it."""
    from audit.explanations import explanation_latest

    explanation = explanation_latest(decision=decision)
    if explanation is None:
        return None
    payload = explanation.document
    return {
        "reference": payload["reference"],
        "base_value": payload["base_value"],
        "output": payload["output"],
        "scale": "log-odds of default",
        "attributions": payload["attributions"],
        "probability_attributions": payload["probability_attributions"],
        "reference_all": {"base_value": payload["base_value_all"], "attributions": payload["attributions_all"]},
        "negative_ranked": payload["negative_ranked"],
        "checks": payload["checks"],
        "recourse": payload["recourse"],
        "method": payload["method"],
        "explainer_version": explanation.explainer_version,
        "model_version": decision.model_version.version,
        "seed": payload.get("seed"),
        "computed_at": explanation.computed_at.isoformat(),
    }


def extractions_body(decision: Decision) -> list[dict[str, Any]]:
    """What the language model read from the application's texts (issue 6), and whether a person reviewed it."""
    return [{
        "field": e.field, "text_field": e.text_field, "value": e.value, "confidence": e.confidence,
        "threshold": e.threshold, "needs_review": e.needs_review, "status": e.status,
        "confirmed_value": e.confirmed_value or None, "used_in_decision": decision.inputs.get(e.field),
        "candidates": e.candidates, "provider": e.provider, "provider_version": e.provider_version,
        "evidence": e.evidence["spans"] if e.evidence else None,
    } for e in decision.application.extractions.order_by("id")]


def decision_body(decision: Decision, *, just_made: bool = False) -> dict[str, Any]:
    """The decision as the API shows it. ``just_made``: the explanation cannot exist yet, skip the lookup."""
    from audit.adverse import adverse_action_api

    # Only a superseded decision has a successor: no query for a current one.
    superseded_by = None if decision.is_current else Decision.all_objects.filter(supersedes=decision).first()
    return {
        "id": str(decision.public_id),
        "application": str(decision.application.public_id),
        "product": decision.application.product.slug,
        "outcome": decision.outcome,
        "probability_of_default": decision.probability_of_default,
        "model_version": decision.model_version.version,
        "decided_at": decision.decided_at.isoformat(),
        "knockout_reason": decision.knockout_reason or None,
        "referral_cause": decision.referral_cause or None,
        "extractions": extractions_body(decision),
        "current": decision.is_current,
        "supersedes": str(decision.supersedes.public_id) if decision.supersedes_id else None,
        "superseded_by": str(superseded_by.public_id) if superseded_by else None,
        "explanation": None if just_made else explanation_body(decision),
        "links": {
            "self": reverse("api-decision-detail", args=[decision.public_id]),
            "page": reverse("lending:decision-detail", args=[decision.public_id]),
        },
        # Adverse action (issue 4): "reasons", "notice" and "customer_link", null until they exist.
        **({"reasons": None, "notice": None, "customer_link": None} if just_made
           else adverse_action_api(decision=decision)),
    }


@require_POST
@api_view(permission="lending.add_application")
def application_create(request: HttpRequest) -> HttpResponse:
    try:
        body = json.loads(request.body or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return problem(400, "The body is not valid JSON", code="invalid_json", errors={"body": [str(exc)]})
    if not isinstance(body, dict):
        return problem(400, "The body must be a JSON object", code="invalid_body",
                       errors={"body": ['must be an object {"product": slug, "fields": {...}}']})
    errors: dict[str, list[str]] = {}
    unexpected = sorted(set(body) - {"product", "fields"})
    for key in unexpected:
        errors[key] = ["is not a top-level key of an application; put product fields inside \"fields\""]
    slug = body.get("product")
    if not isinstance(slug, str) or not slug:
        errors["product"] = ["is required: the product slug"]
    if "fields" not in body:
        errors["fields"] = ["is required: an object of field values"]
    if errors:
        return problem(400, "The application is not valid", code="invalid_application", errors=errors)
    try:
        decision = application_submit(product=product_get(slug=slug), fields=body["fields"],
                                      submitted_by=request.user)  # type: ignore[arg-type]
    except DomainError as exc:
        return problem(400 if exc.code == "unknown_product" else exc.status, exc.message, code=exc.code,
                       errors=exc.fields or None)
    response = JsonResponse(decision_body(decision, just_made=True), status=201)
    response["Location"] = reverse("api-decision-detail", args=[decision.public_id])
    return response


@require_GET
@api_view(permission="lending.view_decision")
def decision_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    try:
        decision = decision_get(public_id=public_id)
    except Decision.DoesNotExist:
        return problem(404, "No such decision", code="not_found")
    return JsonResponse(decision_body(decision))
