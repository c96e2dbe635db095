"""What PostgreSQL's server spends storing one explanation row, by what the row carries (issue 3, section 7).

The batch path stores one ``audit_explanation`` row per decision by COPY. This bench measures the server's
CPU for that alone, on a scratch database (``candor_bench_floor_<pid>``, dropped at the end) holding a table
shaped as ``audit_explanation`` is (bigint keys; deferrable foreign keys to a decisions, a model-versions and
a contexts table; the unique (decision, explainer version) index; the partial index on failed checks; the
computed_at index), in chunks of 2,000 rows as the workers write them, lz4 TOAST compression as they set it:

* the stored JSON of a real denial and of a real approval (``Explainer.explain_many_stored`` on the demo
  model: ``--model DIR``, or a demo model trained here on ``--train-rows`` generated rows; the payload's shape
  does not depend on the training size), into jsonb as stored, and into json and text for comparison;
* the same table with no foreign keys;
* a small jsonb payload (60 numbers) and 600 bytes of bytea: the floor of one row per decision.

It prints the server backend's CPU (utime + stime from /proc) per row for each, and the table's size per row.
The figure it is for: at R_e2e = 0.8 x R_raw the two cores have about 2 / (0.8 x R_raw) of CPU a row for the
whole batch path; what one row costs the server by itself is part of that.

Run: ``.venv/bin/python bench/explanation_storage_floor.py [--rows 100000] [--model DIR]``.
Needs PostgreSQL with trust auth on 127.0.0.1:5432 (user postgres).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out" / "explanation_storage_floor.json"
sys.path.insert(0, str(REPO))
CHUNK = 2000


def backend_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def real_payloads(model_dir: Path | None, train_rows: int) -> tuple[str, str]:
    """The stored JSON text of one denial and one approval, as the batch path writes them."""
    from scoring import demo
    from scoring.explain import Explainer
    from scoring.predict import load_model
    from scoring.spec import get_spec

    spec = get_spec("demo")
    if model_dir is None:
        from scoring.artifact import save_model
        from scoring.datasets import load_dataset
        from scoring.train import train_product

        dataset = load_dataset(spec, n=train_rows, seed=0)
        model_dir = save_model(train_product(spec, dataset, seed=0), spec, dataset,
                               Path(tempfile.mkdtemp(prefix="candor-floor-")))
    model = load_model(model_dir)
    frame, _ = demo.generate(4000, 424242)
    values = [{k: v for k, v in r.items() if v is not None} for r in frame.to_dict("records")]
    stored = Explainer.for_model(model, spec).explain_many_stored(values)
    denial = next(t for t, d in zip(stored.texts, stored.decisions, strict=True) if d == "denied")
    approval = next(t for t, d in zip(stored.texts, stored.decisions, strict=True) if d == "approved")
    return denial, approval


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--model", type=Path, default=None, help="an existing demo model directory")
    parser.add_argument("--train-rows", type=int, default=100_000)
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--json", type=Path, default=OUT)
    args = parser.parse_args()

    import psycopg

    denial, approval = real_payloads(args.model, args.train_rows)
    small = json.dumps([round(random.Random(0).random(), 6) for _ in range(60)])
    dbname = f"candor_bench_floor_{os.getpid()}"
    with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{dbname}"')
    figures: dict[str, Any] = {"rows": args.rows, "chunk": CHUNK, "payload_bytes": {
        "denial": len(denial), "approval": len(approval), "small": len(small)}}
    try:
        with psycopg.connect(f"{args.pg}/{dbname}", autocommit=True) as conn:
            conn.execute("CREATE TABLE d (id bigint PRIMARY KEY)")
            conn.execute("CREATE TABLE mv (id bigint PRIMARY KEY)")
            conn.execute("CREATE TABLE ctx (id bigint PRIMARY KEY)")
            conn.execute("INSERT INTO d SELECT g FROM generate_series(1, %s) g", (args.rows,))
            conn.execute("INSERT INTO mv VALUES (1)")
            conn.execute("INSERT INTO ctx VALUES (1)")
            conn.execute("VACUUM ANALYZE")
            lz4 = conn.execute("SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' "
                               "AND 'lz4' = ANY(enumvals)").fetchone() is not None

            def run(label: str, column: str, keys: bool, payload: Callable[[int], str]) -> None:
                conn.execute("DROP TABLE IF EXISTS e")
                ref = (lambda t: f" REFERENCES {t}(id) DEFERRABLE INITIALLY DEFERRED") if keys else (lambda t: "")
                conn.execute(f"""CREATE TABLE e (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                    decision_id bigint NOT NULL{ref('d')}, model_version_id bigint NOT NULL{ref('mv')},
                    explainer_version varchar(32) NOT NULL, method varchar(32) NOT NULL,
                    base_value double precision NOT NULL, output double precision NOT NULL,
                    checks_passed boolean NOT NULL, payload {column} NOT NULL, computed_at timestamptz NOT NULL,
                    context_id bigint{ref('ctx')}, UNIQUE (decision_id, explainer_version))""")
                conn.execute("CREATE INDEX ON e (checks_passed) WHERE NOT checks_passed")
                conn.execute("CREATE INDEX ON e (computed_at)")
                conn.execute("CHECKPOINT")
                pid = conn.info.backend_pid
                before, started = backend_cpu(pid), time.perf_counter()
                for first in range(1, args.rows + 1, CHUNK):
                    lines = "".join(
                        f"{i}\t1\tcandor-explain-1.0\ttreeshap-exact\t-1.5703668618522284\t0.9876543210123\tt\t"
                        f"{payload(i)}\t2026-11-26T10:00:00+00:00\t1\n"
                        for i in range(first, min(first + CHUNK, args.rows + 1)))
                    with conn.transaction():
                        if lz4:
                            conn.execute("SET LOCAL default_toast_compression = 'lz4'")
                        with conn.cursor().copy(
                                "COPY e (decision_id, model_version_id, explainer_version, method, base_value, output, "
                                "checks_passed, payload, computed_at, context_id) FROM STDIN") as copy:
                            copy.write(lines.encode())
                cpu = (backend_cpu(pid) - before) / args.rows * 1e6
                wall = (time.perf_counter() - started) / args.rows * 1e6
                size = conn.execute("SELECT pg_total_relation_size('e')").fetchone()[0] / args.rows  # type: ignore[index]
                print(f"{label:58s} server CPU {cpu:6.1f} us a row   wall {wall:6.1f} us   {size:6.0f} bytes a row",
                      flush=True)
                figures[label] = {"server_cpu_us_per_row": cpu, "wall_us_per_row": wall, "bytes_per_row": size}

            # Three in ten decisions are not approvals (the demo's mix): their rows carry the recourse.
            def mixed(i: int) -> str:
                return (denial if i % 10 < 3 else approval).replace("\\", "\\\\")

            bytea = "\\\\x" + os.urandom(600).hex()
            run("stored JSON (3 denials : 7 approvals) into jsonb, as stored", "jsonb", True, mixed)
            run("the same into jsonb, no foreign keys", "jsonb", False, mixed)
            run("the same into json (kept as text, checked)", "json", True, mixed)
            run("the same into text", "text", True, mixed)
            run(f"a small payload ({len(small)} bytes, 60 numbers) into jsonb", "jsonb", True, lambda i: small)
            run("600 bytes into bytea", "bytea", True, lambda i: bytea)
    finally:
        with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(f"payloads: denial {len(denial)} bytes, approval {len(approval)}; figures written to {args.json}")


if __name__ == "__main__":
    main()
