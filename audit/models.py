"""The audit log: append-only events, each written in the same transaction as the change it records."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: Any) -> int:
        raise PermissionError("audit events are append-only: they are never updated")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise PermissionError("audit events are append-only: they are never deleted")


class AuditEvent(models.Model):
    """One thing that happened, as an auditor needs to see it.

    ``actor`` is who did it (None for the system itself, e.g. an automated decision); ``actor_name``
    keeps the username even if the account is later renamed. ``subject_type``/``subject_id`` say what it
    happened to; ``data`` holds the details (old and new values where something changed).
    """

    event_time = models.DateTimeField(db_index=True)
    event_type = models.CharField(max_length=64, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                              related_name="+")
    actor_name = models.CharField(max_length=150, blank=True)
    subject_type = models.CharField(max_length=64)
    subject_id = models.CharField(max_length=64)
    data = models.JSONField(default=dict)
    # The tamper-evident chain: each event's hash covers its content and the previous event's hash, and
    # sequence numbers have no gaps, so an altered, removed or inserted event is found by audit_verify.
    sequence = models.PositiveBigIntegerField(unique=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ("sequence",)
        indexes = [models.Index(fields=("subject_type", "subject_id"))]

    def __str__(self) -> str:
        return f"{self.event_time:%Y-%m-%d %H:%M:%S} {self.event_type} {self.subject_type}:{self.subject_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise PermissionError("audit events are append-only: they are never updated")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise PermissionError("audit events are append-only: they are never deleted")


class AuditChainHead(models.Model):
    """The newest event's sequence and hash (one row). Appending locks it, so the chain never forks; its
    hash, kept outside the system, proves later that nothing before it changed."""

    sequence = models.PositiveBigIntegerField(default=0)
    hash = models.CharField(max_length=64)
    updated_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"Audit chain head {self.sequence} {self.hash[:12]}"


class ExplanationContext(models.Model):
    """What every explanation of one model version shares (scoring.explain.Explanation.stored_context):
    the field and feature names in the order of the stored arrays, the cutoff group's reference values and
    summary. Content-addressed (SHA-256 of its canonical JSON) and never changed: written once, referenced
    by each explanation, so that a row stores only its own numbers (smaller rows, cheaper to write)."""

    sha256 = models.CharField(max_length=64, unique=True)
    content = models.JSONField()
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"Explanation context {self.sha256[:12]}"


class Explanation(models.Model):
    """The account of one decision, computed by the worker: grouped, cutoff-referenced attributions,
    the same relative to all applicants, the fidelity checks and the recourse (scoring.explain).

    ``payload`` is the stored form: format 2 (``Explanation.to_stored``: per-field values as lists in the
    context's field order) with ``context``, or, for rows written before it, the full ``to_dict`` with no
    context. Read it through :attr:`document`, which gives the full ``to_dict`` form for either.
    """

    # No index of its own: the unique constraint's index (decision, explainer_version) serves every lookup
    # by decision, and one index fewer is one fewer to update for each of a batch's rows.
    decision = models.ForeignKey("lending.Decision", on_delete=models.PROTECT, related_name="explanations",
                                 db_index=False)
    model_version = models.ForeignKey("lending.ModelVersion", on_delete=models.PROTECT, related_name="+")
    explainer_version = models.CharField(max_length=32)
    method = models.CharField(max_length=32)
    base_value = models.FloatField()
    output = models.FloatField()
    # A failed fidelity check is flagged for compliance, never hidden.
    # (indexed where False: the flagged ones are what compliance looks up)
    checks_passed = models.BooleanField()
    payload = models.JSONField(help_text="The explanation's stored form (scoring.explain.Explanation.to_stored, "
                                         "or to_dict for rows without a context); read it through .document")
    # Not indexed: contexts are few, never deleted (PROTECT), and nothing looks explanations up by context.
    context = models.ForeignKey(ExplanationContext, null=True, blank=True, on_delete=models.PROTECT,
                                related_name="+", db_index=False)
    computed_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ("-computed_at",)
        # Exactly one explanation per decision and explainer version, however often a task is delivered.
        constraints = [models.UniqueConstraint(fields=("decision", "explainer_version"),
                                               name="one_explanation_per_decision_and_explainer")]
        indexes = [models.Index(fields=("checks_passed",), condition=models.Q(checks_passed=False),
                                name="audit_explanation_failed")]

    def __str__(self) -> str:
        return f"Explanation of decision {self.decision_id} ({self.explainer_version})"

    @property
    def document(self) -> dict[str, Any]:
        """The full explanation (``scoring.explain.Explanation.to_dict`` form), whatever the stored format."""
        from scoring.explain import expand_stored

        return expand_stored(self.payload, None if self.context_id is None else self.context.content)


class ExplanationRequest(models.Model):
    """The outbox: written in the decision's transaction, published to the broker after commit.

    If the broker is down at commit, the periodic sweep (or manage.py explain_pending) publishes it
    later; nothing is lost between a decision and its explanation.
    """

    decision = models.OneToOneField("lending.Decision", on_delete=models.PROTECT, related_name="explanation_request")
    created_at = models.DateTimeField()
    published_at = models.DateTimeField(null=True, blank=True)
    publish_attempts = models.PositiveIntegerField(default=0)
    completed_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_error = models.TextField(blank=True)

    class Meta:
        indexes = [models.Index(fields=("completed_at", "published_at"), name="outbox_pending")]

    def __str__(self) -> str:
        return f"Explanation request for decision {self.decision_id}"


class ExplanationBatch(models.Model):
    """A batch re-explanation (portfolio review): fanned out over Celery in chunks, resumable."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        DONE = "done", "Done"

    product = models.ForeignKey("lending.Product", on_delete=models.PROTECT, related_name="+")
    since = models.DateTimeField(null=True, blank=True)
    explainer_version = models.CharField(max_length=32)
    total = models.PositiveIntegerField()
    chunks = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    requested_by = models.CharField(max_length=150)
    created_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Explanation batch {self.pk} ({self.product_id}, {self.status})"


# --- adverse action (issue 4): reasons, notices, the customer's link and requests, legal holds ----------

class ReasonStatement(models.Model):
    """The principal reasons stated for an adverse action (Reg B 1002.9(a)(2)(i), (b)(2)).

    ``reasons`` are ``scoring.adverse_action.PrincipalReason.as_dict()`` in rank order. A model statement
    keeps the explanation it was derived from, its ranking (``negative_ranked``) and the attributions behind
    it (checklist A3(b)); an officer statement states the officer's factors (comments 9(b)(2)-6 and -7).
    When an officer decides again the statement is superseded and a new one written: the one with
    ``superseded_at`` null is current, and there is at most one of those per decision.
    """

    class Source(models.TextChoices):
        MODEL = "model", "Scoring model"
        OFFICER = "officer", "Loan officer"

    decision = models.ForeignKey("lending.Decision", on_delete=models.PROTECT, related_name="reason_statements")
    source = models.CharField(max_length=16, choices=Source.choices)
    officer_action = models.ForeignKey("lending.OfficerAction", null=True, blank=True, on_delete=models.PROTECT,
                                       related_name="+")
    explanation = models.ForeignKey(Explanation, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    reasons = models.JSONField()
    ranking = models.JSONField(default=list, help_text="The explanation's negative_ranked fields, largest first.")
    attributions = models.JSONField(default=dict, help_text="Cutoff-referenced log-odds of default per field.")
    knockout_reason = models.CharField(max_length=100, blank=True)
    # Reg C 1003.4(a)(16), for HMDA-reportable products only: {"codes": [...], "other_text": ...}.
    hmda = models.JSONField(null=True, blank=True)
    # Why no notice could be rendered from this statement (the NoticeIncomplete part), if so.
    notice_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(db_index=True)
    superseded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            # Exactly one current statement per decision, however often the task runs.
            models.UniqueConstraint(fields=("decision",), condition=models.Q(superseded_at__isnull=True),
                                    name="one_current_reason_statement"),
            models.UniqueConstraint(fields=("decision",), condition=models.Q(source="model"),
                                    name="one_model_reason_statement"),
            models.UniqueConstraint(fields=("officer_action",), name="one_reason_statement_per_officer_action"),
        ]

    def __str__(self) -> str:
        return f"Reasons for decision {self.decision_id} ({self.source})"


class Notice(models.Model):
    """An adverse action notice as rendered and sent (Reg B 1002.9), kept for 25 months (1002.12(b)).

    ``context`` is the JSON of the ``audit.notices.NoticeContext`` it was rendered from: rendering it again
    gives the same HTML and PDF, which ``html_sha256`` and ``pdf_sha256`` check (comment 12(b)-1).
    """

    class Channel(models.TextChoices):
        EMAIL = "email", "E-mail"
        MAIL = "mail", "Postal mail"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    decision = models.ForeignKey("lending.Decision", on_delete=models.PROTECT, related_name="notices")
    reason_statement = models.OneToOneField(ReasonStatement, on_delete=models.PROTECT, related_name="notice")
    reference = models.CharField(max_length=64, unique=True, help_text="The notice id printed on the letter.")
    language = models.CharField(max_length=8)
    html = models.TextField()
    html_sha256 = models.CharField(max_length=64)
    pdf = models.BinaryField()
    pdf_sha256 = models.CharField(max_length=64)
    context = models.JSONField()
    notice_date = models.DateField()
    # Reg B 1002.9(a)(1): 30 days after a completed application, 90 after an unaccepted counteroffer.
    due_at = models.DateTimeField(db_index=True)
    due_rule = models.CharField(max_length=100)
    delivery_channel = models.CharField(max_length=16, choices=Channel.choices)
    email = models.CharField(max_length=254, blank=True)
    # A delivery in progress: claimed with a conditional update so that two workers never both send.
    delivery_claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField()
    superseded_at = models.DateTimeField(null=True, blank=True)
    superseded_by = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Withdrawn, not replaced by a newer notice of the same decision: the decision it states was itself
    # superseded (an officer corrected a value and the application was re-scored). Why, in words; when is
    # ``superseded_at``. The notice's HTML and PDF stay exactly as rendered (and as sent, if sent).
    withdrawn_cause = models.TextField(blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [models.UniqueConstraint(fields=("decision",), condition=models.Q(superseded_at__isnull=True),
                                               name="one_current_notice")]

    def __str__(self) -> str:
        return f"Notice {self.reference}"


class CustomerLink(models.Model):
    """A private link to the customer's own page. Only the SHA-256 of its random token is stored."""

    decision = models.ForeignKey("lending.Decision", on_delete=models.PROTECT, related_name="customer_links")
    token_sha256 = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return f"Customer link {self.pk} for decision {self.decision_id}"


class CustomerRequest(models.Model):
    """A customer's request from their page: a human review (GDPR Art. 22(3), EU AI Act Art. 86) or more
    information for the officer. Lands in the officers' queue until handled."""

    class Kind(models.TextChoices):
        REVIEW = "review", "Human review"
        INFORMATION = "information", "More information"

    decision = models.ForeignKey("lending.Decision", on_delete=models.PROTECT, related_name="customer_requests")
    link = models.ForeignKey(CustomerLink, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    message = models.TextField(blank=True)
    language = models.CharField(max_length=8, default="en")
    created_at = models.DateTimeField(db_index=True)
    handled_at = models.DateTimeField(null=True, blank=True)
    handled_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")

    class Meta:
        ordering = ("created_at", "id")

    def __str__(self) -> str:
        return f"{self.get_kind_display()} request for decision {self.decision_id}"


class CustomerMessage(models.Model):
    """A letter to the customer that is not a notice: here, that a denial notice they were sent no longer
    stands because the application is now approved (the lender tells them; the private page alone would
    leave them believing they were denied).

    Created in the transaction of the state change that made the application's final outcome an approval
    (a re-score straight to approval, or an officer's approval), audited ``customer_message.queued``; sent
    once after commit (``audit.adverse.customer_message_deliver``), audited ``customer_message.sent``.

    ``subject`` and ``body`` are the text as sent except for the private link's token, which is a bearer
    credential and is never stored (only its hash, on ``CustomerLink``): the body keeps the marker
    ``LINK_MARKER`` where the link went. ``body_sha256`` is the SHA-256 of the body exactly as sent, link
    included, so an e-mail the customer forwards can be matched to this record.
    """

    class Kind(models.TextChoices):
        APPROVED_AFTER_NOTICE = "approved_after_notice", "Approved after a denial notice was sent"

    class Channel(models.TextChoices):
        EMAIL = "email", "E-mail"
        MAIL = "mail", "Postal mail"

    LINK_MARKER = "[private link]"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    # The decision it announces, and the officer's approving action when an officer approved.
    decision = models.ForeignKey("lending.Decision", on_delete=models.PROTECT, related_name="customer_messages")
    officer_action = models.ForeignKey("lending.OfficerAction", null=True, blank=True, on_delete=models.PROTECT,
                                       related_name="+")
    notices = models.ManyToManyField(Notice, through="CustomerMessageNotice", related_name="customer_messages")
    language = models.CharField(max_length=8)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    email = models.CharField(max_length=254, blank=True)
    subject = models.CharField(max_length=200)
    body = models.TextField()
    body_sha256 = models.CharField(max_length=64, blank=True)
    link = models.ForeignKey(CustomerLink, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(db_index=True)
    # A delivery in progress: claimed with a conditional update so that two workers never both send.
    delivery_claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # Withdrawn before it went: the approval it announces no longer stands (re-scored or decided again).
    superseded_at = models.DateTimeField(null=True, blank=True)
    withdrawn_cause = models.TextField(blank=True)

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return f"Customer message {self.public_id} ({self.kind})"


class CustomerMessageNotice(models.Model):
    """A withdrawn notice a message tells the customer about. While the link is live (``released_at`` null)
    no other message may announce the same notice: one message per withdrawn-and-sent notice. A message
    withdrawn before it went releases its notices, so that a later approval announces them again."""

    message = models.ForeignKey(CustomerMessage, on_delete=models.PROTECT, related_name="notice_links")
    notice = models.ForeignKey(Notice, on_delete=models.PROTECT, related_name="+")
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=("notice",), condition=models.Q(released_at__isnull=True),
                                    name="one_live_customer_message_per_notice"),
            models.UniqueConstraint(fields=("message", "notice"), name="customer_message_notice_once"),
        ]

    def __str__(self) -> str:
        return f"Message {self.message_id} announces notice {self.notice_id}"


class LegalHold(models.Model):
    """While a hold is active (``released_at`` null) nothing of the application is purged (Reg B
    1002.12(b)(4): records are kept until final disposition of an investigation or action)."""

    application = models.ForeignKey("lending.Application", on_delete=models.PROTECT, related_name="legal_holds")
    # The investigation, examination or action the hold is for (e.g. a docket or case number): how compliance
    # finds every record of one matter and releases them together at final disposition.
    matter = models.CharField(max_length=200, db_index=True)
    reason = models.TextField()
    placed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    placed_at = models.DateTimeField()
    released_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="+")
    released_at = models.DateTimeField(null=True, blank=True)
    release_note = models.TextField(blank=True, help_text="Why the hold ended (e.g. the matter's final disposition).")

    class Meta:
        ordering = ("-placed_at", "-id")
        constraints = [
            # One active hold per application and matter: placing it twice would need two releases.
            models.UniqueConstraint(fields=("application", "matter"), condition=models.Q(released_at__isnull=True),
                                    name="one_active_hold_per_application_and_matter"),
        ]

    def __str__(self) -> str:
        return f"Legal hold on application {self.application_id} ({self.matter})"

    @property
    def active(self) -> bool:
        return self.released_at is None


# --- exports (issue 5) -----------------------------------------------------------------------------------------

class ExportJob(models.Model):
    """An export of decisions (CSV, JSON Lines, PDF summary, manifest) as one ZIP under
    CANDOR_DATA_DIR/exports/. Large ranges run in the worker; ``rows_done``/``rows_total`` show progress.
    Claimed with a conditional update (pending -> running) so two deliveries never both build it."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    filters = models.JSONField(help_text="since, until (dates, inclusive), product slug, outcome.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="+")
    rows_total = models.PositiveBigIntegerField(default=0)
    rows_done = models.PositiveBigIntegerField(default=0)
    path = models.CharField(max_length=500, blank=True)
    size = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    manifest = models.JSONField(default=dict)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return f"Export {self.public_id} ({self.status})"

    @property
    def percent(self) -> int:
        if self.status == self.Status.DONE:
            return 100
        return int(100 * self.rows_done / self.rows_total) if self.rows_total else 0
