"""End to end with the REAL language model (issue 6, first "Done when" line): an application with free text
through the API is decided on what the model read; a real Celery worker measures the evidence words
(offline: Hugging Face switches on, an empty cache); the officer page highlights them; the officer corrects
the reading, which re-scores into a new decision with its audit events, and the worker explains it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client

from audit.models import AuditEvent, Explanation
from lending.models import Decision, Extraction, ModelVersion
from tests.conftest import demo_fields
from tests.e2e.workers import Worker, running, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

BAKERY = "I am opening a small bakery and need equipment"


def test_free_text_to_decision_to_highlighted_evidence_to_correction(
    transactional_db: None,
    approved_demo: ModelVersion,
    officer: User,
    client_for: Callable[[User], Client],
    broker: tuple[str, dict[str, str]],
    tmp_path: Path,
) -> None:
    client = client_for(officer)
    url, env = broker
    hf_home = tmp_path / "hf-home"
    offline = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HOME": str(hf_home),
               "XDG_CACHE_HOME": str(tmp_path / "cache"), "CANDOR_LM_PROVIDER": "local"}
    with running(Worker(url, tmp_path / "worker.log", {**env, **offline})):
        response = client.post("/api/v1/applications", content_type="application/json", data=json.dumps(
            {"product": "demo", "fields": demo_fields(loan_purpose_text=BAKERY)}))
        assert response.status_code == 201, response.content
        made = response.json()
        decision = Decision.objects.get(public_id=made["id"])
        assert decision.inputs["purpose_category"] == "small_business"
        assert made["extractions"][0]["value"] == "small_business"

        # The worker explains the decision, then measures which words drove each reading.
        wait_for(lambda: not Extraction.objects.filter(application=decision.application,
                                                       evidence__isnull=True).exists(),
                 timeout=120, what="the evidence of both readings")
        purpose = Extraction.objects.get(application=decision.application, field="purpose_category")
        assert "bakery" in [span["text"].lower() for span in purpose.evidence["spans"]]
        assert AuditEvent.objects.filter(event_type="extraction.evidence_measured").count() == 2

        page = client.get(f"/decisions/{decision.public_id}/").content.decode()
        assert ">bakery</mark>" in page and '<sup class="weight">' in page

        corrected = client.post(f"/decisions/{decision.public_id}/extractions/purpose_category",
                                {"value": "home_improvement", "comment": "new ovens for the kitchen at home"})
        assert corrected.status_code == 302
        new = Decision.objects.get(application=decision.application)
        assert new.pk != decision.pk and new.inputs["purpose_category"] == "home_improvement"
        wait_for(lambda: Explanation.objects.filter(decision=new).exists(), timeout=120,
                 what="the re-scored decision's explanation")

    decision.refresh_from_db()
    assert decision.superseded_at is not None and decision.inputs["purpose_category"] == "small_business"
    kinds = list(AuditEvent.objects.filter(event_type__in=(
        "extraction.recorded", "decision.made", "extraction.corrected", "decision.superseded",
        "decision.rescored")).order_by("id").values_list("event_type", flat=True))
    assert kinds == ["extraction.recorded", "extraction.recorded", "decision.made", "extraction.corrected",
                     "decision.superseded", "decision.rescored"]
    body = client.get(f"/api/v1/decisions/{new.public_id}").json()
    assert body["supersedes"] == str(decision.public_id) and body["explanation"] is not None
    # Nothing was downloaded: the offline worker's empty cache stayed empty of model files.
    assert not any(hf_home.rglob("*.safetensors")) and not any((tmp_path / "cache").rglob("*.safetensors"))
