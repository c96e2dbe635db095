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
