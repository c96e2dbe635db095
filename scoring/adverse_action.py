"""Adverse action: the principal reasons, the FCRA credit-score disclosure and the HMDA denial codes.

Everything here is a pure function of a product spec and the numbers the scoring core produced; the
notice itself is rendered by ``audit.notices``. The rules each function protects are named where they
are enforced:

* ``principal_reasons``: Reg B 1002.9(b)(2) and its official comments 9(b)(2)-1 (at most four),
  -2/-4 (reasons are the factors actually scored), -6/-7 (an officer's decision states the officer's
  factors), -8 (an automatic-denial factor is disclosed), Appendix C paragraph 4 (specific reasons).
* ``reasons_lint``: every model input maps to a specific reason; text-derived and behavioural inputs
  name the behaviour (Appendix C paragraphs 3-4, the substance of CFPB circular 2023-03).
* ``credit_score_disclosure``: FCRA 615(a) (15 U.S.C. 1681m(a)) and 609(f) (1681g(f)).
* ``hmda_denial_codes``: Reg C 1003.4(a)(16) and the HMDA platform edits V669, V670 and V671.

Attributions are the explainer's field attributions: cutoff-referenced log-odds of DEFAULT, so a
POSITIVE value pushed the application toward denial.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from scoring.reasons import (
    FORM_C1_BY_KEY,
    FORM_C1_FCRA_KEY_FACTOR_ES,
    FORM_C1_TEXT_ES,
    insufficient_phrase_in,
    insufficient_phrase_in_es,
    is_generic_reason,
)
from scoring.spec import VALUE_PLACEHOLDER, FieldSpec, ProductReason, ProductSpec, name_tokens

logger = logging.getLogger(__name__)

# Reg B comment 9(b)(2)-1: "disclosure of more than four reasons is not likely to be helpful".
MAX_REASONS = 4
# FCRA 609(f)(1)(C): key factors "the total number of which shall not exceed 4"; 609(f)(9) adds the
# number-of-inquiries factor "without regard to the numerical limitation".
MAX_KEY_FACTORS = 4

ReasonSource = Literal["knockout", "model", "officer"]
OTHER_PREFIX = "other:"


class ReasonError(ValueError):
    """Reasons that cannot be stated as asked (unknown factor, too many officer factors, ...)."""


class InsufficientReason(ReasonError):
    """A reason whose wording Reg B 1002.9(b)(2) calls insufficient ("internal standards", ...)."""


class ReasonLimitWarning(UserWarning):
    """More than four principal reasons were configured (Reg B comment 9(b)(2)-1)."""


@dataclass(frozen=True)
class PrincipalReason:
    """One stated reason for adverse action, in rank order (1 = most important).

    ``text`` is the officer's and regulator's wording, ``customer_text`` what the applicant reads.
    ``field`` is the spec field behind the reason (the largest contributor when several fields share
    the reason; all of them are in ``fields``); None for an officer's reason given by key.
    ``attribution`` is the summed positive log-odds contribution of ``fields`` (model reasons only).
    """

    rank: int
    field: str | None
    key: str
    text: str
    customer_text: str
    hmda_code: int
    fcra_key_factor: str
    source: ReasonSource
    attribution: float | None
    fields: tuple[str, ...] = ()
    customer_text_es: str | None = None
    # A text-derived reason: the value its wording names (the category code; None when the text was blank).
    value: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready record of the reason (what an audit record stores)."""
        return {
            "rank": self.rank, "field": self.field, "fields": list(self.fields), "key": self.key,
            "text": self.text, "customer_text": self.customer_text, "customer_text_es": self.customer_text_es,
            "hmda_code": self.hmda_code, "fcra_key_factor": self.fcra_key_factor, "source": self.source,
            "attribution": self.attribution, "value": self.value,
        }


@dataclass(frozen=True)
class AdverseGroup:
    """Fields that pushed toward denial and share one reason key, with their summed contribution."""

    key: str
    fields: tuple[str, ...]  # largest contribution first
    total: float
    order: int  # spec position of the first field, the tie-break


# --- principal reasons ------------------------------------------------------------------------------

def _field_of(spec: ProductSpec, inputs: Mapping[str, FieldSpec], name: str) -> str | None:
    """The model input an attribution key belongs to: the field itself, or an encoded feature of it
    ("housing=rent", "ExternalRiskEstimate=-9"). None for anything that is not a model input."""
    if name in inputs:
        return name
    head, sep, _ = name.partition("=")
    if sep and head in inputs:
        return head
    return None


def adverse_groups(spec: ProductSpec, attributions: Mapping[str, float], *,
                   sources: Iterable[str] | None = None, exclude: Iterable[str] = ()) -> tuple[AdverseGroup, ...]:
    """Model inputs with a positive contribution, grouped by reason key, largest summed contribution first.

    Only model inputs of the spec count (Reg B comment 9(b)(2)-4: reasons "relate only to those factors
    actually scored"); anything else in ``attributions`` (a monitoring-only or unknown field) is ignored
    and logged. A group's total is the sum of its fields' positive contributions. Ties keep spec order.
    """
    inputs = {f.name: f for f in spec.model_inputs}
    positions = {name: i for i, name in enumerate(spec.field_names)}
    wanted = set(sources) if sources is not None else None
    skip = set(exclude)
    per_field: dict[str, float] = {}
    for name, raw in attributions.items():
        owner = _field_of(spec, inputs, str(name))
        if owner is None:
            logger.warning("product %s: attribution for %r ignored, it is not a model input", spec.slug, name)
            continue
        value = float(raw)
        if not math.isfinite(value):
            logger.warning("product %s: non-finite attribution for %r ignored", spec.slug, name)
            continue
        per_field[owner] = per_field.get(owner, 0.0) + value
    groups: dict[str, list[tuple[str, float]]] = {}
    for name, value in per_field.items():
        field_spec = inputs[name]
        if value <= 0.0 or name in skip or (wanted is not None and field_spec.source not in wanted):
            continue
        if not field_spec.reason:  # parse_spec refuses this; a hand-built spec may not
            raise ReasonError(f"product {spec.slug}: model input {name!r} has no reason")
        groups.setdefault(field_spec.reason, []).append((name, value))
    built = []
    for key, members in groups.items():
        members.sort(key=lambda item: (-item[1], positions[item[0]]))
        built.append(AdverseGroup(key=key, fields=tuple(name for name, _ in members),
                                  total=math.fsum(value for _, value in members),
                                  order=min(positions[name] for name, _ in members)))
    built.sort(key=lambda group: (-group.total, group.order))
    return tuple(built)


