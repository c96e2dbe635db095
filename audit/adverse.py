"""Adverse action: the stated reasons, the notice and its delivery, the customer's private link and requests,
and record retention. Services (writes) and selectors (reads), keyword-only, named <entity>_<action>.

The path of a denial (issue 4):

1. The worker stores the decision's explanation; after that commits, ``adverse_action_schedule`` publishes
   ``audit.tasks.adverse_action_prepare`` for each denied decision.
2. ``adverse_action_prepare`` (idempotent; every step checks whether it is already done):
   ``reason_statement_ensure`` states the principal reasons (Reg B 1002.9(b)(2)) from the explanation,
   ``notice_ensure`` renders and stores the notice (HTML and PDF, with the context that regenerates them
   byte for byte), ``notice_deliver`` issues the customer's private link and e-mails the notice with the
   PDF attached, recording when it went (Reg B comment 9-3: notification occurs when delivered or mailed).
3. An officer who decides (``lending.services.officer_decide``) gets a statement of the officer's own
   factors (comments 9(b)(2)-6 and -7) written in the same transaction, and the notice is prepared again.

Each state change and its audit event commit together. Exactly one current ReasonStatement and Notice
exist per decision however often a task runs (partial unique constraints; losers of a race re-read).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import secrets
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core import signing
from django.core.mail import EmailMessage, get_connection
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery
from django.urls import reverse
from django.utils import timezone

from audit.models import (
    CustomerLink,
    CustomerMessage,
    CustomerMessageNotice,
    CustomerRequest,
    Explanation,
    ExplanationRequest,
    LegalHold,
    Notice,
    ReasonStatement,
)
from audit.notices import (
    ECOA_NOTICE_EN,
    ECOA_NOTICE_ES,
    FCRA_REPORT_EN,
    FCRA_REPORT_ES,
    FCRA_SCORE_EN,
    FCRA_SCORE_ES,
    STRINGS,
    Language,
    NoticeContext,
    NoticeIncomplete,
    format_date,
    notice_sha256,
    render_notice_html,
    render_notice_pdf,
)
from audit.services import audit_record
from lending.errors import DomainError
from lending.models import Application, Decision, Extraction, MonitoringData, OfficerAction
from lending.selectors import product_spec
from scoring.adverse_action import (
    BureauInfo,
    CreditScoreDisclosure,
    KeyFactor,
    PrincipalReason,
    ReasonError,
    bureau_for,
    bureau_score_field,
    credit_score_disclosure,
    hmda_applies,
    hmda_denial_codes,
    hmda_other_text,
    principal_reasons,
)
from scoring.agencies import Agency, AgencyContact, agency_for
from scoring.spec import ProductSpec
from scoring.wording import (  # noqa: F401  (re-exported: the customer page, notices and officer pages use them)
    CATEGORY_LABELS_ES,
    FIELD_LABELS_ES,
    MONEY_UNITS,
    field_label,
    format_value,
    recourse_lines,
)

logger = logging.getLogger(__name__)

LANGUAGES: tuple[Language, ...] = ("en", "es")
# Reg B 1002.9(a)(1)(i): notify within 30 days after receiving a completed application; (iv): within 90 days
# after a counteroffer the applicant does not accept or use.
NOTICE_DUE_DAYS = 30
COUNTEROFFER_DUE_DAYS = 90
# Reg B 1002.12(b)(1): keep the records 25 months after notifying the applicant of the action taken.
RETENTION_MONTHS = 25
CUSTOMER_LINK_SALT = "candor.customer-link"
CUSTOMER_LINK_DAYS = 90
# A delivery claimed longer ago than this without being recorded is taken to have died; it may be retried.
DELIVERY_LEASE = dt.timedelta(minutes=10)
EMAIL_TIMEOUT_SECONDS = 30
DECIDING_ACTIONS = (OfficerAction.Action.APPROVE, OfficerAction.Action.DENY, OfficerAction.Action.OVERRIDE)


class OfficerDecisionInvalid(DomainError):
    code = "invalid_officer_decision"


# --- the final outcome ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class FinalOutcome:
    """What a decision amounts to now: the latest officer's deciding action if any, else the model's."""

    outcome: str
    decided_at: dt.datetime
    action: OfficerAction | None

    @property
    def by_officer(self) -> bool:
        return self.action is not None

    @property
    def adverse(self) -> bool:
        return self.outcome == Decision.Outcome.DENIED


def decision_final(*, decision: Decision) -> FinalOutcome:
    action = (OfficerAction.objects.filter(decision=decision).exclude(outcome="")
              .order_by("-created_at", "-id").first())
    if action is None:
        return FinalOutcome(outcome=decision.outcome, decided_at=decision.decided_at, action=None)
    return FinalOutcome(outcome=action.outcome, decided_at=action.created_at, action=action)


def officer_outcome(*, decision: Decision, action: str) -> str:
    """The outcome an officer's action leaves the decision with ("" when the action decides nothing)."""
    if action == OfficerAction.Action.APPROVE:
        return Decision.Outcome.APPROVED
    if action == OfficerAction.Action.DENY:
        return Decision.Outcome.DENIED
    if action == OfficerAction.Action.OVERRIDE:
        if decision.outcome == Decision.Outcome.APPROVED:
            return Decision.Outcome.DENIED
        if decision.outcome == Decision.Outcome.DENIED:
            return Decision.Outcome.APPROVED
        raise OfficerDecisionInvalid("the model referred this application; there is no model outcome to override",
                                     fields={"action": ["approve or deny a referred application"]})
    if action == OfficerAction.Action.REQUEST_INFO:
        return ""
    raise OfficerDecisionInvalid(f"unknown action {action!r}",
                                 fields={"action": [f"must be one of {list(OfficerAction.Action.values)}"]})


# --- reason statements -----------------------------------------------------------------------------------

def explanation_for(*, decision: Decision) -> Explanation | None:
    return Explanation.objects.filter(decision=decision).order_by("-computed_at", "-id").first()


def reason_statement_current(*, decision: Decision) -> ReasonStatement | None:
    return ReasonStatement.objects.filter(decision=decision, superseded_at__isnull=True).first()


def reasons_from_statement(statement: ReasonStatement) -> tuple[PrincipalReason, ...]:
    return tuple(PrincipalReason(**{**raw, "fields": tuple(raw.get("fields", ()))}) for raw in statement.reasons)


def hmda_for(spec: ProductSpec, reasons: Sequence[PrincipalReason]) -> dict[str, Any] | None:
    # Reg C 1003.4(a)(16): dwelling-secured products report the denial reasons as HMDA codes (at most four,
    # code 9 with its text; edits V669-V671 enforced by hmda_denial_codes).
    if not hmda_applies(spec) or not reasons:
        return None
    denial = hmda_denial_codes(reasons, denied=True, other_text=hmda_other_text(reasons))
    return {"codes": list(denial.codes), "other_text": denial.other_text}


