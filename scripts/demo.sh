#!/usr/bin/env bash
# Bring the demo up on the embedded default (SQLite and, without CELERY_BROKER_URL, Kombu's filesystem
# broker): migrate, demo users, a trained and approved demo model, 200 decisions; then a Celery worker
# (with the outbox sweep) in the background and the web server in the foreground. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBUG="${DEBUG:-true}"
PY=.venv/bin/python
$PY manage.py migrate --noinput
$PY manage.py demo_up
mkdir -p var
$PY -m celery -A config worker --beat --loglevel=INFO --concurrency=2 >var/worker.log 2>&1 &
worker=$!
trap 'kill $worker 2>/dev/null || true; wait $worker 2>/dev/null || true' EXIT INT TERM
echo "worker running (pid $worker, log var/worker.log); explaining decisions in the background"
echo "Open http://127.0.0.1:8000/ and log in with a demo user printed above."
$PY manage.py runserver 127.0.0.1:8000 --noreload
