"""Values in people's words (scoring.wording): what recourse lines, notices, the customer page and officer
notes show instead of internal field names and raw numbers, in English and Spanish."""

from __future__ import annotations

from decimal import Decimal

import pytest

from scoring.spec import ProductSpec, get_spec
from scoring.wording import field_label, format_value, recourse_lines


@pytest.fixture(scope="module")
def demo() -> ProductSpec:
    return get_spec("demo")


@pytest.mark.parametrize(("name", "value", "english", "spanish"), [
    ("amount", Decimal("12000"), "$12,000", None),
    ("revolving_utilization", 35.5, "35.5%", "35.5%"),
    ("revolving_utilization", 30.0, "30%", "30%"),
    ("term_months", 36, "36 months", "36 meses"),
    ("term_months", 1, None, None),
    ("purpose_category", "small_business", "starting or running a small business", "iniciar o administrar un "
                                                                                    "pequeño negocio"),
])
def test_values_are_formatted_for_people(demo: ProductSpec, name: str, value: object, english: str | None,
                                         spanish: str | None) -> None:
    field_spec = demo.field(name)
    shown_en = format_value(demo, field_spec, value, "en")
    shown_es = format_value(demo, field_spec, value, "es")
    if english is not None:
        assert shown_en == english
    if spanish is not None:
        assert shown_es == spanish
    assert name not in shown_en and name not in shown_es


def test_money_has_its_sign_and_separators_in_both_languages(demo: ProductSpec) -> None:
    amount = demo.field("amount")
    assert format_value(demo, amount, Decimal("1234567"), "en") == "$1,234,567"
    spanish = format_value(demo, amount, Decimal("1234567"), "es")
    assert spanish.startswith("$") or spanish.endswith("$") or "US$" in spanish
    assert "1234567" not in spanish  # grouped, whatever the separator


def test_recourse_lines_name_labels_never_field_names(demo: ProductSpec) -> None:
    recourse = {"found": True, "verified": True, "decimal_fields": ["amount"],
                "changes": [["amount", "20000", "15000"], ["revolving_utilization", 75.0, 30.0]]}
    english = recourse_lines(demo, recourse, "en")
    spanish = recourse_lines(demo, recourse, "es")
    assert english == ("Loan amount: $15,000 instead of $20,000", "Revolving utilisation: 30% instead of 75%")
    assert spanish[1] == "Utilización del crédito rotativo: 30% en lugar de 75%"
    assert spanish[0].startswith(field_label(demo, demo.field("amount"), "es") + ": ")
    for line in english + spanish:
        assert "revolving_utilization" not in line and "amount:" not in line.lower().replace("loan amount:", "")
    # An unverified recourse is never shown.
    assert recourse_lines(demo, {**recourse, "verified": False}, "en") == ()
