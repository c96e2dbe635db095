"""Compliance: the audit chain's head hash (to keep outside the system) and its verification."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from audit.services import audit_chain_head, audit_chain_verify, audit_record


@require_GET
@login_required
@permission_required("audit.view_auditevent", raise_exception=True)
def audit_head(request: HttpRequest) -> HttpResponse:
    head = audit_chain_head()
    if request.GET.get("format") == "json":
        response = JsonResponse({"sequence": head.sequence, "hash": head.hash,
                                 "as_of": head.updated_at.isoformat(), "exported_at": timezone.now().isoformat()})
        response["Content-Disposition"] = f'attachment; filename="candor-audit-head-{head.sequence}.json"'
        return response
    return render(request, "audit/audit_head.html", {"head": head, "report": None})


@require_http_methods(["POST"])
@login_required
@permission_required("audit.view_auditevent", raise_exception=True)
def audit_verify_view(request: HttpRequest) -> HttpResponse:
    from django.db import transaction

    report = audit_chain_verify()
    with transaction.atomic():
        audit_record(event_type="audit.verified", subject=("audit.chain", "1"), actor=request.user,
                     data={"ok": report.ok, "events": report.events, "head_hash": report.head_hash,
                           "problems": [str(p) for p in report.problems][:100]})
    return render(request, "audit/audit_head.html", {"head": audit_chain_head(), "report": report})
