"""API authentication: a Django session (with CSRF) or a bearer token (Authorization: Token <key>)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from lending.models import ApiToken


def api_token_create(*, user: AbstractBaseUser, name: str) -> str:
    """Create a token and return its key; only the key's hash is stored."""
    key = secrets.token_urlsafe(32)
    ApiToken.objects.create(user=user, name=name, key_sha256=hashlib.sha256(key.encode()).hexdigest(),
                            created_at=timezone.now())
    return key


def _token_user(request: HttpRequest) -> AbstractBaseUser | None:
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() not in ("token", "bearer") or not key:
        return None
    token = (ApiToken.objects.select_related("user")
             .filter(key_sha256=hashlib.sha256(key.strip().encode()).hexdigest(), revoked_at__isnull=True).first())
    if token is None or not token.user.is_active:
        return None
    return token.user


def problem(status: int, title: str, *, code: str, errors: dict[str, list[str]] | None = None) -> JsonResponse:
    body: dict[str, Any] = {"status": status, "title": title, "code": code}
    if errors is not None:
        body["errors"] = errors
    return JsonResponse(body, status=status, content_type="application/problem+json")


def _csrf_ok(request: HttpRequest) -> HttpResponse | None:
    middleware = CsrfViewMiddleware(lambda _request: HttpResponse())
    return middleware.process_view(request, None, (), {})  # type: ignore[arg-type]


def api_view(*, permission: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Authenticate (token, else session with CSRF), then require ``permission``."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @csrf_exempt
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            user = _token_user(request)
            if user is not None:
                request.user = user
            elif request.user.is_authenticated:
                rejected = _csrf_ok(request)
                if rejected is not None:
                    return problem(403, "CSRF check failed", code="csrf_failed")
            else:
                response = problem(401, "Authentication required", code="not_authenticated")
                response["WWW-Authenticate"] = "Token"
                return response
            if not request.user.has_perm(permission):
                return problem(403, "You do not have permission for this", code="permission_denied")
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
