"""The adverse-action reason catalog: Reg B Form C-1 Part I reasons, verbatim.

12 CFR 1002 Appendix C, Form C-1 lists 23 principal reasons plus "Other, specify". Each is mapped
to its HMDA denial-reason code (12 CFR 1003.4(a)(16): 1 debt-to-income ratio, 2 employment history,
3 credit history, 4 collateral, 5 insufficient cash, 6 unverifiable information, 7 credit application
incomplete, 8 mortgage insurance denied, 9 other) and to FCRA key-factor wording.

Products add *specific* reasons of their own in their spec (Reg B Appendix C paragraph 4: a creditor
"will not satisfy the notice requirement by simply checking the closest identifiable factor listed").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FormReason:
    key: str
    text: str  # verbatim Form C-1 wording
    hmda_code: int
    fcra_key_factor: str
    # Generic reasons describe a category, not a behaviour: a behavioural or text-derived model input
    # must not rely on one of these alone (CFPB circular 2023-03's substance; Appendix C para. 4).
    generic: bool = False


FORM_C1_REASONS: tuple[FormReason, ...] = (
    FormReason("application_incomplete", "Credit application incomplete", 7,
               "Credit application incomplete", generic=True),
    FormReason("insufficient_credit_references", "Insufficient number of credit references provided", 3,
               "Too few accounts in the credit file"),
    FormReason("unacceptable_credit_references", "Unacceptable type of credit references provided", 3,
               "Type of accounts in the credit file", generic=True),
    FormReason("unverifiable_credit_references", "Unable to verify credit references", 6,
               "Credit references could not be verified"),
    FormReason("temporary_employment", "Temporary or irregular employment", 2,
               "Temporary or irregular employment"),
    FormReason("unverifiable_employment", "Unable to verify employment", 6,
               "Employment could not be verified"),
    FormReason("length_of_employment", "Length of employment", 2, "Length of employment"),
    FormReason("income_insufficient", "Income insufficient for amount of credit requested", 1,
               "Income too low for the amount of credit requested"),
    FormReason("excessive_obligations", "Excessive obligations in relation to income", 1,
               "Obligations too high in relation to income"),
    FormReason("unverifiable_income", "Unable to verify income", 6, "Income could not be verified"),
    FormReason("length_of_residence", "Length of residence", 9, "Length of residence"),
    FormReason("temporary_residence", "Temporary residence", 9, "Temporary residence"),
    FormReason("unverifiable_residence", "Unable to verify residence", 6, "Residence could not be verified"),
    FormReason("no_credit_file", "No credit file", 3, "No credit file"),
    FormReason("limited_credit_experience", "Limited credit experience", 3, "Length of credit history too short"),
    FormReason("poor_credit_performance_with_us", "Poor credit performance with us", 3,
               "Payment history with this creditor"),
    FormReason("delinquent_obligations", "Delinquent past or present credit obligations with others", 3,
               "Delinquency on accounts"),
    FormReason("collection_or_judgment", "Collection action or judgment", 3,
               "Collection action or judgment on file"),
    FormReason("garnishment", "Garnishment or attachment", 3, "Garnishment or attachment on file"),
    FormReason("foreclosure_or_repossession", "Foreclosure or repossession", 3,
               "Foreclosure or repossession on file"),
    FormReason("bankruptcy", "Bankruptcy", 3, "Bankruptcy on file"),
    FormReason("recent_inquiries", "Number of recent inquiries on credit bureau report", 3,
               "Number of recent inquiries"),
    FormReason("collateral_insufficient", "Value or type of collateral not sufficient", 4,
               "Value or type of collateral not sufficient"),
    FormReason("other", "Other, specify", 9, "Other", generic=True),
)

FORM_C1_BY_KEY: dict[str, FormReason] = {reason.key: reason for reason in FORM_C1_REASONS}

# Reg B 1002.9(b)(2): these statements are insufficient as reasons, whatever a spec says.
INSUFFICIENT_REASON_PHRASES: tuple[str, ...] = (
    "internal standards",
    "internal policies",
    "internal policy",
    "qualifying score",
    "score below cutoff",
    "below cutoff",
    "credit score too low",
    "failed to achieve",
    "did not meet our criteria",
    "insufficient score",
)


def insufficient_phrase_in(text: str) -> str | None:
    """Return the first phrase that Reg B 1002.9(b)(2) calls insufficient, if the text contains one."""
    lowered = text.lower()
    for phrase in INSUFFICIENT_REASON_PHRASES:
        if phrase in lowered:
            return phrase
    return None


# --- Spanish wording (a translation; the English Form C-1 text above is the regulation's) ---------------
# Reg B 1002.4(e) allows disclosures in a language other than English if they are also available in
# English. These are Candor's own translations of the Form C-1 reasons and of the FCRA key-factor wording,
# for Spanish-language notices; they are not official CFPB texts.

FORM_C1_TEXT_ES: dict[str, str] = {
    "application_incomplete": "Solicitud de crédito incompleta",
    "insufficient_credit_references": "Número insuficiente de referencias de crédito proporcionadas",
    "unacceptable_credit_references": "Tipo de referencias de crédito proporcionadas no aceptable",
    "unverifiable_credit_references": "No fue posible verificar las referencias de crédito",
    "temporary_employment": "Empleo temporal o irregular",
    "unverifiable_employment": "No fue posible verificar el empleo",
    "length_of_employment": "Antigüedad en el empleo",
    "income_insufficient": "Ingresos insuficientes para el monto de crédito solicitado",
    "excessive_obligations": "Obligaciones excesivas en relación con los ingresos",
    "unverifiable_income": "No fue posible verificar los ingresos",
    "length_of_residence": "Tiempo de residencia",
    "temporary_residence": "Residencia temporal",
    "unverifiable_residence": "No fue posible verificar la residencia",
    "no_credit_file": "No hay expediente de crédito",
    "limited_credit_experience": "Experiencia crediticia limitada",
    "poor_credit_performance_with_us": "Historial de pagos deficiente con nosotros",
    "delinquent_obligations": "Obligaciones de crédito morosas, pasadas o presentes, con otros acreedores",
    "collection_or_judgment": "Acción de cobro o sentencia judicial",
    "garnishment": "Embargo de salario o de bienes",
    "foreclosure_or_repossession": "Ejecución hipotecaria o reposesión",
    "bankruptcy": "Quiebra (bancarrota)",
    "recent_inquiries": "Número de consultas recientes en el informe de la agencia de crédito",
    "collateral_insufficient": "Valor o tipo de garantía insuficiente",
    "other": "Otro, especifique",
}

FORM_C1_FCRA_KEY_FACTOR_ES: dict[str, str] = {
    "application_incomplete": "Solicitud de crédito incompleta",
    "insufficient_credit_references": "Muy pocas cuentas en el expediente de crédito",
    "unacceptable_credit_references": "Tipo de cuentas en el expediente de crédito",
    "unverifiable_credit_references": "No se pudieron verificar las referencias de crédito",
    "temporary_employment": "Empleo temporal o irregular",
    "unverifiable_employment": "No se pudo verificar el empleo",
    "length_of_employment": "Antigüedad en el empleo",
    "income_insufficient": "Ingresos demasiado bajos para el monto de crédito solicitado",
    "excessive_obligations": "Obligaciones demasiado altas en relación con los ingresos",
    "unverifiable_income": "No se pudieron verificar los ingresos",
    "length_of_residence": "Tiempo de residencia",
    "temporary_residence": "Residencia temporal",
    "unverifiable_residence": "No se pudo verificar la residencia",
    "no_credit_file": "No hay expediente de crédito",
    "limited_credit_experience": "Historial de crédito demasiado corto",
    "poor_credit_performance_with_us": "Historial de pagos con este acreedor",
    "delinquent_obligations": "Morosidad en las cuentas",
    "collection_or_judgment": "Acción de cobro o sentencia registrada",
    "garnishment": "Embargo registrado",
    "foreclosure_or_repossession": "Ejecución hipotecaria o reposesión registrada",
    "bankruptcy": "Quiebra registrada",
    "recent_inquiries": "Número de consultas recientes",
    "collateral_insufficient": "Valor o tipo de garantía insuficiente",
    "other": "Otro",
}

# The Spanish counterparts of INSUFFICIENT_REASON_PHRASES (Reg B 1002.9(b)(2)), for translated wording.
INSUFFICIENT_REASON_PHRASES_ES: tuple[str, ...] = (
    "normas internas",
    "políticas internas",
    "política interna",
    "puntaje mínimo",
    "puntuación mínima",
    "puntaje requerido",
    "por debajo del límite",
    "por debajo del punto de corte",
    "puntaje de crédito demasiado bajo",
    "no alcanzó",
    "no cumplió con nuestros criterios",
    "puntaje insuficiente",
    "puntuación insuficiente",
)


def insufficient_phrase_in_es(text: str) -> str | None:
    """Like insufficient_phrase_in, for Spanish wording (checks the English phrases too)."""
    lowered = text.lower()
    for phrase in INSUFFICIENT_REASON_PHRASES_ES:
        if phrase in lowered:
            return phrase
    return insufficient_phrase_in(text)


def is_generic_reason(key: str) -> bool:
    """Whether a key is a Form C-1 reason that names a category rather than a behaviour."""
    form = FORM_C1_BY_KEY.get(key)
    return form is not None and form.generic
