"""Roles as django.contrib.auth groups: officer, compliance, admin. Created (idempotently) after migrate."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, Permission

OFFICER = "officer"
COMPLIANCE = "compliance"
ADMIN = "admin"

ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    OFFICER: (
        "lending.view_product", "lending.view_application", "lending.add_application",
        "lending.view_decision", "lending.view_modelversion", "lending.add_officeraction",
        # Adverse action (issue 4): the notices of their decisions, the customers' requests, new private links.
        "audit.view_notice", "audit.view_customerrequest", "audit.add_customerlink",
        # Issue 6: confirm or correct what the language model read (a correction re-scores the application).
        "lending.view_extraction", "lending.review_extraction",
    ),
    COMPLIANCE: (
        "lending.view_product", "lending.view_application", "lending.view_decision",
        "lending.view_modelversion", "lending.view_monitoringdata", "audit.view_auditevent",
        "audit.view_notice", "audit.view_customerrequest", "lending.view_extraction",
        # Legal holds (Reg B 1002.12(b)(4)): compliance places and releases them.
        "audit.view_legalhold", "audit.add_legalhold", "audit.change_legalhold",
        # Messages telling customers a denial no longer stands (letters to post among them).
        "audit.view_customermessage",
    ),
    ADMIN: (
        "lending.view_product", "lending.view_application", "lending.add_application",
        "lending.view_decision", "lending.view_modelversion", "lending.approve_modelversion",
        "lending.add_officeraction", "lending.change_manual_review",
        "lending.view_monitoringdata", "audit.view_auditevent", "auth.view_user", "auth.add_user",
        "auth.change_user", "lending.view_apitoken", "lending.add_apitoken",
        "audit.view_notice", "audit.view_customerrequest", "audit.add_customerlink", "lending.view_extraction",
        "audit.view_legalhold", "audit.add_legalhold", "audit.change_legalhold", "audit.view_customermessage",
    ),
}


def roles_ensure(**_kwargs: Any) -> None:
    for role, codes in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        permissions = []
        for code in codes:
            app_label, codename = code.split(".")
            permission = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
            if permission is not None:
                permissions.append(permission)
        group.permissions.set(permissions)
