"""Synthetic applicants for the ``demo`` product, with a causal structure that is written down.

The ``demo`` product (scoring/products/demo.toml) is a US unsecured consumer instalment loan of
$1,000 to $40,000 over 12 to 60 months. It ships no data file: its training data comes from here.
Because every default is drawn from a known probability, the platform's explanations can be checked
against the truth: the attribution a field *should* get is known exactly.

How the data are made
---------------------
1. Latent traits (never submitted): a credit-quality factor ``z ~ N(0, 1)``, years of adult credit
   life, an employment type and a loan purpose category.
2. Submitted fields are drawn from the latents, so they are correlated the way real applications
   are: the credit score rises with ``z`` and history length and falls with delinquencies, public
   records and utilisation; utilisation, delinquencies, inquiries and public records all worsen as
   ``z`` falls; income is lognormal and depends on employment type, tenure and ``z``; the amount
   asked for scales with income and purpose; longer terms go with larger amounts; owning a home (or
   having a mortgage) grows more likely with a longer credit history and a higher income.
3. ``loan_purpose_text`` and ``employment_text`` are written from the latent purpose category and
   employment type by varied templates. About 2% of applicants leave each text blank (``None``).
4. Default (within 24 months) is drawn as ``y ~ Bernoulli(sigmoid(logit))`` with the log-odds below.

The causal structure: the true log-odds of default
--------------------------------------------------
``logit(PD) = INTERCEPT + sum_j g_j(x_j)``, additive: each ``g_j`` reads ONE field and nothing else,
so there are no interactions. ``INTERCEPT = -2.85``. Each ``g_j`` is 0 at its reference value, so a
term is the log-odds it adds relative to that value.

=======================  ============================================  ====  =================================
field                    g_j(x)                                        PD    rough size (log-odds)
=======================  ============================================  ====  =================================
amount                   0.50 * ln(amount / 10,000)                    up    $1k: -1.15; $40k: +0.69
term_months              0.025 * (term - 36)                           up    12 mo: -0.60; 60 mo: +0.60
annual_income            -0.65 * ln(max(income, 5,000) / 60,000)       down  $20k: +0.71; $150k: -0.60
employment_length_years  -0.30 * ln((1 + min(years, 10)) / 4)          down  0 y: +0.42; 10+ y: -0.30
housing                  own -.25, mortgage -.35, rent 0, other +.30   cat   spread 0.65
credit_score             -0.010 * (s - 700)                            down  600: +1.00; 780: -0.80
delinquencies_2y         0.75 * ln(1 + d)                              up    1: +0.52; 3: +1.04; 6: +1.46
inquiries_6m             0.18 * min(q, 8)                              up    2: +0.36; 8+: +1.44
revolving_utilization    0.012 * (u - 30) + 0.010 * max(0, u - 90)     up    0%: -0.36; 90%: +.72; 120%: +1.38
open_accounts            0.30 * max(0, 3 - n) + 0.04 * max(0, n - 18)  U     0: +0.90; 3-18: 0; 30: +0.48
credit_history_months    -0.45 * ln((h + 6) / 126)                     down  0: +1.37; 24: +0.65; 360: -0.48
public_records           0.80 * ln(1 + p)                              up    1: +0.55; 2: +0.88; 4: +1.29
purpose_category *       PURPOSE_EFFECTS[category]                     cat   -0.15 to +0.55 (small_business)
employment_type *        EMPLOYMENT_EFFECTS[type]                      cat   -0.20 to +0.45 (unemployed)
=======================  ============================================  ====  =================================

* latent: only the free text reveals it. PD: which way the probability of default moves as the
value grows (the spec's ``monotone`` convention); U: U-shaped; cat: a category.

Reference values (where ``g_j = 0``): amount $10,000, 36 months, income $60,000, 3 years with the
employer, renting, score 700, no delinquencies, inquiries or public records, 30% utilisation, 3 to 18
open accounts, 120 months of history, purpose debt_consolidation, salaried.

Latent, text-only effects (``PURPOSE_EFFECTS``, ``EMPLOYMENT_EFFECTS``): debt_consolidation 0,
credit_card -0.10, home_improvement -0.15, major_purchase 0, medical 0, car -0.10, small_business
+0.55, vacation +0.10, moving +0.25, wedding 0, other +0.15; salaried 0, public_sector -0.20, hourly
+0.15, self_employed +0.30, contract_or_gig +0.35, retired 0, unemployed_or_student +0.45. A model
that cannot read ``loan_purpose_text`` and ``employment_text`` cannot recover these two terms; a
language model that derives structured fields from the text can. ``medical`` and ``wedding`` are 0
on purpose: the truth must not reward using medical information (FCRA 604(g), Reg V 1022.30) or a
marital-status signal (Reg B 1002.6(b)). ``retired`` is 0, and retirees report the tenure of their
last job as ``employment_length_years``, so the truth gives no negative factor to a proxy for age
(Reg B 1002.6(b)(2)). No template mentions age, Social Security or other public assistance.

Checking explanations against the truth
---------------------------------------
With no interactions, the exact (interventional) SHAP value of field ``j`` for applicant ``x``,
measured against a reference set ``R`` (e.g. applicants at the approval cutoff), is
``g_j(x_j) - mean over R of g_j``; ``true_attributions(frame, reference)`` computes it. A model that
sees only the submitted structured fields should recover the twelve field terms (plus whatever of the
latent terms leaks through correlated fields); it cannot recover ``purpose_category`` or
``employment_type`` exactly.

No single field dominates denials. Against applicants at the cutoff (true PD 0.23 to 0.27), the
field with the largest adverse attribution for a denied applicant (true PD >= 0.30) is, over 200,000
applicants: credit score 27%, credit history length 17%, income 13%, delinquencies 10%, utilisation
7%, amount 6%, public records 5%, inquiries 4%, purpose 3%, term 3%, open accounts 3%, others <2%.
The true PD gives 17.5% defaults and an AUC of about 0.83; gradient boosting on 20,000 rows of the
structured fields reaches about 0.82.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# The submitted fields of demo.toml, in spec order: exactly the columns of a generated frame.
FIELDS: tuple[str, ...] = (
    "amount", "term_months", "annual_income", "employment_length_years", "housing",
    "loan_purpose_text", "employment_text", "credit_score", "delinquencies_2y", "inquiries_6m",
    "revolving_utilization", "open_accounts", "credit_history_months", "public_records",
    "applicant_name", "email",
)
# Fields with a causal term of their own (the model inputs of demo.toml).
CAUSAL_FIELDS: tuple[str, ...] = (
    "amount", "term_months", "annual_income", "employment_length_years", "housing", "credit_score",
    "delinquencies_2y", "inquiries_6m", "revolving_utilization", "open_accounts",
    "credit_history_months", "public_records",
)
LATENT_FIELDS: tuple[str, ...] = ("purpose_category", "employment_type")
CONTRIBUTION_COLUMNS: tuple[str, ...] = CAUSAL_FIELDS + LATENT_FIELDS

INTERCEPT: float = -2.85

# Lending Club's own purpose categories, with their share of applications.
PURPOSE_SHARES: dict[str, float] = {
    "debt_consolidation": 0.45, "credit_card": 0.18, "home_improvement": 0.07, "major_purchase": 0.05,
    "medical": 0.04, "car": 0.04, "small_business": 0.03, "vacation": 0.02, "moving": 0.02,
    "wedding": 0.02, "other": 0.08,
}
EMPLOYMENT_SHARES: dict[str, float] = {
    "salaried": 0.42, "hourly": 0.20, "self_employed": 0.08, "contract_or_gig": 0.08, "retired": 0.05,
    "unemployed_or_student": 0.04, "public_sector": 0.13,
}
PURPOSE_CATEGORIES: tuple[str, ...] = tuple(PURPOSE_SHARES)
EMPLOYMENT_TYPES: tuple[str, ...] = tuple(EMPLOYMENT_SHARES)

PURPOSE_EFFECTS: dict[str, float] = {
    "debt_consolidation": 0.0, "credit_card": -0.10, "home_improvement": -0.15, "major_purchase": 0.0,
    "medical": 0.0, "car": -0.10, "small_business": 0.55, "vacation": 0.10, "moving": 0.25,
    "wedding": 0.0, "other": 0.15,
}
EMPLOYMENT_EFFECTS: dict[str, float] = {
    "salaried": 0.0, "hourly": 0.15, "self_employed": 0.30, "contract_or_gig": 0.35, "retired": 0.0,
    "unemployed_or_student": 0.45, "public_sector": -0.20,
}
HOUSING_EFFECTS: dict[str, float] = {"own": -0.25, "mortgage": -0.35, "rent": 0.0, "other": 0.30}
HOUSING_CATEGORIES: tuple[str, ...] = ("own", "mortgage", "rent", "other")

BLANK_TEXT_RATE = 0.02


@dataclass(frozen=True)
class TrueEffect:
    """One term of the true log-odds: what it reads, its formula, direction and rough size."""

    field: str
    function: str
    direction: str  # "increasing", "decreasing", "u_shaped" or "categorical"
    size: str
    reference: str  # the value at which the term is 0
    observed: bool = True  # False for the latent, text-only terms

    @property
    def description(self) -> str:
        seen = "" if self.observed else " (latent: only the free text reveals it)"
        shape = {"categorical": "a level per category", "u_shaped": "PD U-shaped in the value"}.get(
            self.direction, f"PD {self.direction} in the value")
        return f"{self.field}: g = {self.function}; {shape}; {self.size}; 0 at {self.reference}{seen}"


def _levels(effects: Mapping[str, float]) -> str:
    return ", ".join(f"{k} {v:+.2f}" for k, v in effects.items())


TRUE_EFFECTS: dict[str, TrueEffect] = {effect.field: effect for effect in (
    TrueEffect("amount", "0.50 * ln(amount / 10000)", "increasing",
               "$1,000: -1.15, $40,000: +0.69", "$10,000"),
    TrueEffect("term_months", "0.025 * (term_months - 36)", "increasing",
               "12 months: -0.60, 60 months: +0.60", "36 months"),
    TrueEffect("annual_income", "-0.65 * ln(max(annual_income, 5000) / 60000)", "decreasing",
               "$20,000: +0.71, $150,000: -0.60", "$60,000"),
    TrueEffect("employment_length_years", "-0.30 * ln((1 + min(years, 10)) / 4)", "decreasing",
               "0 years: +0.42, 10 or more: -0.30", "3 years"),
    TrueEffect("housing", _levels(HOUSING_EFFECTS), "categorical", "spread 0.65", "rent"),
    TrueEffect("credit_score", "-0.010 * (score - 700)", "decreasing", "600: +1.00, 780: -0.80", "700"),
    TrueEffect("delinquencies_2y", "0.75 * ln(1 + d)", "increasing", "1: +0.52, 3: +1.04, 6: +1.46", "0"),
    TrueEffect("inquiries_6m", "0.18 * min(q, 8)", "increasing", "2: +0.36, 8 or more: +1.44", "0"),
    TrueEffect("revolving_utilization", "0.012 * (u - 30) + 0.010 * max(0, u - 90)", "increasing",
               "0%: -0.36, 90%: +0.72, 120%: +1.38", "30%"),
    TrueEffect("open_accounts", "0.30 * max(0, 3 - n) + 0.04 * max(0, n - 18)", "u_shaped",
               "0: +0.90, 30: +0.48", "3 to 18 accounts"),
    TrueEffect("credit_history_months", "-0.45 * ln((h + 6) / 126)", "decreasing",
               "0: +1.37, 24: +0.65, 360: -0.48", "120 months"),
    TrueEffect("public_records", "0.80 * ln(1 + p)", "increasing", "1: +0.55, 2: +0.88, 4: +1.29", "0"),
    TrueEffect("purpose_category", _levels(PURPOSE_EFFECTS), "categorical",
               "small_business +0.55 to home_improvement -0.15", "debt_consolidation", observed=False),
    TrueEffect("employment_type", _levels(EMPLOYMENT_EFFECTS), "categorical",
               "unemployed_or_student +0.45 to public_sector -0.20", "salaried", observed=False),
)}


# --- the true terms --------------------------------------------------------------------------------

def _g_amount(x: FloatArray) -> FloatArray:
    return 0.50 * np.log(np.maximum(x, 1.0) / 10_000.0)


def _g_term(x: FloatArray) -> FloatArray:
    return 0.025 * (x - 36.0)


def _g_income(x: FloatArray) -> FloatArray:
    return -0.65 * np.log(np.maximum(x, 5_000.0) / 60_000.0)


def _g_employment_length(x: FloatArray) -> FloatArray:
    return -0.30 * np.log((1.0 + np.clip(x, 0.0, 10.0)) / 4.0)


def _g_credit_score(x: FloatArray) -> FloatArray:
    return -0.010 * (x - 700.0)


def _g_delinquencies(x: FloatArray) -> FloatArray:
    return 0.75 * np.log1p(np.maximum(x, 0.0))


def _g_inquiries(x: FloatArray) -> FloatArray:
    return 0.18 * np.clip(x, 0.0, 8.0)


def _g_utilization(x: FloatArray) -> FloatArray:
    return 0.012 * (x - 30.0) + 0.010 * np.maximum(0.0, x - 90.0)


def _g_open_accounts(x: FloatArray) -> FloatArray:
    return 0.30 * np.maximum(0.0, 3.0 - x) + 0.04 * np.maximum(0.0, x - 18.0)


def _g_history(x: FloatArray) -> FloatArray:
    return -0.45 * np.log((np.maximum(x, 0.0) + 6.0) / 126.0)


def _g_public_records(x: FloatArray) -> FloatArray:
    return 0.80 * np.log1p(np.maximum(x, 0.0))


NUMERIC_TERMS: dict[str, Callable[[FloatArray], FloatArray]] = {
    "amount": _g_amount,
    "term_months": _g_term,
    "annual_income": _g_income,
    "employment_length_years": _g_employment_length,
    "credit_score": _g_credit_score,
    "delinquencies_2y": _g_delinquencies,
    "inquiries_6m": _g_inquiries,
    "revolving_utilization": _g_utilization,
    "open_accounts": _g_open_accounts,
    "credit_history_months": _g_history,
    "public_records": _g_public_records,
}
CATEGORY_TERMS: dict[str, Mapping[str, float]] = {
    "housing": HOUSING_EFFECTS,
    "purpose_category": PURPOSE_EFFECTS,
    "employment_type": EMPLOYMENT_EFFECTS,
}


def _category_term(values: pd.Series, effects: Mapping[str, float], name: str) -> FloatArray:
    mapped = values.astype(object).map(dict(effects))
    if mapped.isna().any():
        unknown = sorted({str(v) for v in values[mapped.isna()].unique()})
        raise ValueError(f"{name}: unknown categories {unknown}")
    result: FloatArray = mapped.to_numpy(dtype=np.float64)
    return result


def true_contributions(frame: pd.DataFrame, latents: pd.DataFrame | None = None) -> pd.DataFrame:
    """The true term ``g_j(x_j)`` of every causal field, one column per field, one row per applicant.

    The two latent columns (``purpose_category``, ``employment_type``) are read from ``latents`` if
    given, else from ``frame`` itself (e.g. ``frame.join(latents)``); they are required, because
    without them the truth is not known.
    """
    source = frame if latents is None else frame.join(latents[list(LATENT_FIELDS)])
    missing = [name for name in CONTRIBUTION_COLUMNS if name not in source.columns]
    if missing:
        raise ValueError(f"true_contributions needs columns {missing}; pass the latents from "
                         "generate_with_latents()")
    out: dict[str, FloatArray] = {}
    for name in CONTRIBUTION_COLUMNS:
        if name in NUMERIC_TERMS:
            values = pd.to_numeric(source[name]).to_numpy(dtype=np.float64)
            out[name] = NUMERIC_TERMS[name](values)
        else:
            out[name] = _category_term(source[name], CATEGORY_TERMS[name], name)
    return pd.DataFrame(out, index=frame.index, columns=list(CONTRIBUTION_COLUMNS))


def true_log_odds(frame: pd.DataFrame, latents: pd.DataFrame | None = None) -> FloatArray:
    """``INTERCEPT`` plus the row sum of ``true_contributions``: the true log-odds of default."""
    terms = true_contributions(frame, latents).to_numpy(dtype=np.float64)
    result: FloatArray = INTERCEPT + terms.sum(axis=1)
    return result


def true_pd(frame: pd.DataFrame, latents: pd.DataFrame | None = None) -> FloatArray:
    """The true probability of default."""
    result: FloatArray = 1.0 / (1.0 + np.exp(-true_log_odds(frame, latents)))
    return result


def true_attributions(frame: pd.DataFrame, reference: pd.DataFrame,
                      latents: pd.DataFrame | None = None,
                      reference_latents: pd.DataFrame | None = None) -> pd.DataFrame:
    """Exact SHAP values of the true (additive) model against a reference set of applicants.

    For an additive log-odds, field j's interventional SHAP value is ``g_j(x_j) - mean_R g_j``.
    The rows sum to the applicant's log-odds minus the reference set's mean log-odds.
    """
    baseline = true_contributions(reference, reference_latents).mean(axis=0)
    return true_contributions(frame, latents) - baseline


# --- free text -------------------------------------------------------------------------------------

FILLERS: dict[str, tuple[str, ...]] = {
    "n": ("two", "three", "four", "five"),
    "cards": ("credit cards", "cards", "store cards", "high-interest cards"),
    "apr": ("22", "24", "26", "29"),
    "room": ("kitchen", "bathroom", "basement", "back deck", "laundry room", "attic"),
    "fixture": ("roof", "windows", "furnace", "water heater", "siding", "central air unit"),
    "item": ("a new refrigerator and washer", "furniture for my new apartment", "a laptop for work",
             "a piano", "new appliances", "a used boat", "a home gym setup"),
    "medical": ("dental work", "a hospital bill", "out-of-network bills", "my insurance deductible",
                "an ER visit that insurance did not fully cover"),
    "car": ("a used car", "a used pickup truck", "a motorcycle", "a used minivan", "a reliable commuter car"),
    "car_fix": ("car repairs", "a new transmission", "new tires and brakes", "engine repairs"),
    "business": ("food truck", "landscaping business", "bakery", "cleaning business", "online store",
                 "auto detailing shop", "print shop"),
    "trip": ("a family trip", "a trip to Hawaii", "a cruise", "a trip to the Grand Canyon",
             "a road trip out west"),
    "city": ("Denver", "Austin", "Phoenix", "Columbus", "Raleigh", "Portland", "Nashville"),
    "wedding": ("our wedding", "the wedding venue", "the reception", "the wedding and honeymoon",
                "my daughter's wedding"),
    "title": ("software developer", "accountant", "project manager", "marketing coordinator",
              "HR generalist", "operations manager", "sales engineer", "financial analyst",
              "pharmacist", "registered nurse", "claims adjuster", "mechanical engineer"),
    "title_at": ("software developer at a software company", "accountant at a regional bank",
                 "project manager at a construction firm", "marketing coordinator at a consulting firm",
                 "HR generalist at a logistics company", "operations manager at a manufacturing plant",
                 "sales engineer at a software company", "financial analyst at an insurance company",
                 "pharmacist at a hospital", "registered nurse at a hospital",
                 "claims adjuster at an insurance company", "mechanical engineer at a manufacturing plant"),
    "hourly_job": ("warehouse associate", "cashier", "line cook", "CNA", "forklift operator", "barista",
                   "retail sales associate", "server", "home health aide", "housekeeper"),
    "hourly_at": ("warehouse associate at a distribution center", "cashier at a grocery store",
                  "line cook at a restaurant", "CNA at a nursing home", "forklift operator at a warehouse",
                  "barista at a coffee shop", "sales associate at a big-box retailer",
                  "server at a restaurant", "housekeeper at a hotel", "home health aide with an agency"),
    "hours": ("30", "32", "36", "40"),
    "own_business": ("a plumbing business", "a hair salon", "a landscaping company", "a small bakery",
                     "a bookkeeping practice", "an HVAC repair business", "a photography studio"),
    "gig": ("rideshare", "food delivery", "grocery delivery", "package delivery"),
    "freelance": ("graphic design", "web development", "copywriting", "IT support", "video editing"),
    "former": ("teacher", "machinist", "nurse", "engineer", "electrician", "office manager"),
    "field": ("retail", "logistics", "healthcare", "IT", "hospitality", "construction"),
    "subject": ("math", "history", "science", "English", "art"),
    "agency": ("the city", "the county", "the state", "a public school district", "the federal government"),
    "public_job": ("firefighter", "police officer", "mail carrier", "civil engineer", "social worker",
                   "DMV clerk", "park ranger", "IT specialist", "bus driver"),
    "public_at": ("firefighter with the city", "police officer with the county",
                  "mail carrier for the postal service", "civil engineer for the state DOT",
                  "social worker for the county", "clerk at the DMV", "park ranger with the state",
                  "IT specialist for the federal government", "bus driver for the transit authority"),
}

PURPOSE_TEMPLATES: dict[str, tuple[str, ...]] = {
    "debt_consolidation": (
        "Consolidating {n} {cards} into one payment.",
        "I want to pay off {n} {cards} and have a single monthly payment.",
        "Debt consolidation. My {cards} are at {apr}% and this would lower my interest.",
        "Paying off a personal loan and {n} {cards} so I can get out of debt faster.",
        "Combine my bills into one lower payment.",
        "Refinancing {cards} at {apr}% APR into a fixed-rate loan with an end date.",
        "Consolidate a car loan balance and {n} {cards}.",
        "To pay off everything I owe and close some accounts.",
        "Getting my finances under control by consolidating {n} debts into one.",
        "Paying down {cards} - tired of paying {apr}% interest.",
    ),
    "credit_card": (
        "Pay off my credit card balance.",
        "Paying off a credit card with {apr}% interest.",
        "Refinance my credit card debt at a lower rate.",
        "I have a card at {apr}% APR and want to pay it off with a fixed loan.",
        "Credit card payoff.",
        "Want to pay off my {cards} and stop using them.",
        "Moving my card balance to a lower rate so I can pay it off in a few years.",
        "Paying off the balance on my Visa and Mastercard.",
    ),
    "home_improvement": (
        "Remodeling our {room}.",
        "Home improvement - replacing the {fixture}.",
        "Need to fix the {fixture} before winter.",
        "Updating the {room} and some new flooring.",
        "Repairs to the house: {room} and some paint.",
        "We are redoing the {room} ourselves and need money for materials.",
        "Replacing an old {fixture} that is falling apart.",
        "Home repairs after a storm damaged the {fixture}.",
        "Fixing up the {room} to get the house ready to sell.",
    ),
    "major_purchase": (
        "Buying {item}.",
        "Major purchase: {item}.",
        "I need {item} and would rather pay it off over time.",
        "Purchasing {item}.",
        "Financing {item} instead of using a credit card.",
        "Want to buy {item} outright.",
        "For {item}.",
        "Big purchase - {item}.",
    ),
    "medical": (
        "Paying for {medical}.",
        "Medical expenses: {medical}.",
        "To cover {medical}.",
        "I have a balance from {medical} and want to pay it off.",
        "Medical bills, mostly {medical}.",
        "Paying off {medical} that is in a payment plan.",
        "Need help covering {medical}.",
        "Out of pocket costs for {medical}.",
    ),
    "car": (
        "Buying {car}.",
        "Need {car} to get to work.",
        "Paying for {car_fix}.",
        "Car loan for {car} from a private seller.",
        "Financing {car}.",
        "My car broke down and I need {car_fix}.",
        "For {car_fix}.",
        "Paying cash for {car} so I can avoid dealer financing.",
        "Replacing my old car with {car}.",
    ),
    "small_business": (
        "Starting a {business}.",
        "Working capital for my {business}.",
        "Expanding my {business} - new equipment.",
        "Equipment and inventory for a {business}.",
        "Launching a {business} on the side.",
        "I run a {business} and need to buy supplies for the busy season.",
        "Start-up costs for my {business}.",
        "Buying a used van for my {business}.",
        "Covering payroll for my {business} while I wait on invoices.",
    ),
    "vacation": (
        "Vacation.",
        "Paying for {trip}.",
        "Going on {trip}.",
        "Booking {trip} this summer.",
        "Travel - {trip}.",
        "For {trip} we have been planning for years.",
        "Flights and hotel for {trip}.",
        "Need a break - {trip}.",
    ),
    "moving": (
        "Moving to {city} for a new job.",
        "Relocation costs - moving to {city}.",
        "Moving expenses, security deposit and first month's rent in {city}.",
        "Moving across the country to {city}.",
        "Paying movers and a deposit on an apartment in {city}.",
        "Moving costs.",
        "Relocating to {city} to be closer to family.",
        "Moving truck, storage and deposit for my new place in {city}.",
    ),
    "wedding": (
        "Paying for {wedding}.",
        "Wedding expenses - {wedding}.",
        "To cover {wedding}.",
        "Helping pay for {wedding}.",
        "Deposit for {wedding}.",
        "Costs for {wedding} next spring.",
        "Wedding.",
        "Final payments for {wedding}.",
    ),
    "other": (
        "Personal expenses.",
        "Paying taxes I owe from last year.",
        "Legal fees.",
        "Tuition and books for a certification course.",
        "Emergency fund.",
        "Paying for a funeral.",
        "Covering expenses until my next contract starts.",
        "Various bills.",
        "Catching up on rent and utilities.",
        "Buying equipment for a hobby.",
    ),
}

EMPLOYMENT_TEMPLATES: dict[str, tuple[str, ...]] = {
    "salaried": (
        "I work as a {title_at}.",
        "{title_at}, full time.",
        "Full-time {title}.",
        "Salaried {title_at}.",
        "I'm a {title}.",
        "Working as a {title_at}.",
        "Full-time salaried employee, {title}.",
        "{title}, salaried.",
        "I'm a {title} on salary.",
        "Salaried, I work as a {title_at}.",
    ),
    "hourly": (
        "{hourly_at}.",
        "I work as a {hourly_at}, about {hours} hours a week.",
        "Hourly - {hourly_job}.",
        "{hourly_job}, {hours} hours a week.",
        "I'm a {hourly_at}.",
        "Working full time as a {hourly_job}.",
        "{hourly_at}, paid hourly plus overtime.",
        "Part-time {hourly_job} and I pick up extra shifts.",
        "I work hourly as a {hourly_at}.",
    ),
    "self_employed": (
        "I own {own_business}.",
        "Self-employed, I run {own_business}.",
        "Owner of {own_business}.",
        "I have my own business - {own_business}.",
        "Self employed.",
        "I run {own_business} with two employees.",
        "Business owner ({own_business}).",
        "I started {own_business} and it is my full-time job.",
    ),
    "contract_or_gig": (
        "I drive for a rideshare app and do deliveries.",
        "Gig work - {gig} and some {freelance} on the side.",
        "Freelance {freelance}.",
        "Independent contractor doing {freelance}.",
        "I do {gig} full time.",
        "1099 contractor, {freelance}.",
        "Contract {freelance} work through an agency.",
        "Mostly {gig}, plus odd jobs.",
        "I freelance in {freelance} for several clients.",
    ),
    "retired": (
        "Retired.",
        "Retired {former}.",
        "I'm retired from my job as a {former}.",
        "Retired {former}, living on my pension.",
        "Retired, income from pension and retirement savings.",
        "Retired {former}, I do some part-time consulting.",
        "Retired from work as a {former}.",
        "Retired and living on my retirement account.",
    ),
    "unemployed_or_student": (
        "Full-time student.",
        "Graduate student.",
        "Currently between jobs, looking for work in {field}.",
        "Student, working part time on campus.",
        "Not working right now - I was laid off from a job in {field}.",
        "Looking for work in {field}.",
        "Finishing my degree this year.",
        "Unemployed, interviewing for jobs in {field}.",
        "I'm in a nursing program full time.",
    ),
    "public_sector": (
        "I teach {subject} at a public high school.",
        "{public_at}.",
        "I work as a {public_at}.",
        "Government employee - {public_job}.",
        "I'm a {public_at}.",
        "Public school teacher ({subject}).",
        "Civil servant, {public_job}.",
        "I work for {agency}.",
        "Full-time {public_job}, government job.",
    ),
}

FIRST_NAMES: tuple[str, ...] = (
    "Alex", "Jordan", "Taylor", "Morgan", "Casey", "Riley", "Jamie", "Avery", "Quinn", "Cameron",
    "Drew", "Reese", "Skyler", "Robin", "Parker", "Rowan", "Sam", "Charlie", "Emerson", "Finley",
    "Harper", "Kendall", "Logan", "Peyton", "Sage", "Blake", "Dakota", "Hayden", "Jesse", "Kai",
)
LAST_NAMES: tuple[str, ...] = (
    "Sample", "Example", "Testperson", "Placeholder", "Demo", "Fakename", "Specimen", "Mockridge",
    "Dummy", "Prototype", "Fictional", "Madeup", "Syntheticson", "Notreal", "Pretendwell",
    "Imaginary", "Standin", "Modelson", "Trialsworth", "Exemplar",
)
EMAIL_DOMAINS: tuple[str, ...] = ("example.com", "example.org", "example.net")

_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_A_BEFORE_VOWEL = re.compile(r"\b([Aa]) (?=[AEIOaeio]|HR\b|HVAC\b|IT\b)")


@dataclass(frozen=True)
class _TextPool:
    """Every rendering of every template of one category; template t owns rows offsets[t]:offsets[t+1]."""

    texts: npt.NDArray[np.object_]
    casual: npt.NDArray[np.object_]
    offsets: IntArray  # start of each template's block, plus the total at the end


def _casual(text: str) -> str:
    """How many people type it: no final full stop, and a lower-case first letter (but not "I", "CNA")."""
    text = text.rstrip(".")
    first_word = text.split(" ", 1)[0]
    if first_word[1:2].islower() and not first_word.startswith("I'"):
        return text[:1].lower() + text[1:]
    return text


def _render(template: str) -> list[str]:
    names = list(dict.fromkeys(_PLACEHOLDER.findall(template)))
    if not names:
        return [template]
    rendered = []
    for combo in itertools.product(*(FILLERS[name] for name in names)):
        text = _A_BEFORE_VOWEL.sub(r"\1n ", template.format(**dict(zip(names, combo, strict=True))))
        rendered.append(text[:1].upper() + text[1:])
    return rendered


def _pool(templates: Sequence[str]) -> _TextPool:
    blocks = [_render(template) for template in templates]
    texts = [text for block in blocks for text in block]
    offsets = np.cumsum([0, *(len(block) for block in blocks)]).astype(np.int64)
    return _TextPool(texts=np.array(texts, dtype=object),
                     casual=np.array([_casual(text) for text in texts], dtype=object), offsets=offsets)


_PURPOSE_POOLS: dict[str, _TextPool] = {k: _pool(v) for k, v in PURPOSE_TEMPLATES.items()}
_EMPLOYMENT_POOLS: dict[str, _TextPool] = {k: _pool(v) for k, v in EMPLOYMENT_TEMPLATES.items()}


def _write_text(rng: np.random.Generator, codes: IntArray, categories: Sequence[str],
                pools: Mapping[str, _TextPool]) -> npt.NDArray[np.object_]:
    """Free text per row: a template chosen uniformly within the row's category, then its fillers."""
    n = len(codes)
    template_u = rng.random(n)
    filler_u = rng.random(n)
    casual = rng.random(n) < 0.3
    blank = rng.random(n) < BLANK_TEXT_RATE
    out = np.empty(n, dtype=object)
    for code, category in enumerate(categories):
        rows = np.flatnonzero(codes == code)
        if rows.size == 0:
            continue
        pool = pools[category]
        n_templates = len(pool.offsets) - 1
        template = np.minimum((template_u[rows] * n_templates).astype(np.int64), n_templates - 1)
        sizes = pool.offsets[template + 1] - pool.offsets[template]
        index = pool.offsets[template] + np.minimum((filler_u[rows] * sizes).astype(np.int64), sizes - 1)
        out[rows] = np.where(casual[rows], pool.casual[index], pool.texts[index])
    out[blank] = None
    return out