def neutral_fields(spec: ProductSpec, values: Mapping[str, Any] | None) -> frozenset[str]:
    """The model inputs whose value in ``values`` is one of their neutral categories."""
    if not values:
        return frozenset()
    return frozenset(f.name for f in spec.model_inputs if f.is_neutral(values.get(f.name)))


def _spanish_customer_text(spec: ProductSpec, reason: ProductReason) -> str | None:
    if reason.key in spec.reasons:
        translated = PRODUCT_REASON_ES.get((spec.slug, reason.key))
        return translated[0] if translated else None
    return FORM_C1_TEXT_ES.get(reason.key)


def _spanish_key_factor(spec: ProductSpec, reason: ProductReason) -> str | None:
    if reason.key in spec.reasons:
        translated = PRODUCT_REASON_ES.get((spec.slug, reason.key))
        return translated[1] if translated else None
    return FORM_C1_FCRA_KEY_FACTOR_ES.get(reason.key)


def _reason(spec: ProductSpec, key: str) -> ProductReason:
    try:
        return spec.reason_for(key)
    except KeyError:
        raise ReasonError(f"product {spec.slug}: {key!r} is neither a product reason nor a Form C-1 reason") \
            from None


# The wording of a text-derived reason when the applicant's text was blank (the field was missing).
NOT_STATED = {"en": "none given", "es": "no indicó ninguno"}


def _valued_field(spec: ProductSpec, reason: ProductReason, field_name: str | None) -> FieldSpec:
    """The text-derived field whose value a reason's wording names."""
    if field_name is not None:
        return spec.field(field_name)
    owners = [f for f in spec.model_inputs if f.reason == reason.key]
    if len(owners) != 1:
        raise ReasonError(f"product {spec.slug}: reason {reason.key!r} names a value but belongs to "
                          f"{len(owners)} fields; state it by the field's name")
    return owners[0]


def category_label(spec: ProductSpec, field_spec: FieldSpec, value: Any, language: str) -> str:
    """A category value in the customer's words (``PRODUCT_CATEGORY_ES`` for Spanish, else the spec's label)."""
    if value is None or value == "":
        return NOT_STATED[language]
    if language == "es":
        translated = PRODUCT_CATEGORY_ES.get((spec.slug, field_spec.name), {}).get(str(value))
        if translated:
            return translated
    return str(field_spec.category_labels.get(str(value), str(value)))


def _stated(spec: ProductSpec, reason: ProductReason, *, source: ReasonSource, field_name: str | None,
            fields: tuple[str, ...], attribution: float | None,
            values: Mapping[str, Any] | None = None) -> PrincipalReason:
    text, customer_text, key_factor = reason.text, reason.customer_text, reason.fcra_key_factor
    customer_text_es = _spanish_customer_text(spec, reason)
    value: str | None = None
    if any(VALUE_PLACEHOLDER in wording for wording in (text, customer_text, key_factor)):
        # A text-derived reason names the applicant's value (CFPB circular 2023-03): never stated without it.
        field_spec = _valued_field(spec, reason, field_name)
        if values is None:
            raise ReasonError(f"product {spec.slug}: reason {reason.key!r} names the value of "
                              f"{field_spec.name!r}; pass the decision's input values")
        raw = values.get(field_spec.name)
        value = None if raw is None or raw == "" else str(raw)
        if field_spec.is_neutral(value):
            # FCRA 604(g) / Reg V 1022.30, Reg B 1002.6(b): a neutral value is never a reason.
            raise ReasonError(f"product {spec.slug}: {field_spec.name} = {value!r} is neutral "
                              f"({field_spec.neutral_categories[str(value)]}) and cannot be stated as a reason")
        english = category_label(spec, field_spec, value, "en")
        text, customer_text, key_factor = (w.replace(VALUE_PLACEHOLDER, english)
                                           for w in (text, customer_text, key_factor))
        if customer_text_es is not None:
            customer_text_es = customer_text_es.replace(VALUE_PLACEHOLDER,
                                                        category_label(spec, field_spec, value, "es"))
        field_name = field_spec.name
    return PrincipalReason(rank=0, field=field_name, key=reason.key, text=text,
                           customer_text=customer_text, hmda_code=reason.hmda_code,
                           fcra_key_factor=key_factor, source=source, attribution=attribution,
                           fields=fields or ((field_name,) if field_name else ()),
                           customer_text_es=customer_text_es, value=value)


def _knockout(spec: ProductSpec, knockout_reason: str, values: Mapping[str, Any] | None = None) -> PrincipalReason:
    """The automatic-denial factor (Reg B comment 9(b)(2)-8), tied to the field its rule tests."""
    rules = [rule for rule in spec.policy.knockouts if knockout_reason in (rule.reason, rule.name)]
    if not rules:
        raise ReasonError(f"product {spec.slug}: {knockout_reason!r} is not the reason or name of a knockout")
    rule = rules[0]
    return _stated(spec, _reason(spec, rule.reason), source="knockout", field_name=rule.field,
                   fields=(rule.field,), attribution=None, values=values)