def _supersede_current(*, decision: Decision, now: dt.datetime, notice_too: bool) -> list[ReasonStatement]:
    """Mark the decision's current statement superseded (inside the caller's transaction), and its current
    notice when no new notice will replace it (``notice_ensure`` links a replaced notice to its successor)."""
    current = list(ReasonStatement.objects.filter(decision=decision, superseded_at__isnull=True))
    ReasonStatement.objects.filter(pk__in=[s.pk for s in current]).update(superseded_at=now)
    if notice_too:
        Notice.objects.filter(decision=decision, superseded_at__isnull=True).update(superseded_at=now)
    return current


def adverse_action_withdraw_superseded(*, decision: Decision, superseded_by: Decision, actor: AbstractBaseUser | None,
                                       cause: str, now: dt.datetime) -> list[Notice]:
    """A re-score superseded ``decision``: withdraw its statement of reasons and its notice (call inside the
    re-score's transaction). The notice is kept exactly as rendered (and as sent), marked superseded at
    ``now`` with why; a queued e-mail is then never sent (``notice_deliver`` claims only current notices).
    Each withdrawal is audited here. The new decision gets its own reasons and notice through the normal
    path (its explanation, then ``adverse_action_prepare``) if it is adverse."""
    statements = list(ReasonStatement.objects.select_for_update()
                      .filter(decision=decision, superseded_at__isnull=True))
    notices = list(Notice.objects.select_for_update().filter(decision=decision, superseded_at__isnull=True)
                   .defer("html", "pdf", "context"))
    why = (f"decision {decision.public_id} was superseded by decision {superseded_by.public_id} on "
           f"{now.isoformat()}: {cause}")
    if statements:
        ReasonStatement.objects.filter(pk__in=[s.pk for s in statements]).update(superseded_at=now)
        audit_record(event_type="reasons.withdrawn", subject=decision, actor=actor, data={
            "decision": str(decision.public_id), "statements": [s.pk for s in statements],
            "superseded_by": str(superseded_by.public_id), "cause": cause})
    for notice in notices:
        Notice.objects.filter(pk=notice.pk).update(superseded_at=now, withdrawn_cause=why)
        audit_record(event_type="notice.withdrawn", subject=notice, actor=actor, data={
            "decision": str(decision.public_id), "superseded_by": str(superseded_by.public_id),
            "reference": notice.reference, "pdf_sha256": notice.pdf_sha256, "html_sha256": notice.html_sha256,
            "was_sent": notice.sent_at is not None, "sent_at": notice.sent_at, "withdrawn_at": now,
            "cause": cause})
    return notices


def customer_link_decision(*, link: CustomerLink) -> Decision:
    """The decision a customer's link shows: the application's current one (a link issued for a decision
    that was since superseded shows what replaced it)."""
    decision = link.decision
    if decision.is_current:
        return decision
    current = (Decision.objects.select_related("application__product", "model_version")
               .filter(application_id=decision.application_id).first())
    return current or decision


def _statement_event(statement: ReasonStatement, decision: Decision, actor: AbstractBaseUser | None,
                     superseded: Sequence[ReasonStatement]) -> None:
    audit_record(event_type="reasons.stated", subject=statement, actor=actor, data={
        "decision": str(decision.public_id), "source": statement.source,
        "officer_action": statement.officer_action_id, "explanation": statement.explanation_id,
        "reasons": [{"rank": r["rank"], "key": r["key"], "field": r["field"], "attribution": r["attribution"]}
                    for r in statement.reasons],
        "hmda": statement.hmda, "superseded": [s.pk for s in superseded]})


def reason_statement_ensure(*, decision: Decision) -> ReasonStatement | None:
    """The current statement of reasons; for a model denial with an explanation, state it now (once).

    Only adverse outcomes get one. A referred decision waits for the officer, whose factors
    ``officer_decide`` states. A model statement an officer has superseded is never stated again.
    """
    current = reason_statement_current(decision=decision)
    if current is not None:
        return current
    final = decision_final(decision=decision)
    if not final.adverse or final.by_officer:
        return None
    if ReasonStatement.objects.filter(decision=decision, source=ReasonStatement.Source.MODEL).exists():
        return None
    explanation = explanation_for(decision=decision)
    if explanation is None:
        return None  # the explanation hook calls again once the worker has stored it
    spec = product_spec(product=decision.application.product)
    payload = explanation.document
    # Reg B 1002.9(b)(2), comments 9(b)(2)-1, -4, -8: knockout first, then the fields that pushed toward
    # denial, grouped by reason, at most four, never an input the model did not use.
    reasons = principal_reasons(spec, attributions=payload["attributions"],
                                knockout_reason=decision.knockout_reason or None, values=decision.inputs)
    try:
        with transaction.atomic():
            Decision.objects.select_for_update().filter(pk=decision.pk).first()
            current = reason_statement_current(decision=decision)
            if current is not None:
                return current
            statement = ReasonStatement.objects.create(
                decision=decision, source=ReasonStatement.Source.MODEL, explanation=explanation,
                reasons=[reason.as_dict() for reason in reasons], ranking=list(payload.get("negative_ranked", [])),
                attributions=dict(payload["attributions"]), knockout_reason=decision.knockout_reason,
                hmda=hmda_for(spec, reasons), created_at=timezone.now())
            _statement_event(statement, decision, None, ())
    except IntegrityError:
        # Another delivery of the task stated them first: that statement is the current one.
        return reason_statement_current(decision=decision)
    return statement


