"""Plain-language decision narratives, and the checks a drafted one must pass before a customer sees it.

A narrative is written from ``NarrativeFacts``: the outcome, the product, the principal reasons (each
with the customer's wording, the field it is about and the value as shown) and the numbers and dates
that may appear. ``template_narrative`` writes one deterministically, in English or Spanish.
``draft_narrative`` asks a generative model (an OpenAI-compatible chat endpoint) for a friendlier
draft, checks it with ``verify_narrative`` and falls back to the template when the draft fails a
check or the model fails; the rejected draft and the failures come back so the caller can log them
for compliance. The template is what the record relies on; a model draft is only ever a rewording.

The checks (``verify_narrative``):

* ``unknown_factor``: the draft mentions a credit factor (from a vocabulary of factor terms per
  topic, English and Spanish) that is not among the stated principal reasons (Reg B 1002.9(b)(2):
  the reasons given must be the ones actually used).
* ``missing_reason``: a denial that leaves out a stated principal reason.
* ``number_mismatch``: a number in the draft that is not in the record. Formatting is tolerated
  (12000 = 12,000 = $12,000.00 = 12.000 = 12.000,00), as is rounding to the precision shown.
* ``prohibited_basis``: the draft mentions a prohibited basis (Reg B 1002.2(z), 1002.6(b): race,
  color, religion, national origin, sex, marital status, age, public assistance, ...), matched on
  word boundaries, English and Spanish.
* ``promise``: the draft promises approval ("you will be approved", "guaranteed", "te aprobaremos").
* ``outcome_mismatch``: the draft states another outcome than the decision's.
* ``empty``/``too_long``: nothing usable, or more than ``MAX_CHARS`` characters.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Protocol

OUTCOMES = ("approved", "denied", "referred")
LANGUAGES = ("en", "es")
MAX_CHARS = 2500


@dataclass(frozen=True)
class NarrativeReason:
    """A principal reason as the customer reads it."""

    key: str  # the reason key (product reason or Form C-1)
    customer_text: str  # in the narrative's language
    field: str  # the field it is about
    value: str = ""  # the applicant's value as shown ("640", "85.5%", "Rent")


@dataclass(frozen=True)
class NarrativeFacts:
    """Everything a narrative may say. Nothing else may appear in it."""

    outcome: str  # "approved", "denied" or "referred"
    product_name: str
    reasons: tuple[NarrativeReason, ...] = ()
    numbers: Mapping[str, Any] = field(default_factory=dict)  # amount, rate, term_months, score, ...
    dates: Mapping[str, dt.date] = field(default_factory=dict)
    language: str = "en"
    creditor_name: str = ""
    currency: str = "USD"

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, got {self.outcome!r}")
        if self.language not in LANGUAGES:
            raise ValueError(f"language must be one of {LANGUAGES}, got {self.language!r}")


@dataclass(frozen=True)
class VerificationResult:
    passed: bool
    failures: tuple[tuple[str, str], ...]  # (rule, detail)

    @property
    def rules(self) -> set[str]:
        return {rule for rule, _ in self.failures}


@dataclass(frozen=True)
class NarrativeOutcome:
    text: str
    source: str  # "template" or "model"
    rejected_draft: str | None = None
    failures: tuple[tuple[str, str], ...] = ()
    model: str = ""  # the generative model asked, if any


class ChatModel(Protocol):
    """What draft_narrative needs of a provider (scoring.language.OpenAICompatibleProvider has it)."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    def complete(self, messages: Sequence[Mapping[str, str]], *, max_tokens: int = 400,
                 temperature: float = 0.0) -> str: ...


# --- vocabularies ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class FactorTopic:
    en: tuple[str, ...]
    es: tuple[str, ...]

    def terms(self) -> tuple[str, ...]:
        return self.en + self.es


