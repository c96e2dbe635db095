"""Values in people's words: a field's label and a value formatted for a reader (category labels, money
with its currency sign and thousands separators, percentages, months and years in words), in English and
Spanish. What customers, notices, officers and the recourse notes read instead of internal field names
and raw numbers. Django-free, so the core (``scoring.counterfactual``) words its notes the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from scoring.adverse_action import PRODUCT_CATEGORY_ES
from scoring.narrative import format_money
from scoring.spec import FieldSpec, ProductSpec

MONEY_UNITS = ("USD", "EUR", "DM", "GBP")

# Spanish labels of the shipped products' actionable fields and their categories (what recourse can name).
# A translation; a field without one shows its English label.
FIELD_LABELS_ES: dict[tuple[str, str], str] = {
    ("demo", "amount"): "Monto del préstamo",
    ("demo", "term_months"): "Plazo",
    ("demo", "revolving_utilization"): "Utilización del crédito rotativo",
    ("german-credit", "duration_months"): "Plazo",
    ("german-credit", "purpose"): "Destino del préstamo",
    ("german-credit", "credit_amount"): "Monto del crédito",
    ("german-credit", "installment_rate"): "Cuota (porcentaje del ingreso disponible, de 1 a 4)",
    ("german-credit", "other_debtors"): "Otros deudores o garantes",
}
CATEGORY_LABELS_ES: dict[tuple[str, str], dict[str, str]] = {
    ("german-credit", "purpose"): {
        "A40": "Automóvil (nuevo)", "A41": "Automóvil (usado)", "A42": "Muebles o equipo", "A43": "Radio o televisión",
        "A44": "Electrodomésticos", "A45": "Reparaciones", "A46": "Educación", "A47": "Vacaciones",
        "A48": "Capacitación", "A49": "Negocio", "A410": "Otro"},
    ("german-credit", "other_debtors"): {"A101": "Ninguno", "A102": "Cosolicitante", "A103": "Garante"},
    # Text-derived fields: the labels their reasons name (scoring.adverse_action).
    **PRODUCT_CATEGORY_ES,
}
_UNIT_WORDS = {"months": (("month", "months"), ("mes", "meses")), "years": (("year", "years"), ("año", "años"))}
_RECOURSE_LINE = {"en": "{label}: {new} instead of {old}", "es": "{label}: {new} en lugar de {old}"}


def field_label(spec: ProductSpec, field_spec: FieldSpec, language: str) -> str:
    if language == "es":
        return FIELD_LABELS_ES.get((spec.slug, field_spec.name), field_spec.label)
    return field_spec.label


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def format_value(spec: ProductSpec, field_spec: FieldSpec, value: Any, language: str) -> str:
    """A value as the customer reads it: category labels, money with its currency, units in words."""
    if value is None or value == "":
        return "—"
    if field_spec.type == "category":
        if language == "es":
            translated = CATEGORY_LABELS_ES.get((spec.slug, field_spec.name), {}).get(str(value))
            if translated:
                return translated
        return str(field_spec.category_labels.get(str(value), str(value)))
    if field_spec.type == "boolean":
        yes = bool(value) if isinstance(value, bool) else str(value).lower() in ("true", "yes", "1")
        return {"en": ("Yes", "No"), "es": ("Sí", "No")}[language][0 if yes else 1]
    number = _number(value)
    if number is None:
        return str(value)
    if field_spec.unit in MONEY_UNITS:
        return format_money(number, language, field_spec.unit)
    whole = number == number.to_integral_value()
    shown = f"{number:,.0f}" if whole else f"{number:,.1f}"
    if field_spec.unit == "percent":
        return f"{shown}%"
    if field_spec.unit in _UNIT_WORDS:
        singular, plural = _UNIT_WORDS[field_spec.unit][0 if language == "en" else 1]
        return f"{shown} {singular if number == 1 else plural}"
    return shown


def recourse_lines(spec: ProductSpec, recourse: Mapping[str, Any] | None, language: str) -> tuple[str, ...]:
    """The stored recourse (scoring.counterfactual.Recourse.to_dict()) as sentences in the customer's terms.

    Only a recourse that was found and verified by re-scoring is shown (never an unverified promise).
    """
    if not recourse or not recourse.get("found") or not recourse.get("verified"):
        return ()
    lines = []
    for name, old, new in recourse.get("changes", ()):
        try:
            field_spec = spec.field(str(name))
        except KeyError:
            continue
        lines.append(_RECOURSE_LINE[language].format(label=field_label(spec, field_spec, language),
                                                     new=format_value(spec, field_spec, new, language),
                                                     old=format_value(spec, field_spec, old, language)))
    return tuple(lines)
