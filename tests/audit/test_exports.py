"""Exports (issue 5): the ZIP's manifest hashes match its files, the CSV has one row per decision in the
filter, the JSON Lines parse, every export is audited, and only compliance and admin reach the pages."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from audit.adverse import adverse_action_prepare
from audit.exports import CSV_COLUMNS, ExportFilters, export_build, export_csv_write, export_job_create
from audit.models import AuditEvent, ExportJob
from audit.services import audit_chain_head
from lending.models import Decision, ModelVersion
from tests.audit.test_adverse import APPROVED, DENIED, decide


@pytest.fixture
def decisions(approved_demo: ModelVersion, officer: User) -> list[Decision]:
    made = [decide(approved_demo, officer, expect="denied", **DENIED),
            decide(approved_demo, officer, expect="approved", **APPROVED),
            decide(approved_demo, officer, explain=False, expect="approved", **APPROVED)]
    adverse_action_prepare(decision_id=made[0].pk)
    # The third was decided long ago: outside a range that starts yesterday.
    Decision.objects.filter(pk=made[2].pk).update(decided_at=timezone.now() - dt.timedelta(days=400))
    return made


def read_zip(path: Path) -> tuple[dict[str, object], dict[str, bytes]]:
    with zipfile.ZipFile(path) as zf:
        files = {name: zf.read(name) for name in zf.namelist()}
    return json.loads(files.pop("manifest.json")), files


def test_the_manifest_hashes_match_the_files(decisions: list[Decision], tmp_path: Path) -> None:
    result = export_build(filters=ExportFilters(), path=tmp_path / "export.zip")
    manifest, files = read_zip(tmp_path / "export.zip")
    listed = {entry["name"]: entry for entry in manifest["files"]}  # type: ignore[attr-defined]
    assert set(listed) == set(files) == {"decisions.csv", "decisions.jsonl", "summary.pdf"}
    for name, content in files.items():
        assert listed[name]["sha256"] == hashlib.sha256(content).hexdigest(), name
        assert listed[name]["size"] == len(content), name
    assert manifest["rows"] == result.rows == 3
    assert manifest["audit_head"] == {"sequence": audit_chain_head().sequence, "hash": audit_chain_head().hash}
    assert files["summary.pdf"].startswith(b"%PDF")
    assert result.sha256 == hashlib.sha256((tmp_path / "export.zip").read_bytes()).hexdigest()


def test_csv_has_one_row_per_decision_in_the_filter(decisions: list[Decision], tmp_path: Path) -> None:
    today = timezone.now().date()
    filters = ExportFilters(since=today - dt.timedelta(days=1), until=today, product="demo")
    export_build(filters=filters, path=tmp_path / "export.zip")
    _, files = read_zip(tmp_path / "export.zip")
    rows = list(csv.DictReader(io.StringIO(files["decisions.csv"].decode())))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert sorted(r["decision_id"] for r in rows) == sorted(str(d.public_id) for d in decisions[:2])
    denied = next(r for r in rows if r["decision_id"] == str(decisions[0].public_id))
    assert denied["model_outcome"] == denied["final_outcome"] == "denied"
    assert float(denied["probability_of_default"]) == decisions[0].probability_of_default
    assert denied["principal_reasons"] and "|" in denied["principal_reasons"]
    assert denied["explanation_checks_passed"] == "true"
    assert len(denied["notice_pdf_sha256"]) == 64
    assert denied["model_version"] == decisions[0].model_version.version

    denied_only = ExportFilters(outcome="denied")
    out = io.BytesIO()
    assert export_csv_write(filters=denied_only, out=out) == 1


def test_jsonl_parses_with_the_full_record(decisions: list[Decision], tmp_path: Path) -> None:
    export_build(filters=ExportFilters(), path=tmp_path / "export.zip")
    _, files = read_zip(tmp_path / "export.zip")
    records = [json.loads(line) for line in files["decisions.jsonl"].decode().splitlines()]
    assert len(records) == 3
    by_id = {r["decision"]["id"]: r for r in records}
    denied = by_id[str(decisions[0].public_id)]
    assert denied["application"]["values"]["credit_score"] == 630
    assert denied["explanation"]["payload"]["attributions"]
    assert denied["reasons"]["reasons"][0]["key"]
    assert denied["notices"][0]["pdf_sha256"]
    assert by_id[str(decisions[2].public_id)]["explanation"] is None


def test_an_export_is_audited_with_its_hash_and_manifest(decisions: list[Decision], compliance: User,
                                                         settings: object, tmp_path: Path) -> None:
    settings.CANDOR_DATA_DIR = tmp_path  # type: ignore[attr-defined]
    job = export_job_create(filters=ExportFilters(outcome="approved"), requested_by=compliance)
    assert job.status == ExportJob.Status.DONE and job.rows_done == job.rows_total == 2
    event = AuditEvent.objects.get(event_type="export.completed")
    assert event.actor == compliance
    assert event.data["rows"] == 2 and event.data["zip_sha256"] == job.sha256
    assert event.data["filters"]["outcome"] == "approved"
    assert event.data["manifest"]["files"][0]["name"] == "decisions.csv"
    assert Path(job.path).parent == tmp_path / "exports"


def test_the_exports_page_runs_and_serves_an_export(decisions: list[Decision], compliance: User, officer: User,
                                                    settings: object, tmp_path: Path,
                                                    client_for: Callable[[User], Client]) -> None:
    settings.CANDOR_DATA_DIR = tmp_path  # type: ignore[attr-defined]
    client = client_for(compliance)
    assert client.get("/compliance/exports/").status_code == 200
    response = client.post("/compliance/exports/", {"product": "demo", "outcome": "", "since": "", "until": ""})
    assert response.status_code == 302
    job = ExportJob.objects.get()
    page = client.get("/compliance/exports/")
    assert f"/compliance/exports/{job.public_id}/download".encode() in page.content
    download = client.get(f"/compliance/exports/{job.public_id}/download")
    assert download.status_code == 200
    body = b"".join(download.streaming_content)  # type: ignore[attr-defined]
    assert hashlib.sha256(body).hexdigest() == job.sha256
    for user in (officer,):
        assert client_for(user).get("/compliance/exports/").status_code == 403
        assert client_for(user).get(f"/compliance/exports/{job.public_id}/download").status_code == 403
    assert Client().get("/compliance/exports/").status_code == 302


def test_a_large_export_goes_to_the_worker(decisions: list[Decision], compliance: User, settings: object,
                                           tmp_path: Path, django_capture_on_commit_callbacks: object,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from audit import tasks

    settings.CANDOR_DATA_DIR = tmp_path  # type: ignore[attr-defined]
    queued: list[int] = []
    monkeypatch.setattr(tasks.export_run, "delay", queued.append)
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
        job = export_job_create(filters=ExportFilters(), requested_by=compliance, run_inline=False)
    assert queued == [job.pk] and job.status == ExportJob.Status.PENDING
    tasks.export_run(job.pk)
    tasks.export_run(job.pk)  # a second delivery changes nothing
    job.refresh_from_db()
    assert job.status == ExportJob.Status.DONE and job.rows_done == 3
    assert AuditEvent.objects.filter(event_type="export.completed").count() == 1


def test_the_command_writes_an_audited_export(decisions: list[Decision], tmp_path: Path) -> None:
    out = tmp_path / "cmd.zip"
    call_command("export_decisions", "--product", "demo", "--outcome", "denied", "--out", str(out),
                 stdout=io.StringIO())
    manifest, files = read_zip(out)
    assert manifest["rows"] == 1
    assert len(files["decisions.csv"].decode().strip().splitlines()) == 2
    assert AuditEvent.objects.get(event_type="export.completed").data["zip_sha256"] == hashlib.sha256(
        out.read_bytes()).hexdigest()
