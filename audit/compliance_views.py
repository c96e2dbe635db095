"""Staff pages for adverse action: the notices due and overdue (compliance), a stored notice as HTML or PDF
(officers and compliance), the customers' open requests (officers), and an API call that issues a fresh
private link for a customer."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required, permission_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from audit.adverse import customer_link_issue, customer_link_url, customer_requests_open, notices_due
from audit.customer_messages import customer_messages_due
from audit.models import Notice
from lending.auth import api_view, problem
from lending.models import Decision
from lending.selectors import decision_get


@require_GET
@login_required
# A compliance page: officers see their own decisions' notices, not the lender-wide due list.
@permission_required("audit.view_auditevent", raise_exception=True)
def notices_due_view(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    items = notices_due(now=now)
    return render(request, "audit/notices_due.html", {
        "items": items, "now": now, "overdue": sum(1 for item in items if item.overdue),
        "messages_due": customer_messages_due()})


def _notice(public_id: str) -> Notice:
    try:
        return Notice.objects.get(public_id=public_id)
    except Notice.DoesNotExist:
        raise Http404("no such notice") from None


@require_GET
@login_required
@permission_required("audit.view_notice", raise_exception=True)
def notice_html(request: HttpRequest, public_id: str) -> HttpResponse:
    response = HttpResponse(_notice(public_id).html, content_type="text/html; charset=utf-8")
    # The stored letter is shown as it was sent: inline styles only, nothing may run or load.
    response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    return response


@require_GET
@login_required
@permission_required("audit.view_notice", raise_exception=True)
def notice_pdf(request: HttpRequest, public_id: str) -> HttpResponse:
    notice = _notice(public_id)
    response = HttpResponse(bytes(notice.pdf), content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="notice-{notice.reference}.pdf"'
    return response


@require_GET
@login_required
@permission_required("audit.view_customerrequest", raise_exception=True)
def customer_requests_view(request: HttpRequest) -> HttpResponse:
    return render(request, "audit/customer_requests.html", {"requests": customer_requests_open()[:500]})


@require_POST
@api_view(permission="audit.add_customerlink")
def customer_link_create(request: HttpRequest, public_id: str) -> HttpResponse:
    """Issue a new private link (e.g. the customer lost the e-mail). Only its hash is kept, so this response is
    the one place the URL appears; the issue is audited with the officer's name."""
    try:
        decision = decision_get(public_id=public_id)
    except Decision.DoesNotExist:
        return problem(404, "No such decision", code="not_found")
    token, link = customer_link_issue(decision=decision, actor=request.user)  # type: ignore[arg-type]
    return JsonResponse({"url": customer_link_url(token), "expires_at": link.expires_at.isoformat()}, status=201)
