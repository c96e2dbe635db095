"""Officer-facing pages: the review queue, a decision with its explanation and the officer's actions,
the application form, and the admin's manual-review switch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from lending.charts import waterfall_svg
from lending.errors import DomainError
from lending.forms import ApplicationForm, ExtractionReviewForm, OfficerActionForm
from lending.models import Decision, Extraction, OfficerAction, Product
from lending.selectors import decision_get, decision_list, manual_review_current, product_get, product_spec
from lending.services import application_submit, extraction_review, manual_review_set, officer_decide

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
    # The decision's own inputs over the application's: a re-scored decision used a corrected value.
    values = {**decision.application.values, **decision.inputs}
    rows = []
    for field_spec in spec.fields:
        if field_spec.role in ("model_input", "context") and field_spec.name in values:
            value = values[field_spec.name]
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
            {"label": labels.get(name, name), "value": payload["attributions"][name], "field": name}
            for name in payload["negative_ranked"][:6]
        ],
        "checks": checks,
        "recourse": payload.get("recourse"),
        "recourse_lines": recourse_lines(spec, payload.get("recourse"), "en"),
        # Officers read the spec's labels too, never the internal field names.
        "recourse_not_in_reasons": [labels.get(name, name)
                                    for name in (payload.get("recourse") or {}).get("fields_not_in_reasons", ())],
    }


def highlighted_text(text: str, spans: Sequence[Mapping[str, Any]]) -> SafeString:
    """The applicant's text, escaped, with each evidence span in <mark> and its measured weight beside it."""
    out, last = [], 0
    for span in sorted(spans, key=lambda item: int(item["start"])):
        start, end = int(span["start"]), int(span["end"])
        if start < last or end > len(text) or start >= end:
            continue  # never show a span that does not fit the stored text
        weight = float(span["score"])
        out.append(format_html('{}<mark title="probability drop {}">{}</mark><sup class="weight">{}</sup>',
                               text[last:start], f"{weight:.3f}", text[start:end], f"{weight:.2f}"))
        last = end
    out.append(conditional_escape(text[last:]))
    return mark_safe("".join(str(part) for part in out))  # noqa: S308 - every part is escaped above


def _extraction_views(decision: Decision, spec: Any, reason_fields: Mapping[str, int]) -> list[dict[str, Any]]:
    """What the language model read from each text, with its evidence, for the officer page."""
    rows = []
    for extraction in decision.application.extractions.select_related("reviewed_by").order_by("id"):
        field_spec = spec.field(extraction.field)
        text = str(decision.application.values.get(extraction.text_field) or "")
        evidence = extraction.evidence or {}
        rows.append({
            "record": extraction,
            "label": field_spec.label,
            "text_label": spec.field(extraction.text_field).label,
            "value_label": field_spec.category_labels.get(extraction.value, extraction.value),
            "used_label": field_spec.category_labels.get(extraction.used_value, extraction.used_value),
            "in_decision": decision.inputs.get(extraction.field),
            "candidates": [(field_spec.category_labels.get(value, value), score)
                           for value, score in extraction.candidates],
            "measured": extraction.evidence is not None,
            "abandoned": extraction.evidence_abandoned,
            "evidence_value_differs": bool(evidence) and evidence.get("value") != extraction.value,
            "highlighted": highlighted_text(text, evidence.get("spans", ())) if evidence else text,
            "spans": evidence.get("spans", ()),
            "reason_rank": reason_fields.get(extraction.field),
            "form": ExtractionReviewForm(field_spec=field_spec, initial={"value": extraction.used_value}),
        })
    return rows


def _reason_rows(reasons: Sequence[Mapping[str, Any]],
                 extractions: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The stated reasons; a text-derived one carries the highlighted words that produced it."""
    by_field = {row["record"].field: row for row in extractions}
    return [{**reason, "extraction": by_field.get(str(reason.get("field")))} for reason in reasons]


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
    statement = reason_statement_current(decision=decision)
    explanation = _explanation_view(decision, spec)
    if statement is not None:
        reason_fields = {str(r["field"]): int(r["rank"]) for r in statement.reasons if r.get("field")}
    else:
        reason_fields = {str(a["field"]): rank for rank, a in enumerate((explanation or {}).get("adverse", ()), 1)}
    extractions = _extraction_views(decision, spec, reason_fields)
    return render(
        request,
        "lending/decision_detail.html",
        {
            "decision": decision,
            "rows": _application_rows(decision, spec),
            "spec": spec,
            "final": decision_final(decision=decision),
            "explanation": explanation,
            "statement": statement,
            "reason_rows": _reason_rows(statement.reasons if statement else (), extractions),
            "adverse_rows": _reason_rows((explanation or {}).get("adverse", ()), extractions),
            "extractions": extractions,
            "can_review": request.user.has_perm("lending.review_extraction") and decision.is_current,
            "superseded_by": Decision.all_objects.filter(supersedes=decision).first(),
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
    if not decision.is_current:
        messages.error(request, "This decision has been superseded by a re-scored one: decide on the current one.")
        return redirect("lending:decision-detail", public_id=decision.public_id)
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
@permission_required("lending.review_extraction", raise_exception=True)
def extraction_review_view(request: HttpRequest, public_id: str, field: str) -> HttpResponse:
    """Confirm or correct what the language model read into ``field``; a correction re-scores the
    application into a new decision, whose page this redirects to."""
    try:
        decision = decision_get(public_id=public_id)
        extraction = Extraction.objects.select_related("application__product").get(
            application=decision.application, field=field)
    except (Decision.DoesNotExist, Extraction.DoesNotExist):
        raise Http404("no such reading") from None
    if not decision.is_current:
        messages.error(request, "This decision has been superseded: review the reading on the current decision.")
        return redirect("lending:decision-detail", public_id=decision.public_id)
    spec = product_spec(product=decision.application.product)
    form = ExtractionReviewForm(request.POST, field_spec=spec.field(field))
    if form.is_valid():
        try:
            current = extraction_review(extraction=extraction, officer=request.user,  # type: ignore[arg-type]
                                        value=form.cleaned_data["value"], comment=form.cleaned_data["comment"])
        except DomainError as exc:
            _add_domain_errors(form, exc)
        else:
            if current.pk != decision.pk:
                messages.success(request, f"Corrected: the application was re-scored into a new decision "
                                          f"({current.get_outcome_display()}); the old one is kept, superseded.")
            else:
                messages.success(request, "The reading is confirmed; the decision stands.")
            return redirect("lending:decision-detail", public_id=current.public_id)
    messages.error(request, f"The reading of {field} was not changed: "
                   + "; ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items()))
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
