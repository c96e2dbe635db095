"""The decision policy: knockout rules first, then a cutoff on the probability of default with a refer band."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scoring.spec import Knockout, Policy

APPROVED = "approved"
DENIED = "denied"
REFERRED = "referred"


@dataclass(frozen=True)
class PolicyOutcome:
    outcome: str
    knockout: Knockout | None = None


def policy_decide(policy: Policy, probability_of_default: float, values: Mapping[str, Any]) -> PolicyOutcome:
    """Apply the product's policy to a scored application.

    Knockouts deny whatever the score, and carry their own reason (Reg B comment 9(b)(2)-8).
    PD at or above cutoff + band: deny; below cutoff - band: approve; in between: an officer decides.
    """
    for rule in policy.knockouts:
        if rule.applies(values.get(rule.field)):
            return PolicyOutcome(DENIED, rule)
    if probability_of_default >= policy.cutoff + policy.refer_band:
        return PolicyOutcome(DENIED)
    if probability_of_default < policy.cutoff - policy.refer_band:
        return PolicyOutcome(APPROVED)
    return PolicyOutcome(REFERRED)
