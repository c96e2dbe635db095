"""The fair-lending report page (issue 5, section 6; regulatory checklist I): compliance and admin only.

Two sources of rows, per product:

* **stored decisions** (default): the product's decisions (optionally ``since``/``until``, dates of
  ``decided_at``), joined with their ``MonitoringData`` (monitoring-only values, kept apart from the
  application and never read by scoring). "Approved" is the decision's final outcome: the outcome of the
  latest deciding officer action (approve, deny, override), else the model's; a decision still referred
  counts as not approved. The score is the stored PD. "Overridden" is whether an officer overrode it
  (every decision has the flag, so the override rate is over all decisions of the group). A decision
  without monitoring data is in the "missing" group and in no comparison.
* **reference dataset** (``?dataset=1``): the product's training data scored by the product's approved
  model version (the latest registered if none is approved) and decided by the product's policy, as
  ``bench/fairness_report.py`` does; for a product whose target is the lender's historical decision
  (hmda-boston) the historical decisions are reported too. No stored decisions are needed.

Group definitions per product (``PRODUCT_GROUPS``): german-credit sex (from personal_status_sex) and age
62 and over against under 62 (from age_years) and their intersection
(``scoring.fairness.german_monitoring_groups``); hmda-boston race (afam) and marital status (single) and
their intersection. A product without monitoring groups gets a clear message instead of a report.

Viewing a report is an audit event (``fairness.report_viewed``) with the filters and the headline AIRs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from django.contrib.auth.decorators import login_required, permission_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.dateparse import parse_date
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET

from audit.services import audit_record
from lending.models import Decision, ModelVersion, OfficerAction, Product
from lending.selectors import product_spec, scoring_model_for
from scoring.datasets import load_dataset
from scoring.fairness import (
    ELDERLY_LABEL,
    UNDER_ELDERLY_LABEL,
    Estimate,
    FairnessReport,
    fairness_chart_svg,
    fairness_report,
    german_monitoring_groups,
    policy_outcomes,
)
from scoring.policy import APPROVED

AFAM = "African American"
NOT_AFAM = "not African American"
SINGLE = "single"
NOT_SINGLE = "not single"


def _yes_no(values: Sequence[Any], yes: str, no: str) -> list[str | None]:
    out: list[str | None] = []
    for value in values:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            out.append(None)
        elif isinstance(value, str):
            out.append(yes if value.strip().lower() in ("yes", "true", "1") else no)
        else:
            out.append(yes if bool(value) else no)
    return out


def _german_groups(monitoring: pd.DataFrame) -> pd.DataFrame:
    frame = monitoring.reindex(columns=["personal_status_sex", "age_years"])
    return german_monitoring_groups(frame)


def _hmda_groups(monitoring: pd.DataFrame) -> pd.DataFrame:
    frame = monitoring.reindex(columns=["afam", "single"])
    return pd.DataFrame({
        "race": _yes_no(frame["afam"].tolist(), AFAM, NOT_AFAM),
        "marital_status": _yes_no(frame["single"].tolist(), SINGLE, NOT_SINGLE),
    }, index=monitoring.index, dtype=object)


@dataclass(frozen=True)
class GroupDefinition:
    """How a product's monitoring-only values become monitoring groups, and which group is protected."""

    groups: Callable[[pd.DataFrame], pd.DataFrame]
    group_columns: tuple[str, ...]
    protected: Mapping[str, str]
    control: Mapping[str, str]
    intersections: tuple[tuple[str, str], ...]
    description: str
    historical: str | None = None  # title of the historical-decision report (target is a lender decision)

    def report_kwargs(self) -> dict[str, Any]:
        return {"group_columns": list(self.group_columns), "protected": dict(self.protected),
                "control": dict(self.control), "intersections": list(self.intersections)}