# Credit factors a narrative may talk about, by topic. A term is matched on word boundaries,
# case-insensitively; a trailing "*" matches any ending ("delinquen*").
FACTOR_TOPICS: dict[str, FactorTopic] = {
    "credit_score": FactorTopic(
        ("credit score", "bureau score", "risk score", "fico", "credit rating"),
        ("puntaje de crédito", "puntaje crediticio", "puntuación de crédito", "puntuación crediticia",
         "calificación crediticia", "puntaje de la agencia")),
    "utilization": FactorTopic(
        ("utilization", "utilisation", "revolving credit", "credit limit*", "revolving balance*",
         "credit card balance*", "balances to credit limits"),
        ("utilización", "crédito renovable", "crédito rotativo", "límite* de crédito", "saldos de tarjeta*")),
    "delinquency": FactorTopic(
        ("delinquen*", "late payment*", "past due", "missed payment*", "days late"),
        ("morosidad", "moroso*", "morosa*", "pago* atrasado*", "pago* tardío*", "atraso*", "vencido*")),
    "inquiries": FactorTopic(
        ("inquiries", "inquiry", "credit check*", "recent applications for credit"),
        ("consultas de crédito", "consultas recientes", "número de consultas", "consultas en su informe",
         "solicitudes de crédito recientes")),
    "accounts": FactorTopic(
        ("open accounts", "number of accounts", "open credit accounts", "credit accounts", "credit references",
         "trade lines", "tradelines", "trades"),
        ("cuentas abiertas", "número de cuentas", "cuentas de crédito", "referencias de crédito")),
    "history": FactorTopic(
        ("credit history", "length of credit", "credit experience", "history of credit", "oldest account",
         "age of your accounts", "credit file"),
        ("historial crediticio", "historial de crédito", "experiencia crediticia", "antigüedad de su crédito",
         "expediente de crédito")),
    "public_records": FactorTopic(
        ("public record*", "bankruptc*", "judgment*", "tax lien*", "collection*", "garnishment*",
         "foreclosure*", "repossession*"),
        ("registro* público*", "quiebra*", "bancarrota*", "sentencia* judicial*", "gravamen* fiscal*",
         "cobranza*", "acción de cobro", "embargo*", "ejecución hipotecaria", "reposesión")),
    "income": FactorTopic(
        ("income", "salary", "earnings", "debt-to-income", "obligations in relation to income"),
        ("ingreso*", "salario*", "sueldo*")),
    "amount": FactorTopic(
        ("loan amount", "amount requested", "amount you asked for", "amount of credit requested",
         "amount you requested", "size of the loan"),
        ("monto del préstamo", "monto solicitado", "monto de crédito solicitado", "cantidad solicitada")),
    "term": FactorTopic(
        ("loan term", "term of the loan", "length of the loan", "repayment term", "term you asked for",
         "loan duration", "duration of the loan"),
        ("plazo*", "duración del préstamo")),
    "employment": FactorTopic(
        ("employment", "employer", "your job", "length of time at your job", "time on the job"),
        ("empleo", "empleador", "su trabajo", "antigüedad laboral", "antigüedad en el empleo")),
    "housing": FactorTopic(
        ("housing", "homeowner*", "renting", "rent", "mortgage", "residence"),
        ("vivienda", "alquiler", "renta", "hipoteca", "residencia")),
    "purpose": FactorTopic(
        ("loan purpose", "purpose of the loan", "what the loan is for"),
        ("propósito del préstamo", "destino del préstamo", "finalidad del préstamo")),
    "savings": FactorTopic(
        ("savings", "checking account", "bank balance*"),
        ("ahorro*", "cuenta de cheques", "cuenta corriente")),
    "collateral": FactorTopic(("collateral", "property value"), ("garantía*", "valor de la propiedad")),
}