def officer_statement_record(*, decision: Decision, action: OfficerAction) -> ReasonStatement | None:
    """Restate the reasons after an officer's action; call inside the action's transaction.

    A denial states exactly the officer's factors (comments 9(b)(2)-6 and -7: when the model approved and the
    officer denied, only the officer's factors). An approval withdraws the current statement and notice. A
    request for information changes nothing. Invalid factors raise OfficerDecisionInvalid (nothing is kept).
    """
    if not action.outcome:
        return reason_statement_current(decision=decision)
    now = action.created_at
    if action.outcome != Decision.Outcome.DENIED:
        withdrawn = _supersede_current(decision=decision, now=now, notice_too=True)
        if withdrawn:
            audit_record(event_type="reasons.withdrawn", subject=decision, actor=action.officer, data={
                "decision": str(decision.public_id), "officer_action": action.pk,
                "statements": [s.pk for s in withdrawn], "new_outcome": action.outcome})
        return None
    spec = product_spec(product=decision.application.product)
    explanation = explanation_for(decision=decision)
    document = explanation.document if explanation is not None else {}
    attributions = dict(document.get("attributions", {}))
    try:
        reasons = principal_reasons(spec, attributions=attributions, knockout_reason=decision.knockout_reason or None,
                                    officer_factors=list(action.factors), values=decision.inputs)
    except ReasonError as exc:
        raise OfficerDecisionInvalid(f"the factors cannot be stated as reasons: {exc}",
                                     fields={"factors": [str(exc)]}) from exc
    superseded = _supersede_current(decision=decision, now=now, notice_too=False)
    statement = ReasonStatement.objects.create(
        decision=decision, source=ReasonStatement.Source.OFFICER, officer_action=action, explanation=explanation,
        reasons=[reason.as_dict() for reason in reasons],
        # What the model's explanation said at the time, kept beside the officer's reasons for review.
        ranking=list(document.get("negative_ranked", [])),
        attributions=attributions, knockout_reason=decision.knockout_reason, hmda=hmda_for(spec, reasons),
        created_at=now)
    _statement_event(statement, decision, action.officer, superseded)
    return statement


# --- customer wording of values: scoring.wording (never internal field names or codes) -----------------------


# --- notices -----------------------------------------------------------------------------------------------

ACTION_TAKEN = {"en": "We have denied your application for the {product}.",
                "es": "Hemos denegado su solicitud de {product}."}
# EU AI Act Art. 86 and C-203/22: say what role the automated system played, and who decided.
NARRATIVE = {
    ("model", "en"): "Our automated credit scoring system assessed your application and your credit report.",
    ("model", "es"): "Nuestro sistema automatizado de calificación de crédito evaluó su solicitud y su informe de "
                     "crédito.",
    ("officer", "en"): "One of our loan officers reviewed your application and relied on the reasons above.",
    ("officer", "es"): "Uno de nuestros oficiales de préstamos revisó su solicitud y se basó en las razones "
                       "anteriores.",
}
CONTACT_NAME = {"en": "Consumer Lending Department, {creditor}",
                "es": "Departamento de Préstamos al Consumidor, {creditor}"}


def notice_due_at(*, completed_at: dt.datetime, counteroffer_at: dt.datetime | None = None) -> tuple[dt.datetime, str]:
    """When the notice is due, and the rule (Reg B 1002.9(a)(1)(i) and (iv))."""
    if counteroffer_at is not None:
        return counteroffer_at + dt.timedelta(days=COUNTEROFFER_DUE_DAYS), \
            "Reg B 1002.9(a)(1)(iv): 90 days after a counteroffer not accepted or used"
    return completed_at + dt.timedelta(days=NOTICE_DUE_DAYS), \
        "Reg B 1002.9(a)(1)(i): 30 days after a completed application"


def applicant_language(application: Application) -> Language:
    language = str((application.identity or {}).get("language", "en")).lower()[:2]
    return "es" if language == "es" else "en"


def _spanish_complete(reasons: Sequence[PrincipalReason], score: CreditScoreDisclosure | None) -> bool:
    factors = score.key_factors if score is not None else ()
    return all(r.customer_text_es for r in reasons) and all(f.text_es for f in factors)


def notice_context_build(*, statement: ReasonStatement, notice_date: dt.date) -> NoticeContext:
    """Everything the notice of a statement says, from the record."""
    decision = statement.decision
    application = decision.application
    spec = product_spec(product=application.product)
    creditor = spec.creditor
    identity = application.identity or {}
    reasons = reasons_from_statement(statement)
    attributions = statement.attributions or {}
    completed = timezone.localtime(application.completed_at, dt.UTC).date()
    # FCRA 615(a), 609(f): the bureau and the score used; the key factors are the bureau fields that
    # pushed the score-based assessment toward denial (scoring.adverse_action.credit_score_disclosure).
    score = credit_score_disclosure(spec, values=decision.inputs, attributions=attributions, bureau=bureau_for(spec),
                                    score_field=bureau_score_field(spec), score_date=completed)
    language = applicant_language(application)
    if language == "es" and not _spanish_complete(reasons, score):
        # An officer's "other: ..." wording has no Spanish version: the notice goes out in English.
        logger.warning("decision %s: a reason has no Spanish wording; the notice is in English", decision.pk)
        language = "en"
    final = decision_final(decision=decision)
    source = statement.source
    recourse: tuple[str, ...] = ()
    if source == ReasonStatement.Source.MODEL and statement.explanation is not None:
        recourse = recourse_lines(spec, statement.explanation.document.get("recourse"), language)
    return NoticeContext(
        language=language,
        notice_id=f"N-{timezone.localtime(decision.decided_at, dt.UTC):%Y}-{statement.pk:06d}",
        creditor_name=creditor.get("name", ""),
        creditor_address=creditor.get("address", ""),
        creditor_phone=creditor.get("phone", ""),
        applicant_name=str(identity.get("applicant_name") or identity.get("name") or ""),
        applicant_address=str(identity.get("address") or ""),
        applicant_email=str(identity.get("email") or ""),
        product_name=spec.name,
        action_taken=ACTION_TAKEN[language].format(product=spec.name),
        decision_date=timezone.localtime(final.decided_at, dt.UTC).date(),
        application_date=timezone.localtime(application.submitted_at, dt.UTC).date(),
        reasons=reasons,
        agency=agency_for(creditor.get("creditor_type", ""), notice_date) if creditor.get("creditor_type") else None,
        contact_name=creditor.get("contact_name") or CONTACT_NAME[language].format(creditor=creditor.get("name", "")),
        contact_address=creditor.get("contact_address") or creditor.get("address", ""),
        contact_phone=creditor.get("contact_phone") or creditor.get("phone", ""),
        credit_score=score,
        recourse=recourse,
        narrative=NARRATIVE[(source, language)],
        notice_date=notice_date,
    )


def notice_context_json(ctx: NoticeContext) -> dict[str, Any]:
    """The context as JSON (dates as ISO strings), from which ``notice_context_load`` rebuilds it exactly."""
    return json.loads(json.dumps(dataclasses.asdict(ctx), cls=DjangoJSONEncoder))  # type: ignore[no-any-return]


def _date(raw: str | None) -> dt.date | None:
    return dt.date.fromisoformat(raw) if raw else None