PRODUCT_GROUPS: dict[str, GroupDefinition] = {
    "german-credit": GroupDefinition(
        groups=_german_groups, group_columns=("sex", "age_band"),
        protected={"sex": "female", "age_band": ELDERLY_LABEL},
        control={"sex": "male", "age_band": UNDER_ELDERLY_LABEL},
        intersections=(("sex", "age_band"),),
        description="sex from personal_status_sex (A91, A93, A94 male; A92, A95 female); age 62 and over "
                    "against under 62 (Reg B comment 6(b)(2)-2) from age_years; and their intersection",
    ),
    "hmda-boston": GroupDefinition(
        groups=_hmda_groups, group_columns=("race", "marital_status"),
        protected={"race": AFAM, "marital_status": SINGLE},
        control={"race": NOT_AFAM, "marital_status": NOT_SINGLE},
        intersections=(("race", "marital_status"),),
        description="race from afam (African American against not African American); marital status from "
                    "single (single against not single); and their intersection",
        historical="historical lender decisions: not denied (the data's deny = no)",
    ),
}


# --- the computations ------------------------------------------------------------------------------

def _final_outcomes(decision_ids: Sequence[int]) -> tuple[dict[int, str], set[int]]:
    """(final outcome by decision where an officer decided, decisions an officer overrode)."""
    final: dict[int, str] = {}
    overridden: set[int] = set()
    actions = (OfficerAction.objects.filter(decision_id__in=decision_ids)
               .exclude(action=OfficerAction.Action.REQUEST_INFO)
               .order_by("decision_id", "created_at", "id")
               .values_list("decision_id", "action", "outcome"))
    for decision_id, action, outcome in actions.iterator():
        if outcome:
            final[decision_id] = outcome  # ordered by time: the latest wins
        if action == OfficerAction.Action.OVERRIDE:
            overridden.add(decision_id)
    return final, overridden


def stored_decisions_frame(*, product: Product, definition: GroupDefinition, since: dt.date | None = None,
                           until: dt.date | None = None) -> pd.DataFrame:
    """One row per stored decision: monitoring groups, pd, approved (final outcome), overridden."""
    decisions = Decision.objects.filter(application__product=product)
    if since is not None:
        decisions = decisions.filter(decided_at__date__gte=since)
    if until is not None:
        decisions = decisions.filter(decided_at__date__lte=until)
    rows = list(decisions.order_by("id").values_list("id", "outcome", "probability_of_default",
                                                     "application__monitoring__values"))
    ids = [row[0] for row in rows]
    final: dict[int, str] = {}
    overridden: set[int] = set()
    for start in range(0, len(ids), 5000):
        part_final, part_overridden = _final_outcomes(ids[start:start + 5000])
        final.update(part_final)
        overridden |= part_overridden
    monitoring = pd.DataFrame([row[3] if isinstance(row[3], dict) else {} for row in rows],
                              index=range(len(rows)))
    frame = definition.groups(monitoring) if rows else pd.DataFrame(columns=list(definition.group_columns))
    frame["pd"] = [row[2] for row in rows]
    frame["approved"] = [final.get(row[0], row[1]) == Decision.Outcome.APPROVED for row in rows]
    frame["overridden"] = [row[0] in overridden for row in rows]
    return frame


def reference_model_version(*, product: Product) -> ModelVersion | None:
    """The product's approved model version for its current spec, else its latest registered one."""
    versions = ModelVersion.objects.filter(product=product).select_related("product")
    approved = versions.filter(status=ModelVersion.Status.APPROVED, spec_hash=product.spec_hash) \
        .order_by("-approved_at", "-id").first()
    return approved or versions.order_by("-registered_at", "-id").first()


