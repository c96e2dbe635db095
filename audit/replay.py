"""Replay: decide a stored decision again from its input snapshot and model version, and compare.

Compliance (issue 5, checklist E): any decision can be reproduced from what was stored. The score is compared
bit for bit (``float.hex``), the explanation's attributions exactly, the principal reasons by key in rank
order, and the notice by the SHA-256 of its HTML and PDF rendered again from the stored context. The result is
"identical" or the list of what differs (field, stored, replayed), and every replay is an audit event.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction

from audit.adverse import (
    explanation_for,
    notice_current,
    notice_regenerate,
    reason_statement_current,
)
from audit.explanations import explanation_compute_for
from audit.models import ReasonStatement
from audit.services import audit_record
from lending.models import Decision
from lending.selectors import inputs_from_snapshot, product_spec, scoring_model_for
from lending.services import inputs_sha256
from scoring.adverse_action import principal_reasons


@dataclass(frozen=True)
class Difference:
    field: str
    stored: str
    replayed: str


@dataclass(frozen=True)
class ReplayReport:
    decision: str
    model_version: str
    differences: tuple[Difference, ...]
    # What was compared, and what could not be (e.g. no notice was ever rendered for an approval).
    compared: tuple[str, ...]
    not_compared: tuple[str, ...] = field(default=())

    @property
    def identical(self) -> bool:
        return not self.differences

    def as_dict(self) -> dict[str, Any]:
        return {"decision": self.decision, "model_version": self.model_version, "identical": self.identical,
                "differences": [asdict(d) for d in self.differences], "compared": list(self.compared),
                "not_compared": list(self.not_compared)}


def _hex(value: float | None) -> str:
    return "absent" if value is None else float(value).hex()


def _compare_float(name: str, stored: float | None, replayed: float | None, out: list[Difference]) -> None:
    # Bit for bit: float.hex differs for any change in the last bit, where repr-rounding might hide it.
    if _hex(stored) != _hex(replayed):
        out.append(Difference(name, f"{stored!r} ({_hex(stored)})", f"{replayed!r} ({_hex(replayed)})"))


def _replayed_reason_keys(decision: Decision, statement: ReasonStatement, attributions: dict[str, float]) -> list[str]:
    """The reasons the statement's rules give from the replayed attributions (the rules audit.adverse uses)."""
    spec = product_spec(product=decision.application.product)
    officer_factors = None
    if statement.source == ReasonStatement.Source.OFFICER and statement.officer_action is not None:
        officer_factors = list(statement.officer_action.factors)
    reasons = principal_reasons(spec, attributions=attributions, knockout_reason=decision.knockout_reason or None,
                                officer_factors=officer_factors, values=decision.inputs)
    return [reason.key for reason in reasons]


def decision_replay_compute(*, decision: Decision) -> ReplayReport:
    """Replay without recording it (a selector): see ``decision_replay``."""
    differences: list[Difference] = []
    compared: list[str] = []
    not_compared: list[str] = []
    spec = product_spec(product=decision.application.product)
    # Replaying is not serving: the version may since have been retired.
    model = scoring_model_for(model_version=decision.model_version, allow_unapproved=True)
    values = inputs_from_snapshot(spec=spec, snapshot=decision.inputs)

    # The snapshot itself must still be what was hashed when the decision was made.
    compared.append("inputs_sha256")
    replayed_inputs_hash = inputs_sha256(decision.inputs)
    if replayed_inputs_hash != decision.inputs_sha256:
        differences.append(Difference("inputs_sha256", decision.inputs_sha256, replayed_inputs_hash))

    compared.append("probability_of_default")
    _compare_float("probability_of_default", decision.probability_of_default, float(model.score(values)), differences)

    replayed = explanation_compute_for(decision=decision)
    replayed_attributions = {name: float(value) for name, value in replayed.attributions.items()}
    stored_explanation = explanation_for(decision=decision)
    if stored_explanation is None:
        not_compared.append("explanation (none stored yet)")
    else:
        compared.append("explanation")
        payload = stored_explanation.document
        _compare_float("explanation.base_value", stored_explanation.base_value, replayed.base_value, differences)
        _compare_float("explanation.output", stored_explanation.output, replayed.output, differences)
        stored_attributions = payload.get("attributions", {})
        for name in sorted(set(stored_attributions) | set(replayed_attributions)):
            _compare_float(f"explanation.attributions.{name}", stored_attributions.get(name),
                           replayed_attributions.get(name), differences)
        if bool(stored_explanation.checks_passed) != replayed.checks.all_passed:
            differences.append(Difference("explanation.checks_passed", str(stored_explanation.checks_passed),
                                          str(replayed.checks.all_passed)))

    statement = reason_statement_current(decision=decision)
    if statement is None:
        not_compared.append("reasons (none stated)")
    else:
        compared.append("reasons")
        stored_keys = [reason["key"] for reason in statement.reasons]
        replayed_keys = _replayed_reason_keys(decision, statement, replayed_attributions)
        if stored_keys != replayed_keys:
            differences.append(Difference("reasons", "|".join(stored_keys), "|".join(replayed_keys)))

    notice = notice_current(decision=decision)
    if notice is None:
        not_compared.append("notice (none rendered)")
    else:
        compared.append("notice")
        regenerated = notice_regenerate(notice=notice)
        if regenerated.html_sha256 != notice.html_sha256:
            differences.append(Difference("notice.html_sha256", notice.html_sha256, regenerated.html_sha256))
        if regenerated.pdf_sha256 != notice.pdf_sha256:
            differences.append(Difference("notice.pdf_sha256", notice.pdf_sha256, regenerated.pdf_sha256))

    return ReplayReport(decision=str(decision.public_id), model_version=decision.model_version.version,
                        differences=tuple(differences), compared=tuple(compared), not_compared=tuple(not_compared))


def decision_replay(*, decision: Decision, actor: AbstractBaseUser | AnonymousUser | None = None) -> ReplayReport:
    """Re-score, re-explain, re-state and re-render a stored decision and compare each with what is stored.
    The replay is recorded (event ``decision.replayed`` with the full result)."""
    report = decision_replay_compute(decision=decision)
    with transaction.atomic():
        audit_record(event_type="decision.replayed", subject=decision, actor=actor, data=report.as_dict())
    return report
