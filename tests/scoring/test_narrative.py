"""Decision narratives: the template, the verifier's rules, and drafting with a (fake) model."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal

import pytest

from scoring.language import LocalMiniLM, OpenAICompatibleProvider
from scoring.narrative import (
    NarrativeFacts,
    NarrativeReason,
    draft_narrative,
    number_readings,
    template_narrative,
    verify_narrative,
)
from tests.scoring.fake_llm_server import FakeLLMServer

REASONS_EN = (
    NarrativeReason("bureau_score", "Your credit score from the credit bureau", "credit_score", "612"),
    NarrativeReason("revolving_utilization",
                    "How much of your available revolving credit (such as credit cards) you are using",
                    "revolving_utilization", "92.5%"),
    NarrativeReason("delinquent_obligations", "Delinquent past or present credit obligations with others",
                    "delinquencies_2y", "3"),
)
REASONS_ES = (
    NarrativeReason("bureau_score", "Su puntaje de crédito de la agencia de crédito", "credit_score", "612"),
    NarrativeReason("revolving_utilization",
                    "Cuánto de su crédito renovable disponible (como tarjetas de crédito) está usando",
                    "revolving_utilization", "92,5%"),
    NarrativeReason("delinquent_obligations",
                    "Obligaciones de crédito morosas, pasadas o presentes, con otros acreedores",
                    "delinquencies_2y", "3"),
)
NUMBERS = {"amount": Decimal("12000.00"), "term_months": 36}


def denied(language: str = "en") -> NarrativeFacts:
    return NarrativeFacts(outcome="denied", product_name="Demo personal instalment loan",
                          reasons=REASONS_EN if language == "en" else REASONS_ES, numbers=NUMBERS,
                          dates={"decision_date": dt.date(2026, 3, 14)}, language=language,
                          creditor_name="Candor Demo Bank, N.A.")


FAITHFUL_EN = (
    "Thank you for applying for a $12,000.00 Demo personal instalment loan. We're sorry, but we can't approve it "
    "right now. The main reasons are your credit score (612), how much of your revolving credit you are using "
    "(92.5%), and delinquent payments on other credit obligations (3 in the last records). Please contact us if "
    "you have questions. Decision date: 14/03/2026."
)
FAITHFUL_ES = (
    "Gracias por solicitar un préstamo de 12.000 dólares. Lamentablemente no podemos aprobarlo en este momento. "
    "Las razones principales son su puntaje de crédito (612), el uso de su crédito renovable (92,5%) y la "
    "morosidad en otras obligaciones de crédito (3). Puede comunicarse con nosotros si tiene preguntas."
)


# --- the template ----------------------------------------------------------------------------------

@pytest.mark.parametrize("language", ["en", "es"])
@pytest.mark.parametrize("outcome", ["denied", "approved", "referred"])
def test_template_passes_its_own_verification(outcome: str, language: str) -> None:
    facts = NarrativeFacts(outcome=outcome, product_name="Demo personal instalment loan",
                           reasons=(REASONS_EN if language == "en" else REASONS_ES) if outcome == "denied" else (),
                           numbers={**NUMBERS, "rate": Decimal("7.49")}, language=language)
    text = template_narrative(facts)
    assert verify_narrative(text, facts).passed, verify_narrative(text, facts).failures
    assert "$12,000" in text


def test_template_gives_every_reason_with_its_value() -> None:
    text = template_narrative(denied())
    assert "your credit score from the credit bureau (612)" in text
    assert "(92.5%)" in text and "unable to approve" in text and "Candor Demo Bank" in text
    spanish = template_narrative(denied("es"))
    assert "no podemos aprobarla" in spanish and "su puntaje de crédito de la agencia de crédito (612)" in spanish


def test_facts_refuse_unknown_outcome_or_language() -> None:
    with pytest.raises(ValueError, match="outcome"):
        NarrativeFacts(outcome="maybe", product_name="x")
    with pytest.raises(ValueError, match="language"):
        NarrativeFacts(outcome="denied", product_name="x", language="fr")


# --- the verifier ----------------------------------------------------------------------------------

@pytest.mark.parametrize("language, draft", [("en", FAITHFUL_EN), ("es", FAITHFUL_ES)])
def test_verifier_accepts_faithful_rewordings(language: str, draft: str) -> None:
    result = verify_narrative(draft, denied(language))
    assert result.passed, result.failures


@pytest.mark.parametrize("language, draft, rule", [
    ("en", FAITHFUL_EN.replace("Please contact", "Your income was also too low. Please contact"), "unknown_factor"),
    ("en", FAITHFUL_EN + " We also saw several recent inquiries.", "unknown_factor"),
    ("es", FAITHFUL_ES + " Además, sus ingresos son bajos.", "unknown_factor"),
    ("es", FAITHFUL_ES + " También revisamos su historial crediticio.", "unknown_factor"),
    ("en", FAITHFUL_EN.replace("$12,000.00", "$15,000"), "number_mismatch"),
    ("en", FAITHFUL_EN.replace("(612)", "(621)"), "number_mismatch"),
    ("en", FAITHFUL_EN.replace("92.5%", "95%"), "number_mismatch"),
    ("en", FAITHFUL_EN + " You can reapply in 90 days.", "number_mismatch"),
    ("es", FAITHFUL_ES.replace("12.000", "13.000"), "number_mismatch"),
    ("en", FAITHFUL_EN + " Applicants of your age are often declined.", "prohibited_basis"),
    ("en", FAITHFUL_EN + " Your marital status did not matter.", "prohibited_basis"),
    ("en", FAITHFUL_EN + " Income from public assistance was considered.", "prohibited_basis"),
    ("en", FAITHFUL_EN + " Your national origin was not a factor.", "prohibited_basis"),
    ("es", FAITHFUL_ES + " Su estado civil no fue considerado.", "prohibited_basis"),
    ("es", FAITHFUL_ES + " Su edad no influyó.", "prohibited_basis"),
    ("es", FAITHFUL_ES + " Su religión no importa.", "prohibited_basis"),
    ("en", FAITHFUL_EN + " If you reapply next time, you will be approved.", "promise"),
    ("en", FAITHFUL_EN + " Approval is guaranteed once you pay down your cards.", "promise"),
    ("es", FAITHFUL_ES + " Si vuelve a solicitarlo, te aprobaremos.", "promise"),
    ("es", FAITHFUL_ES + " La aprobación está garantizada.", "promise"),
    ("en", FAITHFUL_EN + " Congratulations, your loan has been approved!", "outcome_mismatch"),
    ("en", "We can't approve your loan because of your credit score (612).", "missing_reason"),
    ("en", "   ", "empty"),
])
def test_verifier_rejects(language: str, draft: str, rule: str) -> None:
    result = verify_narrative(draft, denied(language))
    assert not result.passed
    assert rule in result.rules, result.failures


def test_prohibited_terms_match_whole_words_only() -> None:
    facts = NarrativeFacts(outcome="approved", product_name="Home mortgage refinance", numbers={"amount": 90000})
    text = "Good news: your Home mortgage refinance of $90,000 has been approved. On average this takes a week."
    assert verify_narrative(text, facts).passed, verify_narrative(text, facts).failures


def test_number_readings_tolerate_formatting() -> None:
    assert Decimal(12000) in number_readings("12,000")
    assert Decimal(12000) in number_readings("12.000")
    assert Decimal("12000.00") in number_readings("12,000.00")
    assert Decimal("12000.5") in number_readings("12.000,50")
    assert Decimal("92.5") in number_readings("92,5")


def test_numbers_rounded_to_the_precision_shown_are_accepted() -> None:
    facts = NarrativeFacts(outcome="approved", product_name="Loan", numbers={"amount": 5000, "rate": 0.0749})
    assert verify_narrative("Your Loan of $5,000 has been approved at 7.49%, about 7.5%.", facts).passed
    assert not verify_narrative("Your Loan of $5,000 has been approved at 8%.", facts).passed


# --- drafting with a model ---------------------------------------------------------------------------

@pytest.fixture
def chat_server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


def chat_provider(server: FakeLLMServer) -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider(server.base_url, "k", "fake-chat", timeout=2)


@pytest.mark.parametrize("language, draft", [("en", FAITHFUL_EN), ("es", FAITHFUL_ES)])
def test_a_faithful_model_draft_is_used(chat_server: FakeLLMServer, language: str, draft: str) -> None:
    chat_server.chat_reply = draft
    outcome = draft_narrative(denied(language), chat_provider(chat_server))
    assert (outcome.source, outcome.text, outcome.failures, outcome.rejected_draft) == ("model", draft, (), None)
    prompt = chat_server.requests[-1]["body"]["messages"]
    assert prompt[0]["role"] == "system" and "ONLY the facts" in prompt[0]["content"]
    assert "612" in prompt[1]["content"] and template_narrative(denied(language)) in prompt[1]["content"]
    assert outcome.model.startswith("openai-compatible:")


def test_an_unfaithful_draft_falls_back_to_the_template(chat_server: FakeLLMServer) -> None:
    bad = FAITHFUL_EN.replace("$12,000.00", "$20,000") + " Reapply soon and you will be approved."
    chat_server.chat_reply = bad
    outcome = draft_narrative(denied(), chat_provider(chat_server))
    assert outcome.source == "template" and outcome.text == template_narrative(denied())
    assert outcome.rejected_draft == bad
    assert {rule for rule, _ in outcome.failures} == {"number_mismatch", "promise"}


def test_a_failing_model_falls_back_to_the_template(chat_server: FakeLLMServer) -> None:
    chat_server.fail_with = 500
    outcome = draft_narrative(denied("es"), chat_provider(chat_server))
    assert outcome.source == "template" and outcome.text == template_narrative(denied("es"))
    assert outcome.failures[0][0] == "provider_error" and outcome.rejected_draft is None


def test_no_generative_provider_means_the_template() -> None:
    assert draft_narrative(denied(), None).source == "template"
    outcome = draft_narrative(denied(), LocalMiniLM())  # an encoder cannot chat; nothing is loaded
    assert (outcome.source, outcome.failures) == ("template", ())
