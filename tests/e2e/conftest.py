from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from tests.e2e.workers import RedisServer, use_broker

# Database 9 of the machine's Redis by default; parallel runs on one machine each set their own.
MACHINE_REDIS = os.environ.get("CANDOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """The broker the deployment would use: Redis with PostgreSQL (CI), the filesystem broker with SQLite
    (the embedded default). Yields (url, extra worker environment)."""
    if connection.vendor == "sqlite":
        folder = tmp_path / "broker"
        for sub in ("in", "processed", "control"):
            (folder / sub).mkdir(parents=True)
        options: dict[str, Any] = {"data_folder_in": str(folder / "in"), "data_folder_out": str(folder / "in"),
                                   "processed_folder": str(folder / "processed"),
                                   "control_folder": str(folder / "control"), "store_processed": False}
        use_broker("filesystem://", options)
        yield "filesystem://", {"CELERY_FILESYSTEM_DIR": str(folder)}
    else:
        import redis

        client = redis.Redis.from_url(MACHINE_REDIS, socket_connect_timeout=2)
        client.ping()  # CI must have Redis: an error here fails the test loudly
        client.flushdb()
        use_broker(MACHINE_REDIS)
        yield MACHINE_REDIS, {"CELERY_VISIBILITY_TIMEOUT": "10"}
    use_broker(settings.CELERY_BROKER_URL, settings.CELERY_BROKER_TRANSPORT_OPTIONS)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of the test's own, which it may stop and start (the machine's Redis is left alone)."""
    server = RedisServer(tmp_path)
    server.start()
    use_broker(server.url)
    try:
        yield server
    finally:
        server.stop()
        use_broker(settings.CELERY_BROKER_URL, settings.CELERY_BROKER_TRANSPORT_OPTIONS)
