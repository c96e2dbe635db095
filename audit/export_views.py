"""Compliance: replay a decision, and export decisions (filters, jobs with progress, downloads)."""

from __future__ import annotations

from pathlib import Path

from django import forms
from django.contrib.auth.decorators import login_required, permission_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from audit.exports import ExportFilters, export_job_create, export_jobs_recent, exports_dir
from audit.models import ExportJob
from audit.replay import decision_replay
from lending.models import Decision, Product
from lending.selectors import decision_get


@require_http_methods(["GET", "POST"])
@login_required
@permission_required("audit.view_auditevent", raise_exception=True)
def decision_replay_view(request: HttpRequest, public_id: str) -> HttpResponse:
    try:
        decision = decision_get(public_id=public_id)
    except Decision.DoesNotExist:
        raise Http404("no such decision") from None
    report = decision_replay(decision=decision, actor=request.user) if request.method == "POST" else None
    return render(request, "audit/replay.html", {"decision": decision, "report": report})


class ExportForm(forms.Form):
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}),
                            help_text="First day decided (UTC), inclusive")
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}),
                            help_text="Last day decided (UTC), inclusive")
    product = forms.ChoiceField(required=False)
    outcome = forms.ChoiceField(required=False, choices=[("", "All"), *Decision.Outcome.choices],
                                label="Model outcome")

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["product"].choices = [("", "All"), *Product.objects.values_list("slug", "name")]  # type: ignore[attr-defined]

    def clean(self) -> dict[str, object]:
        cleaned = super().clean() or {}
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:  # type: ignore[operator]
            self.add_error("until", "must be on or after the first day")
        return cleaned

    def filters(self) -> ExportFilters:
        data = self.cleaned_data
        return ExportFilters(since=data["since"], until=data["until"], product=data["product"] or None,
                             outcome=data["outcome"] or None)


@require_http_methods(["GET", "POST"])
@login_required
@permission_required("audit.view_auditevent", raise_exception=True)
def exports_view(request: HttpRequest) -> HttpResponse:
    form = ExportForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        export_job_create(filters=form.filters(), requested_by=request.user)  # type: ignore[arg-type]
        return redirect("audit:exports")
    jobs = export_jobs_recent()
    running = any(job.status in (ExportJob.Status.PENDING, ExportJob.Status.RUNNING) for job in jobs)
    return render(request, "audit/exports.html", {"form": form, "jobs": jobs, "running": running})


@require_GET
@login_required
@permission_required("audit.view_auditevent", raise_exception=True)
def export_download(request: HttpRequest, public_id: str) -> FileResponse:
    job = get_object_or_404(ExportJob, public_id=public_id, status=ExportJob.Status.DONE)
    path = Path(job.path).resolve()
    # Only files the app wrote into its own export folder are served.
    if not path.is_relative_to(exports_dir().resolve()) or not path.is_file():
        raise Http404("export file not available")
    response = FileResponse(path.open("rb"), as_attachment=True, filename=path.name, content_type="application/zip")
    response["X-Content-SHA256"] = job.sha256
    return response
