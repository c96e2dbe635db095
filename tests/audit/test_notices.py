"""The adverse action notice: required parts, the verbatim ECOA paragraph, the FCRA section, determinism,
languages, and what must never appear in it. No database: the notice is a pure function of its context.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import re
from pathlib import Path
from typing import Any

import pytest

from audit.notices import (
    ECOA_NOTICE_EN,
    STRINGS,
    NoticeContext,
    NoticeIncomplete,
    format_date,
    notice_sha256,
    pdf_identifier,
    render_notice_html,
    render_notice_pdf,
)
from scoring.adverse_action import (
    EXAMPLE_BUREAU,
    CreditScoreDisclosure,
    bureau_for,
    bureau_score_field,
    credit_score_disclosure,
    principal_reasons,
)
from scoring.agencies import CURRENT_TABLE, TABLE_2011, agency_for, agency_table_for
from scoring.spec import ProductSpec, get_spec, shipped_specs

REPO = Path(__file__).resolve().parents[2]
VERBATIM = REPO.parent / "shared" / "docs" / "regulatory-verbatim.md"

DECIDED = dt.date(2026, 3, 5)
APPLIED = dt.date(2026, 3, 2)
SCORED = dt.date(2026, 3, 2)

# Cutoff-referenced log-odds of default for a demo denial: six fields pushed toward denial.
DEMO_ATTRIBUTIONS = {
    "amount": 0.083, "term_months": -0.104, "annual_income": 0.212, "employment_length_years": 0.047,
    "housing": -0.021, "credit_score": 0.338, "delinquencies_2y": 0.412, "inquiries_6m": 0.121,
    "revolving_utilization": 0.571, "open_accounts": -0.031, "credit_history_months": 0.093, "public_records": 0.0,
}
DEMO_VALUES = {"credit_score": 641, "delinquencies_2y": 2, "inquiries_6m": 4, "revolving_utilization": 86.0}

@dataclasses.dataclass(frozen=True)
class _Local:
    """What the caller writes in the notice's language."""

    product: str
    action: str
    narrative: str
    recourse: tuple[str, ...]
    contact: str


_LOCAL = {
    "en": _Local(
        product="Demo personal instalment loan",
        action="We have denied your application for a personal instalment loan of $12,000 over 36 months.",
        narrative="Your application was assessed by our credit scoring system. The reasons above are the "
                  "factors in your application and credit report that weighed most against approval.",
        recourse=("Lowering the balances on your credit cards compared with their limits.",
                  "Bringing any past-due accounts up to date and keeping them current."),
        contact="Consumer Lending Department, Candor Demo Bank, N.A.",
    ),
    "es": _Local(
        product="Préstamo personal a plazos (demostración)",
        action="Hemos denegado su solicitud de un préstamo personal a plazos de $12,000 a 36 meses.",
        narrative="Su solicitud fue evaluada por nuestro sistema de calificación de crédito. Las razones "
                  "anteriores son los factores de su solicitud y de su informe de crédito que más pesaron en "
                  "contra de la aprobación.",
        recourse=("Reducir los saldos de sus tarjetas de crédito en comparación con sus límites.",
                  "Poner al día las cuentas atrasadas y mantenerlas al corriente."),
        contact="Departamento de Préstamos al Consumidor, Candor Demo Bank, N.A.",
    ),
}


def demo_context(language: str = "en", **overrides: Any) -> NoticeContext:
    """A complete demo denial notice (used by these tests and to render the sample PNGs)."""
    spec = get_spec("demo")
    local = _LOCAL[language]
    reasons = principal_reasons(spec, attributions=DEMO_ATTRIBUTIONS, knockout_reason=None)
    score = credit_score_disclosure(spec, values=DEMO_VALUES, attributions=DEMO_ATTRIBUTIONS, bureau=bureau_for(spec),
                                    score_field=bureau_score_field(spec), score_date=SCORED)
    ctx = NoticeContext(
        language="es" if language == "es" else "en",
        notice_id="N-2026-000123",
        creditor_name=spec.creditor["name"],
        creditor_address=spec.creditor["address"],
        creditor_phone=spec.creditor["phone"],
        applicant_name="Jamie Example",
        applicant_address="42 Sample Road\nSpringfield, IL 62704",
        applicant_email="jamie@example.com",
        product_name=local.product,
        action_taken=local.action,
        decision_date=DECIDED,
        application_date=APPLIED,
        reasons=reasons,
        agency=agency_for(spec.creditor["creditor_type"], DECIDED),
        contact_name=local.contact,
        contact_address="100 Example Street\nSpringfield, IL 62701",
        contact_phone=spec.creditor["phone"],
        credit_score=score,
        recourse=local.recourse,
        narrative=local.narrative,
    )
    return dataclasses.replace(ctx, **overrides)