def notice_context_load(raw: Mapping[str, Any]) -> NoticeContext:
    agency = raw.get("agency")
    score = raw.get("credit_score")
    return NoticeContext(**{
        **raw,
        "decision_date": dt.date.fromisoformat(raw["decision_date"]),
        "application_date": dt.date.fromisoformat(raw["application_date"]),
        "notice_date": _date(raw.get("notice_date")),
        "reasons": tuple(PrincipalReason(**{**r, "fields": tuple(r.get("fields", ()))}) for r in raw["reasons"]),
        "agency": None if agency is None else Agency(**{
            **agency, "contacts": tuple(AgencyContact(**c) for c in agency["contacts"])}),
        "credit_score": None if score is None else CreditScoreDisclosure(
            bureau=BureauInfo(**score["bureau"]), score=score.get("score"),
            score_range=tuple(score["score_range"]) if score.get("score_range") else None,  # type: ignore[arg-type]
            score_date=_date(score.get("score_date")), score_source=score.get("score_source"),
            key_factors=tuple(KeyFactor(**k) for k in score.get("key_factors", ()))),
        "recourse": tuple(raw.get("recourse", ())),
    })


def _record_notice_error(statement: ReasonStatement, exc: NoticeIncomplete) -> None:
    with transaction.atomic():
        # Recorded once: a rerun of the task finds it and stops (compliance sees it on the due page).
        if ReasonStatement.objects.filter(pk=statement.pk, notice_error="").update(notice_error=str(exc)[:300]):
            audit_record(event_type="notice.incomplete", subject=statement, data={
                "decision": str(statement.decision.public_id), "part": exc.part, "rule": exc.rule})


def notice_ensure(*, statement: ReasonStatement) -> Notice | None:
    """The notice of a current statement, rendering and storing it once. None if it cannot be rendered
    (the missing part is recorded) or the statement was superseded meanwhile."""
    existing = Notice.objects.filter(reason_statement=statement).first()
    if existing is not None:
        return existing
    if statement.notice_error or statement.superseded_at is not None:
        return None
    decision = statement.decision
    now = timezone.now()
    try:
        ctx = notice_context_build(statement=statement, notice_date=timezone.localtime(now, dt.UTC).date())
        html = render_notice_html(ctx)
        pdf = render_notice_pdf(ctx)
    except NoticeIncomplete as exc:
        _record_notice_error(statement, exc)
        return None
    due_at, due_rule = notice_due_at(completed_at=decision.application.completed_at)
    email = ctx.applicant_email.strip()
    try:
        with transaction.atomic():
            locked = ReasonStatement.objects.select_for_update().get(pk=statement.pk)
            if locked.superseded_at is not None:
                return None
            existing = Notice.objects.filter(reason_statement=statement).first()
            if existing is not None:
                return existing
            previous = list(Notice.objects.filter(decision=decision, superseded_at__isnull=True))
            Notice.objects.filter(pk__in=[n.pk for n in previous]).update(superseded_at=now)
            notice = Notice.objects.create(
                decision=decision, reason_statement=statement, reference=ctx.notice_id, language=ctx.language,
                html=html, html_sha256=notice_sha256(html), pdf=pdf, pdf_sha256=notice_sha256(pdf),
                context=notice_context_json(ctx), notice_date=ctx.dated, due_at=due_at, due_rule=due_rule,
                delivery_channel=Notice.Channel.EMAIL if email else Notice.Channel.MAIL, email=email,
                created_at=now)
            Notice.objects.filter(pk__in=[n.pk for n in previous]).update(superseded_by=notice)
            audit_record(event_type="notice.rendered", subject=notice, data={
                "decision": str(decision.public_id), "reference": notice.reference, "language": notice.language,
                "html_sha256": notice.html_sha256, "pdf_sha256": notice.pdf_sha256, "due_at": due_at,
                "due_rule": due_rule, "channel": notice.delivery_channel, "reason_statement": statement.pk,
                "supersedes": [n.reference for n in previous]})
    except IntegrityError:
        return Notice.objects.filter(reason_statement=statement).first()
    return notice


@dataclass(frozen=True)
class RegeneratedNotice:
    html_sha256: str
    pdf_sha256: str
    unchanged: bool


def notice_regenerate(*, notice: Notice) -> RegeneratedNotice:
    """Render the notice again from its stored context (Reg B 1002.12(b), comment 12(b)-1) and compare."""
    ctx = notice_context_load(notice.context)
    html_hash = notice_sha256(render_notice_html(ctx))
    pdf_hash = notice_sha256(render_notice_pdf(ctx))
    return RegeneratedNotice(html_sha256=html_hash, pdf_sha256=pdf_hash,
                             unchanged=(html_hash, pdf_hash) == (notice.html_sha256, notice.pdf_sha256))


def notice_current(*, decision: Decision, contents: bool = True) -> Notice | None:
    """The notice of the current statement of reasons, if rendered (without its HTML, PDF and context
    unless ``contents``)."""
    notices = Notice.objects.filter(decision=decision, reason_statement__superseded_at__isnull=True,
                                    superseded_at__isnull=True)
    return (notices if contents else notices.defer("html", "pdf", "context")).first()


# --- the customer's private link -----------------------------------------------------------------------------

def _token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def customer_link_issue(*, decision: Decision, actor: AbstractBaseUser | None = None,
                        days: int = CUSTOMER_LINK_DAYS) -> tuple[str, CustomerLink]:
    """A new private link: a random 32-byte token, signed (salt ``CUSTOMER_LINK_SALT``) with its expiry so a
    forged, tampered or expired token is refused without a database query. Only its SHA-256 is stored.
    Returns (signed token, link); the token cannot be recovered later."""
    raw = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode("ascii")
    now = timezone.now()
    expires_at = now + dt.timedelta(days=days)
    with transaction.atomic():
        link = CustomerLink.objects.create(decision=decision, token_sha256=_token_hash(raw), created_at=now,
                                           expires_at=expires_at)
        audit_record(event_type="customer_link.issued", subject=link, actor=actor, data={
            "decision": str(decision.public_id), "expires_at": expires_at})
    token = signing.dumps({"t": raw, "x": int(expires_at.timestamp())}, salt=CUSTOMER_LINK_SALT, compress=False)
    return token, link


def customer_link_resolve(*, token: str, now: dt.datetime | None = None) -> CustomerLink | None:
    """The live link a token names, or None (forged, tampered, expired, revoked or unknown)."""
    now = now or timezone.now()
    try:
        payload = signing.loads(token, salt=CUSTOMER_LINK_SALT)
    except signing.BadSignature:
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("t"), str) or not isinstance(payload.get("x"), int):
        return None
    if payload["x"] <= now.timestamp():
        return None
    return (CustomerLink.objects.select_related("decision__application__product", "decision__model_version")
            .filter(token_sha256=_token_hash(payload["t"]), revoked_at__isnull=True, expires_at__gt=now).first())