# Reason keys and field names -> topics (names not listed are matched by their customer wording).
TOPICS_OF: dict[str, tuple[str, ...]] = {
    # Form C-1 reasons
    "insufficient_credit_references": ("accounts",), "unacceptable_credit_references": ("accounts",),
    "unverifiable_credit_references": ("accounts",), "temporary_employment": ("employment",),
    "unverifiable_employment": ("employment",), "length_of_employment": ("employment",),
    "income_insufficient": ("income", "amount"), "excessive_obligations": ("income", "utilization"),
    "unverifiable_income": ("income",), "length_of_residence": ("housing",), "temporary_residence": ("housing",),
    "unverifiable_residence": ("housing",), "no_credit_file": ("history",), "limited_credit_experience": ("history",),
    "poor_credit_performance_with_us": ("delinquency",), "delinquent_obligations": ("delinquency",),
    "collection_or_judgment": ("public_records",), "garnishment": ("public_records",),
    "foreclosure_or_repossession": ("public_records",), "bankruptcy": ("public_records",),
    "recent_inquiries": ("inquiries",), "collateral_insufficient": ("collateral",),
    # the demo product's reasons and fields
    "loan_term": ("term",), "housing_status": ("housing",), "bureau_score": ("credit_score",),
    "revolving_utilization": ("utilization",), "number_of_accounts": ("accounts",),
    "public_records": ("public_records",), "amount": ("amount",), "term_months": ("term",),
    "annual_income": ("income",), "employment_length_years": ("employment",), "housing": ("housing",),
    "credit_score": ("credit_score",), "delinquencies_2y": ("delinquency",), "inquiries_6m": ("inquiries",),
    "open_accounts": ("accounts",), "credit_history_months": ("history",), "purpose_category": ("purpose",),
    "employment_type": ("employment",),
}

# Reg B 1002.2(z) and 1002.6(b): bases a narrative must never mention.
PROHIBITED_TERMS: dict[str, FactorTopic] = {
    "race": FactorTopic(("race", "racial", "ethnicity", "ethnic"), ("raza", "racial", "etnia", "étnic*")),
    "color": FactorTopic(("color", "colour", "skin"), ("color de piel", "color de la piel")),
    "religion": FactorTopic(("religion", "religious", "church", "faith"),
                            ("religión", "religios*", "iglesia", "fe religiosa")),
    "national_origin": FactorTopic(
        ("national origin", "nationality", "citizenship", "immigrant*", "immigration", "foreign-born", "birthplace",
         "country of origin"),
        ("origen nacional", "nacionalidad", "ciudadanía", "inmigrante*", "inmigración", "país de origen",
         "lugar de nacimiento")),
    "sex": FactorTopic(("sex", "gender", "pregnan*"), ("sexo", "género", "embaraz*")),
    "marital_status": FactorTopic(
        ("marital", "married", "unmarried", "divorce*", "widow*", "spouse*", "husband", "wife"),
        ("estado civil", "casad*", "solter*", "divorciad*", "viud*", "cónyuge*", "esposo", "esposa")),
    "age": FactorTopic(("age", "ages", "aged", "elderly", "how old", "years old", "date of birth", "birthday"),
                       ("edad", "fecha de nacimiento", "años de edad", "anciano*")),
    "public_assistance": FactorTopic(
        ("public assistance", "welfare", "food stamps", "snap benefits", "tanf", "social security",
         "supplemental security income", "unemployment benefits", "unemployment compensation", "government benefits"),
        ("asistencia pública", "ayuda pública", "asistencia social", "cupones de alimentos", "seguro social",
         "beneficios de desempleo", "seguro de desempleo", "beneficios del gobierno")),
    "ccpa_right_exercised": FactorTopic(("because you disputed", "consumer credit protection act"),
                                        ("porque usted disputó", "ley de protección del crédito al consumidor")),
}