def _officer(spec: ProductSpec, factor: str, values: Mapping[str, Any] | None = None) -> PrincipalReason:
    """An officer's factor: a model input's name, a reason key, or "other: <specific wording>"."""
    factor = factor.strip()
    if factor.lower().startswith(OTHER_PREFIX):
        # Form C-1 "Other, specify": the officer's own specific wording; HMDA code 9.
        wording = factor[len(OTHER_PREFIX):].strip()
        if not wording:
            raise ReasonError("an officer's 'other:' reason needs its specific wording")
        other = FORM_C1_BY_KEY["other"]
        return PrincipalReason(rank=0, field=None, key=other.key, text=wording, customer_text=wording,
                               hmda_code=other.hmda_code, fcra_key_factor=wording, source="officer",
                               attribution=None)
    if factor in spec.field_names:
        field_spec = spec.field(factor)
        if not field_spec.is_model_input or not field_spec.reason:
            raise ReasonError(f"product {spec.slug}: field {factor!r} ({field_spec.role}) has no adverse-action "
                              "reason; state the factor by its reason key")
        return _stated(spec, _reason(spec, field_spec.reason), source="officer", field_name=factor,
                       fields=(factor,), attribution=None, values=values)
    if factor == "other":
        raise ReasonError("'other' needs the specific wording: pass 'other: <wording>'")
    return _stated(spec, _reason(spec, factor), source="officer", field_name=None, fields=(), attribution=None,
                   values=values)


def _check_sufficient(reason: PrincipalReason) -> None:
    """Reg B 1002.9(b)(2): never emit a statement that the regulation calls insufficient."""
    for wording in (reason.text, reason.customer_text):
        phrase = insufficient_phrase_in(wording)
        if phrase:
            raise InsufficientReason(f"reason {reason.key!r} says {phrase!r}, which Reg B 1002.9(b)(2) calls "
                                     "insufficient")
    if reason.customer_text_es:
        phrase = insufficient_phrase_in_es(reason.customer_text_es)
        if phrase:
            raise InsufficientReason(f"reason {reason.key!r} (Spanish) says {phrase!r}, which Reg B "
                                     "1002.9(b)(2) calls insufficient")


def _check_limit(limit: int) -> None:
    if limit < 1:
        raise ValueError("the reason limit must be at least 1")
    if limit > MAX_REASONS:
        message = (f"reason limit {limit} is above {MAX_REASONS}: Reg B comment 9(b)(2)-1 says more than four "
                   "reasons is not likely to be helpful to the applicant")
        logger.warning(message)
        warnings.warn(message, ReasonLimitWarning, stacklevel=3)


def principal_reasons(spec: ProductSpec, *, attributions: Mapping[str, float], knockout_reason: str | None,
                      officer_factors: Sequence[str] | None = None,
                      limit: int = MAX_REASONS,
                      values: Mapping[str, Any] | None = None) -> tuple[PrincipalReason, ...]:
    """The principal reasons for adverse action, most important first.

    * A knockout (policy) reason comes first (comment 9(b)(2)-8), then the model's adverse groups.
    * Only model inputs with a positive contribution count; fields sharing a reason key are one reason
      ranked by their summed contribution.
    * ``officer_factors`` (an officer decided or overrode: comments 9(b)(2)-6 and -7): the reasons are
      exactly the officer's factors, in the officer's order, and the model's are ignored. Each factor is
      a model input's name, a reason key, or ``"other: <specific wording>"``. More factors than ``limit``
      raise rather than drop one (comment 9(b)(2)-4: no principal reason may be left out). If a knockout
      fired, the officer's factors must include it.
    * At most ``limit`` reasons (default four; above four warns, comment 9(b)(2)-1).
    * Raises ``InsufficientReason`` if any wording is one that 1002.9(b)(2) calls insufficient.
    * ``values``: the decision's input values. A text-derived field's reason names its value ("Stated loan
      purpose: starting or running a small business"); such a reason without ``values`` raises ReasonError.
    """
    _check_limit(limit)
    stated: list[PrincipalReason] = []
    if officer_factors is not None:
        if not officer_factors:
            raise ReasonError("an officer's decision needs the factors the officer relied on")
        for factor in officer_factors:
            reason = _officer(spec, factor, values)
            if all(reason.key != seen.key or reason.key == "other" for seen in stated) and reason not in stated:
                stated.append(reason)
        if len(stated) > limit:
            raise ReasonError(f"the officer gave {len(stated)} distinct factors; at most {limit} can be stated "
                              "(Reg B comment 9(b)(2)-1); rank the principal ones")
        if knockout_reason is not None:
            knockout = _knockout(spec, knockout_reason, values)
            if knockout.key not in {reason.key for reason in stated}:
                raise ReasonError(f"a knockout ({knockout.key!r}) decided this application; the officer's factors "
                                  "must include it (Reg B comment 9(b)(2)-8)")
    else:
        if knockout_reason is not None:
            stated.append(_knockout(spec, knockout_reason, values))
        # Defence in depth: the encoder already scores a neutral value as its reference level; a field
        # holding a neutral value is still never a principal reason (FCRA 604(g), Reg B 1002.6(b)).
        neutral = neutral_fields(spec, values)
        for group in adverse_groups(spec, attributions, exclude=neutral):
            if len(stated) >= limit:
                break
            if any(group.key == reason.key for reason in stated):
                continue
            stated.append(_stated(spec, _reason(spec, group.key), source="model", field_name=group.fields[0],
                                  fields=group.fields, attribution=group.total, values=values))
    ranked = tuple(replace(reason, rank=index) for index, reason in enumerate(stated, start=1))
    for reason in ranked:
        _check_sufficient(reason)
    return ranked