def customer_link_url(token: str, *, absolute: bool = True) -> str:
    path = reverse("audit:customer-page", args=[token])
    if not absolute:
        return path
    base = str(getattr(settings, "CANDOR_PUBLIC_URL", "") or "http://localhost:8000").rstrip("/")
    return f"{base}{path}"


def customer_link_latest(*, decision: Decision) -> CustomerLink | None:
    return (CustomerLink.objects.filter(decision=decision, revoked_at__isnull=True, expires_at__gt=timezone.now())
            .order_by("-created_at", "-id").first())


# --- delivery ----------------------------------------------------------------------------------------------

EMAIL_TEXT = {
    "en": ("Dear {name},\n\n"
           "We have made a decision on your application for the {product}. Our notice is attached to this e-mail "
           "as a PDF.\n\n"
           "On your private page you can read the reasons for our decision, what could change it and your rights, "
           "and ask for a person to review the decision or send us more information:\n\n"
           "{url}\n\n"
           "This link is personal to you: please do not share it. It works until {expires}.\n\n"
           "{creditor}\n{address}\n{phone}\n"),
    "es": ("Estimado(a) {name}:\n\n"
           "Hemos tomado una decisión sobre su solicitud de {product}. Nuestro aviso se adjunta a este correo "
           "electrónico en formato PDF.\n\n"
           "En su página privada puede leer las razones de nuestra decisión, qué podría cambiarla y sus derechos, "
           "y pedir que una persona revise la decisión o enviarnos más información:\n\n"
           "{url}\n\n"
           "Este enlace es personal: no lo comparta. Funciona hasta el {expires}.\n\n"
           "{creditor}\n{address}\n{phone}\n"),
}


def _notice_email(notice: Notice, url: str, link: CustomerLink) -> EmailMessage:
    ctx = notice.context
    language: Language = "es" if notice.language == "es" else "en"
    body = EMAIL_TEXT[language].format(
        name=ctx["applicant_name"], product=ctx["product_name"], url=url,
        expires=format_date(timezone.localtime(link.expires_at, dt.UTC).date(), language),
        creditor=ctx["creditor_name"], address=ctx["creditor_address"], phone=ctx["creditor_phone"])
    message = EmailMessage(subject=STRINGS[language]["subject"].format(product=ctx["product_name"]), body=body,
                           from_email=settings.DEFAULT_FROM_EMAIL, to=[notice.email],
                           connection=get_connection(timeout=EMAIL_TIMEOUT_SECONDS))
    message.attach(f"notice-{notice.reference}.pdf", bytes(notice.pdf), "application/pdf")
    return message


def notice_deliver(*, notice: Notice) -> bool:
    """E-mail the notice with its PDF and a new private link, once; True if it is (now) sent.

    The delivery is claimed with a conditional update so two workers never both send; a failed send
    releases the claim (and revokes the unused link) for the task's retry.
    """
    if notice.sent_at is not None:
        return True
    if notice.delivery_channel != Notice.Channel.EMAIL or not notice.email:
        return False  # postal mail: compliance sees it on the due page
    now = timezone.now()
    claimed = (Notice.objects.filter(pk=notice.pk, sent_at__isnull=True, superseded_at__isnull=True,
                                     reason_statement__superseded_at__isnull=True)
               .filter(Q(delivery_claimed_at__isnull=True) | Q(delivery_claimed_at__lt=now - DELIVERY_LEASE))
               .update(delivery_claimed_at=now))
    if not claimed:
        return Notice.objects.filter(pk=notice.pk, sent_at__isnull=False).exists()
    link: CustomerLink | None = None
    try:
        token, link = customer_link_issue(decision=notice.decision)
        _notice_email(notice, customer_link_url(token), link).send(fail_silently=False)
    except Exception:
        Notice.objects.filter(pk=notice.pk, delivery_claimed_at=now).update(delivery_claimed_at=None)
        if link is not None:
            CustomerLink.objects.filter(pk=link.pk).update(revoked_at=timezone.now())
        raise
    sent_at = timezone.now()
    with transaction.atomic():
        Notice.objects.filter(pk=notice.pk).update(sent_at=sent_at, delivery_claimed_at=None)
        # Reg B comment 9-3: notification occurs when the notice is delivered or mailed.
        audit_record(event_type="notice.sent", subject=notice, data={
            "decision": str(notice.decision.public_id), "reference": notice.reference, "channel": "email",
            "pdf_sha256": notice.pdf_sha256, "customer_link": link.pk, "sent_at": sent_at,
            "due_at": notice.due_at, "on_time": sent_at <= notice.due_at})
        if Notice.objects.filter(pk=notice.pk, superseded_at__isnull=False).exists():
            # Withdrawn while the e-mail was going out (an approval came meanwhile): the customer now holds a
            # denial that no longer stands, so the approval's message announces this notice too.
            from audit.customer_messages import customer_message_sync_current

            customer_message_sync_current(application_id=notice.decision.application_id, actor=None,
                                          cause=f"notice {notice.reference} was sent after it was withdrawn")
    notice.sent_at = sent_at
    return True


def notice_record_mailed(*, notice: Notice, mailed_by: AbstractBaseUser,
                         mailed_at: dt.datetime | None = None) -> Notice:
    """Record that a notice without an e-mail address went out by post (Reg B comment 9-3: when mailed)."""
    mailed_at = mailed_at or timezone.now()
    with transaction.atomic():
        if Notice.objects.filter(pk=notice.pk, sent_at__isnull=True).update(
                sent_at=mailed_at, delivery_channel=Notice.Channel.MAIL):
            notice.refresh_from_db()
            audit_record(event_type="notice.sent", subject=notice, actor=mailed_by, data={
                "decision": str(notice.decision.public_id), "reference": notice.reference, "channel": "mail",
                "pdf_sha256": notice.pdf_sha256, "sent_at": mailed_at, "due_at": notice.due_at,
                "on_time": mailed_at <= notice.due_at})
    return notice


# --- the whole path, and scheduling it -----------------------------------------------------------------------

@dataclass(frozen=True)
class AdverseActionResult:
    statement: ReasonStatement | None
    notice: Notice | None
    sent: bool


def adverse_action_prepare(*, decision_id: int) -> AdverseActionResult:
    """State the reasons, render the notice, issue the link and send, whichever of these is not done yet."""
    decision = Decision.all_objects.select_related("application__product", "model_version").get(pk=decision_id)
    if not decision.is_current:
        # Re-scored: the decision that superseded it has its own adverse action.
        return AdverseActionResult(statement=None, notice=None, sent=False)
    statement = reason_statement_ensure(decision=decision)
    if statement is None:
        return AdverseActionResult(statement=None, notice=None, sent=False)
    notice = notice_ensure(statement=statement)
    if notice is None:
        return AdverseActionResult(statement=statement, notice=None, sent=False)
    return AdverseActionResult(statement=statement, notice=notice, sent=notice_deliver(notice=notice))


