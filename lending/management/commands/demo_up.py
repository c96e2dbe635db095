"""Bring the demo up: demo users, a trained and approved demo model, and decided demo applications."""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from lending.errors import DomainError
from lending.models import Application, ModelVersion
from lending.roles import ADMIN, COMPLIANCE, OFFICER
from lending.selectors import product_get
from lending.services import application_submit

DEMO_USERS = (("officer", OFFICER), ("compliance", COMPLIANCE), ("admin", ADMIN))


def _python_values(row: dict[str, Any]) -> dict[str, Any]:
    """A generated row as a client would send it: plain JSON values, no NaN."""
    values: dict[str, Any] = {}
    for name, value in row.items():
        if value is None or (isinstance(value, float) and value != value):
            continue
        values[name] = value.item() if hasattr(value, "item") else value
    return values


class Command(BaseCommand):
    help = "Create demo users (printing their passwords), train and approve the demo model, seed decisions."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--applications", type=int, default=200)
        parser.add_argument("--seed", type=int, default=2026)
        parser.add_argument("--train-rows", type=int, default=None,
                            help="rows the demo model is trained on (default: the product's own, 2,000,000)")

    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        for username, role in DEMO_USERS:
            user, created = user_model.objects.get_or_create(username=username)
            if created:
                password = secrets.token_urlsafe(12)
                user.set_password(password)
                user.is_staff = role == ADMIN
                user.is_superuser = role == ADMIN
                user.save()
                self.stdout.write(f"demo user {username!r} ({role}) password: {password}")
            else:
                self.stdout.write(f"demo user {username!r} exists (password unchanged)")
            user.groups.add(Group.objects.get(name=role))
        if not ModelVersion.objects.filter(product__slug="demo", status=ModelVersion.Status.APPROVED).exists():
            call_command("train_model", product="demo", rows=options["train_rows"], stdout=self.stdout,
                         stderr=self.stderr)
            call_command("approve_model", product="demo", version="latest", by="admin", stdout=self.stdout)
        product = product_get(slug="demo")
        wanted = options["applications"] - Application.objects.filter(product=product).count()
        if wanted <= 0:
            self.stdout.write("demo applications already seeded")
            return
        from scoring.demo import generate

        frame, _ = generate(wanted, options["seed"])
        officer = user_model.objects.get(username="officer")
        outcomes: dict[str, int] = {}
        for row in frame.to_dict(orient="records"):
            try:
                decision = application_submit(product=product, fields=_python_values(row), submitted_by=officer)
            except DomainError as exc:
                raise CommandError(f"seeding failed: {exc.message} {exc.fields}") from exc
            outcomes[decision.outcome] = outcomes.get(decision.outcome, 0) + 1
        summary = ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
        self.stdout.write(f"seeded {wanted} demo applications: {summary}")
