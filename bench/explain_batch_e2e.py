"""The whole batch path against the bare library: R_e2e vs R_raw on 200,000 demo decisions (issue 3, section 7).

What it does, from one run:

1. Creates a fresh PostgreSQL database ``candor_bench_<pid>`` on 127.0.0.1 (dropped at the end), migrates it,
   trains the production demo model exactly as ``manage.py train_model --product demo`` does (its defaults:
   2,000,000 generated rows, seed 0: scoring.datasets.DEMO_TRAINING_ROWS), registers and approves it.
2. Writes ``--rows`` real demo decisions (fresh applications, seed 424242, each validated, scored by the model
   with ``model.score`` and decided by the policy, as ``bulk_decisions`` in the end-to-end tests does).
3. R_raw: ``shap.TreeExplainer(booster).shap_values(X)`` on those decisions' feature rows, in this process,
   with the library's default threads (all cores), no storage. (LightGBM's ``pred_contrib`` is timed beside
   it: for a LightGBM booster shap hands the work to it.)
4. Starts its own ``redis-server`` on a free loopback port and ``--processes`` Celery worker processes
   (``celery worker --pool=prefork``; ``--threads`` numba threads per process, set at worker start by
   ``audit.tasks``' worker_process_init hook through ``CANDOR_WORKER_THREADS``), waits until they are ready
   and warm, then runs ``manage.py explain_batch --product demo --chunk-size N --no-wait`` and polls (every
   0.2 s, bounded by ``--timeout``) until every decision has its explanation stored. R_e2e = decisions /
   (time from the command's start to the last explanation stored). The command's own progress bar is not
   used: it counts the portfolio twice every half second, which would load the server it measures.
   The adverse-action follow-up that a chunk publishes for its denials (issue 4: reasons, notices, e-mail) is
   routed to a queue no bench worker consumes: it is a separate stage, not part of the explanation.
5. Checks: exactly one explanation per decision; every one passes additivity; for ``--sample`` decisions the
   stored attributions (cutoff and all-applicant references, grouped per field; and per feature), read back
   as every reader reads them (``Explanation.document``: the compact stored row joined with its shared
   context), agree with the bare library's values after the same Platt scaling and grouping to 1e-9; the
   stored output is the model's calibrated log-odds. The payload sizes printed are the stored rows'.
6. R_compute: the platform's own computation of the same explanations with no queue and no database, in the
   workers' shape (``--processes`` processes x ``--threads`` numba threads, each explaining its share in chunks of
   ``--chunk-size`` with ``Explainer.explain_many_stored``, as a worker does after it has read its chunk): what
   the explanation the issue asks for (exact attributions against both references, the determinism
   recomputation, the faithfulness moves, the recourse search verified by re-scoring, the stored text) costs by
   itself. R_e2e / R_compute is then the share the queueing and storage leave.
7. Prints R_raw, R_compute, R_e2e and their ratios (target R_e2e >= 0.8 x R_raw) with the load average and where
   the CPU went (workers, PostgreSQL backends of the bench database, the rest), writes
   bench/out/explain_batch_e2e.json, stops the workers and Redis and drops the database.

Run: ``.venv/bin/python bench/explain_batch_e2e.py [--rows 200000] [--processes 2 --threads 1] [--chunk-size 2000]``
Needs PostgreSQL with trust auth on 127.0.0.1:5432 (user postgres) and ``redis-server`` on the PATH.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out" / "explain_batch_e2e.json"
sys.path.insert(0, str(REPO))

BENCH_APP = '''"""Celery app for the explanation benches: the project's app, with the adverse-action follow-ups
routed to a queue the bench workers do not consume."""
from config.celery import app

app.conf.task_routes = {
    "audit.tasks.adverse_action_prepare": {"queue": "candor-bench-adverse"},
    "audit.tasks.adverse_action_prepare_many": {"queue": "candor-bench-adverse"},
}
'''


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, in seconds (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree_cpu(root: int) -> float:
    """CPU seconds of a process, its live children and (through the kernel's cutime/cstime) every child that
    has exited and been reaped: a PostgreSQL server's backends come and go, each Celery task opens its own."""
    try:
        fields = Path(f"/proc/{root}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    total = sum(int(fields[k]) for k in (11, 12, 13, 14)) / ticks
    return total + sum(cpu_seconds(child) for child in children(root))


def postmaster() -> int:
    """The PostgreSQL server's main process (the postgres process whose parent is not a postgres process)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                comm = (entry / "comm").read_text().strip()
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                parent = (Path("/proc") / str(ppid) / "comm").read_text().strip() if ppid > 1 else ""
            except OSError:
                continue
            if comm == "postgres" and parent != "postgres":
                return int(entry.name)
    return 0


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return float(sum(values) - idle), float(sum(values))


def admin_url(base: str) -> str:
    return f"{base}/postgres"


def _compute_only_child(model_dir: str, spec: Any, values: list[dict[str, Any]], chunk: int, threads: int,
                        ready: Any, start: Any, results: Any) -> None:
    """One process of R_compute: load the model, warm the explainer, wait for the start, explain ``values`` in
    chunks as a worker explains its chunk (the cyclic garbage collector off meanwhile, as the worker has it)
    and report (rows, the end on the shared monotonic clock, CPU seconds)."""
    import gc

    import numba

    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    from scoring.explain import Explainer
    from scoring.predict import load_model

    explainer = Explainer.for_model(load_model(Path(model_dir)), spec)
    explainer.explain_many_stored(values[:64])
    ready.put(os.getpid())
    start.wait()
    cpu = time.process_time()
    gc.disable()
    for first in range(0, len(values), chunk):
        explainer.explain_many_stored(values[first:first + chunk])
    gc.enable()
    results.put((len(values), time.perf_counter(), time.process_time() - cpu))


def compute_only(model_dir: str, spec: Any, values: list[dict[str, Any]], processes: int, threads: int,
                 chunk: int) -> tuple[float, float]:
    """R_compute (rows a second) and its CPU seconds a row: ``values`` explained by ``processes`` fresh
    processes (spawned: nothing of this process's OpenMP or numba state is inherited), each its contiguous
    share, timed from the moment all are warm to the last one's end."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    ready, results, start = context.Queue(), context.Queue(), context.Event()
    share = -(-len(values) // processes)
    workers = [context.Process(target=_compute_only_child,
                               args=(model_dir, spec, values[k * share:(k + 1) * share], chunk, threads, ready,
                                     start, results))
               for k in range(processes)]
    for process in workers:
        process.start()
    for _ in workers:
        ready.get(timeout=600)
    t0 = time.perf_counter()
    start.set()
    reports = [results.get(timeout=3600) for _ in workers]
    for process in workers:
        process.join(timeout=60)
    rows = sum(r[0] for r in reports)
    elapsed = max(r[1] for r in reports) - t0
    return rows / elapsed, sum(r[2] for r in reports) / rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=424242)
    parser.add_argument("--processes", type=int, default=2, help="Celery prefork processes")
    parser.add_argument("--threads", type=int, default=1, help="numba threads per worker process")
    parser.add_argument("--chunk-size", type=int, default=2000)
    parser.add_argument("--sample", type=int, default=2000, help="decisions checked against the bare library")
    parser.add_argument("--raw-repeats", type=int, default=3, help="R_raw is the best of this many runs")
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432", help="server URL, without database")
    parser.add_argument("--keep", metavar="DBNAME", default="",
                        help="development: keep (or reuse, if it exists and is filled) this database")
    parser.add_argument("--json", type=Path, default=OUT)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up (workers, Redis, database) on SIGTERM too

    import psycopg

    dbname = args.keep or f"candor_bench_{os.getpid()}"
    if not dbname.startswith("candor_bench_"):
        raise SystemExit("the bench database name must start with candor_bench_")
    work = Path(tempfile.mkdtemp(prefix="candor-bench-e2e-"))
    data_dir = work / "data" if not args.keep else Path(tempfile.gettempdir()) / f"{dbname}-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    (work / "candor_bench_app.py").write_text(BENCH_APP, encoding="utf-8")
    with psycopg.connect(admin_url(args.pg), autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone() is not None
        reuse = False
        if args.keep and exists:
            with psycopg.connect(f"{args.pg}/{dbname}") as existing:
                reuse = existing.execute("SELECT to_regclass('audit_explanation') IS NOT NULL").fetchone()[0]
        if not reuse:
            if exists:
                admin.execute(f'DROP DATABASE "{dbname}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{dbname}"')

    from tests.e2e.workers import RedisServer, free_port, wait_for

    redis = RedisServer(work)
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "config.settings", "DATABASE_URL": f"{args.pg}/{dbname}",
        "CANDOR_DATA_DIR": str(data_dir), "CELERY_BROKER_URL": redis.url, "LOG_LEVEL": "WARNING",
    })
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-not-for-production")
    os.environ.setdefault("DEBUG", "false")
    state: dict[str, Any] = {}
    figures: dict[str, Any] = {"rows": args.rows, "processes": args.processes, "threads_per_process": args.threads,
                               "chunk_size": args.chunk_size, "cpus": os.cpu_count(), "machine": platform.machine()}
    try:
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection

        redis.start()
        figures.update(run(args, dbname, work, reuse, state, call_command, connection, free_port, wait_for))
    finally:
        workers = state.get("workers")
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
        if not args.keep:
            with psycopg.connect(admin_url(args.pg), autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
            print(f"dropped database {dbname}")
        shutil.rmtree(work, ignore_errors=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"figures written to {args.json}")


def run(args: argparse.Namespace, dbname: str, work: Path, reuse: bool, state: dict[str, Any], call_command: Any,
        connection: Any, free_port: Any, wait_for: Any) -> dict[str, Any]:
    import numpy as np
    import shap
    from django.contrib.auth.models import User
    from django.utils import timezone

    from audit.models import Explanation, ExplanationBatch
    from lending.models import Application, Decision, ModelVersion, Product
    from lending.selectors import inputs_from_snapshot, product_spec, scoring_model_for
    from lending.services import inputs_sha256
    from scoring.datasets import load_dataset
    from scoring.explain import Explainer
    from scoring.explain import Explanation as StoredExplanation
    from scoring.policy import policy_decide
    from scoring.spec import json_safe, validate_fields

    out: dict[str, Any] = {}
    started = time.perf_counter()
    if not reuse:
        call_command("migrate", verbosity=0)
        call_command("train_model", "--product", "demo", stdout=open(os.devnull, "w"),  # noqa: SIM115
                     stderr=open(os.devnull, "w"))  # noqa: SIM115
        User.objects.create_superuser("bench-admin", "bench@example.org", secrets.token_urlsafe(16))
        call_command("approve_model", "--product", "demo", "--version", "latest", "--by", "bench-admin",
                     stdout=open(os.devnull, "w"))  # noqa: SIM115
    version = ModelVersion.objects.select_related("product").get(product__slug="demo",
                                                                   status=ModelVersion.Status.APPROVED)
    product: Product = version.product
    spec = product_spec(product=product)
    model = scoring_model_for(model_version=version)
    print(f"database {dbname}; model {version.version}: {model.booster.num_trees()} trees, "
          f"{model.encoder.n_features} features ({time.perf_counter() - started:.1f} s)", flush=True)

    if not reuse or not Decision.objects.exists():
        made = time.perf_counter()
        user = User.objects.get(username="bench-admin")
        # Generated applications with their confirmed text-derived values (what the demo model reads).
        frame = load_dataset(spec, n=args.rows, seed=args.seed).frame
        now = timezone.now()
        applications, decisions = [], []
        for row in frame.to_dict(orient="records"):
            values = validate_fields(spec, {k: v for k, v in row.items() if v is not None and v == v})
            inputs = {f.name: values[f.name] for f in spec.model_inputs if f.name in values}
            probability = model.score(inputs)
            verdict = policy_decide(spec.policy, probability, inputs)
            application = Application(product=product, values=json_safe(inputs), submitted_by=user,
                                      submitted_at=now, completed_at=now)
            applications.append(application)
            decisions.append(Decision(application=application, model_version=version, outcome=verdict.outcome,
                                      probability_of_default=probability, inputs=json_safe(inputs),
                                      inputs_sha256=inputs_sha256(inputs), cutoff=spec.policy.cutoff,
                                      refer_band=spec.policy.refer_band, decided_at=now,
                                      knockout=verdict.knockout.name if verdict.knockout else "",
                                      knockout_reason=verdict.knockout.reason if verdict.knockout else ""))
        Application.objects.bulk_create(applications, batch_size=5000)
        for decision in decisions:
            decision.application_id = decision.application.pk
        Decision.objects.bulk_create(decisions, batch_size=5000)
        del applications, decisions
        print(f"{args.rows} decisions written in {time.perf_counter() - made:.1f} s", flush=True)
    else:
        Explanation.objects.all().delete()
        ExplanationBatch.objects.all().delete()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    stored = list(Decision.objects.filter(application__product=product).order_by("id")
                  .values_list("id", "inputs", "outcome"))
    n = len(stored)
    ids = np.array([s[0] for s in stored], dtype=np.int64)
    x = np.vstack([model.encoder.encode_row(inputs_from_snapshot(spec=spec, snapshot=s[1])) for s in stored])
    outcomes = {o: sum(1 for s in stored if s[2] == o) for o in ("approved", "referred", "denied")}
    print(f"{n} decisions: {outcomes}", flush=True)
    out["outcomes"] = outcomes

    # --- R_raw: the bare library ------------------------------------------------------------------------
    booster = model.booster
    booster.predict(x[:1000], pred_contrib=True)
    # Best of --raw-repeats: the bare library's speed on this machine, with as little of the other sessions'
    # load in it as we can get; every run is printed.
    before = load()
    raw_runs = []
    shap_values = np.zeros(0)
    for _ in range(max(1, args.raw_repeats)):
        t0 = time.perf_counter()
        shap_values = np.asarray(shap.TreeExplainer(booster).shap_values(x), dtype=np.float64)
        raw_runs.append(n / (time.perf_counter() - t0))
    r_raw = max(raw_runs)
    lgb_runs = []
    for _ in range(max(1, args.raw_repeats)):
        t0 = time.perf_counter()
        booster.predict(x, pred_contrib=True)
        lgb_runs.append(n / (time.perf_counter() - t0))
    r_lgb = max(lgb_runs)
    print(f"R_raw  shap.TreeExplainer(booster).shap_values(X), default threads: {r_raw:>10,.0f} rows/s (best of "
          f"{', '.join(f'{r:,.0f}' for r in raw_runs)}; load average before: {before}, after: {load()})", flush=True)
    print(f"       LightGBM pred_contrib, default threads:                 {r_lgb:>10,.0f} rows/s (best of "
          f"{', '.join(f'{r:,.0f}' for r in lgb_runs)})", flush=True)
    out.update({"r_raw_rows_per_s": r_raw, "r_raw_runs": raw_runs, "lightgbm_pred_contrib_rows_per_s": r_lgb,
                "lightgbm_runs": lgb_runs, "load_before_raw": before})

    # --- R_compute: the same explanations, no queue, no database ---------------------------------------------
    values = [inputs_from_snapshot(spec=spec, snapshot=s[1]) for s in stored]
    r_compute, compute_cpu = compute_only(str(model.path), spec, values, args.processes, args.threads,
                                          args.chunk_size)
    del values
    print(f"R_compute explain_many_stored in {args.processes} x {args.threads}, chunks of {args.chunk_size}, no "
          f"queue or database: {r_compute:>10,.0f} rows/s ({compute_cpu * 1e6:.0f} us of CPU a row; R_compute / "
          f"R_raw = {r_compute / r_raw:.3f})", flush=True)
    out.update({"r_compute_rows_per_s": r_compute, "compute_cpu_us_per_row": compute_cpu * 1e6,
                "ratio_compute_over_raw": r_compute / r_raw})

    # --- workers ----------------------------------------------------------------------------------------
    log = work / "workers.log"
    env = {**os.environ, "PYTHONPATH": f"{work}{os.pathsep}{REPO}", "CANDOR_WORKER_THREADS": str(args.threads),
           "CANDOR_WORKER_WARM": "1", "LOG_LEVEL": "INFO"}
    command = [sys.executable, "-m", "celery", "-A", "candor_bench_app", "worker", "--loglevel=INFO",
               f"--concurrency={args.processes}", "--pool=prefork", "--without-gossip", "--without-mingle",
               "--without-heartbeat", "-Q", "celery", "-n", f"bench-{os.getpid()}-{free_port()}@%h"]
    with log.open("ab") as sink:
        workers = subprocess.Popen(command, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    state["workers"] = workers
    wait_for(lambda: b"ready." in log.read_bytes(), timeout=120, what=f"the Celery workers (log: {log})")
    wait_for(lambda: log.read_bytes().count(b"explainer warm") >= args.processes, timeout=120,
             what=f"the worker processes to warm up (log: {log})", interval=0.2)
    time.sleep(1.0)
    print(f"workers ready and warm: {args.processes} processes x {args.threads} numba threads", flush=True)

    # --- R_e2e: the whole batch path ----------------------------------------------------------------------
    server = postmaster()
    cpu_workers_0 = process_tree_cpu(workers.pid)
    cpu_pg_0 = process_tree_cpu(server) if server else 0.0
    busy0, total0 = machine_cpu()
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(max(id), 0) FROM audit_auditevent")
        last_event = int(cursor.fetchone()[0])
    load_start = load()
    t0 = time.perf_counter()
    call_command("explain_batch", "--product", "demo", "--chunk-size", str(args.chunk_size), "--no-wait",
                 stdout=open(os.devnull, "w"))  # noqa: SIM115
    deadline = t0 + args.timeout
    done = 0
    while time.perf_counter() < deadline:
        # Cheap progress: the chunks' own audit events say how many explanations each stored (a count(*)
        # over the explanations themselves would scan hundreds of MB every poll and load the server measured).
        with connection.cursor() as cursor:
            cursor.execute("SELECT coalesce(sum((data->>'stored')::int), 0) FROM audit_auditevent "
                           "WHERE id > %s AND event_type = 'explanation.batch_chunk_stored'", [last_event])
            done = int(cursor.fetchone()[0])
        if done >= n:
            break
        if workers.poll() is not None or b"raised unexpected" in log.read_bytes():
            raise SystemExit(f"the workers failed (log: {log}):\n" + log.read_text(errors="replace")[-3000:])
        time.sleep(0.1)
    elapsed = time.perf_counter() - t0
    load_end = load()
    busy1, total1 = machine_cpu()
    cpu_workers = process_tree_cpu(workers.pid) - cpu_workers_0
    cpu_pg = (process_tree_cpu(server) - cpu_pg_0) if server else float("nan")
    ticks = os.sysconf("SC_CLK_TCK")
    cpu_machine = (busy1 - busy0) / ticks
    if done < n:
        raise SystemExit(f"timed out after {elapsed:.0f} s with {done} of {n} explanations stored (log: {log})")
    r_e2e = n / elapsed
    print(f"R_e2e  explain_batch over {args.processes} x {args.threads}, chunks of {args.chunk_size}: "
          f"{r_e2e:>10,.0f} rows/s ({n} stored in {elapsed:.1f} s; load average at start {load_start}, "
          f"at end {load_end})", flush=True)
    print(f"       CPU during the batch: Celery workers {cpu_workers:.1f} s ({cpu_workers / n * 1e6:.0f} us a row), "
          f"PostgreSQL server {cpu_pg:.1f} s ({cpu_pg / n * 1e6:.0f} us a row; all its databases), whole machine "
          f"{cpu_machine:.1f} s of {(total1 - total0) / ticks:.1f} s ({(os.cpu_count() or 1)} cores x {elapsed:.1f} s)",
          flush=True)
    out.update({"r_e2e_rows_per_s": r_e2e, "e2e_seconds": elapsed, "ratio_e2e_over_raw": r_e2e / r_raw,
                "load_at_start": load_start, "load_at_end": load_end, "cpu_workers_s": cpu_workers,
                "cpu_postgres_server_s": cpu_pg, "cpu_machine_s": cpu_machine})

    # --- checks ---------------------------------------------------------------------------------------------
    counts = Explanation.objects.count(), Explanation.objects.values("decision").distinct().count()
    failed = Explanation.objects.filter(checks_passed=False).count()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM audit_explanation "
                       "WHERE (payload->'checks'->'additivity'->>'passed')::boolean IS NOT TRUE")
        not_additive = int(cursor.fetchone()[0])
        cursor.execute("SELECT count(*) FROM audit_explanation WHERE payload->'recourse' = 'null'::jsonb "
                       "AND payload->>'decision' <> 'approved'")
        missing_recourse = int(cursor.fetchone()[0])
        cursor.execute("SELECT avg(octet_length(payload::text)), avg(pg_column_size(payload)) "
                       "FROM (SELECT payload FROM audit_explanation LIMIT 5000) p")
        text_bytes, stored_bytes = cursor.fetchone()
    explainer = Explainer.for_model(model, spec)
    a = model.calibration.a
    group = list(explainer.reference_group.rows)
    reference_phi = a * np.asarray(shap.TreeExplainer(booster).shap_values(model.reference), dtype=np.float64)
    mean_cut = reference_phi[group].mean(axis=0)
    mean_all = reference_phi.mean(axis=0)
    starts = np.array([enc.first for enc in model.encoder.fields])
    rng = np.random.default_rng(0)
    picks = np.sort(rng.choice(n, size=min(args.sample, n), replace=False))
    # Read back as every reader does (Explanation.document: the stored row joined with its shared context).
    payloads = {e.decision_id: e.document for e in Explanation.objects.filter(decision_id__in=ids[picks].tolist())
                .select_related("context")}
    raw = booster.predict(x[picks], raw_score=True)
    worst = {"attributions": 0.0, "attributions_all": 0.0, "feature_attributions": 0.0, "output": 0.0}
    fields = model.encoder.field_names
    for k, row in enumerate(picks.tolist()):
        payload = payloads[int(ids[row])]
        phi = a * shap_values[row]
        expected = {"attributions": np.add.reduceat(phi - mean_cut, starts),
                    "attributions_all": np.add.reduceat(phi - mean_all, starts)}
        for key, values in expected.items():
            got = np.array([payload[key][f] for f in fields])
            worst[key] = max(worst[key], float(np.abs(got - values).max()))
        stored_features = StoredExplanation.from_dict(payload).feature_attributions  # the stored form is lean
        got = np.array([stored_features[f] for f in model.encoder.feature_names])
        worst["feature_attributions"] = max(worst["feature_attributions"], float(np.abs(got - (phi - mean_cut)).max()))
        worst["output"] = max(worst["output"], abs(payload["output"] - (a * float(raw[k]) + model.calibration.b)))
    agree = max(worst.values()) <= 1e-9
    print(f"stored: {counts[0]} explanations for {counts[1]} distinct decisions; failed a check: {failed} "
          f"(additivity: {not_additive}); non-approved without recourse: {missing_recourse}; payload "
          f"{float(text_bytes):,.0f} bytes as text, {float(stored_bytes):,.0f} stored", flush=True)
    print("agreement with the bare library on {} sampled decisions (max |diff|, after Platt scaling and grouping): "
          "{} -> {} 1e-9".format(len(picks), ", ".join(f"{k} {v:.2e}" for k, v in worst.items()),
                                 "within" if agree else "NOT within"), flush=True)
    print(f"R_raw {r_raw:,.0f} rows/s   R_e2e {r_e2e:,.0f} rows/s   R_e2e / R_raw = {r_e2e / r_raw:.3f} "
          f"(target >= 0.8)", flush=True)
    print(f"R_compute {r_compute:,.0f} rows/s: the explanation itself, with no queue or database, is "
          f"{r_compute / r_raw:.3f} x R_raw; the queueing and storage keep R_e2e / R_compute = "
          f"{r_e2e / r_compute:.3f} of it", flush=True)
    out["ratio_e2e_over_compute"] = r_e2e / r_compute
    out.update({"explanations": counts[0], "distinct_decisions": counts[1], "failed_checks": failed,
                "not_additive": not_additive, "non_approved_without_recourse": missing_recourse,
                "payload_text_bytes": float(text_bytes), "payload_stored_bytes": float(stored_bytes),
                "sample": len(picks), "max_abs_diff": worst, "agree_1e-9": agree, "model_version": version.version})
    return out


if __name__ == "__main__":
    main()
