"""Real processes for end-to-end tests: a Redis server of our own, and a Celery worker.

The worker is a separate process on the same (test) database as the test, so the test must commit:
use ``transactional_db``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection
from kombu import pools as kombu_pools

from config.celery import app as celery_app

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll a condition until it holds; fail with ``what`` when the time is up (a bounded wait, not a sleep)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class RedisServer:
    """A throwaway redis-server on a free loopback port, which a test may stop and start again."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self.answers, timeout=10, what=f"redis-server on port {self.port}")

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


def use_broker(url: str, transport_options: dict[str, Any] | None = None) -> None:
    """Point this process's Celery app at a broker (drop pooled connections to the old one)."""
    celery_app.conf.broker_url = url
    celery_app.conf.broker_transport_options = transport_options or {"visibility_timeout": 30,
                                                                     "socket_connect_timeout": 1}
    # Forget every pooled connection and producer, so the next publish connects to the new broker.
    kombu_pools.reset()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


def database_url() -> str:
    """The test database as a URL the worker process can open."""
    params = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{params['NAME']}"
    user = params.get("USER") or "postgres"
    host = params.get("HOST") or "127.0.0.1"
    port = params.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{params['NAME']}"


class Worker:
    def __init__(self, broker_url: str, log_path: Path, extra_env: dict[str, str] | None = None,
                 concurrency: int = 2, beat: bool = False) -> None:
        self.broker_url = broker_url
        self.log_path = log_path
        self.extra_env = extra_env or {}
        self.concurrency = concurrency
        self.beat = beat
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "DATABASE_URL": database_url(), "CELERY_BROKER_URL": self.broker_url,
               "CANDOR_DATA_DIR": str(settings.CANDOR_DATA_DIR), "DATABASE_CONN_MAX_AGE": "0", **self.extra_env}
        command = [sys.executable, "-m", "celery", "-A", "config", "worker", "--loglevel=INFO",
                   f"--concurrency={self.concurrency}", "--pool=prefork", "--without-gossip", "--without-mingle",
                   "-n", f"e2e-{os.getpid()}-{free_port()}@%h"]
        if self.beat:
            command += ["--beat", "--schedule", str(self.log_path.with_suffix(".beat"))]
        log = self.log_path.open("ab")
        # A process group of its own, so SIGKILL reaches the pool children too.
        self.process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        wait_for(lambda: b"ready." in self.log_path.read_bytes(), timeout=60,
                 what=f"the Celery worker to be ready (log: {self.log_path})")

    def kill(self) -> None:
        """SIGKILL the worker and its pool children, mid-task if that is where they are."""
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
            self.process = None


@contextmanager
def running(thing: Any) -> Iterator[Any]:
    thing.start()
    try:
        yield thing
    finally:
        thing.stop()
