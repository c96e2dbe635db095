"""The Celery app. Broker: Redis (CELERY_BROKER_URL); embedded default: Kombu's filesystem transport,
which needs no server, so a fresh laptop runs a real worker with the same code paths."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("candor")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