def dataset_reports(*, product: Product, model_version: ModelVersion,
                    definition: GroupDefinition) -> tuple[list[tuple[str, FairnessReport]], int]:
    """Reports on the product's training data scored by ``model_version`` (and, where the target is a
    lender decision, on the historical decisions). Returns (key, report) pairs and the row count."""
    spec = product_spec(product=product)
    model = scoring_model_for(model_version=model_version, allow_unapproved=True)
    dataset = load_dataset(spec)
    pds = model.score_frame(dataset.frame)
    outcomes = policy_outcomes(spec.policy, pds, dataset.frame)
    frame = definition.groups(dataset.frame)
    frame["pd"] = pds
    frame["approved"] = [o == APPROVED for o in outcomes]
    reports = [("model", fairness_report(
        frame, approved_column="approved", score_column="pd", **definition.report_kwargs(),
        title=f"{product.name}, training data scored by model {model_version.version}: approved "
              "(a referral counts as not approved)"))]
    if definition.historical:
        frame["historical_approved"] = np.asarray(dataset.y) == 0
        reports.append(("historical", fairness_report(
            frame, approved_column="historical_approved", score_column="pd", **definition.report_kwargs(),
            title=f"{product.name}, {definition.historical}")))
    return reports, len(frame)


def headline_airs(report: FairnessReport) -> list[dict[str, Any]]:
    """Every protected-against-control AIR of a report, as plain numbers (for the audit event and summaries)."""
    out = []
    for breakdown in report.breakdowns:
        for comparison in breakdown.comparisons:
            out.append({"breakdown": breakdown.name, "protected": comparison.protected,
                        "control": comparison.control, "air": comparison.air.value,
                        "lower": comparison.air.lower, "upper": comparison.air.upper,
                        "four_fifths_flag": comparison.four_fifths_flag})
    return out


# --- presentation ----------------------------------------------------------------------------------

def _fmt(value: float | None, kind: str) -> str:
    if value is None:
        return "n/a"
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "pp":
        return f"{value:+.1f} pp"
    return f"{value:.3f}"


def _est(estimate: Estimate | None, kind: str) -> dict[str, str]:
    if estimate is None:
        return {"value": "—", "interval": "", "note": ""}
    if estimate.value is None:
        return {"value": "n/a", "interval": "", "note": estimate.note}
    return {"value": _fmt(estimate.value, kind),
            "interval": f"[{_fmt(estimate.lower, kind)}, {_fmt(estimate.upper, kind)}]", "note": estimate.note}


def report_view_model(report: FairnessReport, key: str) -> dict[str, Any]:
    """The report as the template shows it: strings, in order, plus the chart."""
    breakdowns = []
    for breakdown in report.breakdowns:
        rows = list(breakdown.groups)
        if all(g.label != breakdown.control.label for g in rows):
            rows.append(breakdown.control)
        groups = [{
            "label": g.label, "is_control": g.label == breakdown.control.label, "n": g.n,
            "approvals": g.approvals, "approval_rate": _est(g.approval_rate, "pct"),
            "score_mean": _fmt(g.score_mean, "num"), "score_sd": _fmt(g.score_sd, "num"),
            "override_rate": _est(g.override_rate, "pct") if g.override_rate is not None else None,
            "overrides": g.overrides, "override_n": g.override_n,
        } for g in rows]
        comparisons = [{
            "protected": c.protected, "control": c.control, "air": _est(c.air, "num"),
            "flag": c.four_fifths_flag, "ci_below": c.ci_below_threshold,
            "marginal": _est(c.marginal_effect_pp, "pp"),
            "p_value": "n/a" if c.p_value is None else f"{c.p_value:.2g}",
            "smd": _est(c.smd, "num"), "override_diff": _est(c.override_difference_pp, "pp")
            if c.override_difference_pp is not None else None,
        } for c in breakdown.comparisons]
        breakdowns.append({"name": breakdown.name, "control": breakdown.control.label, "groups": groups,
                           "comparisons": comparisons})
    return {
        "key": key, "title": report.title, "n": report.n, "confidence": f"{100 * report.confidence:g}%",
        "threshold": f"{report.air_threshold:g}", "has_overrides": report.overridden_column is not None,
        "breakdowns": breakdowns, "methods": dict(report.methods),
        "chart": mark_safe(fairness_chart_svg(report, id_prefix=f"fairness-{key}")),  # noqa: S308 (escaped SVG)
        "flagged": [f"{name}: {c.protected} (AIR {c.air.value:.3f})" for name, c in report.flagged
                    if c.air.value is not None],
    }


