"""Approve a registered model version so that it serves decisions (audited)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from lending.models import ModelVersion
from lending.services import ApprovalRefused, model_version_approve


class Command(BaseCommand):
    help = "Approve a model version for serving. The approver needs the approve_modelversion permission."

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # Our --version names a model version; it replaces Django's own --version flag here.
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--product", required=True)
        parser.add_argument("--version", required=True, help='a version string, or "latest"')
        parser.add_argument("--by", required=True, help="username of the approver")

    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        try:
            approver = user_model.objects.get(username=options["by"])
        except user_model.DoesNotExist:
            raise CommandError(f"no user {options['by']!r}") from None
        if not approver.has_perm("lending.approve_modelversion"):
            raise CommandError(f"user {approver.get_username()!r} may not approve model versions "
                               "(needs lending.approve_modelversion, e.g. the admin group)")
        versions = ModelVersion.objects.filter(product__slug=options["product"])
        if options["version"] == "latest":
            version = versions.order_by("-registered_at", "-id").first()
        else:
            version = versions.filter(version=options["version"]).first()
        if version is None:
            raise CommandError(f"no model version {options['version']!r} of product {options['product']!r}")
        try:
            version = model_version_approve(model_version=version, approved_by=approver)
        except ApprovalRefused as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"approved: {version.product.slug} {version.version} by {approver.get_username()}")