PROMISE_PATTERNS: tuple[str, ...] = (
    r"\byou(?:'ll| will) (?:(?:definitely|certainly|surely) )?(?:be|get) approved\b",
    r"\byou(?:'ll| will) (?:definitely |certainly )?qualify\b",
    r"\bwe(?:'ll| will) (?:definitely |certainly )?approve\b",
    r"\bguarantee[ds]?\b", r"\bguaranteeing\b",
    r"\b(?:approval|acceptance) is (?:certain|assured|guaranteed)\b",
    r"\bpre-?approved\b",
    r"\bcertain to be approved\b",
    r"\b(?:te|le|lo|la|los|las) aprobaremos\b", r"\baprobaremos\b",
    r"\bser[áa]s? aprobad[oa]s?\b", r"\bqued(?:ar)?[áa]s? aprobad[oa]\b",
    r"\bgarantiz\w*\b", r"\bgarantía de aprobación\b",
    r"\baprobación (?:está )?(?:asegurada|segura)\b", r"\bpreaprobad[oa]\b",
)

OUTCOME_CONTRADICTIONS: dict[str, tuple[str, ...]] = {
    "denied": (r"\b(?:has|have) been approved\b", r"\bis approved\b", r"\bcongratulations\b",
               r"\bha sido aprobad[oa]\b", r"\bfue aprobad[oa]\b", r"\bfelicidades\b", r"\bfelicitaciones\b"),
    "approved": (r"\b(?:denied|declined|unable to approve|cannot approve|can't approve|not approved)\b",
                 r"\b(?:rechazad[oa]|denegad[oa]|no podemos aprobar|no fue aprobad[oa])\b"),
    "referred": (r"\b(?:has|have) been (?:approved|denied|declined)\b", r"\bha sido (?:aprobad[oa]|rechazad[oa])\b"),
}


def _term_pattern(term: str) -> str:
    parts = [re.escape(word.rstrip("*")) + (r"\w*" if word.endswith("*") else r"(?:s|es)?")
             for word in term.split()]
    return r"(?<!\w)" + r"[\s-]+".join(parts) + r"(?!\w)"


def _compile(terms: Iterable[str]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{_term_pattern(t)})" for t in sorted(set(terms), key=len, reverse=True)),
                      re.IGNORECASE)


_TOPIC_RE = {topic: _compile(spec.terms()) for topic, spec in FACTOR_TOPICS.items()}
_PROHIBITED_RE = {basis: _compile(spec.terms()) for basis, spec in PROHIBITED_TERMS.items()}
_PROMISE_RE = re.compile("|".join(PROMISE_PATTERNS), re.IGNORECASE)
_CONTRADICTION_RE = {k: re.compile("|".join(v), re.IGNORECASE) for k, v in OUTCOME_CONTRADICTIONS.items()}
_NUMBER_RE = re.compile(r"\d+(?:[.,]\d+)*")


def topics_in(text: str) -> dict[str, str]:
    """The factor topics a text mentions, each with the first phrase that showed it."""
    found: dict[str, str] = {}
    for topic, pattern in _TOPIC_RE.items():
        match = pattern.search(text)
        if match:
            found[topic] = match.group()
    return found


def stated_topics(facts: NarrativeFacts) -> set[str]:
    """Topics the stated reasons cover: by reason key and field, and by their own wording."""
    topics: set[str] = set()
    for reason in facts.reasons:
        topics.update(TOPICS_OF.get(reason.key, ()))
        topics.update(TOPICS_OF.get(reason.field, ()))
        topics.update(topics_in(f"{reason.customer_text} {reason.value}"))
    return topics


# --- numbers ---------------------------------------------------------------------------------------