def _date_param(request: HttpRequest, name: str, errors: list[str]) -> dt.date | None:
    raw = (request.GET.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = parse_date(raw)
    except ValueError:
        value = None
    if value is None:
        errors.append(f"{name}: {raw!r} is not a date (YYYY-MM-DD); ignored")
    return value


@require_GET
@login_required
@permission_required("lending.view_monitoringdata", raise_exception=True)
def fairness_report_view(request: HttpRequest) -> HttpResponse:
    products = list(Product.objects.order_by("slug"))
    slug = (request.GET.get("product") or "").strip()
    dataset_mode = request.GET.get("dataset") in ("1", "true", "yes", "on")
    errors: list[str] = []
    since = _date_param(request, "since", errors)
    until = _date_param(request, "until", errors)
    context: dict[str, Any] = {"products": products, "slug": slug, "dataset_mode": dataset_mode,
                               "since": since, "until": until, "errors": errors, "reports": [],
                               "product": None, "definition": None, "message": "", "model_version": None}
    if not slug:
        return render(request, "audit/fairness.html", context)
    product = next((p for p in products if p.slug == slug), None)
    if product is None:
        context["message"] = f"There is no product {slug!r}."
        return render(request, "audit/fairness.html", context, status=404)
    context["product"] = product
    definition = PRODUCT_GROUPS.get(product.slug)
    spec = product_spec(product=product)
    monitoring_fields = [f.name for f in spec.fields if f.role == "monitoring_only"]
    if definition is None:
        context["message"] = (
            f"{product.name} has no fair-lending monitoring groups: its spec declares "
            + (f"the monitoring-only fields {', '.join(monitoring_fields)} but no group definition for them."
               if monitoring_fields else "no monitoring-only fields (such as sex, age or race), so no report "
                                         "by protected group can be computed for it.")
        )
        return render(request, "audit/fairness.html", context)
    context["definition"] = definition
    reports: list[tuple[str, FairnessReport]] = []
    if dataset_mode:
        model_version = reference_model_version(product=product)
        context["model_version"] = model_version
        if model_version is None:
            context["message"] = f"{product.name} has no registered model version to score its training data with."
        else:
            try:
                reports, _ = dataset_reports(product=product, model_version=model_version, definition=definition)
            except (OSError, ValueError) as exc:
                context["message"] = f"The reference dataset could not be scored: {exc}"
    else:
        frame = stored_decisions_frame(product=product, definition=definition, since=since, until=until)
        if len(frame) == 0:
            context["message"] = ("No stored decisions of this product in the chosen period. The reference "
                                  "dataset mode reports on the product's training data instead.")
        else:
            reports = [("decisions", fairness_report(
                frame, approved_column="approved", score_column="pd", overridden_column="overridden",
                **definition.report_kwargs(),
                title=f"{product.name}, stored decisions: final outcome approved (a referral still open "
                      "counts as not approved)"))]
    context["reports"] = [report_view_model(report, key) for key, report in reports]
    with transaction.atomic():
        audit_record(event_type="fairness.report_viewed", subject=product, actor=request.user, data={
            "product": product.slug, "mode": "dataset" if dataset_mode else "decisions",
            "since": since.isoformat() if since else None, "until": until.isoformat() if until else None,
            "model_version": context["model_version"].version if context["model_version"] else None,
            "reports": [{"key": key, "title": report.title, "n": report.n, "airs": headline_airs(report)}
                        for key, report in reports],
        })
    return render(request, "audit/fairness.html", context)
