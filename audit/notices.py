"""The adverse action notice: one Django template rendered to HTML, and the same HTML to PDF.

What a notice must contain (Reg B 1002.9(a)(2); FCRA 615(a); checklist A1 and B):
* a statement of the action taken, the creditor's name and address;
* the ECOA notice of 1002.9(b)(1), verbatim, with the Appendix A agency's name and address;
* the principal reasons (1002.9(a)(2)(i)) or the disclosure of the right to them (1002.9(a)(2)(ii)),
  with the name, address and telephone number of the office to contact;
* when a consumer report was used, the FCRA 615(a) disclosure, and when a credit score was used, the score
  section, separate from the ECOA reasons (comment 9(b)(2)-9: key factors do not satisfy the ECOA
  requirement, so both are needed).

``render_notice_html`` refuses to render (``NoticeIncomplete``, naming the part) when any of these is
missing. Rendering is deterministic: the same ``NoticeContext`` gives byte-identical HTML, and the same
HTML gives a byte-identical PDF (its dates come from the notice date and its file identifier from the
notice id), so a notice can be regenerated exactly for the 25-month retention (1002.12(b); comment
12(b)-1) and checked by ``notice_sha256``.

The notice never shows internal field names, attributions or model identifiers: only customer wording.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from django.template.loader import render_to_string

from scoring.adverse_action import CreditScoreDisclosure, PrincipalReason
from scoring.agencies import Agency

TEMPLATE = "notices/adverse_action.html"
Language = Literal["en", "es"]
Paper = Literal["letter", "a4"]
_NOTICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

# Reg B 1002.9(b)(1), verbatim (regulatory-verbatim.md [1002-9-b-1]), without the obsolete sentence
# "Until January 1, 2013, ..." that the 2023 rule removed. {agency} is the Appendix A name and address.
ECOA_NOTICE_EN = (
    "The Federal Equal Credit Opportunity Act prohibits creditors from discriminating against credit applicants on "
    "the basis of race, color, religion, national origin, sex, marital status, age (provided the applicant has the "
    "capacity to enter into a binding contract); because all or part of the applicant's income derives from any "
    "public assistance program; or because the applicant has in good faith exercised any right under the Consumer "
    "Credit Protection Act. The Federal agency that administers compliance with this law concerning this creditor "
    "is {agency}."
)
# TRANSLATION, not regulation text: Candor's Spanish rendering of the ECOA notice above. The English text is
# the regulation's; a Spanish notice prints the English text too (Reg B 1002.4(e): disclosures in another
# language must also be available in English).
ECOA_NOTICE_ES = (
    "La Ley federal de Igualdad de Oportunidades de Crédito (Equal Credit Opportunity Act) prohíbe a los "
    "acreedores discriminar a los solicitantes de crédito por motivos de raza, color, religión, origen nacional, "
    "sexo, estado civil o edad (siempre que el solicitante tenga capacidad para celebrar un contrato vinculante); "
    "porque la totalidad o parte de los ingresos del solicitante provenga de un programa de asistencia pública; o "
    "porque el solicitante haya ejercido de buena fe cualquier derecho conferido por la Ley de Protección al "
    "Crédito del Consumidor (Consumer Credit Protection Act). La agencia federal que supervisa el cumplimiento de "
    "esta ley con respecto a este acreedor es {agency}."
)

# Form C-1 Part II model wording, verbatim (regulatory-verbatim.md [1002-C-II-p33], [1002-C-II-p37]).
FCRA_REPORT_EN = (
    "Our credit decision was based in whole or in part on information obtained in a report from the consumer "
    "reporting agency listed below. You have a right under the Fair Credit Reporting Act to know the information "
    "contained in your credit file at the consumer reporting agency. The reporting agency played no part in our "
    "decision and is unable to supply specific reasons why we have denied credit to you. You also have a right to "
    "a free copy of your report from the reporting agency, if you request it no later than 60 days after you "
    "receive this notice. In addition, if you find that any information contained in the report you receive is "
    "inaccurate or incomplete, you have the right to dispute the matter with the reporting agency."
)
FCRA_SCORE_EN = (
    "We also obtained your credit score from the consumer reporting agency and used it in making our credit "
    "decision. Your credit score is a number that reflects the information in your consumer report. Your credit "
    "score can change, depending on how the information in your consumer report changes."
)
# TRANSLATION of the two Form C-1 paragraphs above.
FCRA_REPORT_ES = (
    "Nuestra decisión de crédito se basó total o parcialmente en información obtenida de un informe de la agencia "
    "de informes de crédito que se indica a continuación. Usted tiene derecho, conforme a la Ley de Informes de "
    "Crédito Justos (Fair Credit Reporting Act), a conocer la información que contiene su expediente de crédito "
    "en la agencia de informes de crédito. La agencia de informes no participó en nuestra decisión y no puede "
    "darle las razones específicas por las que le hemos negado el crédito. También tiene derecho a obtener una "
    "copia gratuita de su informe de la agencia de informes, si la solicita a más tardar 60 días después de "
    "recibir este aviso. Además, si encuentra que alguna información del informe que reciba es inexacta o "
    "incompleta, tiene derecho a disputarla ante la agencia de informes."
)
FCRA_SCORE_ES = (
    "También obtuvimos su puntaje de crédito de la agencia de informes de crédito y lo usamos para tomar nuestra "
    "decisión de crédito. Su puntaje de crédito es un número que refleja la información de su informe de "
    "consumidor. Su puntaje de crédito puede cambiar, según cambie la información de su informe de consumidor."
)

# Every fixed string of the letter, in both languages. Spanish is a translation of the English.
STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "doc_title": "Statement of credit denial, termination or change",
        "reference": "Reference",
        "date": "Date",
        "by_email": "Sent by e-mail to",
        "subject": "Your application for credit: {product}",
        "dear": "Dear {name},",
        "thanks": "Thank you for your application of {date}.",
        "summary_credit": "Credit requested",
        "summary_applied": "Date of application",
        "summary_decided": "Date of decision",
        "reasons_heading": "Principal reasons for our decision",
        "reasons_intro": "Our decision was based on the following principal reasons, in order of importance:",
        "right_heading": "Your right to a statement of specific reasons",
        "right_text": "You have the right to a statement of the specific reasons for our decision. To obtain it, "
                      "contact {contact} at {address}, telephone {phone}, within 60 days of the date of this "
                      "letter. We will give you the statement of reasons within 30 days of receiving your request.",
        "narrative_heading": "About our decision",
        "recourse_heading": "What could change our decision",
        "recourse_intro": "If your circumstances change, you are welcome to apply again. For example:",
        "score_heading": "Your credit score",
        "score_not_reasons": "This section concerns your credit score and the consumer reporting agency. The key "
                             "factors below are those that adversely affected your credit score; they are not the "
                             "reasons for our decision, which are listed above.",
        "agency_heading": "Consumer reporting agency",
        "name": "Name",
        "address": "Address",
        "phone_toll_free": "Toll-free telephone number",
        "phone": "Telephone number",
        "your_score": "Your credit score",
        "score_date": "Date",
        "score_range": "Scores range from a low of {low} to a high of {high}.",
        "score_source": "Source of the score",
        "key_factors": "Key factors that adversely affected your credit score",
        "score_questions": "If you have any questions regarding your credit score, you should contact {source}.",
        "contact_heading": "Questions about this notice",
        "contact_text": "If you have any questions about this notice, please contact:",
        "telephone": "Telephone",
        "closing": "Sincerely,",
        "disclosures_follow": "Important information about your credit score and your rights follows on the next "
                              "page.",
        "rights_follow": "Important information about your rights follows on the next page.",
        "ecoa_heading": "Notice: Equal Credit Opportunity Act",
        "ecoa_english": "",
        "page": "Page",
        "of": "of",
        "notice": "Notice",
    },
    "es": {
        "doc_title": "Aviso de denegación, cancelación o modificación de crédito",
        "reference": "Referencia",
        "date": "Fecha",
        "by_email": "Enviado por correo electrónico a",
        "subject": "Su solicitud de crédito: {product}",
        "dear": "Estimado(a) {name}:",
        "thanks": "Le agradecemos su solicitud del {date}.",
        "summary_credit": "Crédito solicitado",
        "summary_applied": "Fecha de la solicitud",
        "summary_decided": "Fecha de la decisión",
        "reasons_heading": "Razones principales de nuestra decisión",
        "reasons_intro": "Nuestra decisión se basó en las siguientes razones principales, en orden de importancia:",
        "right_heading": "Su derecho a recibir una declaración de las razones específicas",
        "right_text": "Usted tiene derecho a recibir una declaración de las razones específicas de nuestra "
                      "decisión. Para obtenerla, comuníquese con {contact} en {address}, teléfono {phone}, dentro "
                      "de los 60 días siguientes a la fecha de esta carta. Le entregaremos la declaración de "
                      "razones dentro de los 30 días siguientes a la recepción de su solicitud.",
        "narrative_heading": "Sobre nuestra decisión",
        "recourse_heading": "Qué podría cambiar nuestra decisión",
        "recourse_intro": "Si sus circunstancias cambian, puede volver a presentar una solicitud. Por ejemplo:",
        "score_heading": "Su puntaje de crédito",
        "score_not_reasons": "Esta sección se refiere a su puntaje de crédito y a la agencia de informes de "
                             "crédito. Los factores clave que se indican a continuación son los que afectaron "
                             "negativamente su puntaje de crédito; no son las razones de nuestra decisión, que se "
                             "indican más arriba.",
        "agency_heading": "Agencia de informes de crédito",
        "name": "Nombre",
        "address": "Dirección",
        "phone_toll_free": "Número de teléfono gratuito",
        "phone": "Número de teléfono",
        "your_score": "Su puntaje de crédito",
        "score_date": "Fecha",
        "score_range": "Los puntajes van desde un mínimo de {low} hasta un máximo de {high}.",
        "score_source": "Fuente del puntaje",
        "key_factors": "Factores clave que afectaron negativamente su puntaje de crédito",
        "score_questions": "Si tiene preguntas sobre su puntaje de crédito, comuníquese con {source}.",
        "contact_heading": "Preguntas sobre este aviso",
        "contact_text": "Si tiene alguna pregunta sobre este aviso, comuníquese con:",
        "telephone": "Teléfono",
        "closing": "Atentamente,",
        "disclosures_follow": "En la página siguiente encontrará información importante sobre su puntaje de "
                              "crédito y sus derechos.",
        "rights_follow": "En la página siguiente encontrará información importante sobre sus derechos.",
        "ecoa_heading": "Aviso: Ley de Igualdad de Oportunidades de Crédito",
        "ecoa_english": "Texto oficial en inglés (English text of the notice):",
        "page": "Página",
        "of": "de",
        "notice": "Aviso",
    },
}

_MONTHS = {
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"),
    "es": ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre",
           "noviembre", "diciembre"),
}


class NoticeIncomplete(ValueError):
    """A required part of the notice is missing; ``part`` names it. Nothing is rendered."""

    def __init__(self, part: str, rule: str) -> None:
        self.part = part
        self.rule = rule
        super().__init__(f"the notice cannot be rendered without {part} ({rule})")


@dataclass(frozen=True)
class NoticeContext:
    """Everything a notice says, already in the notice's language (except the fixed strings, which the
    template supplies). Addresses may span lines ("\\n")."""

    language: Language
    notice_id: str
    creditor_name: str
    creditor_address: str
    creditor_phone: str
    applicant_name: str
    applicant_address: str
    applicant_email: str
    product_name: str
    action_taken: str  # e.g. "We have denied your application for a personal instalment loan."
    decision_date: dt.date
    application_date: dt.date
    reasons: tuple[PrincipalReason, ...]
    agency: Agency | None
    contact_name: str
    contact_address: str
    contact_phone: str
    credit_score: CreditScoreDisclosure | None = None
    recourse: tuple[str, ...] = ()  # plain-language sentences: what would change the decision
    narrative: str | None = None
    # Give the 1002.9(a)(2)(ii) disclosure of the right to reasons instead of the reasons themselves.
    right_to_reasons: bool = False
    notice_date: dt.date | None = None  # the date on the letter; the decision date if not given
    paper: Paper = "letter"

    @property
    def dated(self) -> dt.date:
        return self.notice_date or self.decision_date


def format_date(day: dt.date, language: Language) -> str:
    """A date as a US letter writes it ("March 5, 2026"; "5 de marzo de 2026"), independent of locale."""
    month = _MONTHS[language][day.month - 1]
    return f"{month} {day.day}, {day.year}" if language == "en" else f"{day.day} de {month} de {day.year}"


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _blank(value: str | None) -> bool:
    return value is None or not value.strip()


def _check(ctx: NoticeContext) -> None:
    """Raise NoticeIncomplete for the first required part that is missing."""
    required: list[tuple[str, str | None, str]] = [
        ("the creditor's name", ctx.creditor_name, "Reg B 1002.9(a)(2)"),
        ("the creditor's address", ctx.creditor_address, "Reg B 1002.9(a)(2)"),
        ("the applicant's name", ctx.applicant_name, "Reg B 1002.9(a)(2): notice in writing to the applicant"),
        ("the product (credit requested)", ctx.product_name, "Reg B 1002.9(a)(2): statement of the action taken"),
        ("the statement of the action taken", ctx.action_taken, "Reg B 1002.9(a)(2)"),
        ("the contact's name", ctx.contact_name, "Reg B 1002.9(a)(2)(ii)"),
        ("the contact's address", ctx.contact_address, "Reg B 1002.9(a)(2)(ii)"),
        ("the contact's telephone number", ctx.contact_phone, "Reg B 1002.9(a)(2)(ii)"),
    ]
    for part, value, rule in required:
        if _blank(value):
            raise NoticeIncomplete(part, rule)
    if ctx.language not in STRINGS:
        raise NoticeIncomplete(f"a supported language (not {ctx.language!r})", "fixed strings exist for en, es")
    if _blank(ctx.applicant_address) and _blank(ctx.applicant_email):
        raise NoticeIncomplete("the applicant's address or e-mail", "Reg B 1002.9(a)(2): notice in writing")
    if not _NOTICE_ID.match(ctx.notice_id or ""):
        raise NoticeIncomplete("a notice id (letters, digits, '.', '_' or '-')", "Reg B 1002.12(b): records")
    if ctx.agency is None or _blank(ctx.agency.name):
        raise NoticeIncomplete("the Federal agency's name", "Reg B 1002.9(a)(2), 1002.9(b)(1), Appendix A")
    if any(_blank(contact.address) for contact in ctx.agency.contacts):
        raise NoticeIncomplete("the Federal agency's address", "Reg B 1002.9(a)(2), 1002.9(b)(1), Appendix A")
    if not ctx.reasons and not ctx.right_to_reasons:
        raise NoticeIncomplete("the statement of specific reasons or the disclosure of the right to them",
                               "Reg B 1002.9(a)(2)(i)-(ii)")
    score = ctx.credit_score
    if score is not None and score.key_factors and not ctx.reasons:
        raise NoticeIncomplete("the ECOA principal reasons (key factors do not replace them)",
                               "Reg B comment 9(b)(2)-9")
    if ctx.language == "es":
        for reason in ctx.reasons:
            if _blank(reason.customer_text_es):
                raise NoticeIncomplete(f"the Spanish wording of reason {reason.rank}", "Spanish notice")
        for factor in score.key_factors if score else ():
            if _blank(factor.text_es):
                raise NoticeIncomplete(f"the Spanish wording of key factor {factor.rank}", "Spanish notice")
    for reason in ctx.reasons:
        if _blank(reason.customer_text):
            raise NoticeIncomplete(f"the wording of reason {reason.rank}", "Reg B 1002.9(b)(2)")


def _context(ctx: NoticeContext) -> dict[str, Any]:
    lang: Language = ctx.language
    strings = STRINGS[lang]
    agency = ctx.agency
    assert agency is not None  # _check ran
    ecoa_template = ECOA_NOTICE_EN if lang == "en" else ECOA_NOTICE_ES
    reasons = [reason.customer_text if lang == "en" else reason.customer_text_es for reason in ctx.reasons]
    score: dict[str, Any] | None = None
    if ctx.credit_score is not None:
        disclosure = ctx.credit_score
        score = {
            "report_text": FCRA_REPORT_EN if lang == "en" else FCRA_REPORT_ES,
            "score_text": FCRA_SCORE_EN if lang == "en" else FCRA_SCORE_ES,
            "bureau_name": disclosure.bureau.name,
            "bureau_address_lines": _lines(disclosure.bureau.address),
            "bureau_phone": disclosure.bureau.phone,
            "phone_label": strings["phone_toll_free"] if disclosure.bureau.nationwide else strings["phone"],
            "has_score": disclosure.has_score,
            "score": disclosure.score,
            "score_date": format_date(disclosure.score_date, lang) if disclosure.score_date else "",
            "score_range": strings["score_range"].format(low=disclosure.score_range[0],
                                                         high=disclosure.score_range[1])
            if disclosure.score_range else "",
            "score_source": disclosure.score_source or "",
            "score_questions": strings["score_questions"].format(source=(disclosure.score_source or "").rstrip(".")),
            "key_factors": [factor.text if lang == "en" else factor.text_es for factor in disclosure.key_factors],
        }
    dated = ctx.dated
    size = "letter" if ctx.paper == "letter" else "A4"
    return {
        "lang": lang,
        "t": strings,
        "notice_id": ctx.notice_id,
        "page_size": size,
        "meta_date": dated.isoformat(),
        "creditor_name": ctx.creditor_name,
        "creditor_address_lines": _lines(ctx.creditor_address),
        "creditor_phone": ctx.creditor_phone,
        "date": format_date(dated, lang),
        "applicant_name": ctx.applicant_name,
        "applicant_address_lines": _lines(ctx.applicant_address),
        "applicant_email": ctx.applicant_email.strip(),
        "subject": strings["subject"].format(product=ctx.product_name),
        "dear": strings["dear"].format(name=ctx.applicant_name),
        "thanks": strings["thanks"].format(date=format_date(ctx.application_date, lang)),
        "product_name": ctx.product_name,
        "action_taken": ctx.action_taken,
        "decision_date": format_date(ctx.decision_date, lang),
        "application_date": format_date(ctx.application_date, lang),
        "reasons": reasons,
        "right_text": strings["right_text"].format(contact=ctx.contact_name,
                                                   address=", ".join(_lines(ctx.contact_address)),
                                                   phone=ctx.contact_phone),
        "narrative": (ctx.narrative or "").strip(),
        "recourse": [line.strip() for line in ctx.recourse if line.strip()],
        "score": score,
        "contact_name": ctx.contact_name,
        "contact_address_lines": _lines(ctx.contact_address),
        "contact_phone": ctx.contact_phone,
        "ecoa_text": ecoa_template.format(agency=agency.ecoa_text),
        "ecoa_english": ECOA_NOTICE_EN.format(agency=agency.ecoa_text) if lang != "en" else "",
    }


def render_notice_html(ctx: NoticeContext) -> str:
    """The notice as a standalone HTML document (inline CSS, no JavaScript). Raises NoticeIncomplete."""
    _check(ctx)
    # No request: no context processors, nothing from the session or the clock gets into the notice.
    return render_to_string(TEMPLATE, _context(ctx))


def pdf_identifier(notice_id: str) -> bytes:
    """The PDF file identifier (trailer /ID): fixed per notice, so re-rendering is byte-identical."""
    return hashlib.sha256(f"candor-notice:{notice_id}".encode()).hexdigest()[:32].encode("ascii")


def render_notice_pdf(ctx: NoticeContext) -> bytes:
    """The same HTML as ``render_notice_html``, printed to PDF by WeasyPrint. Deterministic: the PDF's
    creation and modification dates are the notice date (``<meta name="dcterms.created">``) and its
    identifier derives from the notice id."""
    from weasyprint import HTML  # imported here: only PDF rendering needs pango

    html = render_notice_html(ctx)
    document = HTML(string=html, base_url=None).render()
    pdf = document.write_pdf(pdf_identifier=pdf_identifier(ctx.notice_id))
    assert isinstance(pdf, bytes)
    return pdf


def notice_sha256(rendered: str | bytes) -> str:
    """The SHA-256 of a rendered notice (HTML as UTF-8, or PDF bytes), to store and to compare when the
    notice is regenerated (Reg B 1002.12(b), comment 12(b)-1)."""
    data = rendered.encode("utf-8") if isinstance(rendered, str) else rendered
    return hashlib.sha256(data).hexdigest()


def notice_strings(language: Language) -> Mapping[str, str]:
    """The fixed strings of the letter in a language (for tests and previews)."""
    return STRINGS[language]