def number_readings(token: str) -> set[Decimal]:
    """Every value a number as written could mean: 12,000 / 12.000 / 12 000 styles, decimal , or ."""
    readings: set[Decimal] = set()

    def add(text: str) -> None:
        with contextlib.suppress(InvalidOperation):
            readings.add(Decimal(text))

    if "," in token and "." in token:
        decimal_sep = "," if token.rfind(",") > token.rfind(".") else "."
        thousands = "." if decimal_sep == "," else ","
        add(token.replace(thousands, "").replace(decimal_sep, "."))
        return readings
    for sep in (",", "."):
        if sep in token:
            groups = token.split(sep)
            if all(len(g) == 3 for g in groups[1:]) and 1 <= len(groups[0]) <= 3:
                add("".join(groups))  # thousands separators
            if len(groups) == 2:
                add(f"{groups[0]}.{groups[1]}")  # a decimal separator
            return readings
    add(token)
    return readings


def _as_decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if value == value and abs(value) != float("inf") else None
    return None


def allowed_numbers(facts: NarrativeFacts) -> set[Decimal]:
    """Every number the record holds: the facts' numbers, dates' parts and numbers in the stated texts."""
    allowed: set[Decimal] = set()
    for value in facts.numbers.values():
        number = _as_decimal(value)
        if number is not None:
            allowed.add(number)
            if 0 < abs(number) < 1:
                allowed.add(number * 100)  # a rate given as a fraction may be shown as a percentage
        elif isinstance(value, str):
            for token in _NUMBER_RE.findall(value):
                allowed |= number_readings(token)
        elif isinstance(value, dt.date):
            allowed |= {Decimal(value.year), Decimal(value.month), Decimal(value.day)}
    for date in facts.dates.values():
        allowed |= {Decimal(date.year), Decimal(date.month), Decimal(date.day)}
    texts = [facts.product_name, facts.creditor_name] + [f"{r.customer_text} {r.value}" for r in facts.reasons]
    for text in texts:
        for token in _NUMBER_RE.findall(text):
            allowed |= number_readings(token)
    return allowed


def _matches(readings: set[Decimal], token: str, allowed: set[Decimal]) -> bool:
    if readings & allowed:
        return True
    # Rounded to the precision shown: 85.47 may be written 85.5 or 85.
    decimals = len(token.rsplit(".", 1)[1]) if "." in token and not re.search(r"\.\d{3}$", token) else 0
    exponent = Decimal(1).scaleb(-decimals)
    fractional = [a for a in allowed if a.as_tuple().exponent != 0 and abs(a) < Decimal(10) ** 15]
    return any(a.quantize(exponent, rounding=ROUND_HALF_UP) == reading for reading in readings for a in fractional)


# --- verification ----------------------------------------------------------------------------------

def verify_narrative(draft: str, facts: NarrativeFacts) -> VerificationResult:
    """Check a draft against the facts; every failure is reported as (rule, detail)."""
    failures: list[tuple[str, str]] = []
    text = draft.strip()
    if not text:
        return VerificationResult(False, (("empty", "the draft is empty"),))
    if len(text) > MAX_CHARS:
        failures.append(("too_long", f"{len(text)} characters, at most {MAX_CHARS}"))

    stated = stated_topics(facts)
    # The product's and creditor's names are not credit factors ("Home mortgage refinance").
    scan = text
    for name in (facts.product_name, facts.creditor_name):
        if name.strip():
            scan = re.sub(re.escape(name.strip()), " ", scan, flags=re.IGNORECASE)
    mentioned = topics_in(scan)
    for topic, phrase in mentioned.items():
        if topic not in stated:
            failures.append(("unknown_factor", f"mentions {phrase!r} ({topic}), which is not a stated reason"))
    if facts.outcome == "denied":
        for reason in facts.reasons:
            topics = set(TOPICS_OF.get(reason.key, ())) | set(TOPICS_OF.get(reason.field, ())) | \
                set(topics_in(reason.customer_text))
            said = bool(topics & set(mentioned)) or reason.customer_text.lower() in text.lower()
            if not said:
                failures.append(("missing_reason", f"does not give the reason {reason.key!r} "
                                                    f"({reason.customer_text!r})"))

    allowed = allowed_numbers(facts)
    for match in _NUMBER_RE.finditer(text):
        token = match.group()
        if not _matches(number_readings(token), token, allowed):
            failures.append(("number_mismatch", f"{token!r} is not a number of this decision"))

    for basis, pattern in _PROHIBITED_RE.items():
        found = pattern.search(text)
        if found:
            failures.append(("prohibited_basis", f"mentions {found.group()!r} ({basis})"))

    for found in _PROMISE_RE.finditer(text):
        failures.append(("promise", f"promises approval: {found.group()!r}"))
    contradiction = _CONTRADICTION_RE[facts.outcome].search(text)
    if contradiction:
        failures.append(("outcome_mismatch", f"says {contradiction.group()!r} but the outcome is {facts.outcome}"))
    return VerificationResult(passed=not failures, failures=tuple(failures))