# --- the reasons lint (CI: Reg B Appendix C para. 4, circular 2023-03's substance) ------------------

# Name tokens that mark a model input as behavioural data (how the applicant spends, pays, browses or
# uses a device): such an input must state the specific behaviour, never a Form C-1 category alone.
BEHAVIOURAL_TOKENS = frozenset({
    "behaviour", "behavior", "behavioural", "behavioral", "purchase", "purchases", "purchasing", "spending",
    "spend", "transaction", "transactions", "merchant", "merchants", "cashflow", "browsing", "clickstream",
    "device", "app", "session", "sessions", "shopping", "subscription", "subscriptions", "gambling",
})


def is_behavioural(field_spec: FieldSpec) -> bool:
    """Whether a field is behavioural data, judged from its name (``BEHAVIOURAL_TOKENS``)."""
    return bool(name_tokens(field_spec.name) & BEHAVIOURAL_TOKENS)


def reasons_lint(spec: ProductSpec, *, behavioural_fields: Iterable[str] = ()) -> list[str]:
    """Problems with a spec's reason mapping; empty when every model input has a specific reason.

    * every model input names a reason that exists (a product reason or a Form C-1 reason);
    * no model input relies on a generic Form C-1 reason ("Credit application incomplete", "Other", ...);
    * text-derived inputs (source "text") and behavioural ones (``behavioural_fields`` or a name with a
      ``BEHAVIOURAL_TOKENS`` token) use a product reason that names the behaviour, not a Form C-1 reason;
    * no reason wording is one that Reg B 1002.9(b)(2) calls insufficient;
    * every knockout has a specific reason.
    """
    problems: list[str] = []
    behavioural = set(behavioural_fields)
    for name in sorted(behavioural - set(spec.field_names)):
        problems.append(f"{spec.slug}: behavioural field {name!r} is not a field of the product")
    for field_spec in spec.model_inputs:
        where = f"{spec.slug}: model input {field_spec.name!r}"
        if not field_spec.reason:
            problems.append(f"{where} has no adverse-action reason")
            continue
        try:
            reason = spec.reason_for(field_spec.reason)
        except KeyError:
            problems.append(f"{where} names unknown reason {field_spec.reason!r}")
            continue
        is_product_reason = field_spec.reason in spec.reasons
        if not is_product_reason and is_generic_reason(field_spec.reason):
            problems.append(f"{where} maps to the generic Form C-1 reason {reason.text!r}")
        kind = "text-derived" if field_spec.source == "text" else (
            "behavioural" if field_spec.name in behavioural or is_behavioural(field_spec) else None)
        if kind and not is_product_reason:
            problems.append(f"{where} is {kind} and maps to the Form C-1 reason {reason.text!r}; it needs a "
                            "product reason naming the specific behaviour")
        elif kind == "text-derived" and VALUE_PLACEHOLDER not in reason.customer_text:
            problems.append(f"{where} is text-derived and its reason {reason.key!r} does not name the stated "
                            f"value ({VALUE_PLACEHOLDER})")
        for wording in (reason.text, reason.customer_text):
            phrase = insufficient_phrase_in(wording)
            if phrase:
                problems.append(f"{where}: reason {reason.key!r} says {phrase!r} (insufficient, 1002.9(b)(2))")
    for rule in spec.policy.knockouts:
        if rule.reason not in spec.reasons and (rule.reason not in FORM_C1_BY_KEY or is_generic_reason(rule.reason)):
            problems.append(f"{spec.slug}: knockout {rule.name!r} has no specific reason ({rule.reason!r})")
    return problems


def reason_translations_lint(spec: ProductSpec) -> list[str]:
    """Reasons a Spanish notice of this product could state but has no Spanish wording for."""
    problems = []
    keys = {f.reason for f in spec.model_inputs if f.reason} | {rule.reason for rule in spec.policy.knockouts}
    bureau_keys = {f.reason for f in spec.model_inputs if f.reason and f.source == "bureau"}
    for key in sorted(keys):
        reason = spec.reason_for(key)
        if _spanish_customer_text(spec, reason) is None:
            problems.append(f"{spec.slug}: reason {key!r} has no Spanish customer wording")
        if key in bureau_keys and _spanish_key_factor(spec, reason) is None:
            problems.append(f"{spec.slug}: reason {key!r} has no Spanish key-factor wording")
    for field_spec in spec.derived_fields:
        if not field_spec.is_model_input or not field_spec.reason:
            continue
        wording = _spanish_customer_text(spec, spec.reason_for(field_spec.reason))
        if wording is not None and VALUE_PLACEHOLDER not in wording:
            problems.append(f"{spec.slug}: the Spanish wording of {field_spec.reason!r} does not name the value "
                            f"({VALUE_PLACEHOLDER})")
        labels = PRODUCT_CATEGORY_ES.get((spec.slug, field_spec.name), {})
        missing = [c for c in field_spec.categories if not labels.get(c)]
        if missing:
            problems.append(f"{spec.slug}: {field_spec.name!r} has no Spanish label for categories {missing}")
    return problems


# --- FCRA 615(a) and the credit score disclosure -----------------------------------------------------

_TOLL_FREE = re.compile(r"^(?:\+?1[\s.-]?)?\(?(800|833|844|855|866|877|888)\)?[\s.-]?\d{3}[\s.-]?\d{4}$")