# --- the generator ---------------------------------------------------------------------------------

def _choice_codes(rng: np.random.Generator, shares: Mapping[str, float], n: int) -> IntArray:
    p = np.array(list(shares.values()), dtype=np.float64)
    codes: IntArray = rng.choice(len(p), size=n, p=p / p.sum()).astype(np.int64)
    return codes


def _sigmoid(x: FloatArray) -> FloatArray:
    result: FloatArray = 1.0 / (1.0 + np.exp(-x))
    return result


def _round_int(x: FloatArray, low: int, high: int) -> IntArray:
    result: IntArray = np.clip(np.rint(x), low, high).astype(np.int64)
    return result


def generate_with_latents(n: int, seed: int) -> tuple[pd.DataFrame, npt.NDArray[np.int8], pd.DataFrame]:
    """``n`` synthetic applications, their outcomes (1 = default) and the latent categories.

    Returns ``(frame, y, latents)``: ``frame`` has exactly the submitted fields of demo.toml, ``y`` is
    int8, ``latents`` has ``purpose_category`` and ``employment_type`` (same index as ``frame``).
    Deterministic for a given ``seed``.
    """
    if n < 0:
        raise ValueError("n must be non-negative")
    rng = np.random.default_rng(seed)
    emp = _choice_codes(rng, EMPLOYMENT_SHARES, n)
    purpose = _choice_codes(rng, PURPOSE_SHARES, n)
    e = dict(zip(EMPLOYMENT_TYPES, range(len(EMPLOYMENT_TYPES)), strict=True))
    # Self-employed applicants borrow for their business more often.
    to_business = (emp == e["self_employed"]) & (rng.random(n) < 0.20)
    purpose = np.where(to_business, PURPOSE_CATEGORIES.index("small_business"), purpose).astype(np.int64)

    # Latent credit quality; job seekers and students are a little weaker on average.
    z = rng.standard_normal(n) - 0.4 * (emp == e["unemployed_or_student"])
    # Years of adult credit life (no age is stored or used); retirees and students sit at the ends.
    adult_years = rng.gamma(2.2, 7.5, n) + 1.0
    adult_years = np.where(emp == e["retired"], 30.0 + rng.gamma(3.0, 5.0, n), adult_years)
    adult_years = np.where(emp == e["unemployed_or_student"], rng.gamma(1.5, 3.0, n), adult_years)
    adult_years = np.minimum(adult_years, 70.0)

    history = _round_int(adult_years * 12.0 * rng.uniform(0.55, 1.0, n) + rng.normal(0.0, 6.0, n), 0, 900)
    thin = rng.random(n) < 0.03  # new to credit, whatever their age
    history = np.where(thin, _round_int(rng.exponential(8.0, n), 0, 36), history)
    hist_f = history.astype(np.float64)

    # Bureau items, all worse as z falls.
    util_mean = _sigmoid(-0.75 - 0.85 * z)
    spread = 1.6  # beta(spread * m / (1 - m), spread) has mean m
    utilization = 100.0 * rng.beta(spread * util_mean / (1.0 - util_mean), spread, n)
    over = rng.random(n) < 0.08 * _sigmoid(-1.5 * z)  # over the limit
    utilization = np.where(over, utilization + rng.exponential(12.0, n), utilization)
    utilization = np.round(np.clip(np.where(history == 0, 0.0, utilization), 0.0, 150.0), 1)

    delinq = _round_int(rng.poisson(np.exp(-1.7 - 1.0 * z)).astype(np.float64), 0, 30)
    inquiries = _round_int(rng.poisson(np.exp(-0.05 - 0.45 * z + 0.3 * (hist_f < 36))).astype(np.float64),
                           0, 30)
    public = _round_int(rng.poisson(np.exp(-2.9 - 0.8 * z)).astype(np.float64), 0, 20)
    accounts = _round_int(rng.poisson(1.0 + 10.0 * (1.0 - np.exp(-hist_f / 90.0))
                                      * np.exp(0.25 * rng.standard_normal(n))).astype(np.float64), 0, 80)

    # The score: the same latent quality, the file's items, and what else the bureau knows (w).
    w = rng.standard_normal(n)
    score = (705.0 + 30.0 * z + 30.0 * w + 18.0 * np.log((hist_f + 6.0) / 126.0)
             - 28.0 * np.log1p(delinq) - 35.0 * np.log1p(public)
             - 0.45 * np.maximum(0.0, utilization - 30.0) + rng.normal(0.0, 8.0, n))
    credit_score = _round_int(score, 300, 850)

    # Employment, tenure and income.
    tenure = rng.gamma(1.3, 4.0, n)
    tenure = np.minimum(tenure, np.maximum(adult_years - 1.0, 0.0))
    tenure = np.where(emp == e["retired"], rng.uniform(8.0, 35.0, n), tenure)  # last job's tenure
    tenure = np.where(emp == e["unemployed_or_student"], 0.0, tenure)
    tenure = np.where(emp == e["contract_or_gig"], np.minimum(tenure, rng.gamma(1.2, 1.5, n)), tenure)
    employment_length = _round_int(tenure - 0.5 + rng.random(n), 0, 50)

    log_base = np.array([np.log(v) for v in (72_000, 42_000, 68_000, 45_000, 48_000, 17_000, 64_000)])
    log_income = (log_base[emp] + 0.12 * z + 0.05 * np.log1p(np.minimum(tenure, 20.0))
                  + rng.normal(0.0, 0.42, n))
    income = np.clip(np.exp(log_income), 4_000.0, 2_000_000.0)
    rounded = rng.random(n) < 0.6
    annual_income = np.where(rounded, np.round(income, -3), np.round(income, 2))
    annual_income = np.clip(annual_income, 4_000.0, 2_000_000.0)

    # What they ask for: scales with income, shifted by purpose.
    purpose_shift = np.array([0.20, 0.0, 0.10, -0.25, -0.45, -0.20, 0.30, -0.55, -0.40, -0.10, -0.35])
    log_amount = np.log(0.20 * income) + purpose_shift[purpose] + rng.normal(0.0, 0.5, n)
    amount = np.clip(np.round(np.exp(log_amount), -2), 1_000.0, 40_000.0)
    round_more = rng.random(n) < 0.5
    amount = np.where(round_more, np.clip(np.round(amount, -3), 1_000.0, 40_000.0), amount)

    p60 = _sigmoid(2.0 * (np.log(amount) - np.log(20_000.0)))
    terms = np.array([12, 24, 36, 48, 60], dtype=np.int64)
    short = rng.choice(4, size=n, p=[0.06, 0.16, 0.68, 0.10])
    term = np.where(rng.random(n) < p60, 60, terms[short]).astype(np.int64)

    # Housing: owning grows more likely with a longer credit history and a higher income.
    own_lp = -3.7 + 0.9 * np.log1p(hist_f / 12.0) + 0.35 * np.log(income / 60_000.0)
    mort_lp = -2.6 + 1.0 * np.log1p(hist_f / 12.0) + 0.9 * np.log(income / 60_000.0)
    other_lp = np.full(n, -2.6) + 0.8 * (emp == e["unemployed_or_student"])
    logits = np.column_stack([own_lp, mort_lp, np.zeros(n), other_lp])
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    housing_code = (rng.random(n)[:, None] > np.cumsum(probs, axis=1)).sum(axis=1)
    housing_code = np.minimum(housing_code, len(HOUSING_CATEGORIES) - 1)
    housing = np.array(HOUSING_CATEGORIES, dtype=object)[housing_code]

    purpose_text = _write_text(rng, purpose, PURPOSE_CATEGORIES, _PURPOSE_POOLS)
    employment_text = _write_text(rng, emp, EMPLOYMENT_TYPES, _EMPLOYMENT_POOLS)

    first = np.array(FIRST_NAMES, dtype=object)[rng.integers(0, len(FIRST_NAMES), n)]
    last = np.array(LAST_NAMES, dtype=object)[rng.integers(0, len(LAST_NAMES), n)]
    number = rng.integers(1, 1000, n)
    domain = np.array(EMAIL_DOMAINS, dtype=object)[rng.integers(0, len(EMAIL_DOMAINS), n)]
    names = pd.Series(first, dtype=object) + " " + pd.Series(last, dtype=object)
    emails = (pd.Series(first, dtype=object).str.lower() + "." + pd.Series(last, dtype=object).str.lower()
              + pd.Series(number.astype(str), dtype=object) + "@" + pd.Series(domain, dtype=object))

    frame = pd.DataFrame({
        "amount": amount.astype(np.float64),
        "term_months": term,
        "annual_income": annual_income.astype(np.float64),
        "employment_length_years": employment_length,
        "housing": pd.Series(housing, dtype=object),
        "loan_purpose_text": pd.Series(purpose_text, dtype=object),
        "employment_text": pd.Series(employment_text, dtype=object),
        "credit_score": credit_score,
        "delinquencies_2y": delinq,
        "inquiries_6m": inquiries,
        "revolving_utilization": utilization.astype(np.float64),
        "open_accounts": accounts,
        "credit_history_months": history,
        "public_records": public,
        "applicant_name": names.astype(object),
        "email": emails.astype(object),
    }, columns=list(FIELDS))
    latents = pd.DataFrame({
        "purpose_category": pd.Series(np.array(PURPOSE_CATEGORIES, dtype=object)[purpose], dtype=object),
        "employment_type": pd.Series(np.array(EMPLOYMENT_TYPES, dtype=object)[emp], dtype=object),
    }, index=frame.index)

    log_odds = true_log_odds(frame, latents)
    y = (rng.random(n) < _sigmoid(log_odds)).astype(np.int8)
    return frame, y, latents


def generate(n: int, seed: int) -> tuple[pd.DataFrame, npt.NDArray[np.int8]]:
    """``n`` synthetic applications (exactly the submitted fields of demo.toml) and outcomes (1 = default).

    The same frame and ``y`` as ``generate_with_latents(n, seed)``, without the latent categories.
    """
    frame, y, _ = generate_with_latents(n, seed)
    return frame, y