# --- the template ----------------------------------------------------------------------------------

def format_money(value: Any, language: str = "en", currency: str = "USD") -> str:
    number = _as_decimal(value) if not isinstance(value, str) else Decimal(value)
    if number is None:
        return str(value)
    whole = number == number.to_integral_value()
    text = f"{number:,.0f}" if whole else f"{number:,.2f}"
    if currency == "USD":
        return f"${text}"
    return f"{text} {currency}"


def _format_number(value: Any) -> str:
    number = _as_decimal(value) if not isinstance(value, str) else None
    if number is None:
        return str(value)
    return f"{number.normalize():f}" if number != number.to_integral_value() else f"{number:.0f}"


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


def _reason_phrase(reason: NarrativeReason) -> str:
    wording = _lower_first(reason.customer_text.strip().rstrip("."))
    return f"{wording} ({reason.value})" if reason.value else wording


def _join(items: Sequence[str], language: str) -> str:
    conjunction = "and" if language == "en" else "y"
    if len(items) <= 1:
        return "".join(items)
    return "; ".join(items[:-1]) + f"; {conjunction} " + items[-1]


def template_narrative(facts: NarrativeFacts) -> str:
    """A plain-language paragraph from the facts alone (English or Spanish). Always passes verify_narrative."""
    en = facts.language == "en"
    amount = facts.numbers.get("amount")
    amount_text = ""
    if amount is not None:
        amount_text = (f" of {format_money(amount, 'en', facts.currency)}" if en
                       else f" por {format_money(amount, 'es', facts.currency)}")
    creditor = facts.creditor_name
    product = facts.product_name
    if facts.outcome == "approved":
        rate = facts.numbers.get("rate")
        term = facts.numbers.get("term_months")
        if en:
            parts = [f"Good news: your application for the {product}{amount_text} has been approved."]
            if rate is not None:
                parts.append(f"The annual percentage rate is {_format_number(rate)}%.")
            if term is not None:
                parts.append(f"You will repay it over {_format_number(term)} months.")
            parts.append("Please read your loan agreement carefully before you sign it.")
        else:
            parts = [f"Buenas noticias: su solicitud del {product}{amount_text} ha sido aprobada."]
            if rate is not None:
                parts.append(f"La tasa de porcentaje anual es {_format_number(rate)}%.")
            if term is not None:
                parts.append(f"Lo pagará en {_format_number(term)} meses.")
            parts.append("Lea con atención su contrato de préstamo antes de firmarlo.")
        return " ".join(parts)
    if facts.outcome == "referred":
        if en:
            return (f"Thank you for applying for the {product}{amount_text}. Your application needs a closer look "
                    "by one of our loan officers before we can make a decision. We will contact you when the "
                    "review is complete.")
        return (f"Gracias por solicitar el {product}{amount_text}. Uno de nuestros oficiales de préstamos debe "
                "revisar su solicitud con más detalle antes de que podamos tomar una decisión. Nos comunicaremos "
                "con usted cuando termine la revisión.")
    reasons = [_reason_phrase(r) for r in facts.reasons]
    who = f" {creditor}" if creditor and en else ""
    if en:
        parts = [f"Thank you for applying for the {product}{amount_text}.",
                 f"After reviewing your application, we{who and ' at' + who} are unable to approve it at this time."]
        if reasons:
            label = "The principal reason for our decision is" if len(reasons) == 1 else \
                "The principal reasons for our decision are"
            parts.append(f"{label}: {_join(reasons, 'en')}.")
        parts.append("You have the right to know these reasons, and you may contact us with any questions "
                     "about this decision.")
    else:
        parts = [f"Gracias por solicitar el {product}{amount_text}.",
                 "Después de revisar su solicitud, no podemos aprobarla en este momento."]
        if reasons:
            label = "La razón principal de nuestra decisión es" if len(reasons) == 1 else \
                "Las razones principales de nuestra decisión son"
            parts.append(f"{label}: {_join(reasons, 'es')}.")
        parts.append("Usted tiene derecho a conocer estas razones y puede comunicarse con nosotros si tiene "
                     "preguntas sobre esta decisión.")
    return " ".join(parts)


