"""The management commands a lender runs: train_model, approve_model, demo_up."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from lending.models import Decision, ModelVersion


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.fixture
def data_dir(settings, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    settings.CANDOR_DATA_DIR = tmp_path
    settings.CANDOR_MODEL_DIR = tmp_path / "models"
    return tmp_path


def metrics_of(output: str) -> dict[str, str]:
    return dict(re.findall(r"^(\w+): (\S+)$", output, flags=re.MULTILINE))


@pytest.mark.slow
@pytest.mark.parametrize(("product", "target"), [("heloc", 0.795), ("german-credit", 0.78)])
def test_train_model_on_real_data_reaches_its_target(db: None, data_dir: Path, product: str, target: float) -> None:
    output = run("train_model", "--product", product)

    figures = metrics_of(output)
    assert {"auc", "cv_auc", "ks", "brier", "version"} <= set(figures)
    assert float(figures["cv_auc"]) >= target
    version = ModelVersion.objects.get(product__slug=product, version=figures["version"])
    assert version.status == "trained"
    assert version.metrics["cv_auc"] == pytest.approx(float(figures["cv_auc"]), abs=1e-4)
    assert (data_dir / version.path / "manifest.json").exists()
    assert AuditEvent.objects.filter(event_type="model.registered", subject_id=str(version.pk)).exists()


def test_train_then_approve_by_a_named_user(db: None, data_dir: Path, admin_user: User, officer: User) -> None:
    version = metrics_of(run("train_model", "--product", "demo", "--rows", "3000"))["version"]

    with pytest.raises(CommandError, match="may not approve"):
        run("approve_model", "--product", "demo", "--version", version, "--by", officer.username)
    with pytest.raises(CommandError, match="no model version"):
        run("approve_model", "--product", "demo", "--version", "nope", "--by", admin_user.username)
    assert "approved: demo" in run("approve_model", "--product", "demo", "--version", version,
                                   "--by", admin_user.username)

    approved = ModelVersion.objects.get(version=version)
    assert approved.status == "approved" and approved.approved_by == admin_user
    event = AuditEvent.objects.get(event_type="model.approved", subject_id=str(approved.pk))
    assert event.actor == admin_user and event.data["new_status"] == "approved"


def test_an_unknown_product_is_a_clear_error(db: None, data_dir: Path) -> None:
    with pytest.raises(CommandError, match="no product spec named 'nope'"):
        run("train_model", "--product", "nope")


def test_a_missing_data_file_is_named(db: None, data_dir: Path) -> None:
    with pytest.raises(CommandError, match=r"/no/such/file\.csv"):
        run("train_model", "--product", "heloc", "--data", "/no/such/file.csv")


def test_demo_up_creates_users_model_and_decisions(db: None, data_dir: Path) -> None:
    output = run("demo_up", "--applications", "20", "--train-rows", "3000")

    assert re.search(r"demo user 'officer' \(officer\) password: \S{12,}", output)
    assert User.objects.get(username="officer").groups.filter(name="officer").exists()
    assert ModelVersion.objects.get(product__slug="demo").status == "approved"
    assert Decision.objects.count() == 20
    assert "already seeded" in run("demo_up", "--applications", "20")
    assert Decision.objects.count() == 20
