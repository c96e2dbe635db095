"""A large export runs in a real Celery worker (issue 5, section 5): the page queues it, shows it pending and
reloads itself while it runs, and the worker builds the ZIP whose manifest hashes match its files."""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client

from audit import exports
from audit.models import AuditEvent, ExportJob
from lending.models import ModelVersion
from tests.audit.test_adverse import APPROVED, DENIED, decide
from tests.e2e.workers import Worker, running, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def test_a_large_export_is_built_by_the_worker_with_its_progress_on_the_page(
        transactional_db: None, approved_demo: ModelVersion, officer: User, compliance: User,
        client_for: Callable[[User], Client], broker: tuple[str, dict[str, str]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    for fields in (APPROVED, DENIED, APPROVED):
        decide(approved_demo, officer, explain=False, **fields)
    # Anything above two decisions counts as a large range here, so three go to the worker.
    monkeypatch.setattr(exports, "EXPORT_INLINE_MAX", 2)
    client = client_for(compliance)

    assert client.post("/compliance/exports/", {"product": "demo"}).status_code == 302
    job = ExportJob.objects.get()
    assert job.status == ExportJob.Status.PENDING and job.rows_total == 3
    page = client.get("/compliance/exports/").content.decode()
    assert '<meta http-equiv="refresh" content="5">' in page
    assert "Pending" in page and "0 / 3" in page

    url, env = broker
    with running(Worker(url, tmp_path / "worker.log", env)):
        wait_for(lambda: ExportJob.objects.get(pk=job.pk).status == ExportJob.Status.DONE, timeout=120,
                 what="the worker to finish the export")

    job.refresh_from_db()
    assert (job.rows_done, job.rows_total, job.percent) == (3, 3, 100)
    page = client.get("/compliance/exports/").content.decode()
    assert "http-equiv" not in page and "3 / 3" in page and "Done" in page
    download = client.get(f"/compliance/exports/{job.public_id}/download")
    body = b"".join(download.streaming_content)  # type: ignore[attr-defined]
    assert hashlib.sha256(body).hexdigest() == job.sha256 == download["X-Content-SHA256"]
    archive = tmp_path / "export.zip"
    archive.write_bytes(body)
    with zipfile.ZipFile(archive) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        assert manifest["rows"] == 3
        for entry in manifest["files"]:
            assert hashlib.sha256(zf.read(entry["name"])).hexdigest() == entry["sha256"], entry["name"]
    requested = AuditEvent.objects.get(event_type="export.requested")
    assert requested.actor == compliance and requested.data["inline"] is False
    assert AuditEvent.objects.filter(event_type="export.completed", subject_id=str(job.pk)).count() == 1