# --- drafting with a model ---------------------------------------------------------------------------

def _prompt(facts: NarrativeFacts, template: str) -> list[dict[str, str]]:
    language = "English" if facts.language == "en" else "Spanish"
    reasons = "\n".join(f"- {r.customer_text}" + (f" (the applicant's value: {r.value})" if r.value else "")
                        for r in facts.reasons) or "- (none)"
    numbers = ", ".join(f"{k} = {v}" for k, v in facts.numbers.items()) or "(none)"
    dates = ", ".join(f"{k} = {v.isoformat()}" for k, v in facts.dates.items()) or "(none)"
    system = (
        f"You write one short, plain-language paragraph in {language} telling a loan applicant the decision on "
        "their application. Use ONLY the facts given. Give every principal reason listed, and no other reason "
        "or credit factor. Use no number or date that is not listed. Never mention race, color, religion, "
        "national origin, sex, marital status, age, public assistance or any other personal characteristic. "
        "Never promise or suggest future approval. Do not give legal advice. Reply with the paragraph only."
    )
    user = (f"Outcome: {facts.outcome}\nProduct: {facts.product_name}\nPrincipal reasons:\n{reasons}\n"
            f"Numbers: {numbers}\nDates: {dates}\n\nA correct but plain version:\n{template}\n\n"
            "Rewrite it to be warmer and clearer, keeping every fact.")
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def draft_narrative(facts: NarrativeFacts, provider: Any = None, *, max_tokens: int = 400) -> NarrativeOutcome:
    """A model's draft if it passes verification, else the template (with the rejected draft and why).

    ``provider`` is anything with ``complete(messages, max_tokens=..., temperature=...) -> str`` (e.g.
    scoring.language.OpenAICompatibleProvider); None, or a provider that cannot chat (the local
    encoder), gives the template.
    """
    template = template_narrative(facts)
    complete = getattr(provider, "complete", None)
    if provider is None or not callable(complete):
        return NarrativeOutcome(text=template, source="template")
    model = f"{getattr(provider, 'name', type(provider).__name__)} {getattr(provider, 'version', '')}".strip()
    try:
        draft = complete(_prompt(facts, template), max_tokens=max_tokens, temperature=0.0)
    except Exception as exc:  # any provider failure falls back to the template
        return NarrativeOutcome(text=template, source="template", rejected_draft=None,
                                failures=(("provider_error", f"{type(exc).__name__}: {exc}"),), model=model)
    if not isinstance(draft, str):
        return NarrativeOutcome(text=template, source="template", failures=(("empty", "no text"),), model=model)
    result = verify_narrative(draft, facts)
    if result.passed:
        return NarrativeOutcome(text=draft.strip(), source="model", model=model)
    return NarrativeOutcome(text=template, source="template", rejected_draft=draft, failures=result.failures,
                            model=model)
