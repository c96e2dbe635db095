"""Production settings pass Django's deployment checklist (issue 5, section 1): with DEBUG off and the security
settings taken from the environment as README's configuration table describes, ``manage.py check --deploy``
reports no issue; leaving HSTS and the HTTPS redirect unset is reported. Settings are read at start-up, so each
check runs in its own process."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRODUCTION = {
    "DEBUG": "false",
    "SECURE_COOKIES": "true",
    "SECURE_SSL_REDIRECT": "true",
    "SECURE_HSTS_SECONDS": "31536000",
    "ALLOWED_HOSTS": "candor.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://candor.example.com",
}


def check_deploy(tmp_path: Path, **overrides: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in PRODUCTION and key != "SECRET_KEY"}
    env.update(PRODUCTION, CANDOR_DATA_DIR=str(tmp_path), **overrides)
    # A long random key, as a deployment's secret store would hold (the check refuses short or test keys).
    secret_file = tmp_path / "secret_key"
    secret_file.write_text(secrets.token_urlsafe(64), encoding="utf-8")
    env["SECRET_KEY_FILE"] = str(secret_file)
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_production_settings_pass_check_deploy(tmp_path: Path) -> None:
    result = check_deploy(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_missing_hsts_and_https_redirect_are_reported(tmp_path: Path) -> None:
    result = check_deploy(tmp_path, SECURE_HSTS_SECONDS="0", SECURE_SSL_REDIRECT="false")
    assert result.returncode != 0
    assert "security.W004" in result.stderr + result.stdout and "security.W008" in result.stderr + result.stdout