def _text(fragment: str) -> str:
    """Visible text of an HTML fragment: styles and tags removed, entities decoded, whitespace normalised."""
    visible = re.sub(r"<(style|title)[^>]*>.*?</\1>", " ", fragment, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", visible)).split())


def _element(page: str, element_id: str) -> str:
    match = re.search(rf'<(\w+)[^>]*\bid="{element_id}"[^>]*>(.*?)</\1>', page, re.S)
    assert match, f"no element with id {element_id}"
    return match.group(2)


def _regulation_ecoa_text(agency_text: str) -> str:
    """The 1002.9(b)(1) notice as the regulation words it, read from regulatory-verbatim.md."""
    source = VERBATIM.read_text(encoding="utf-8")
    block = source.split("[1002-9-b-1]", 1)[1].split("\n[", 1)[0]
    start = block.index("The Federal Equal Credit Opportunity Act")
    end = block.index("appendix A of this part].") + len("appendix A of this part].")
    text = block[start:end]
    bracket = "[name and address as specified by the appropriate agency or agencies listed in appendix A of this part]"
    assert bracket in text
    return " ".join(text.replace(bracket, agency_text).split())


# --- the ECOA notice and the agency --------------------------------------------------------------------

def test_ecoa_paragraph_is_the_regulation_text_with_the_agency_filled_in() -> None:
    ctx = demo_context()
    page = render_notice_html(ctx)
    assert ctx.agency is not None
    assert _text(_element(page, "ecoa-notice")) == _regulation_ecoa_text(ctx.agency.ecoa_text)
    # The sentence the 2023 rule removed is not in the notice.
    assert "Until January 1, 2013" not in page
    # The module constant is the same text (what the Spanish notice prints as the official English).
    assert " ".join(ECOA_NOTICE_EN.format(agency=ctx.agency.ecoa_text).split()) == \
        _regulation_ecoa_text(ctx.agency.ecoa_text)


def test_agency_is_the_current_appendix_a_row() -> None:
    # Appendix A as amended by 88 FR 16531 / 88 FR 58065 (regulatory-checklist.md item 0.5).
    cfpb = agency_for("bank_over_10b", DECIDED)
    assert (cfpb.name, cfpb.address) == ("Bureau of Consumer Financial Protection",
                                         "1700 G Street NW, Washington DC 20552")
    ftc = agency_for("nonbank", DECIDED)
    assert ftc.ecoa_text == ("Federal Trade Commission, Consumer Response Center, 600 Pennsylvania Avenue NW, "
                             "Washington, DC 20580")
    assert cfpb.table_version == CURRENT_TABLE.table_version == "2024-03-20"
    assert CURRENT_TABLE.effective == dt.date(2024, 3, 20)
    page = render_notice_html(demo_context())
    assert "1700 G Street NW, Washington DC 20552" in _text(_element(page, "ecoa-notice"))
    assert "20006" not in page


def test_agency_table_is_versioned_by_notice_date() -> None:
    assert agency_table_for(dt.date(2024, 3, 19)) is TABLE_2011
    assert agency_for("bank_over_10b", dt.date(2023, 6, 1)).address == "1700 G Street NW., Washington DC 20006"
    assert agency_table_for(dt.date(2024, 3, 20)) is CURRENT_TABLE
    with pytest.raises(LookupError):
        agency_for("bank_over_10b", dt.date(2010, 1, 1))
    with pytest.raises(KeyError):
        agency_for("crypto_exchange", DECIDED)


def test_a_non_bank_affiliate_lists_both_agencies() -> None:
    agency = agency_for("nonbank_affiliate_of_bank_over_10b", DECIDED)
    page = render_notice_html(demo_context(agency=agency))
    text = _text(_element(page, "ecoa-notice"))
    assert "Bureau of Consumer Financial Protection, 1700 G Street NW, Washington DC 20552 and Federal Trade " \
           "Commission, Consumer Response Center" in text


# --- required parts ------------------------------------------------------------------------------------

def test_a_denial_notice_has_every_required_part() -> None:
    ctx = demo_context()
    page = render_notice_html(ctx)
    text = _text(page)
    for part in (ctx.creditor_name, "100 Example Street", "Springfield, IL 62701", ctx.action_taken,
                 "Jamie Example", "42 Sample Road", "March 5, 2026", "March 2, 2026", "N-2026-000123",
                 ctx.contact_name, ctx.contact_phone):
        assert part in text, part
    reasons = _text(_element(page, "principal-reasons"))
    positions = [reasons.index(reason.customer_text) for reason in ctx.reasons]
    assert positions == sorted(positions) and len(positions) == 4
    assert [r.key for r in ctx.reasons] == ["revolving_utilization", "delinquent_obligations", "bureau_score",
                                            "income_insufficient"]
    # FCRA 615(a) and 609(f) (checklist B).
    fcra = _text(_element(page, "credit-score"))
    for part in (EXAMPLE_BUREAU.name, "P.O. Box 0000, Springfield, IL 62701", "1-800-555-0199",
                 "Toll-free telephone number", "played no part in our decision", "is unable to supply specific "
                 "reasons", "free copy of your report", "no later than 60 days", "right to dispute", "641",
                 "Scores range from a low of 300 to a high of 850.", "Source of the score"):
        assert part in fcra, part
    score = ctx.credit_score
    assert score is not None and score.score_date is not None
    assert format_date(score.score_date, "en") in fcra
    factors = [factor.text for factor in score.key_factors]
    assert factors == ["Proportion of balances to credit limits on revolving accounts is too high",
                       "Delinquency on accounts", "Number of recent inquiries", "Length of credit history too short"]
    assert [fcra.index(factor) for factor in factors] == sorted(fcra.index(factor) for factor in factors)


def test_key_factors_are_a_separate_section_after_the_ecoa_reasons() -> None:
    # Reg B comment 9(b)(2)-9: key factors do not satisfy the ECOA requirement; the notice needs both.
    page = render_notice_html(demo_context())
    assert page.index('id="principal-reasons"') < page.index('id="credit-score"') < page.index('id="ecoa"')
    reasons = _text(_element(page, "principal-reasons"))
    assert "Delinquency on accounts" not in reasons  # a key factor, not an ECOA reason


MISSING: list[tuple[str, Any, str]] = [
    ("creditor_name", "", "creditor's name"),
    ("creditor_address", "  ", "creditor's address"),
    ("action_taken", "", "action taken"),
    ("applicant_name", "", "applicant's name"),
    ("product_name", "", "product"),
    ("contact_name", "", "contact's name"),
    ("contact_address", "", "contact's address"),
    ("contact_phone", "", "contact's telephone"),
    ("agency", None, "Federal agency's name"),
    ("reasons", (), "statement of specific reasons"),
]


@pytest.mark.parametrize(("field", "value", "part"), MISSING, ids=[m[0] for m in MISSING])
def test_a_missing_part_stops_rendering(field: str, value: object, part: str) -> None:
    overrides: dict[str, Any] = {field: value}
    ctx = dataclasses.replace(demo_context(credit_score=None), **overrides)
    with pytest.raises(NoticeIncomplete, match=re.escape(part)):
        render_notice_html(ctx)
    with pytest.raises(NoticeIncomplete):
        render_notice_pdf(ctx)


def test_an_agency_without_an_address_stops_rendering() -> None:
    # Appendix A item 5 names no address: the creditor must supply its area supervisor's.
    with pytest.raises(NoticeIncomplete, match="agency's address"):
        render_notice_html(demo_context(agency=agency_for("packers_and_stockyards", DECIDED)))


def test_an_applicant_without_address_or_email_stops_rendering() -> None:
    with pytest.raises(NoticeIncomplete, match="address or e-mail"):
        render_notice_html(demo_context(applicant_address="", applicant_email=""))
    page = render_notice_html(demo_context(applicant_address=""))
    assert "Sent by e-mail to jamie@example.com" in _text(page)


def test_key_factors_without_ecoa_reasons_stop_rendering() -> None:
    # Checklist B(c): even with the right-to-reasons disclosure, key factors cannot stand alone.
    ctx = demo_context(reasons=(), right_to_reasons=True)
    assert ctx.credit_score is not None and ctx.credit_score.key_factors
    with pytest.raises(NoticeIncomplete, match=r"9\(b\)\(2\)-9"):
        render_notice_html(ctx)


def test_the_right_to_reasons_disclosure_replaces_the_reasons() -> None:
    # 1002.9(a)(2)(ii): the disclosure with the name, address and telephone number of the office.
    ctx = demo_context(reasons=(), right_to_reasons=True, credit_score=CreditScoreDisclosure(bureau=EXAMPLE_BUREAU))
    page = render_notice_html(ctx)
    disclosure = _text(_element(page, "right-to-reasons"))
    assert "within 60 days" in disclosure and "within 30 days" in disclosure
    for part in (ctx.contact_name, "100 Example Street, Springfield, IL 62701", ctx.contact_phone):
        assert part in disclosure
    assert 'id="principal-reasons"' not in page
    # A consumer report without a score: the 615(a) part is there, the score part is not.
    fcra = _text(_element(page, "credit-score"))
    assert "played no part in our decision" in fcra and "Scores range" not in fcra


def test_a_spanish_notice_needs_spanish_reason_wording() -> None:
    ctx = demo_context("es")
    untranslated = dataclasses.replace(ctx.reasons[0], customer_text_es=None)
    with pytest.raises(NoticeIncomplete, match="Spanish wording of reason 1"):
        render_notice_html(dataclasses.replace(ctx, reasons=(untranslated, *ctx.reasons[1:])))


# --- languages, determinism, what never appears ------------------------------------------------------

def test_both_languages_have_every_fixed_string() -> None:
    assert set(STRINGS["en"]) == set(STRINGS["es"])
    assert all(value for key, value in STRINGS["es"].items() if key != "ecoa_english")


def test_the_spanish_notice_is_in_spanish_and_carries_the_official_english_ecoa_text() -> None:
    ctx = demo_context("es")
    page = render_notice_html(ctx)
    assert '<html lang="es">' in page
    text = _text(page)
    for reason in ctx.reasons:
        assert reason.customer_text_es is not None and reason.customer_text_es in text
    assert "5 de marzo de 2026" in text and "Su puntaje de crédito" in text
    assert "Factores clave que afectaron negativamente su puntaje de crédito" in text
    assert ctx.agency is not None
    english = _text(_element(page, "ecoa-notice-en"))
    assert english == _regulation_ecoa_text(ctx.agency.ecoa_text)
    assert "La Ley federal de Igualdad de Oportunidades de Crédito" in _text(_element(page, "ecoa-notice"))


@pytest.mark.parametrize("language", ["en", "es"])
def test_rendering_is_deterministic(language: str) -> None:
    first_html, second_html = render_notice_html(demo_context(language)), render_notice_html(demo_context(language))
    assert notice_sha256(first_html) == notice_sha256(second_html)
    first_pdf, second_pdf = render_notice_pdf(demo_context(language)), render_notice_pdf(demo_context(language))
    assert first_pdf.startswith(b"%PDF-")
    assert notice_sha256(first_pdf) == notice_sha256(second_pdf)
    # The file identifier is the notice's own, not a random or time-derived one.
    assert b"(" + pdf_identifier("N-2026-000123") + b")" in first_pdf
    other = render_notice_pdf(demo_context(language, notice_id="N-2026-000124"))
    assert notice_sha256(other) != notice_sha256(first_pdf)


def test_the_pdf_dates_come_from_the_notice_date() -> None:
    page = render_notice_html(demo_context(notice_date=dt.date(2026, 3, 6)))
    assert '<meta name="dcterms.created" content="2026-03-06">' in page
    assert '<meta name="dcterms.modified" content="2026-03-06">' in page


def test_no_javascript_and_no_external_resources() -> None:
    page = render_notice_html(demo_context())
    assert "<script" not in page.lower()
    assert not re.search(r"\son\w+\s*=", page)
    assert "http://" not in page and "https://" not in page and "<link" not in page


def _internal_names(spec: ProductSpec) -> list[str]:
    # Identifier-like names (snake_case or CamelCase); plain words such as "amount" are ordinary English.
    return [name for name in spec.field_names if "_" in name or name != name.lower()]


def test_the_notice_never_shows_internal_names_attributions_or_model_ids() -> None:
    ctx = demo_context()
    page = render_notice_html(ctx)
    for spec in shipped_specs().values():
        for name in _internal_names(spec):
            assert name not in page, name
        assert spec.spec_hash not in page
    for reason in ctx.reasons:
        assert reason.key not in page
        assert reason.attribution is not None
        for shown in (repr(reason.attribution), f"{reason.attribution:.2f}", f"{reason.attribution:.3f}"):
            assert shown not in page
    for value in DEMO_ATTRIBUTIONS.values():
        if value:
            assert repr(value) not in _text(page)
    assert not re.search(r"\d\.\d{3,}", _text(page))


def test_a_heloc_notice_never_shows_bureau_attribute_names() -> None:
    spec = get_spec("heloc")
    attributions = {"ExternalRiskEstimate": 0.4, "NumInqLast6M": 0.3, "NetFractionRevolvingBurden": 0.25,
                    "MSinceMostRecentDelq": 0.2, "NumTrades60Ever2DerogPubRec": 0.15, "AverageMInFile": 0.1}
    reasons = principal_reasons(spec, attributions=attributions, knockout_reason=None)
    score = credit_score_disclosure(spec, values={"ExternalRiskEstimate": 61}, attributions=attributions,
                                    bureau=bureau_for(spec), score_field=bureau_score_field(spec), score_date=SCORED)
    page = render_notice_html(demo_context(reasons=reasons, credit_score=score, product_name=spec.name))
    for name in _internal_names(spec):
        assert name not in page, name
    assert "Scores range from a low of 0 to a high of 100." in _text(page)
