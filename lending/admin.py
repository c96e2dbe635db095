from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from lending.models import ApiToken, Application, Decision, ModelVersion, Product
from lending.services import ApprovalRefused, model_version_approve


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "credit_type", "spec_hash", "registered_at")
    readonly_fields = ("slug", "name", "credit_type", "spec_hash", "spec_text", "registered_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.action(description="Approve selected model versions for serving", permissions=["approve"])
def approve_versions(modeladmin: admin.ModelAdmin, request: HttpRequest,
                     queryset: QuerySet[ModelVersion]) -> None:
    for version in queryset:
        try:
            model_version_approve(model_version=version, approved_by=request.user)  # type: ignore[arg-type]
        except ApprovalRefused as exc:
            modeladmin.message_user(request, str(exc), messages.ERROR)
        else:
            modeladmin.message_user(request, f"Approved {version}.", messages.SUCCESS)


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("product", "version", "status", "approved_by", "approved_at", "trained_at")
    list_filter = ("product", "status")
    actions = [approve_versions]
    readonly_fields = [f.name for f in ModelVersion._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ModelVersion | None = None) -> bool:
        return False

    def has_approve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("lending.approve_modelversion")


class ReadOnlyAdmin(admin.ModelAdmin):
    """Decisions and applications are records: the admin shows them, never edits or deletes them."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Application)
class ApplicationAdmin(ReadOnlyAdmin):
    list_display = ("public_id", "product", "submitted_by", "submitted_at")
    list_filter = ("product",)


@admin.register(Decision)
class DecisionAdmin(ReadOnlyAdmin):
    list_display = ("public_id", "outcome", "probability_of_default", "model_version", "decided_at")
    list_filter = ("outcome", "model_version__product")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "created_at", "revoked_at")
    readonly_fields = ("key_sha256", "created_at")