@dataclass(frozen=True)
class BureauInfo:
    """The consumer reporting agency whose report was used (FCRA 615(a)(3)(A))."""

    name: str
    address: str
    phone: str
    # A nationwide agency (FCRA 603(p)) must be listed with its toll-free number.
    nationwide: bool = True

    def __post_init__(self) -> None:
        if not (self.name.strip() and self.address.strip() and self.phone.strip()):
            raise ValueError("a consumer reporting agency needs its name, address and telephone number")
        if self.nationwide and not _TOLL_FREE.match(self.phone.strip()):
            raise ValueError(f"{self.name}: a nationwide consumer reporting agency is listed with its toll-free "
                             f"number (FCRA 615(a)(3)(A)); {self.phone!r} is not one")


# Clearly fictional: 555-01xx numbers are reserved for fiction and P.O. Box 0000 does not exist. Products
# name their real bureau in the spec's [creditor] table (bureau_name, bureau_address, bureau_phone).
EXAMPLE_BUREAU = BureauInfo(name="Example Credit Bureau, Inc.", address="P.O. Box 0000, Springfield, IL 62701",
                            phone="1-800-555-0199", nationwide=True)

# The field that carries the bureau score, per product, unless the spec's [creditor] table says
# ``bureau_score_field``. HELOC's ExternalRiskEstimate is a consolidated bureau risk score (0-100 in the
# spec), so it is disclosed as the credit score (FCRA 609(f)(2)(A): "a numerical value ... derived from a
# statistical tool or modeling system ... to predict the likelihood of certain credit behaviors").
BUREAU_SCORE_FIELDS: dict[str, str] = {"demo": "credit_score", "heloc": "ExternalRiskEstimate"}


def bureau_for(spec: ProductSpec) -> BureauInfo:
    """The product's consumer reporting agency: from the spec's [creditor] table, else EXAMPLE_BUREAU."""
    creditor = spec.creditor
    if "bureau_name" not in creditor:
        return EXAMPLE_BUREAU
    return BureauInfo(name=creditor["bureau_name"], address=creditor.get("bureau_address", ""),
                      phone=creditor.get("bureau_phone", ""),
                      nationwide=creditor.get("bureau_nationwide", "true").lower() in ("true", "yes", "1"))


def bureau_score_field(spec: ProductSpec) -> str | None:
    """The model input holding the bureau credit score, or None if the product scores without one."""
    name = spec.creditor.get("bureau_score_field") or BUREAU_SCORE_FIELDS.get(spec.slug)
    return name if name and name in spec.field_names else None


@dataclass(frozen=True)
class KeyFactor:
    """A key factor that adversely affected the credit score (FCRA 609(f)(1)(C))."""

    rank: int
    key: str  # the reason key of the bureau fields behind it
    text: str
    text_es: str | None
    is_inquiries: bool  # the number-of-inquiries factor of 609(f)(9)


@dataclass(frozen=True)
class CreditScoreDisclosure:
    """The FCRA 615(a) consumer-report disclosure and, when a score was used, the 609(f) score disclosure.

    ``score`` is None when a consumer report was used but it yielded no numerical score (e.g. no bureau
    record): the 615(a) part (agency, no part in the decision, free report within 60 days, dispute) is
    still owed, the score part is not.
    """

    bureau: BureauInfo
    score: int | None = None
    score_range: tuple[int, int] | None = None
    score_date: dt.date | None = None
    score_source: str | None = None
    key_factors: tuple[KeyFactor, ...] = ()

    def __post_init__(self) -> None:
        if self.score is None:
            if self.key_factors:
                raise ValueError("key factors are disclosed with a credit score, and there is none")
            return
        if self.score_range is None or self.score_date is None or not self.score_source:
            raise ValueError("a disclosed credit score needs its range, date and source (FCRA 609(f)(1))")
        low, high = self.score_range
        if not low <= self.score <= high:
            raise ValueError(f"score {self.score} is outside its range {low}-{high}")
        # 609(f)(1)(C) and (f)(9): four key factors, plus the inquiries factor when it is not among them.
        factors = self.key_factors
        fifth_ok = len(factors) == MAX_KEY_FACTORS + 1 and factors[-1].is_inquiries and not any(
            factor.is_inquiries for factor in factors[:MAX_KEY_FACTORS])
        if len(factors) > MAX_KEY_FACTORS and not fifth_ok:
            raise ValueError("at most four key factors; a fifth only when it is the number-of-inquiries factor "
                             "(FCRA 609(f)(9))")

    @property
    def has_score(self) -> bool:
        return self.score is not None


def is_inquiries_reason(reason: ProductReason) -> bool:
    """Whether a reason is the number-of-inquiries factor of FCRA 609(f)(9) (a count of inquiries, not the
    time since the last one)."""
    about_inquiries = reason.key == "recent_inquiries" or reason.form_reason == "recent_inquiries"
    wording = f"{reason.text} {reason.fcra_key_factor}".lower()
    return about_inquiries and "number" in wording


