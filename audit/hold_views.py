"""Compliance: legal holds (Reg B 1002.12(b)(4)). List them, place one on an application for a named matter,
release one at the matter's final disposition. Each change is audited by the service that makes it."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from audit.adverse import (
    MATTER_MAX,
    LegalHoldInvalid,
    legal_hold_application,
    legal_hold_place,
    legal_hold_release,
    legal_holds_list,
)
from audit.models import LegalHold


class LegalHoldForm(forms.Form):
    application = forms.CharField(max_length=64, label="Application or decision id",
                                  help_text="The public id shown on the decision page")
    matter = forms.CharField(max_length=MATTER_MAX, help_text="The investigation, examination or action, "
                                                              "e.g. a docket or case number")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), help_text="Why the records must be kept")


class ReleaseForm(forms.Form):
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), label="Release note",
                           help_text="The matter's final disposition")


def _show_domain_error(form: forms.Form, exc: LegalHoldInvalid) -> None:
    for name, problems in exc.fields.items():
        for problem in problems:
            form.add_error(name if name in form.fields else None, problem)
    if not exc.fields:
        form.add_error(None, exc.message)


@require_http_methods(["GET", "POST"])
@login_required
@permission_required("audit.view_legalhold", raise_exception=True)
def legal_holds_view(request: HttpRequest) -> HttpResponse:
    form = LegalHoldForm(request.POST or None)
    if request.method == "POST":
        if not request.user.has_perm("audit.add_legalhold"):
            return HttpResponse("You may not place legal holds.", status=403)
        if form.is_valid():
            try:
                application = legal_hold_application(identifier=form.cleaned_data["application"])
                hold = legal_hold_place(application=application, placed_by=request.user,  # type: ignore[arg-type]
                                        matter=form.cleaned_data["matter"], reason=form.cleaned_data["reason"])
            except LegalHoldInvalid as exc:
                _show_domain_error(form, exc)
            else:
                messages.success(request, f"Application {hold.application.public_id} is on hold for {hold.matter}.")
                return redirect("audit:legal-holds")
    show_released = request.GET.get("released") == "1"
    holds = legal_holds_list(active_only=not show_released)[:500]
    return render(request, "audit/legal_holds.html", {
        "form": form, "holds": holds, "release_form": ReleaseForm(), "show_released": show_released,
    }, status=400 if form.errors else 200)


@require_POST
@login_required
@permission_required("audit.change_legalhold", raise_exception=True)
def legal_hold_release_view(request: HttpRequest, pk: int) -> HttpResponse:
    hold = get_object_or_404(LegalHold, pk=pk)
    form = ReleaseForm(request.POST)
    if not form.is_valid():
        messages.error(request, "A release needs its note: the matter's final disposition.")
        return redirect("audit:legal-holds")
    was_active = hold.active
    legal_hold_release(hold=hold, released_by=request.user, note=form.cleaned_data["note"])  # type: ignore[arg-type]
    if was_active:
        messages.success(request, f"The hold on application {hold.application.public_id} for {hold.matter} is "
                                  f"released; its records now follow the retention schedule.")
    else:
        messages.info(request, "That hold was already released.")
    return redirect("audit:legal-holds")
