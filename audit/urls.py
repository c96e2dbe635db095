from django.urls import path

from audit import (
    audit_views,
    compliance_views,
    customer_views,
    export_views,
    fairness_views,
    hold_views,
    model_docs,
)

app_name = "audit"

urlpatterns = [
    # The customer's private page (no login; the signed token is the credential).
    path("c/<str:token>/", customer_views.customer_page, name="customer-page"),
    path("c/<str:token>/notice.pdf", customer_views.customer_notice_pdf, name="customer-notice-pdf"),
    # Staff.
    path("compliance/audit/", audit_views.audit_head, name="audit-head"),
    path("compliance/audit/verify", audit_views.audit_verify_view, name="audit-verify"),
    path("compliance/decisions/<uuid:public_id>/replay", export_views.decision_replay_view, name="decision-replay"),
    path("compliance/exports/", export_views.exports_view, name="exports"),
    path("compliance/exports/<uuid:public_id>/download", export_views.export_download, name="export-download"),
    path("compliance/fairness/", fairness_views.fairness_report_view, name="fairness-report"),
    path("compliance/models/", model_docs.model_list, name="model-list"),
    path("compliance/models/<slug:slug>/<str:version>/", model_docs.model_doc, name="model-doc"),
    path("compliance/models/<slug:slug>/<str:version>/doc.pdf", model_docs.model_doc_pdf, name="model-doc-pdf"),
    path("compliance/legal-holds/", hold_views.legal_holds_view, name="legal-holds"),
    path("compliance/legal-holds/<int:pk>/release", hold_views.legal_hold_release_view, name="legal-hold-release"),
    path("compliance/notices/", compliance_views.notices_due_view, name="notices-due"),
    path("notices/<uuid:public_id>/notice.html", compliance_views.notice_html, name="notice-html"),
    path("notices/<uuid:public_id>/notice.pdf", compliance_views.notice_pdf, name="notice-pdf"),
    path("officer/customer-requests/", compliance_views.customer_requests_view, name="customer-requests"),
    path("api/v1/decisions/<uuid:public_id>/customer-link", compliance_views.customer_link_create,
         name="api-customer-link-issue"),
]