def credit_score_disclosure(spec: ProductSpec, *, values: Mapping[str, Any], attributions: Mapping[str, float],
                            bureau: BureauInfo, score_field: str | None, score_date: dt.date | None,
                            score_range: tuple[int, int] | None = None,
                            score_source: str | None = None) -> CreditScoreDisclosure | None:
    """The FCRA section of the notice, or None when no consumer-report information was used.

    The score is ``values[score_field]`` (None when the field is missing, empty or a special value such as
    HELOC's -9 "no bureau record"); its range defaults to the field's declared min and max, its source to
    the bureau. Key factors: the bureau-sourced model inputs (other than the score itself) that pushed
    toward denial, grouped by reason, in order of importance, in ``fcra_key_factor`` wording; at most
    four, plus the number-of-inquiries factor as a fifth when it is adverse but not among the four
    (609(f)(9)).

    They come from this creditor's model, because the bureau's own score reason codes are not in the
    application data; a deployment that receives the bureau's key factors should disclose those.
    """
    bureau_inputs = [f for f in spec.model_inputs if f.source == "bureau"]
    if not bureau_inputs:
        return None
    if score_field is None:
        return CreditScoreDisclosure(bureau=bureau)
    score_spec = spec.field(score_field)
    if not score_spec.is_model_input or score_spec.source != "bureau":
        raise ValueError(f"product {spec.slug}: {score_field!r} is not a bureau-sourced model input")
    raw = values.get(score_field)
    if raw is None or raw == "" or (int(float(raw)) in score_spec.special_values and float(raw).is_integer()):
        return CreditScoreDisclosure(bureau=bureau)
    number = float(raw)
    if not number.is_integer():
        raise ValueError(f"credit score {raw!r} is not a whole number")
    if score_range is None:
        if score_spec.minimum is None or score_spec.maximum is None:
            raise ValueError(f"product {spec.slug}: give the score range; {score_field!r} declares none")
        score_range = (int(score_spec.minimum), int(score_spec.maximum))
    if score_date is None:
        raise ValueError("a disclosed credit score needs the date it was created (FCRA 609(f)(1)(D))")
    groups = adverse_groups(spec, attributions, sources=("bureau",), exclude=(score_field,))
    candidates: list[KeyFactor] = []
    seen_text: set[str] = set()
    for group in groups:
        reason = _reason(spec, group.key)
        if reason.fcra_key_factor.lower() in seen_text:  # two reasons, one key-factor wording: say it once
            continue
        seen_text.add(reason.fcra_key_factor.lower())
        candidates.append(KeyFactor(rank=0, key=reason.key, text=reason.fcra_key_factor,
                                    text_es=_spanish_key_factor(spec, reason),
                                    is_inquiries=is_inquiries_reason(reason)))
    chosen = candidates[:MAX_KEY_FACTORS]
    if not any(factor.is_inquiries for factor in chosen):
        chosen += [factor for factor in candidates[MAX_KEY_FACTORS:] if factor.is_inquiries][:1]
    factors = tuple(replace(factor, rank=index) for index, factor in enumerate(chosen, start=1))
    return CreditScoreDisclosure(bureau=bureau, score=int(number), score_range=score_range, score_date=score_date,
                                 score_source=score_source or bureau.name, key_factors=factors)


# --- HMDA (Reg C 1003.4(a)(16)) -----------------------------------------------------------------------

HMDA_OTHER = 9
HMDA_NOT_APPLICABLE = 10
HMDA_MAX_CODES = 4
HMDA_OTHER_TEXT_MAX = 255  # the Filing Instructions Guide's limit for the code-9 free-form text field
HMDA_CREDIT_TYPES = ("mortgage", "heloc")  # dwelling-secured: closed-end mortgages and open-end lines


class HmdaEditError(ValueError):
    """A denial-reason record that the HMDA platform's edits would reject; ``edit`` names the edit."""

    def __init__(self, edit: str, message: str) -> None:
        self.edit = edit
        super().__init__(f"{edit}: {message}")


@dataclass(frozen=True)
class HmdaDenial:
    """HMDA reasons for denial: up to four codes and, with code 9, the free text. Validated on creation."""

    codes: tuple[int, ...]
    other_text: str | None = None

    def __post_init__(self) -> None:
        codes = self.codes
        if not codes:
            raise HmdaEditError("V669-1", "reason for denial 1 must be a code from 1 to 10")
        if any(code not in range(1, 11) for code in codes):
            raise HmdaEditError("V669-1", f"codes must be 1 to 10, got {list(codes)}")
        if len(codes) > HMDA_MAX_CODES:
            raise HmdaEditError("V669-2", f"at most four reasons for denial, got {len(codes)}")
        if len(set(codes)) != len(codes):
            raise HmdaEditError("V669-3", f"a reason for denial is repeated: {list(codes)}")
        if HMDA_NOT_APPLICABLE in codes and codes != (HMDA_NOT_APPLICABLE,):
            raise HmdaEditError("V669-4", "code 10 (not applicable) is reported alone")
        text = (self.other_text or "").strip()
        if HMDA_OTHER in codes and not text:
            raise HmdaEditError("V671-1", "code 9 (other) needs its free-form text")
        if text and HMDA_OTHER not in codes:
            raise HmdaEditError("V671-2", "free-form text is reported only with code 9 (other)")
        if len(text) > HMDA_OTHER_TEXT_MAX:
            raise HmdaEditError("V671-1", f"the free-form text is limited to {HMDA_OTHER_TEXT_MAX} characters")

    @property
    def not_applicable(self) -> bool:
        return self.codes == (HMDA_NOT_APPLICABLE,)


def hmda_applies(spec: ProductSpec) -> bool:
    """Whether the product's applications are HMDA-reportable loans (dwelling-secured credit)."""
    return spec.credit_type in HMDA_CREDIT_TYPES


def hmda_other_text(reasons: Sequence[PrincipalReason]) -> str | None:
    """The stated "Other" reasons as HMDA free text (comment 4(a)(16)-3), or None if there are none."""
    texts = [reason.text for reason in reasons if reason.hmda_code == HMDA_OTHER]
    if not texts:
        return None
    joined = "; ".join(dict.fromkeys(texts))
    return joined if len(joined) <= HMDA_OTHER_TEXT_MAX else joined[:HMDA_OTHER_TEXT_MAX - 1].rstrip() + "…"


