"""One decision's explanation: time from the decision's commit to its explanation stored (issue 3, section 7).

From one run:

1. A fresh PostgreSQL database ``candor_bench_<pid>`` on 127.0.0.1 (dropped at the end), migrated, with the
   production demo model trained as ``manage.py train_model --product demo`` does, approved; an officer.
2. Its own ``redis-server`` on a free loopback port and ``--processes`` Celery worker processes (prefork,
   ``--threads`` numba threads each), warm before the first decision: the ``worker_process_init`` hook in
   ``audit.tasks`` loads every approved model and explains a few reference applicants (numba kernels
   compiled or loaded from their cache, explainer tables built).
3. ``--decisions`` applications (fresh demo applicants, seed 8080: approvals, referrals and denials) posted one
   at a time to ``POST /api/v1/applications`` through Django's test client in this process: the real view,
   the real transaction, the outbox row, the publish to Redis on commit. The decision's commit is timed by
   an ``on_commit`` hook registered inside that transaction (it runs the moment the transaction commits);
   the explanation's arrival by polling for its row every ``--poll-ms`` (so a figure may be up to that much
   late). Next decision only once the previous one is explained: this is latency, not throughput.
   The adverse-action follow-up of a denial (issue 4: reasons, notice PDF, e-mail) is routed to a queue no
   bench worker consumes: it is a separate stage after the explanation.
4. Prints p50, p90, p99 and the maximum of commit -> explanation stored, also of the server-side
   ``Explanation.computed_at - Decision.decided_at`` (both timestamps are taken before their transactions
   commit), with the load average; targets p50 <= 100 ms, p99 <= 300 ms. Writes bench/out/explanation_latency.json.

Run: ``.venv/bin/python bench/explanation_latency.py [--decisions 500] [--processes 2 --threads 1]``
Needs PostgreSQL with trust auth on 127.0.0.1:5432 (user postgres) and ``redis-server`` on the PATH.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out" / "explanation_latency.json"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from explain_batch_e2e import BENCH_APP, admin_url, load  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=500)
    parser.add_argument("--seed", type=int, default=8080)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--poll-ms", type=float, default=1.0)
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--json", type=Path, default=OUT)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    import psycopg

    dbname = f"candor_bench_{os.getpid()}"
    work = Path(tempfile.mkdtemp(prefix="candor-bench-latency-"))
    (work / "candor_bench_app.py").write_text(BENCH_APP, encoding="utf-8")
    with psycopg.connect(admin_url(args.pg), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{dbname}"')

    from tests.e2e.workers import RedisServer, free_port, wait_for

    redis = RedisServer(work)
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "config.settings", "DATABASE_URL": f"{args.pg}/{dbname}",
        "CANDOR_DATA_DIR": str(work / "data"), "CELERY_BROKER_URL": redis.url, "LOG_LEVEL": "WARNING",
    })
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-not-for-production")
    os.environ.setdefault("DEBUG", "false")
    workers: subprocess.Popen[bytes] | None = None
    figures: dict[str, Any] = {"decisions": args.decisions, "processes": args.processes,
                               "threads_per_process": args.threads, "cpus": os.cpu_count()}
    try:
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection
        from django.test import Client

        from audit import explanations
        from audit.models import Explanation
        from lending.models import Decision
        from lending.roles import OFFICER
        from scoring.demo import generate
        from scoring.spec import json_safe

        redis.start()
        call_command("migrate", verbosity=0)
        with open(os.devnull, "w") as sink:
            call_command("train_model", "--product", "demo", stdout=sink, stderr=sink)
            from django.contrib.auth.models import Group, User

            User.objects.create_superuser("bench-admin", "bench@example.org", secrets.token_urlsafe(16))
            call_command("approve_model", "--product", "demo", "--version", "latest", "--by", "bench-admin",
                         stdout=sink)
        officer = User.objects.create_user("bench-officer", password=secrets.token_urlsafe(16))
        officer.groups.add(Group.objects.get(name=OFFICER))
        client = Client(HTTP_HOST="127.0.0.1")
        client.force_login(officer)

        log = work / "workers.log"
        env = {**os.environ, "PYTHONPATH": f"{work}{os.pathsep}{REPO}", "CANDOR_WORKER_THREADS": str(args.threads),
               "LOG_LEVEL": "INFO"}
        command = [sys.executable, "-m", "celery", "-A", "candor_bench_app", "worker", "--loglevel=INFO",
                   f"--concurrency={args.processes}", "--pool=prefork", "--without-gossip", "--without-mingle",
                   "--without-heartbeat", "-Q", "celery", "-n", f"latency-{os.getpid()}-{free_port()}@%h"]
        with log.open("ab") as sink_log:
            workers = subprocess.Popen(command, cwd=REPO, env=env, stdout=sink_log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        wait_for(lambda: b"ready." in log.read_bytes(), timeout=120, what=f"the Celery workers (log: {log})")
        wait_for(lambda: log.read_bytes().count(b"explainer warm") >= args.processes, timeout=120,
                 what=f"the worker processes to warm up (log: {log})", interval=0.2)
        time.sleep(1.0)

        # The decision's commit: an on_commit hook registered inside the request's transaction, next to the
        # one that publishes the explanation task (it runs right after it, in the same moment).
        committed: dict[int, float] = {}
        publish = explanations.explanation_request_publish

        def timed_publish(*, decision_id: int, record_success: bool = False) -> bool:
            committed[decision_id] = time.perf_counter()
            return publish(decision_id=decision_id, record_success=record_success)

        explanations.explanation_request_publish = timed_publish  # type: ignore[assignment]

        frame, _ = generate(args.decisions, args.seed)
        latencies: list[float] = []
        outcomes: dict[str, int] = {}
        poll = args.poll_ms / 1000
        load_start = load()
        started = time.perf_counter()
        for record in frame.to_dict(orient="records"):
            fields = json_safe({k: v for k, v in record.items() if v is not None and v == v})
            response = client.post("/api/v1/applications", data=json.dumps({"product": "demo", "fields": fields}),
                                   content_type="application/json")
            if response.status_code != 201:
                raise SystemExit(f"the API refused an application: {response.status_code} {response.content[:300]!r}")
            body = response.json()
            outcomes[body["outcome"]] = outcomes.get(body["outcome"], 0) + 1
            decision_id = Decision.objects.values_list("pk", flat=True).get(public_id=body["id"])
            deadline = time.perf_counter() + 30
            with connection.cursor() as cursor:
                while True:
                    cursor.execute("SELECT 1 FROM audit_explanation WHERE decision_id = %s", [decision_id])
                    if cursor.fetchone() is not None:
                        seen = time.perf_counter()
                        break
                    if time.perf_counter() > deadline:
                        raise SystemExit(f"no explanation for decision {decision_id} after 30 s (log: {log})")
                    time.sleep(poll)
            latencies.append((seen - committed[decision_id]) * 1000)
        elapsed = time.perf_counter() - started
        load_end = load()
        server = [(e - d).total_seconds() * 1000 for e, d in
                  Explanation.objects.values_list("computed_at", "decision__decided_at")]
        stats = {"p50_ms": statistics.median(latencies), "p90_ms": percentile(latencies, 90),
                 "p99_ms": percentile(latencies, 99), "max_ms": max(latencies), "mean_ms": statistics.fmean(latencies),
                 "server_p50_ms": statistics.median(server), "server_p99_ms": percentile(server, 99),
                 "server_max_ms": max(server)}
        print(f"{len(latencies)} decisions through POST /api/v1/applications ({outcomes}) in {elapsed:.1f} s, "
              f"{args.processes} worker processes x {args.threads} numba threads")
        print(f"commit -> explanation stored: p50 {stats['p50_ms']:.1f} ms   p90 {stats['p90_ms']:.1f} ms   "
              f"p99 {stats['p99_ms']:.1f} ms   max {stats['max_ms']:.1f} ms   (polled every {args.poll_ms:g} ms; "
              f"targets p50 <= 100 ms, p99 <= 300 ms)")
        print(f"server side, Explanation.computed_at - Decision.decided_at: p50 {stats['server_p50_ms']:.1f} ms   "
              f"p99 {stats['server_p99_ms']:.1f} ms   max {stats['server_max_ms']:.1f} ms")
        print(f"load average at start {load_start}, at end {load_end}")
        figures.update(stats)
        figures.update({"outcomes": outcomes, "load_at_start": load_start, "load_at_end": load_end,
                        "poll_ms": args.poll_ms, "latencies_ms": [round(v, 3) for v in latencies]})
    finally:
        if workers is not None and workers.poll() is None:
            os.killpg(workers.pid, signal.SIGTERM)
            try:
                workers.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(workers.pid, signal.SIGKILL)
                workers.wait(timeout=10)
        redis.stop()
        with contextlib.suppress(Exception):  # best effort before the drop
            from django.db import connections

            connections.close_all()
        with psycopg.connect(admin_url(args.pg), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        print(f"dropped database {dbname}")
        shutil.rmtree(work, ignore_errors=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
