"""The CSV export of 1,000,000 decisions (issue 5, section 5): target <= 60 s and peak memory <= 300 MB.

What it does, from one run:

1. Creates a fresh PostgreSQL database ``candor_bench_export_<pid>`` on 127.0.0.1 (dropped at the end) and
   migrates it (``manage.py migrate`` in a subprocess).
2. Bulk-loads ``--rows`` synthetic decisions with ``INSERT ... SELECT generate_series`` (seeded): one product
   (demo), three model versions, realistic demo inputs and probabilities, outcomes from the demo policy lines
   (approve < 0.20 <= refer < 0.30 <= deny). Because the CSV joins them, a fraction also gets what the real
   path adds: an explanation (``--explained``, default 20 %), for denials among those a current statement of
   reasons and a current notice (hashes, sent_at), and 1 % an officer's deciding action.
3. In a fresh subprocess (so the loading does not count), times ``audit.exports.export_csv_write`` (the
   function the app's exports, the page, the worker and ``manage.py export_decisions`` use) writing the whole
   range to a file, and reads that process's peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss``) with the RSS
   before the export for comparison.
4. Prints time, rows/s, peak memory and PASS/MISS against the targets; writes bench/out/export_csv.json.

Run: ``.venv/bin/python bench/export_csv.py [--rows 1000000] [--explained 0.2]``
Needs PostgreSQL with trust auth on 127.0.0.1:5432 (user postgres).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out" / "export_csv.json"
TARGET_SECONDS = 60.0
TARGET_MB = 300.0


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def child(out_path: str) -> None:
    """Run in a fresh process: set up Django, export to a file, report the figures as JSON on stdout."""
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.db import connection

    from audit.exports import ExportFilters, export_csv_write

    connection.ensure_connection()
    before = _rss_mb()
    started = time.perf_counter()
    with open(out_path, "wb") as handle:
        rows = export_csv_write(filters=ExportFilters(), out=handle)
    seconds = time.perf_counter() - started
    print(json.dumps({"rows": rows, "seconds": seconds, "peak_rss_mb": _rss_mb(), "rss_before_export_mb": before,
                      "csv_bytes": os.path.getsize(out_path)}))


LOAD_SQL = """
SELECT setseed(0.4242);
INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff, is_active,
                       date_joined)
VALUES ('!', false, 'bench-officer', '', '', '', false, true, now());
INSERT INTO lending_product (slug, name, credit_type, spec_hash, spec_text, registered_at)
VALUES ('demo', 'Demo personal instalment loan', 'consumer', repeat('a', 64), %(spec)s, now());
INSERT INTO lending_modelversion (product_id, version, path, content_hash, spec_hash, training_data_sha256, manifest,
                                  metrics, trained_at, registered_at, status, approved_at)
SELECT 1, 'demo-2025.0' || v, 'models/demo-' || v, md5(v::text) || md5(v::text), repeat('a', 64),
       repeat('b', 64), '{}'::jsonb, '{}'::jsonb, now(), now(), 'approved', now()
FROM generate_series(1, 3) AS v;
CREATE TEMP TABLE gen AS
SELECT i, 300 + floor(random() * 550)::int AS credit_score, round((random() * 110)::numeric, 1) AS util,
       floor(random() * random() * 5)::int AS delinquencies, (1000 + floor(random() * 39000))::int AS amount,
       (24000 + floor(random() * 150000))::int AS income,
       least(0.999, power(random(), 2.2) * 0.7)::float8 AS pd
FROM generate_series(1, %(rows)s) AS i;
INSERT INTO lending_application (public_id, product_id, values, identity, submitted_by_id, submitted_at, completed_at)
SELECT gen_random_uuid(), 1,
       jsonb_build_object('amount', amount::text || '.00', 'term_months', 36, 'annual_income', income::text,
                          'employment_length_years', i %% 20, 'housing', (ARRAY['rent','own','mortgage'])[1 + i %% 3],
                          'credit_score', credit_score, 'delinquencies_2y', delinquencies, 'inquiries_6m', i %% 7,
                          'revolving_utilization', util, 'open_accounts', 1 + i %% 15,
                          'credit_history_months', 6 + i %% 300, 'public_records', 0),
       '{}'::jsonb, 1, timestamptz '2025-01-01 00:00:00+00' + i * interval '30 seconds',
       timestamptz '2025-01-01 00:00:00+00' + i * interval '30 seconds'
FROM gen ORDER BY i;
INSERT INTO lending_decision (public_id, application_id, model_version_id, outcome, probability_of_default, inputs,
                              inputs_sha256, cutoff, refer_band, knockout, knockout_reason, manual_review,
                              referral_cause, decided_at)
SELECT gen_random_uuid(), a.id, 1 + (g.i * 3 / (%(rows)s + 1)),
       CASE WHEN g.pd >= 0.30 THEN 'denied' WHEN g.pd >= 0.20 THEN 'referred' ELSE 'approved' END,
       g.pd, a.values - 'housing', md5(a.values::text) || md5(g.i::text), 0.30, 0.10, '', '', false, '',
       a.submitted_at + interval '150 milliseconds'
FROM gen g JOIN lending_application a ON a.id = g.i ORDER BY g.i;
INSERT INTO audit_explanation (decision_id, model_version_id, explainer_version, method, base_value, output,
                               checks_passed, payload, computed_at)
SELECT d.id, d.model_version_id, 'x1', 'treeshap', -1.2, ln(d.probability_of_default / (1 - d.probability_of_default)),
       (d.id %% 97) <> 0,
       jsonb_build_object('attributions', jsonb_build_object('credit_score', 0.3, 'revolving_utilization', 0.5,
                                                             'delinquencies_2y', 0.2, 'annual_income', -0.1)),
       d.decided_at + interval '2 seconds'