def hmda_denial_codes(reasons: Sequence[PrincipalReason], *, denied: bool, other_text: str | None) -> HmdaDenial:
    """HMDA denial-reason codes for an action: the stated reasons' codes (rank order, deduplicated, at most
    four; comment 4(a)(16)-1) when denied, otherwise code 10 alone.

    Edits enforced (HMDA platform): V669 (codes 1-10, at most four, no repeats, 10 alone), V670 (10 if and
    only if not denied), V671-1/2 (code 9 if and only if free text). Raises ``HmdaEditError`` otherwise.
    """
    if not denied:
        if other_text and other_text.strip():
            raise HmdaEditError("V671-2", "free-form text is reported only with code 9, and this is not a denial")
        return HmdaDenial(codes=(HMDA_NOT_APPLICABLE,))
    if not reasons:
        raise HmdaEditError("V670-1", "a denial reports at least one reason for denial (not code 10)")
    codes = tuple(dict.fromkeys(reason.hmda_code for reason in sorted(reasons, key=lambda r: r.rank)))
    if HMDA_NOT_APPLICABLE in codes:
        raise HmdaEditError("V670-1", "code 10 (not applicable) cannot be reported for a denial")
    return HmdaDenial(codes=codes[:HMDA_MAX_CODES], other_text=other_text.strip() if other_text else None)


