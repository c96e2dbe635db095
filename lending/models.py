"""Products, model versions, applications and decisions."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class Product(models.Model):
    """A credit product registered from its spec file (scoring/products/<slug>.toml)."""

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=200)
    credit_type = models.CharField(max_length=32)
    spec_hash = models.CharField(max_length=64)
    spec_text = models.TextField(help_text="The spec as registered, so any decision can be traced to it.")
    registered_at = models.DateTimeField()

    class Meta:
        ordering = ("slug",)

    def __str__(self) -> str:
        return self.name


class ModelVersion(models.Model):
    """A trained model artifact (a directory with a manifest). It serves only once approved."""

    class Status(models.TextChoices):
        TRAINED = "trained", "Trained, awaiting approval"
        APPROVED = "approved", "Approved"
        RETIRED = "retired", "Retired"

    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="model_versions")
    version = models.CharField(max_length=64)
    path = models.CharField(max_length=500)
    content_hash = models.CharField(max_length=64)
    spec_hash = models.CharField(max_length=64)
    training_data_sha256 = models.CharField(max_length=64)
    manifest = models.JSONField()
    metrics = models.JSONField(default=dict)
    trained_at = models.DateTimeField()
    registered_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.TRAINED)
    approved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="+")
    approved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-registered_at",)
        permissions = [("approve_modelversion", "Can approve a model version for serving")]
        constraints = [models.UniqueConstraint(fields=("product", "version"), name="unique_product_version")]

    def __str__(self) -> str:
        return f"{self.product.slug} {self.version}"

    @property
    def is_approved(self) -> bool:
        return self.status == self.Status.APPROVED


class Application(models.Model):
    """An application as submitted, validated against its product's spec."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="applications")
    values = models.JSONField(help_text="Applicant and bureau values as validated (money as strings).")
    identity = models.JSONField(default=dict, help_text="Identity and contact fields (name, e-mail).")
    submitted_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    submitted_at = models.DateTimeField(db_index=True)
    # Reg B comment 9(a)(1)-1: complete once the creditor has all it normally considers; notices are due
    # 30 days after this.
    completed_at = models.DateTimeField()

    class Meta:
        ordering = ("-submitted_at",)

    def __str__(self) -> str:
        return f"Application {self.public_id}"


class MonitoringData(models.Model):
    """Monitoring-only data (e.g. sex, age) kept for fair-lending monitoring (Reg B 1002.12(a)(3)).

    A table apart from the application so that the scoring path never reads it.
    """

    application = models.OneToOneField(Application, on_delete=models.PROTECT, related_name="monitoring")
    values = models.JSONField()

    def __str__(self) -> str:
        return f"Monitoring data for {self.application_id}"


class CurrentDecisionManager(models.Manager["Decision"]):
    """Decisions still in force: every query, list, export, report and sweep works on these by default.

    A decision superseded by a re-score (an officer corrected a text-derived value) stays in the table for
    the audit trail; ``Decision.all_objects`` reaches it, and so does any foreign key to it.
    """

    def get_queryset(self) -> models.QuerySet[Decision]:
        return super().get_queryset().filter(superseded_at__isnull=True)


class Decision(models.Model):
    """What the model and the policy decided, with everything needed to reproduce it exactly.

    An application has one current decision; a re-score (``lending.services.extraction_review``) makes a
    new one and marks the old one superseded (``superseded_at``, ``superseded_by``), never changing it.
    """

    class Outcome(models.TextChoices):
        APPROVED = "approved", "Approved"
        DENIED = "denied", "Denied"
        REFERRED = "referred", "Referred for manual review"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    application = models.ForeignKey(Application, on_delete=models.PROTECT, related_name="decisions")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="decisions")
    outcome = models.CharField(max_length=16, choices=Outcome.choices, db_index=True)
    probability_of_default = models.FloatField()
    inputs = models.JSONField(help_text="The exact model-input values the score was computed from.")
    inputs_sha256 = models.CharField(max_length=64)
    cutoff = models.FloatField()
    refer_band = models.FloatField()
    knockout = models.CharField(max_length=100, blank=True)
    knockout_reason = models.CharField(max_length=100, blank=True)
    # The manual-review switch was on: the policy's own verdict is in the audit event, the outcome is
    # "referred" so that an officer decides.
    manual_review = models.BooleanField(default=False)
    # Why the outcome is "referred" whatever the score, in words an officer reads (e.g. a language-model
    # reading below the review threshold); blank when the policy alone decided.
    referral_cause = models.TextField(blank=True)
    decided_at = models.DateTimeField(db_index=True)
    # The decision this one re-scored (an officer corrected a value), and when it was itself superseded.
    supersedes = models.OneToOneField("self", null=True, blank=True, on_delete=models.PROTECT,
                                      related_name="superseded_by")
    superseded_at = models.DateTimeField(null=True, blank=True)

    all_objects = models.Manager()  # every decision, superseded ones too (also what foreign keys reach)
    objects = CurrentDecisionManager()

    class Meta:
        ordering = ("-decided_at",)
        default_manager_name = "objects"
        base_manager_name = "all_objects"
        constraints = [models.UniqueConstraint(fields=("application",), condition=models.Q(superseded_at__isnull=True),
                                               name="one_current_decision_per_application")]

    def __str__(self) -> str:
        return f"Decision {self.public_id}: {self.outcome}"

    @property
    def is_current(self) -> bool:
        return self.superseded_at is None


