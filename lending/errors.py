"""Domain errors: a code, a message and, where it applies, the fields and what is wrong with each.

They become HTTP responses only at the edge (lending/api.py, views)."""

from __future__ import annotations

from collections.abc import Mapping


class DomainError(Exception):
    code = "error"
    status = 400

    def __init__(self, message: str, *, fields: Mapping[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = dict(fields or {})


class InvalidApplication(DomainError):
    code = "invalid_application"


class UnknownProduct(DomainError):
    code = "unknown_product"
    status = 404


class ModelNotApproved(DomainError):
    """Scoring with a model version that has not been approved (SR 11-7 / SR 26-2: no unvalidated model
    serves)."""

    code = "model_not_approved"
    status = 409


class NoServingModel(DomainError):
    code = "no_approved_model"
    status = 409


class ExtractionReviewInvalid(DomainError):
    """An officer's confirmation or correction of a language-model reading that cannot be accepted."""

    code = "invalid_extraction_review"


class LanguageModelUnavailable(DomainError):
    """The language model could not read an application's text (provider down, misconfigured)."""

    code = "language_model_unavailable"
    status = 503
