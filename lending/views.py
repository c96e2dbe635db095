"""Officer-facing pages: decisions, a decision, and the application form."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from lending.errors import DomainError
from lending.forms import ApplicationForm
from lending.models import Decision, Product
from lending.selectors import decision_get, decision_list, product_get, product_spec
from lending.services import application_submit


@require_GET
@login_required
def home(request: HttpRequest) -> HttpResponse:
    return redirect("lending:decision-list")


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
    page = Paginator(decision_list(product=product, outcome=outcome), 25).get_page(request.GET.get("page"))
    return render(request, "lending/decision_list.html", {
        "page": page, "products": Product.objects.all(), "product": product, "outcome": outcome,
        "outcomes": Decision.Outcome.choices,
    })


@require_GET
@login_required
@permission_required("lending.view_decision", raise_exception=True)
def decision_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    try:
        decision = decision_get(public_id=public_id)
    except Decision.DoesNotExist:
        raise Http404("no such decision") from None
    spec = product_spec(product=decision.application.product)
    rows = []
    for field_spec in spec.fields:
        if field_spec.role in ("model_input", "context") and field_spec.name in decision.application.values:
            value = decision.application.values[field_spec.name]
            shown = field_spec.category_labels.get(value, value) if field_spec.type == "category" else value
            rows.append({"label": field_spec.label, "value": shown, "unit": field_spec.unit,
                         "source": field_spec.source, "model_input": field_spec.is_model_input,
                         "special": field_spec.special_values.get(value) if isinstance(value, int) else None})
    return render(request, "lending/decision_detail.html", {"decision": decision, "rows": rows, "spec": spec})


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
            decision = application_submit(product=product, fields=form.validated,
                                          submitted_by=request.user)  # type: ignore[arg-type]
        except DomainError as exc:
            for name, problems in exc.fields.items():
                for problem in problems:
                    form.add_error(name if name in form.fields else None, problem)
            if not exc.fields:
                form.add_error(None, exc.message)
        else:
            messages.success(request, f"Application decided: {decision.get_outcome_display()}.")
            return redirect("lending:decision-detail", public_id=decision.public_id)
    status = 400 if request.method == "POST" else 200
    return render(request, "lending/application_form.html", {"form": form, "product": product, "spec": spec},
                  status=status)
