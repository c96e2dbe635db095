"""Officer-facing pages: the review queue, a decision with its explanation and the officer's actions,
the application form, and the admin's manual-review switch."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from lending.charts import waterfall_svg
from lending.errors import DomainError
from lending.forms import ApplicationForm, OfficerActionForm
from lending.models import Decision, OfficerAction, Product
from lending.selectors import decision_get, decision_list, manual_review_current, product_get, product_spec
from lending.services import application_submit, manual_review_set, officer_decide

PAGE_SIZE = 25


def _add_domain_errors(form: Any, exc: DomainError) -> None:
    """Show a service's error on the form: on the field it names, else above the form."""
    for name, problems in exc.fields.items():
        for problem in problems:
            form.add_error(name if name in form.fields else None, problem)
    if not exc.fields:
        form.add_error(None, exc.message)


@require_GET
@login_required
def home(request: HttpRequest) -> HttpResponse:
    return redirect("lending:decision-list")


def _queue(decisions: QuerySet[Decision]) -> QuerySet[Decision]:
    """Refer band first: referred decisions no officer has decided yet, then everything newest first."""
    decided_by_officer = OfficerAction.objects.filter(decision=OuterRef("pk")).exclude(outcome="")
    return (
        decisions.annotate(officer_decided=Exists(decided_by_officer))
        .annotate(
            needs_review=Q(outcome=Decision.Outcome.REFERRED) & Q(officer_decided=False),
        )
        .order_by("-needs_review", "-decided_at", "-id")
    )


@require_GET
@login_required
@permission_required("lending.view_decision", raise_exception=True)
def decision_index(request: HttpRequest) -> HttpResponse:
    product = None
    if request.GET.get("product"):
        try:
            product = product_get(slug=request.GET["product"])
        except DomainError:
            raise Http404("no such product") from None
    outcome = request.GET.get("outcome") or None
    if outcome and outcome not in Decision.Outcome.values:
        outcome = None
    decisions = decision_list(product=product, outcome=outcome)
    query = request.GET.get("q", "").strip()
    if query:
        decisions = decisions.filter(
            Q(public_id__startswith=query.lower())
            | Q(application__public_id__startswith=query.lower())
            | Q(application__identity__applicant_name__icontains=query)
        )
    queue = _queue(decisions)
    if request.GET.get("needs_review"):
        queue = queue.filter(needs_review=True)
    page = Paginator(queue, PAGE_SIZE).get_page(request.GET.get("page"))
    filters = {k: v for k, v in request.GET.items() if k != "page" and v}
    return render(
        request,
        "lending/decision_list.html",
        {
            "page": page,
            "products": Product.objects.all(),
            "product": product,
            "outcome": outcome,
            "outcomes": Decision.Outcome.choices,
            "query": query,
            "needs_review": bool(request.GET.get("needs_review")),
            "filter_query": "&".join(f"{k}={v}" for k, v in filters.items()),
            "manual_review": manual_review_current(),
        },
    )


def _application_rows(decision: Decision, spec: Any) -> list[dict[str, Any]]:
    rows = []
    for field_spec in spec.fields:
        if field_spec.role in ("model_input", "context") and field_spec.name in decision.application.values:
            value = decision.application.values[field_spec.name]
            shown = field_spec.category_labels.get(value, value) if field_spec.type == "category" else value
            rows.append(
                {
                    "label": field_spec.label,
                    "value": shown,
                    "unit": field_spec.unit,
                    "source": field_spec.source,
                    "model_input": field_spec.is_model_input,
                    "special": field_spec.special_values.get(value) if isinstance(value, int) else None,
                }
            )
    return rows


def _explanation_view(decision: Decision, spec: Any) -> dict[str, Any] | None:
    from audit.adverse import explanation_for, recourse_lines

    explanation = explanation_for(decision=decision)
    if explanation is None:
        return None
    payload = explanation.document
    labels = {f.name: f.label for f in spec.fields}
    approval_line = decision.cutoff - decision.refer_band
    checks = [
        {"name": name, "passed": payload["checks"][name]["passed"], "detail": payload["checks"][name]}
        for name in ("additivity", "determinism", "faithfulness")
    ]
    return {
        "record": explanation,
        "svg": waterfall_svg(
            base_value=payload["base_value"],
            output=payload["output"],
            attributions=payload["attributions"],
            labels=labels,
            approval_line=approval_line,
        ),
        "adverse": [
            {"label": labels.get(name, name), "value": payload["attributions"][name]}
            for name in payload["negative_ranked"][:6]
        ],
        "checks": checks,
        "recourse": payload.get("recourse"),
        "recourse_lines": recourse_lines(spec, payload.get("recourse"), "en"),
    }