def adverse_action_publish(*, decision_ids: Sequence[int]) -> bool:
    """Send the follow-up task(s) to the broker; a broker failure is logged and leaves the work for
    ``manage.py notices_due --prepare`` (the decisions show on the compliance page meanwhile)."""
    from audit.tasks import adverse_action_prepare as prepare_one
    from audit.tasks import adverse_action_prepare_many

    ids = list(dict.fromkeys(decision_ids))
    if not ids:
        return True
    try:
        if len(ids) == 1:
            prepare_one.apply_async(args=[ids[0]], retry=False)
        else:
            adverse_action_prepare_many.apply_async(args=[ids], retry=False)
    except Exception as exc:  # any broker failure: the decisions stay visible as due
        logger.warning("could not publish adverse action for decisions %s: %s", ids[:20], exc)
        return False
    return True


def adverse_action_schedule(*, decisions: Iterable[Decision]) -> None:
    """After the explanations of these decisions commit, prepare the adverse action of the denied ones.
    Call inside the transaction that stores the explanations."""
    ids = [d.pk for d in decisions if d.outcome == Decision.Outcome.DENIED]
    if ids:
        transaction.on_commit(lambda: adverse_action_publish(decision_ids=ids))


# --- customer requests ---------------------------------------------------------------------------------------

def customer_request_create(*, link: CustomerLink, kind: str, message: str, language: str) -> CustomerRequest:
    """A request from the customer's page; it lands in the officers' queue and is audited."""
    if kind not in CustomerRequest.Kind.values:
        raise ValueError(f"unknown request kind {kind!r}")
    with transaction.atomic():
        # A link to a superseded decision: the request concerns the decision the customer sees, the current one.
        decision = customer_link_decision(link=link)
        request = CustomerRequest.objects.create(decision=decision, link=link, kind=kind,
                                                 message=message.strip(), language=language,
                                                 created_at=timezone.now())
        # GDPR Art. 22(3), EU AI Act Art. 86: the request for human intervention is on the record.
        audit_record(event_type="customer_request.created", subject=request, data={
            "decision": str(decision.public_id), "kind": kind, "customer_link": link.pk,
            "message_characters": len(request.message), "language": language})
    return request


def customer_requests_open() -> QuerySet[CustomerRequest]:
    return (CustomerRequest.objects.filter(handled_at__isnull=True)
            .select_related("decision__application__product").order_by("created_at", "id"))


# --- compliance: what is due -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class DueItem:
    decision: Decision
    due_at: dt.datetime
    notice: Notice | None
    problem: str
    overdue: bool


def notices_due(*, now: dt.datetime | None = None, limit: int = 500) -> list[DueItem]:
    """Adverse actions whose notice has not gone out, earliest due first (checklist A2: an alert if no
    notice has gone out by day 30): unsent notices, statements without a notice, denials without reasons."""
    now = now or timezone.now()
    items: list[DueItem] = []
    unsent = (Notice.objects.filter(sent_at__isnull=True, superseded_at__isnull=True)
              .select_related("decision__application__product").order_by("due_at")[:limit])
    for notice in unsent:
        problem = "to be mailed by post (no e-mail address)" if notice.delivery_channel == Notice.Channel.MAIL \
            else "e-mail not sent yet"
        items.append(DueItem(notice.decision, notice.due_at, notice, problem, notice.due_at <= now))
    without_notice = (ReasonStatement.objects.filter(superseded_at__isnull=True)
                      .exclude(Exists(Notice.objects.filter(reason_statement=OuterRef("pk"))))
                      .select_related("decision__application__product").order_by("created_at")[:limit])
    for statement in without_notice:
        due_at, _ = notice_due_at(completed_at=statement.decision.application.completed_at)
        problem = f"notice cannot be rendered: {statement.notice_error}" if statement.notice_error \
            else "notice not rendered yet"
        items.append(DueItem(statement.decision, due_at, None, problem, due_at <= now))
    unstated = (Decision.objects.filter(outcome=Decision.Outcome.DENIED)
                .exclude(Exists(ReasonStatement.objects.filter(decision=OuterRef("pk"))))
                .exclude(Exists(OfficerAction.objects.filter(decision=OuterRef("pk"))))
                .select_related("application__product").order_by("decided_at")[:limit])
    for decision in unstated:
        due_at, _ = notice_due_at(completed_at=decision.application.completed_at)
        items.append(DueItem(decision, due_at, None, "reasons not stated yet (explanation pending)", due_at <= now))
    items.sort(key=lambda item: (item.due_at, item.decision.pk))
    return items


def decisions_needing_adverse_action(*, limit: int = 5000) -> list[int]:
    """Denied decisions whose reasons, notice or e-mail are still to do (for notices_due --prepare)."""
    ids = {item.decision.pk for item in notices_due(limit=limit)
           if item.notice is None or item.notice.delivery_channel == Notice.Channel.EMAIL}
    return sorted(ids)


# --- the API ------------------------------------------------------------------------------------------------

def adverse_action_api(*, decision: Decision) -> dict[str, Any]:
    """The reasons, notice and customer link of a decision as the API shows them (null until they exist)."""
    statement = reason_statement_current(decision=decision)
    notice = notice_current(decision=decision, contents=False)
    link = customer_link_latest(decision=decision)
    return {
        "reasons": None if statement is None else [
            {"rank": r["rank"], "field": r["field"], "code": r["key"], "text": r["text"]} for r in statement.reasons],
        "notice": None if notice is None else {
            "html": reverse("audit:notice-html", args=[notice.public_id]),
            "pdf": reverse("audit:notice-pdf", args=[notice.public_id]),
            "sha256": {"html": notice.html_sha256, "pdf": notice.pdf_sha256},
            "reference": notice.reference, "language": notice.language, "due_at": notice.due_at.isoformat(),
            "sent_at": notice.sent_at.isoformat() if notice.sent_at else None,
            "channel": notice.delivery_channel},
        # Only the token's hash is stored, so the private URL itself is in the customer's e-mail only; an
        # officer can issue a fresh one (POST to "issue").
        "customer_link": None if link is None else {
            "issued_at": link.created_at.isoformat(), "expires_at": link.expires_at.isoformat(),
            "issue": reverse("audit:api-customer-link-issue", args=[decision.public_id])},
    }


# --- the customer's page ----------------------------------------------------------------------------------------

