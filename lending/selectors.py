"""Reads. Keyword-only, typed, named <entity>_<what>."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from lending.errors import ModelNotApproved, NoServingModel, UnknownProduct
from lending.models import Decision, Extraction, ManualReviewSwitch, ModelVersion, Product
from scoring.predict import ScoringModel, load_model
from scoring.spec import ProductSpec, clean_value, parse_spec

_SPECS_BY_HASH: dict[str, ProductSpec] = {}


def product_get(*, slug: str) -> Product:
    try:
        return Product.objects.get(slug=slug)
    except Product.DoesNotExist:
        raise UnknownProduct(f"no product {slug!r}", fields={"product": [f"unknown product {slug!r}"]}) from None


def product_spec(*, product: Product) -> ProductSpec:
    """The spec a product was registered with, parsed once per process."""
    spec = _SPECS_BY_HASH.get(product.spec_hash)
    if spec is None:
        spec = parse_spec(product.spec_text, origin=product.slug)
        _SPECS_BY_HASH[product.spec_hash] = spec
    return spec


def model_version_serving(*, product: Product) -> ModelVersion:
    """The most recently approved model version of a product that matches its current spec."""
    version = (
        ModelVersion.objects.filter(product=product, status=ModelVersion.Status.APPROVED,
                                    spec_hash=product.spec_hash)
        .order_by("-approved_at", "-id")
        .first()
    )
    if version is None:
        raise NoServingModel(f"product {product.slug!r} has no approved model version for its current spec; "
                             f"train one and approve it (manage.py approve_model)")
    return version


def model_version_path(*, model_version: ModelVersion) -> Path:
    path = Path(model_version.path)
    return path if path.is_absolute() else settings.CANDOR_DATA_DIR / path


def scoring_model_for(*, model_version: ModelVersion, allow_unapproved: bool = False) -> ScoringModel:
    """The loaded model of a version. Refuses an unapproved version unless the caller is replaying or
    validating it (allow_unapproved)."""
    if not model_version.is_approved and not allow_unapproved:
        raise ModelNotApproved(f"model version {model_version.version} of {model_version.product.slug!r} is "
                               f"{model_version.status}, not approved; it cannot score applications")
    return load_model(model_version_path(model_version=model_version))


def decision_list(*, product: Product | None = None, outcome: str | None = None) -> QuerySet[Decision]:
    decisions = Decision.objects.select_related("application", "application__product", "model_version")
    if product is not None:
        decisions = decisions.filter(application__product=product)
    if outcome:
        decisions = decisions.filter(outcome=outcome)
    return decisions.order_by("-decided_at", "-id")


def decision_get(*, public_id: str) -> Decision:
    """Any decision by its public id, a superseded one too (its page and the API say what replaced it)."""
    return Decision.all_objects.select_related("application", "application__product", "model_version").get(
        public_id=public_id)


def inputs_from_snapshot(*, spec: ProductSpec, snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """Turn a stored input snapshot back into the exact values it was scored from (money as Decimal)."""
    return {name: clean_value(spec.field(name), value) for name, value in snapshot.items() if value is not None}


def manual_review_current() -> ManualReviewSwitch | None:
    return ManualReviewSwitch.objects.order_by("-changed_at", "-id").first()


def manual_review_enabled() -> bool:
    current = manual_review_current()
    return current is not None and current.enabled


# The worker measures a reading's evidence right after the decision's explanation; one still without it
# this long after it was read is taken to be lost (a lost task, a worker that died) and measured again.
EVIDENCE_GRACE = timedelta(minutes=10)


def extraction_applications_missing_evidence(*, now: datetime | None = None, grace: timedelta = EVIDENCE_GRACE,
                                             limit: int = 500) -> list[int]:
    """Applications with a language-model reading that has no evidence yet, read more than ``grace`` ago,
    oldest first (what the evidence sweep measures). Readings given up after repeated failures are left out
    (``Extraction.evidence_abandoned``) until ``extraction_evidence_retry`` lets them be tried again."""
    cutoff = (now or timezone.now()) - grace
    ids = (Extraction.objects.filter(evidence__isnull=True, created_at__lt=cutoff,
                                     evidence_attempts__lt=Extraction.EVIDENCE_MAX_ATTEMPTS)
           .order_by("application_id").values_list("application_id", flat=True).distinct())
    return list(ids[:limit])
