"""How fast `pipectl reset` moves rows, against one raw UPDATE of the same rows.

    python bench/reset.py [--rows 1000000] [--batch-size N] [--dsn URL] [--repeat 1]

Builds a `workflow_states` table (the sandbox schema, with its (status, step_name, updated_at) index)
holding `--rows` QUEUED rows an hour old, in a throwaway pgserver Postgres (or `--dsn`; the table named
`pipectl_bench_reset` is dropped and rebuilt there). Then, each from the same freshly built and vacuumed
state:

- raw:     ONE `UPDATE t SET status = 'PENDING', updated_at = now() WHERE status = 'QUEUED'` (psycopg);
- pipectl: `ResetRows(...).apply(...)` with a throwaway Journal in a temp dir — the batched
           compare-and-set, with a write-ahead intent before each batch's commit and a journal event
           after it (plan and verify timed apart).

Prints rows/s for both, the ratio (target ≥ 0.8×) and the longest batch transaction (target < 1 s).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from datetime import timedelta
from pathlib import Path

TABLE = "pipectl_bench_reset"
STEPS = ("normalize", "enrich", "score", "export")


def build(dsn: str, rows: int) -> None:
    import psycopg
    from psycopg import sql

    t = sql.Identifier(TABLE)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(t))
        conn.execute(sql.SQL(
            "CREATE TABLE {} (id bigserial PRIMARY KEY, batch_id bigint, step_name text NOT NULL,"
            " status text NOT NULL, payload jsonb NOT NULL DEFAULT '{{}}',"
            " created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now())"
        ).format(t))
        conn.execute(sql.SQL(
            "INSERT INTO {} (batch_id, step_name, status, payload, updated_at)"
            " SELECT 1, (%s::text[])[1 + n %% 4], 'QUEUED', jsonb_build_object('company_name', 'Company ' || n),"
            " now() - interval '1 hour' FROM generate_series(1, %s) AS n"
        ).format(t), [list(STEPS), rows])
        conn.execute(sql.SQL("CREATE INDEX ON {} (status, step_name, updated_at)").format(t))
        conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(t))
        try:
            conn.execute("CHECKPOINT")  # both runs start with no dirty buffers to write out
        except psycopg.Error:
            pass  # not a superuser: fine, just a little noisier


def raw_update(dsn: str) -> float:
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as conn:
        began = time.perf_counter()
        cursor = conn.execute(sql.SQL(
            "UPDATE {} SET status = 'PENDING', updated_at = now() WHERE status = 'QUEUED'").format(sql.Identifier(TABLE)))
        elapsed = time.perf_counter() - began
        assert cursor.rowcount > 0
    return elapsed


def pipectl_reset(dsn: str, batch_size: int) -> dict[str, float]:
    from pipectl.config import PipelineConfig
    from pipectl.journal import Journal
    from pipectl.repair import JournalRun
    from pipectl.repairs.reset import ResetRows

    config = PipelineConfig(database={"dsn": dsn}, state_tables=[
        {"table": TABLE, "group_by": ["step_name"], "stuck_after": {"QUEUED": "10m", "PENDING": "10m"}}])
    with tempfile.TemporaryDirectory() as tmp:
        book = Journal(Path(tmp) / "journal.sqlite3")
        run = JournalRun(book, book.start("bench", "bench"))
        repair = ResetRows(config, config.state_tables[0], "QUEUED", "PENDING", older_than=timedelta(minutes=10),
                           batch_size=batch_size)
        began = time.perf_counter()
        plan = repair.plan()
        planned = time.perf_counter()
        applied = repair.apply(plan, run)
        done = time.perf_counter()
        verified = repair.verify(applied)
        checked = time.perf_counter()
        assert verified.ok, verified.summary
        batches = book.events(run.run.id, "change")
    longest = float(applied.details["longest batch"].split()[0])
    return {"plan": planned - began, "apply": done - planned, "verify": checked - done, "rows": applied.details[
        "rows moved"], "batches": len(batches), "longest": longest}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=None, help="default: pipectl's default")
    parser.add_argument("--dsn", help="use this Postgres instead of a throwaway pgserver")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each; the median is reported")
    args = parser.parse_args()

    from pipectl.repairs.reset import DEFAULT_BATCH_SIZE

    batch_size = args.batch_size or DEFAULT_BATCH_SIZE
    with contextlib_server(args.dsn) as dsn:
        raw_s, ours, runs = [], [], []
        for _ in range(args.repeat):
            build(dsn, args.rows)
            raw_s.append(raw_update(dsn))
            build(dsn, args.rows)
            result = pipectl_reset(dsn, batch_size)
            assert result["rows"] == args.rows, result
            ours.append(result["apply"])
            runs.append(result)
        raw, apply_s = statistics.median(raw_s), statistics.median(ours)
        last = runs[-1]
        print(f"rows: {args.rows:,}   batch size: {batch_size:,}   batches: {last['batches']}")
        print(f"raw UPDATE:     {raw:7.2f} s  {args.rows / raw:>10,.0f} rows/s")
        print(f"pipectl reset:  {apply_s:7.2f} s  {args.rows / apply_s:>10,.0f} rows/s   (apply, journal included;"
              f" plan {last['plan']:.2f} s, verify {last['verify']:.2f} s apart)")
        total = last["plan"] + last["apply"] + last["verify"]
        print(f"ratio:          {raw / apply_s:7.2f}x of raw  (target >= 0.8x; plan+apply+verify: {raw / total:.2f}x)")
        print(f"longest batch:  {max(r['longest'] for r in runs):7.2f} s  (target < 1 s)")
    return 0


class contextlib_server:
    """`--dsn`, or a pgserver in a temp dir, stopped and removed at the end."""

    def __init__(self, dsn: str | None) -> None:
        self.dsn, self._tmp, self._server = dsn, None, None

    def __enter__(self) -> str:
        if self.dsn:
            return self.dsn
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver
        self._tmp = tempfile.TemporaryDirectory(prefix="pipectl-bench-")
        self._server = pgserver.get_server(Path(self._tmp.name), cleanup_mode="delete")
        return self._server.get_uri()

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.cleanup()
        if self._tmp is not None:
            self._tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