def customer_page_data(*, link: CustomerLink, language: Language) -> dict[str, Any]:
    """What the customer's page shows, in the customer's terms only: no field names, attributions, model
    identifiers or codes. A link issued for a decision that was since superseded shows the current one and
    says that the earlier decision (and its notice, if any) was replaced."""
    decision = customer_link_decision(link=link)
    replaced: dict[str, Any] | None = None
    if decision.pk != link.decision_id:
        withdrawn = (Notice.objects.filter(decision_id=link.decision_id).exclude(withdrawn_cause="")
                     .defer("html", "pdf", "context").order_by("-created_at").first())
        replaced_at = link.decision.superseded_at or decision.decided_at
        replaced = {"on": format_date(timezone.localtime(replaced_at, dt.UTC).date(), language),
                    "earlier_on": format_date(timezone.localtime(link.decision.decided_at, dt.UTC).date(), language),
                    "notice_reference": withdrawn.reference if withdrawn is not None else ""}
    application = decision.application
    spec = product_spec(product=application.product)
    final = decision_final(decision=decision)
    statement = reason_statement_current(decision=decision)
    notice = notice_current(decision=decision)
    reasons: list[str] = []
    recourse: tuple[str, ...] = ()
    source = ""
    if statement is not None and final.adverse:
        source = statement.source
        for reason in reasons_from_statement(statement):
            reasons.append((reason.customer_text_es if language == "es" else None) or reason.customer_text)
        if statement.source == ReasonStatement.Source.MODEL and statement.explanation is not None:
            recourse = recourse_lines(spec, statement.explanation.document.get("recourse"), language)
    ctx = notice_context_load(notice.context) if notice is not None else None
    score: dict[str, Any] | None = None
    if ctx is not None and ctx.credit_score is not None:
        disclosure = ctx.credit_score
        strings = STRINGS[language]
        score = {
            "report_text": FCRA_REPORT_EN if language == "en" else FCRA_REPORT_ES,
            "score_text": FCRA_SCORE_EN if language == "en" else FCRA_SCORE_ES,
            "bureau_name": disclosure.bureau.name, "bureau_address": disclosure.bureau.address,
            "bureau_phone": disclosure.bureau.phone, "has_score": disclosure.has_score, "score": disclosure.score,
            "score_date": format_date(disclosure.score_date, language) if disclosure.score_date else "",
            "score_range": strings["score_range"].format(low=disclosure.score_range[0], high=disclosure.score_range[1])
            if disclosure.score_range else "",
            "score_source": disclosure.score_source or "",
            "key_factors": [(f.text_es if language == "es" else None) or f.text for f in disclosure.key_factors],
        }
    creditor = spec.creditor
    on_date = ctx.dated if ctx is not None else timezone.localtime(timezone.now(), dt.UTC).date()
    agency = ctx.agency if ctx is not None and ctx.agency is not None else (
        agency_for(creditor["creditor_type"], on_date) if creditor.get("creditor_type") else None)
    ecoa = ecoa_english = ""
    if agency is not None:
        ecoa = (ECOA_NOTICE_EN if language == "en" else ECOA_NOTICE_ES).format(agency=agency.ecoa_text)
        ecoa_english = ECOA_NOTICE_EN.format(agency=agency.ecoa_text) if language != "en" else ""
    return {
        "outcome": final.outcome, "by_officer": final.by_officer, "source": source,
        "product_name": spec.name,
        "applied_on": format_date(timezone.localtime(application.submitted_at, dt.UTC).date(), language),
        "decided_on": format_date(timezone.localtime(final.decided_at, dt.UTC).date(), language),
        "reasons": reasons, "recourse": recourse, "score": score, "ecoa": ecoa, "ecoa_english": ecoa_english,
        "has_pdf": notice is not None, "notice_reference": notice.reference if notice is not None else "",
        "creditor_name": creditor.get("name", ""), "creditor_address": creditor.get("address", ""),
        "creditor_phone": creditor.get("phone", ""), "replaced": replaced,
    }


# --- legal holds and retention (Reg B 1002.12(b)) ----------------------------------------------------------------

class LegalHoldInvalid(DomainError):
    code = "invalid_legal_hold"


MATTER_MAX = 200


def legal_hold_application(*, identifier: str) -> Application:
    """The application a hold is placed on, named by its own public id or by its decision's (compliance usually
    holds the decision id from a complaint or a subpoena)."""
    text = identifier.strip()
    try:
        key = uuid.UUID(text)
    except ValueError:
        raise LegalHoldInvalid("not an application or decision id", fields={
            "application": [f"{text!r} is not an application or decision id"]}) from None
    application = (Application.objects.filter(public_id=key).first()
                   or Application.objects.filter(decisions__public_id=key).first())
    if application is None:
        raise LegalHoldInvalid("no such application", fields={
            "application": [f"no application or decision has the id {text}"]})
    return application


def legal_hold_place(*, application: Application, placed_by: AbstractBaseUser, matter: str,
                     reason: str) -> LegalHold:
    """Hold an application's records until the matter's final disposition (Reg B 1002.12(b)(4)); audited in the
    same transaction. A second active hold for the same matter is refused."""
    matter, reason = matter.strip(), reason.strip()
    problems: dict[str, list[str]] = {}
    if not matter:
        problems["matter"] = ["name the matter (investigation, examination or action) the hold is for"]
    elif len(matter) > MATTER_MAX:
        problems["matter"] = [f"at most {MATTER_MAX} characters"]
    if not reason:
        problems["reason"] = ["a legal hold needs its reason"]
    if problems:
        raise LegalHoldInvalid("the legal hold is incomplete", fields=problems)
    with transaction.atomic():
        if LegalHold.objects.filter(application=application, matter=matter, released_at__isnull=True).exists():
            raise LegalHoldInvalid("already on hold for this matter", fields={
                "matter": [f"application {application.public_id} is already on hold for {matter!r}"]})
        hold = LegalHold.objects.create(application=application, matter=matter, reason=reason,
                                        placed_by=placed_by, placed_at=timezone.now())
        audit_record(event_type="legal_hold.placed", subject=hold, actor=placed_by, data={
            "application": str(application.public_id), "matter": matter, "reason": reason})
    return hold


def legal_hold_release(*, hold: LegalHold, released_by: AbstractBaseUser, note: str = "") -> LegalHold:
    """End a hold (the matter reached final disposition); audited in the same transaction. The record then
    follows the normal retention clock. Releasing a released hold changes nothing and records nothing."""
    with transaction.atomic():
        if LegalHold.objects.filter(pk=hold.pk, released_at__isnull=True).update(
                released_at=timezone.now(), released_by=released_by, release_note=note.strip()):
            hold.refresh_from_db()
            audit_record(event_type="legal_hold.released", subject=hold, actor=released_by, data={
                "application": str(hold.application.public_id), "matter": hold.matter,
                "placed_at": hold.placed_at, "note": hold.release_note})
        else:
            hold.refresh_from_db()
    return hold


