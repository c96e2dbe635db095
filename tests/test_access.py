"""Who reaches what: every URL of the project for every role (issue 5). An officer cannot reach compliance
pages, a compliance user cannot decide, an anonymous user reaches nothing but the customer link.

A URL added without an entry in ACCESS fails ``test_every_url_is_classified``: access is decided, never
left to chance."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from audit.adverse import customer_link_issue, legal_hold_place
from lending.models import Decision, ModelVersion
from tests.conftest import demo_fields

OFFICER, COMPLIANCE, ADMIN, ANON, NONE = "officer", "compliance", "admin", "anonymous", "no role"
STAFF = {OFFICER, COMPLIANCE, ADMIN}

# name -> (method, roles allowed). Everyone else gets 403 (401 or a redirect to login when anonymous).
ACCESS: dict[str, tuple[str, set[str]]] = {
    "login": ("GET", {ANON, NONE, *STAFF}),
    "logout": ("POST", {ANON, NONE, *STAFF}),
    "api-product-detail": ("GET", STAFF),
    "api-application-create": ("POST", {OFFICER, ADMIN}),
    "api-decision-detail": ("GET", STAFF),
    "audit:customer-page": ("GET", {ANON, NONE, *STAFF}),
    "audit:customer-notice-pdf": ("GET", {ANON, NONE, *STAFF}),
    "audit:audit-head": ("GET", {COMPLIANCE, ADMIN}),
    "audit:audit-verify": ("POST", {COMPLIANCE, ADMIN}),
    "audit:notices-due": ("GET", {COMPLIANCE, ADMIN}),
    "audit:legal-holds": ("GET", {COMPLIANCE, ADMIN}),
    "audit:legal-hold-release": ("POST", {COMPLIANCE, ADMIN}),
    "audit:fairness-report": ("GET", {COMPLIANCE, ADMIN}),
    "audit:model-list": ("GET", STAFF),
    "audit:model-doc": ("GET", STAFF),
    "audit:model-doc-pdf": ("GET", STAFF),
    "audit:decision-replay": ("GET", {COMPLIANCE, ADMIN}),
    "audit:exports": ("GET", {COMPLIANCE, ADMIN}),
    "audit:export-download": ("GET", {COMPLIANCE, ADMIN}),
    "audit:notice-html": ("GET", STAFF),
    "audit:notice-pdf": ("GET", STAFF),
    "audit:customer-requests": ("GET", STAFF),
    "audit:api-customer-link-issue": ("POST", {OFFICER, ADMIN}),
    "lending:home": ("GET", STAFF | {NONE}),
    "lending:decision-list": ("GET", STAFF),
    "lending:decision-detail": ("GET", STAFF),
    "lending:decision-act": ("POST", {OFFICER, ADMIN}),
    # Issue 6: confirming or correcting a language-model reading is the officer's alone.
    "lending:extraction-review": ("POST", {OFFICER}),
    "lending:manual-review": ("POST", {ADMIN}),
    "lending:product-list": ("GET", {OFFICER, ADMIN}),
    "lending:application-new": ("GET", {OFFICER, ADMIN}),
}


def project_urls() -> dict[str, str]:
    found: dict[str, str] = {}

    def walk(patterns: list[URLPattern | URLResolver], prefix: str, namespace: str | None) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                if pattern.namespace == "admin":
                    continue  # Django's admin guards itself (staff only)
                walk(pattern.url_patterns, prefix + str(pattern.pattern), pattern.namespace or namespace)
            elif pattern.name:
                found[f"{namespace}:{pattern.name}" if namespace else pattern.name] = prefix + str(pattern.pattern)

    walk(get_resolver().url_patterns, "/", None)
    return found


def test_every_url_is_classified() -> None:
    assert set(project_urls()) == set(ACCESS)


@pytest.fixture
def world(
    approved_demo: ModelVersion,
    officer: User,
    compliance: User,
    admin_user: User,
    outsider: User,
    client_for: Callable[[User], Client],
) -> dict[str, object]:
    made = (
        client_for(officer)
        .post(
            "/api/v1/applications",
            data=json.dumps({"product": "demo", "fields": demo_fields()}),
            content_type="application/json",
        )
        .json()
    )
    decision = Decision.objects.get(public_id=made["id"])
    token, _ = customer_link_issue(decision=decision)
    hold = legal_hold_place(application=decision.application, placed_by=compliance, matter="Access test",
                            reason="a hold to aim the release URL at")
    return {
        "decision": decision,
        "token": token,
        "hold": hold,
        "users": {OFFICER: officer, COMPLIANCE: compliance, ADMIN: admin_user, NONE: outsider},
    }


def concrete(path: str, world: dict[str, object]) -> str:
    decision = world["decision"]
    assert isinstance(decision, Decision)
    return (
        path.replace("<uuid:public_id>", str(decision.public_id))
        .replace("<slug:slug>", "demo")
        .replace("<slug:field>", "purpose_category")
        .replace("<str:token>", str(world["token"]))
        .replace("<str:version>", decision.model_version.version)
        .replace("<int:pk>", str(world["hold"].pk))  # type: ignore[attr-defined]
    )


@pytest.mark.parametrize("role", [ANON, NONE, OFFICER, COMPLIANCE, ADMIN])
def test_each_role_reaches_exactly_its_pages(
    world: dict[str, object], role: str, client_for: Callable[[User], Client]
) -> None:
    users = world["users"]
    assert isinstance(users, dict)
    wrong = []
    for name, path in sorted(project_urls().items()):
        method, allowed = ACCESS[name]
        client = Client() if role == ANON else client_for(users[role])
        url = concrete(path, world)
        response = client.post(url, {}) if method == "POST" else client.get(url)
        refused = response.status_code in (401, 403) or (
            response.status_code == 302 and response["Location"].startswith("/accounts/login/")
        )
        if (role in allowed) == refused:
            wrong.append(f"{method} {url} as {role}: {response.status_code}")
    assert not wrong, "\n".join(wrong)