FROM lending_decision d WHERE random() < %(explained)s;
INSERT INTO audit_reasonstatement (decision_id, source, explanation_id, reasons, ranking, attributions, knockout_reason,
                                   notice_error, created_at)
SELECT e.decision_id, 'model', e.id,
       ('[{"rank": 1, "key": "utilization", "field": "revolving_utilization", '
        '"text": "Proportion of balances to credit limits on revolving accounts is too high"}, '
        '{"rank": 2, "key": "credit_score", "field": "credit_score", "text": "Credit score too low"}, '
        '{"rank": 3, "key": "delinquency", "field": "delinquencies_2y", '
        '"text": "Delinquent past or present credit obligations with others"}]')::jsonb,
       '["revolving_utilization", "credit_score", "delinquencies_2y"]'::jsonb, e.payload -> 'attributions', '', '',
       e.computed_at
FROM audit_explanation e JOIN lending_decision d ON d.id = e.decision_id WHERE d.outcome = 'denied';
INSERT INTO audit_notice (public_id, decision_id, reason_statement_id, reference, language, html, html_sha256, pdf,
                          pdf_sha256, context, notice_date, due_at, due_rule, delivery_channel, email, sent_at,
                          created_at)
SELECT gen_random_uuid(), s.decision_id, s.id, 'N-' || s.id, 'en', '<p>notice</p>', md5(s.id::text) || md5('h'),
       '\\x255044462d'::bytea, md5(s.id::text) || md5('p'), '{}'::jsonb, s.created_at::date,
       s.created_at + interval '30 days', 'Reg B 1002.9(a)(1)(i)', 'email', 'applicant@example.com',
       s.created_at + interval '1 minute', s.created_at
FROM audit_reasonstatement s;
INSERT INTO lending_officeraction (decision_id, officer_id, action, outcome, factors, comment, created_at)
SELECT d.id, 1, 'approve', 'approved', '[]'::jsonb, 'bench', d.decided_at + interval '1 day'
FROM lending_decision d WHERE d.outcome = 'referred' AND random() < 0.1;
ANALYZE;
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--explained", type=float, default=0.2, help="fraction of decisions with an explanation")
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432", help="server URL, without database")
    parser.add_argument("--child", metavar="CSV", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, default=OUT)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return

    import psycopg

    dbname = f"candor_bench_export_{os.getpid()}"
    work = Path(tempfile.mkdtemp(prefix="candor-bench-export-"))
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DATABASE_URL": f"{args.pg}/{dbname}",
           "CANDOR_DATA_DIR": str(work), "LOG_LEVEL": "WARNING", "DEBUG": "false"}
    env.setdefault("SECRET_KEY", "bench-only-secret-key-not-for-production")
    figures: dict[str, Any] = {"rows_requested": args.rows, "explained_fraction": args.explained,
                               "cpus": os.cpu_count(), "machine": platform.machine()}
    with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{dbname}"')
    try:
        started = time.perf_counter()
        subprocess.run([sys.executable, "manage.py", "migrate", "--verbosity", "0"], cwd=REPO, env=env, check=True)
        figures["migrate_seconds"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        spec = (REPO / "scoring" / "products" / "demo.toml").read_text(encoding="utf-8")
        with psycopg.connect(f"{args.pg}/{dbname}", autocommit=True) as conn:
            conn.execute("SET synchronous_commit = off")
            for statement in LOAD_SQL.split(";\n"):
                if statement.strip():
                    conn.execute(statement,  # type: ignore[call-overload]
                                 {"rows": args.rows, "explained": args.explained, "spec": spec}
                                 if "%" in statement else None)
            counts = {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608 - fixed names
                      for table in ("lending_decision", "audit_explanation", "audit_reasonstatement", "audit_notice",
                                    "lending_officeraction")}
        figures["load_seconds"] = round(time.perf_counter() - started, 1)
        figures["loaded"] = counts
        print(f"loaded {counts} in {figures['load_seconds']} s")

        csv_path = work / "decisions.csv"
        result = subprocess.run([sys.executable, __file__, "--child", str(csv_path)], cwd=REPO, env=env,
                                capture_output=True, text=True, check=False)
        if result.returncode:
            raise SystemExit(f"the export process failed:\n{result.stderr}")
        measured = json.loads(result.stdout.strip().splitlines()[-1])
        figures.update(measured)
        with csv_path.open("rb") as handle:
            lines = sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))
        figures["csv_lines"] = lines
    finally:
        with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        print(f"dropped database {dbname}")
        for leftover in sorted(work.rglob("*"), reverse=True):
            leftover.unlink() if leftover.is_file() else leftover.rmdir()
        work.rmdir()

    seconds, peak = figures["seconds"], figures["peak_rss_mb"]
    figures["rows_per_second"] = round(figures["rows"] / seconds)
    figures["time_target_met"] = seconds <= TARGET_SECONDS
    figures["memory_target_met"] = peak <= TARGET_MB
    assert figures["csv_lines"] == figures["rows"] + 1 == counts["lending_decision"] + 1, figures
    print(f"rows:          {figures['rows']:,} (CSV {figures['csv_bytes'] / 1e6:.1f} MB, "
          f"{figures['csv_lines']:,} lines)")
    print(f"time:          {seconds:.1f} s  ({figures['rows_per_second']:,} rows/s)  target <= {TARGET_SECONDS:.0f} s: "
          f"{'PASS' if figures['time_target_met'] else 'MISS'}")
    print(f"peak RSS:      {peak:.0f} MB (before the export {figures['rss_before_export_mb']:.0f} MB)  "
          f"target <= {TARGET_MB:.0f} MB: {'PASS' if figures['memory_target_met'] else 'MISS'}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