def legal_holds_list(*, active_only: bool = False) -> QuerySet[LegalHold]:
    holds = LegalHold.objects.select_related("application", "application__product", "placed_by", "released_by")
    if active_only:
        holds = holds.filter(released_at__isnull=True)
    # The application's current decision (a corrected reading may have superseded earlier ones).
    current = Decision.objects.filter(application=OuterRef("application")).values("public_id")[:1]
    return holds.order_by("released_at", "-placed_at", "-id").annotate(decision_public_id=Subquery(current))


def add_months(moment: dt.datetime, months: int) -> dt.datetime:
    """The same day ``months`` calendar months later (the month's last day when it is shorter)."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    next_month = dt.date(year + month // 12, month % 12 + 1, 1)
    last_day = (next_month - dt.timedelta(days=1)).day
    return moment.replace(year=year, month=month, day=min(moment.day, last_day))


def retention_until(*, application: Application) -> dt.datetime | None:
    """When the record of an application may go: 25 months after the latest of its notices' dates
    (1002.12(b)(1)), its decision, officer actions and customer requests (approvals without a notice:
    after the decision). None while it must be kept regardless: an adverse action not yet notified."""
    moments = [application.submitted_at]
    # Every decision of the application counts, superseded ones too (they are part of its record).
    for decision in Decision.all_objects.filter(application=application).order_by("id"):
        moments.append(decision.decided_at)
        moments += list(OfficerAction.objects.filter(decision=decision).values_list("created_at", flat=True))
        moments += list(CustomerRequest.objects.filter(decision=decision).values_list("created_at", flat=True))
        for notice in Notice.objects.filter(decision=decision):
            if notice.sent_at is None and notice.superseded_at is None:
                return None  # not yet notified: the 25 months have not started
            notice_day = dt.datetime.combine(notice.notice_date, dt.time(), tzinfo=dt.UTC)
            moments += [notice_day, notice.sent_at or notice_day]
        moments += [sent_at or created_at for sent_at, created_at
                    in CustomerMessage.objects.filter(decision=decision).values_list("sent_at", "created_at")]
        if CustomerMessage.objects.filter(decision=decision, sent_at__isnull=True, superseded_at__isnull=True).exists():
            return None  # the customer still holds a denial that no longer stands: not yet told
        if decision.is_current and decision_final(decision=decision).adverse \
                and not Notice.objects.filter(decision=decision).exists():
            return None  # a denial without a notice is an open compliance issue, never purged
    return add_months(max(moments), RETENTION_MONTHS)


@dataclass(frozen=True)
class PurgeReport:
    applications: tuple[str, ...]
    decisions: tuple[str, ...]
    counts: Mapping[str, int]
    held: int


def retention_expired(*, now: dt.datetime) -> tuple[list[Application], int]:
    """Applications whose retention has run out and that no active legal hold keeps; and how many expired
    ones a hold keeps."""
    held = LegalHold.objects.filter(application=OuterRef("pk"), released_at__isnull=True)
    # Nothing submitted within the last 25 months can be expired: every date counted is after submission.
    old = Application.objects.filter(submitted_at__lte=add_months(now, -RETENTION_MONTHS)).annotate(
        held=Exists(held)).order_by("submitted_at", "id")
    expired, kept = [], 0
    for application in old:
        until = retention_until(application=application)
        if until is None or until > now:
            continue
        if application.held:  # type: ignore[attr-defined]
            kept += 1
            continue
        expired.append(application)
    return expired, kept


def retention_purge(*, now: dt.datetime | None = None, dry_run: bool = False,
                    actor: AbstractBaseUser | None = None) -> PurgeReport:
    """Delete the records whose retention has expired, in dependency order, in one transaction, with an audit
    event listing what went. Audit events are never deleted. A held or younger record is never touched."""
    now = now or timezone.now()
    with transaction.atomic(durable=not dry_run):
        expired, held = retention_expired(now=now)
        app_ids = [a.pk for a in expired]
        decisions = list(Decision.all_objects.filter(application_id__in=app_ids).values_list("pk", "public_id"))
        decision_ids = [pk for pk, _ in decisions]
        # Children first: every one of these references the next ones with on_delete=PROTECT.
        plan: list[tuple[str, QuerySet[Any]]] = [
            ("customer_message_notices",
             CustomerMessageNotice.objects.filter(message__decision_id__in=decision_ids)),
            ("customer_messages", CustomerMessage.objects.filter(decision_id__in=decision_ids)),
            ("customer_requests", CustomerRequest.objects.filter(decision_id__in=decision_ids)),
            ("customer_links", CustomerLink.objects.filter(decision_id__in=decision_ids)),
            ("notices", Notice.objects.filter(decision_id__in=decision_ids)),
            ("reason_statements", ReasonStatement.objects.filter(decision_id__in=decision_ids)),
            ("explanations", Explanation.objects.filter(decision_id__in=decision_ids)),
            ("explanation_requests", ExplanationRequest.objects.filter(decision_id__in=decision_ids)),
            ("officer_actions", OfficerAction.objects.filter(decision_id__in=decision_ids)),
            ("decisions", Decision.all_objects.filter(pk__in=decision_ids)),
            ("extractions", Extraction.objects.filter(application_id__in=app_ids)),
            ("monitoring_data", MonitoringData.objects.filter(application_id__in=app_ids)),
            ("legal_holds", LegalHold.objects.filter(application_id__in=app_ids, released_at__isnull=False)),
            ("applications", Application.objects.filter(pk__in=app_ids)),
        ]
        counts = {name: queryset.count() for name, queryset in plan}
        report = PurgeReport(applications=tuple(str(a.public_id) for a in expired),
                             decisions=tuple(str(public_id) for _, public_id in decisions), counts=counts, held=held)
        if dry_run or not app_ids:
            return report
        # A re-scored decision protects the one it superseded: unlink them before deleting both.
        Decision.all_objects.filter(pk__in=decision_ids, supersedes__isnull=False).update(supersedes=None)
        for _name, queryset in plan:
            queryset.delete()
        audit_record(event_type="retention.purged", subject=("audit.retention", now.isoformat()), actor=actor, data={
            "rule": f"Reg B 1002.12(b): kept {RETENTION_MONTHS} months after the notice or decision",
            "applications": list(report.applications), "decisions": list(report.decisions), "counts": counts,
            "kept_by_legal_hold": held})
    return report
