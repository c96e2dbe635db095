from django.contrib import admin
from django.http import HttpRequest

from audit.models import AuditEvent, CustomerMessage


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("event_time", "event_type", "actor_name", "subject_type", "subject_id")
    list_filter = ("event_type", "subject_type")
    search_fields = ("subject_id", "actor_name")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False


@admin.register(CustomerMessage)
class CustomerMessageAdmin(admin.ModelAdmin):
    """Compliance sees every message to a customer whose denial no longer stands: what it said, to whom,
    whether it went, and which ones are letters to post (channel "mail", not sent). Read-only: a message is
    changed only by its services, each change audited."""

    list_display = ("created_at", "kind", "channel", "language", "sent_at", "superseded_at", "decision")
    list_filter = ("kind", "channel", ("sent_at", admin.EmptyFieldListFilter),
                   ("superseded_at", admin.EmptyFieldListFilter))
    search_fields = ("public_id", "email", "decision__public_id")
    readonly_fields = ("public_id", "kind", "decision", "officer_action", "language", "channel", "email",
                       "subject", "body", "body_sha256", "link", "created_at", "delivery_claimed_at", "sent_at",
                       "superseded_at", "withdrawn_cause")
    exclude = ("notices",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: CustomerMessage | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: CustomerMessage | None = None) -> bool:
        return False