class Extraction(models.Model):
    """What the language model read from one text field of an application into one category field.

    ``value`` is the model's reading and never changes; ``confirmed_value`` is what the credit model uses
    once an officer confirmed or corrected it. ``evidence`` (the words that drove the reading, each with
    the measured drop in the chosen category's probability when it is deleted) is measured off the request
    path by the worker and stored once, with an audit event; None until then. A measurement that fails
    counts in ``evidence_attempts`` with its error; after ``EVIDENCE_MAX_ATTEMPTS`` the sweeps stop
    retrying it and compliance is told (audited), and the officer page says why there are no words.
    """

    EVIDENCE_MAX_ATTEMPTS = 5

    class Status(models.TextChoices):
        EXTRACTED = "extracted", "Read by the language model"
        CONFIRMED = "confirmed", "Confirmed by an officer"
        CORRECTED = "corrected", "Corrected by an officer"

    application = models.ForeignKey(Application, on_delete=models.PROTECT, related_name="extractions")
    field = models.CharField(max_length=100)
    text_field = models.CharField(max_length=100)
    text_sha256 = models.CharField(max_length=64)
    value = models.CharField(max_length=100)
    confidence = models.FloatField()
    threshold = models.FloatField()
    needs_review = models.BooleanField()
    candidates = models.JSONField(help_text="The top categories with their probabilities, best first.")
    evidence = models.JSONField(null=True, blank=True)
    evidence_measured_at = models.DateTimeField(null=True, blank=True)
    evidence_attempts = models.PositiveSmallIntegerField(default=0, help_text="Failed evidence measurements.")
    evidence_error = models.TextField(blank=True, help_text="Why the last evidence measurement failed.")
    provider = models.CharField(max_length=200)
    provider_version = models.TextField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.EXTRACTED)
    confirmed_value = models.CharField(max_length=100, blank=True)
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="+")
    reviewed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ("application", "id")
        constraints = [models.UniqueConstraint(fields=("application", "field"), name="one_extraction_per_field")]
        permissions = [("review_extraction", "Can confirm or correct what the language model read")]

    def __str__(self) -> str:
        return f"{self.field} = {self.value} ({self.confidence:.2f}) for application {self.application_id}"

    @property
    def used_value(self) -> str:
        """The value the credit model uses: the officer's once reviewed, else the reading."""
        return self.confirmed_value or self.value

    @property
    def evidence_abandoned(self) -> bool:
        """The evidence could not be measured and the sweeps no longer retry it."""
        return self.evidence is None and self.evidence_attempts >= self.EVIDENCE_MAX_ATTEMPTS

    @property
    def awaiting_review(self) -> bool:
        return self.needs_review and self.status == self.Status.EXTRACTED


class ApiToken(models.Model):
    """A bearer token for API clients. Only its SHA-256 is stored; the key is shown once at creation."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    key_sha256 = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.user})"


class OfficerAction(models.Model):
    """What a loan officer did with a decision, and the factors relied on (EU AI Act Art. 14 oversight).

    The final outcome of a decision is the ``outcome`` of its latest deciding action (approve, deny,
    override), else the model's. ``factors`` are what a denial states as its reasons (Reg B comments
    9(b)(2)-6 and -7): model-input field names, reason keys, or "other: <specific wording>".
    """

    class Action(models.TextChoices):
        APPROVE = "approve", "Approve"
        DENY = "deny", "Deny"
        OVERRIDE = "override", "Override the model's outcome"
        REQUEST_INFO = "request_info", "Request more information"

    decision = models.ForeignKey(Decision, on_delete=models.PROTECT, related_name="officer_actions")
    officer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    action = models.CharField(max_length=16, choices=Action.choices)
    # The outcome this action leaves the decision with; blank when it does not decide (request_info).
    outcome = models.CharField(max_length=16, choices=Decision.Outcome.choices, blank=True)
    factors = models.JSONField(default=list)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return f"{self.get_action_display()} on decision {self.decision_id} by {self.officer_id}"


class ManualReviewSwitch(models.Model):
    """EU AI Act Art. 14: a person can stop the system. While the latest row is ``enabled``, every new
    application goes to an officer, whatever the model says. Rows are history: never updated."""

    enabled = models.BooleanField()
    reason = models.TextField()
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    changed_at = models.DateTimeField()

    class Meta:
        ordering = ("-changed_at", "-id")
        permissions = [("change_manual_review", "Can send every new application to manual review")]

    def __str__(self) -> str:
        return f"Manual review {'on' if self.enabled else 'off'} ({self.changed_at:%Y-%m-%d %H:%M})"