# --- Spanish wording of the shipped products' own reasons (a translation; English is authoritative) ----
# (product slug, reason key) -> (customer wording, FCRA key-factor wording or None when the reason is not
# a bureau factor). reason_translations_lint checks that every shipped reason has one.
PRODUCT_REASON_ES: dict[tuple[str, str], tuple[str, str | None]] = {
    # hmda-boston (chist, mhist and phist are bureau factors: they need key-factor wording too)
    ("hmda-boston", "consumer_credit_history"): (
        "Su historial de pago de crédito de consumo: pagos lentos o atrasados, o muy poco historial de crédito",
        "Pagos lentos o morosos en crédito de consumo, o historial de crédito de consumo insuficiente"),
    ("hmda-boston", "mortgage_payment_history"): (
        "Su historial de pago de hipotecas: pagos de hipoteca atrasados, o ningún historial de pago de hipotecas",
        "Pagos de hipoteca atrasados, o ningún historial de pago de hipotecas"),
    ("hmda-boston", "public_record"): (
        "Un registro público de problemas de crédito, como una quiebra, una sentencia, un gravamen o una acción "
        "de cobro",
        "Registro público negativo o cobro registrado"),
    ("hmda-boston", "mortgage_insurance_denied"): (
        "La compañía de seguro hipotecario rechazó su solicitud de seguro hipotecario", None),
    ("hmda-boston", "self_employment"): (
        "Sus ingresos provienen del trabajo por cuenta propia, que son menos estables y más difíciles de "
        "documentar que un salario", None),
    # demo
    ("demo", "loan_term"): ("El plazo del préstamo que solicitó", None),
    ("demo", "housing_status"): ("Su situación de vivienda", None),
    ("demo", "bureau_score"): ("Su puntaje de crédito de la agencia de crédito",
                               "Puntaje de riesgo de la agencia de crédito"),
    ("demo", "revolving_utilization"): (
        "La parte de su crédito rotativo disponible (como tarjetas de crédito) que está utilizando",
        "Proporción demasiado alta de saldos respecto de los límites de crédito en cuentas rotativas"),
    ("demo", "number_of_accounts"): ("El número de cuentas de crédito abiertas en su informe de crédito",
                                     "Número de cuentas de crédito abiertas"),
    ("demo", "public_records"): (
        "Registros públicos, como una quiebra, una sentencia o un gravamen fiscal, en su informe de crédito",
        "Registro público negativo o cobro registrado"),
    ("demo", "stated_purpose"): ("El destino del préstamo que nos indicó: {value}", None),
    ("demo", "stated_employment_type"): ("El tipo de empleo que nos indicó: {value}", None),
    # heloc
    ("heloc", "external_risk_estimate_low"): (
        "La estimación de riesgo consolidada calculada a partir de su informe de crédito es demasiado baja",
        "Estimación de riesgo consolidada de la agencia de crédito demasiado baja"),
    ("heloc", "oldest_trade_too_recent"): ("Su cuenta de crédito más antigua se abrió hace muy poco tiempo",
                                           "Tiempo desde la apertura de las cuentas"),
    ("heloc", "newest_trade_too_recent"): ("Abrió una cuenta de crédito hace muy poco tiempo",
                                           "Tiempo desde la apertura de la cuenta más reciente demasiado corto"),
    ("heloc", "average_months_in_file_short"): ("La antigüedad promedio de sus cuentas de crédito es demasiado corta",
                                                "Antigüedad promedio de las cuentas"),
    ("heloc", "few_satisfactory_trades"): ("Muy pocas de sus cuentas de crédito se han pagado según lo acordado",
                                           "Número demasiado bajo de cuentas pagadas según lo acordado"),
    ("heloc", "trades_60_days_late"): (
        "El número de sus cuentas de crédito que alguna vez tuvieron 60 días o más de atraso o fueron negativas",
        "Número de cuentas con 60 días o más de atraso o negativas"),
    ("heloc", "trades_90_days_late"): (
        "El número de sus cuentas de crédito que alguna vez tuvieron 90 días o más de atraso o fueron negativas",
        "Número de cuentas con 90 días o más de atraso o negativas"),
    ("heloc", "low_percent_never_delinquent"): ("Una parte demasiado pequeña de sus cuentas de crédito nunca ha "
                                                "tenido atrasos",
                                                "Proporción demasiado baja de cuentas sin atrasos"),
    ("heloc", "recent_delinquency"): ("Se atrasó en una cuenta de crédito hace muy poco tiempo",
                                      "Tiempo desde el último atraso demasiado corto"),
    ("heloc", "worst_delinquency_12m"): (
        "La gravedad de sus atrasos en una cuenta de crédito, o un registro público, en los últimos 12 meses",
        "Atraso grave o registro público en los últimos 12 meses"),
    ("heloc", "worst_delinquency_ever"): ("La gravedad del peor atraso que ha tenido en una cuenta de crédito",
                                         "Atraso grave"),
    ("heloc", "total_trades"): ("El número total de cuentas de crédito en su informe de crédito",
                                "Número de cuentas en el informe de crédito"),
    ("heloc", "trades_opened_12m"): ("Abrió demasiadas cuentas de crédito en los últimos 12 meses",
                                     "Número de cuentas abiertas en los últimos 12 meses"),
    ("heloc", "percent_instalment_trades"): ("La proporción de préstamos a plazos entre sus cuentas de crédito",
                                             "Proporción de préstamos a plazos entre las cuentas"),
    ("heloc", "recent_inquiry"): ("Solicitó crédito hace muy poco tiempo",
                                  "Tiempo desde la consulta más reciente demasiado corto"),
    ("heloc", "inquiries_6m"): ("Hubo demasiadas consultas de crédito sobre usted en los últimos 6 meses",
                                "Número de consultas en los últimos 6 meses"),
    ("heloc", "inquiries_6m_excl_7_days"): (
        "Hubo demasiadas consultas de crédito sobre usted en los últimos 6 meses, sin contar los últimos 7 días",
        "Número de consultas en los últimos 6 meses, sin contar los últimos 7 días"),
    ("heloc", "revolving_burden"): (
        "Los saldos de sus cuentas rotativas (como tarjetas de crédito) son demasiado altos en comparación con sus "
        "límites",
        "Proporción demasiado alta de saldos respecto de los límites de crédito en cuentas rotativas"),
    ("heloc", "instalment_burden"): (
        "Los saldos de sus préstamos a plazos son demasiado altos en comparación con los montos prestados "
        "originalmente",
        "Proporción demasiado alta de saldos respecto de los montos originales de los préstamos"),
    ("heloc", "revolving_trades_with_balance"): (
        "El número de sus cuentas rotativas (como tarjetas de crédito) que tienen saldo",
        "Número de cuentas rotativas con saldo"),
    ("heloc", "instalment_trades_with_balance"): ("El número de sus préstamos a plazos que tienen saldo",
                                                  "Número de préstamos a plazos con saldo"),
    ("heloc", "high_utilization_bank_trades"): (
        "Demasiadas de sus tarjetas de crédito bancarias o nacionales están cerca de su límite",
        "Número de cuentas rotativas bancarias o nacionales con saldos altos en comparación con sus límites"),
    ("heloc", "percent_trades_with_balance"): ("La proporción de sus cuentas de crédito que tienen saldo",
                                               "Proporción de cuentas con saldo"),
    # german-credit (no bureau fields: no key-factor wording needed)
    ("german-credit", "checking_account_status"): (
        "El saldo de su cuenta corriente con nosotros es demasiado bajo, o la cuenta está sobregirada", None),
    ("german-credit", "loan_duration"): ("El plazo del préstamo que solicitó", None),
    ("german-credit", "credit_history"): ("Su historial de pago de créditos anteriores y actuales", None),
    ("german-credit", "loan_purpose"): ("El destino del préstamo", None),
    ("german-credit", "credit_amount"): ("El monto de crédito que solicitó es demasiado alto", None),
    ("german-credit", "savings"): ("El saldo de sus cuentas de ahorro y bonos es demasiado bajo", None),
    ("german-credit", "instalment_rate"): (
        "La cuota es demasiado alta en comparación con su ingreso disponible", None),
    ("german-credit", "other_debtors"): ("No hay un cosolicitante ni un garante en su solicitud", None),
    ("german-credit", "property"): ("El tipo de bienes o activos que posee", None),
    ("german-credit", "other_instalment_plans"): ("Sus otros planes de pago a plazos con bancos o tiendas", None),
    ("german-credit", "housing_status"): ("Su situación de vivienda", None),
    ("german-credit", "existing_credits"): ("El número de créditos que ya tiene con nosotros", None),
    ("german-credit", "job"): ("Su tipo de empleo", None),
    ("german-credit", "people_liable"): ("El número de personas que mantiene económicamente", None),
}

# Spanish labels of the values of text-derived fields, which their reasons name: (product slug, field) ->
# {category: label}. reason_translations_lint checks that every category has one.
PRODUCT_CATEGORY_ES: dict[tuple[str, str], dict[str, str]] = {
    ("demo", "purpose_category"): {
        "debt_consolidation": "consolidar deudas", "credit_card": "pagar tarjetas de crédito",
        "home_improvement": "mejoras en el hogar", "major_purchase": "una compra importante",
        "medical": "gastos médicos", "car": "comprar un automóvil",
        "small_business": "iniciar o administrar un pequeño negocio", "vacation": "unas vacaciones",
        "moving": "una mudanza", "wedding": "una boda", "other": "un destino distinto de los que ofrecemos"},
    ("demo", "employment_type"): {
        "salaried": "empleado asalariado", "hourly": "pagado por hora", "self_employed": "trabajador por cuenta propia",
        "contract_or_gig": "trabajo por contrato o por encargo", "retired": "jubilado",
        "unemployed_or_student": "sin empleo, o estudiante", "public_sector": "empleado del sector público"},
}