@require_GET
@login_required
@permission_required("lending.view_decision", raise_exception=True)
def decision_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    from audit.adverse import customer_requests_open, decision_final, notice_current, reason_statement_current

    try:
        decision = decision_get(public_id=public_id)
    except Decision.DoesNotExist:
        raise Http404("no such decision") from None
    spec = product_spec(product=decision.application.product)
    return render(
        request,
        "lending/decision_detail.html",
        {
            "decision": decision,
            "rows": _application_rows(decision, spec),
            "spec": spec,
            "final": decision_final(decision=decision),
            "explanation": _explanation_view(decision, spec),
            "statement": reason_statement_current(decision=decision),
            "notice": notice_current(decision=decision, contents=False),
            "actions": decision.officer_actions.select_related("officer").order_by("-created_at", "-id"),
            "customer_requests": customer_requests_open().filter(decision=decision),
            "form": OfficerActionForm(spec=spec),
            "can_act": request.user.has_perm("lending.add_officeraction"),
        },
    )


@require_POST
@login_required
@permission_required("lending.add_officeraction", raise_exception=True)
def decision_act(request: HttpRequest, public_id: str) -> HttpResponse:
    """Approve, deny, override (with the factors relied on) or ask for more information."""
    try:
        decision = decision_get(public_id=public_id)
    except Decision.DoesNotExist:
        raise Http404("no such decision") from None
    spec = product_spec(product=decision.application.product)
    form = OfficerActionForm(request.POST, spec=spec)
    if form.is_valid():
        try:
            officer_decide(
                decision=decision,
                officer=request.user,
                action=form.cleaned_data["action"],  # type: ignore[arg-type]
                factors=form.factors_relied_on(),
                comment=form.cleaned_data["comment"],
            )
        except DomainError as exc:
            _add_domain_errors(form, exc)
        else:
            messages.success(request, "Your decision is recorded.")
            return redirect("lending:decision-detail", public_id=decision.public_id)
    messages.error(
        request,
        "Your decision was not recorded: "
        + "; ".join(f"{field}: {' '.join(errors)}" for field, errors in form.errors.items()),
    )
    return redirect("lending:decision-detail", public_id=decision.public_id)


@require_POST
@login_required
@permission_required("lending.change_manual_review", raise_exception=True)
def manual_review_toggle(request: HttpRequest) -> HttpResponse:
    enabled = request.POST.get("enabled") == "on"
    try:
        manual_review_set(enabled=enabled, changed_by=request.user, reason=request.POST.get("reason", ""))  # type: ignore[arg-type]
    except DomainError as exc:
        messages.error(request, "; ".join(" ".join(v) for v in exc.fields.values()) or exc.message)
    else:
        messages.success(request, "Manual review of every new application is " + ("ON." if enabled else "off."))
    return redirect("lending:decision-list")


@require_GET
@login_required
@permission_required("lending.add_application", raise_exception=True)
def product_index(request: HttpRequest) -> HttpResponse:
    return render(request, "lending/product_list.html", {"products": Product.objects.all()})


@require_http_methods(["GET", "POST"])
@login_required
@permission_required("lending.add_application", raise_exception=True)
def application_new(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        product = product_get(slug=slug)
    except DomainError:
        raise Http404("no such product") from None
    spec = product_spec(product=product)
    form = ApplicationForm(request.POST or None, spec=spec)
    if request.method == "POST" and form.is_valid():
        try:
            decision = application_submit(product=product, fields=form.validated, submitted_by=request.user)  # type: ignore[arg-type]
        except DomainError as exc:
            _add_domain_errors(form, exc)
        else:
            messages.success(request, f"Application decided: {decision.get_outcome_display()}.")
            return redirect("lending:decision-detail", public_id=decision.public_id)
    status = 400 if request.method == "POST" else 200
    return render(
        request, "lending/application_form.html", {"form": form, "product": product, "spec": spec}, status=status
    )
