"""The sandbox's Postgres (the `pgserver` wheel, or any server given by DSN): schema, seed and drills."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from pipectl.sandbox.layout import ROWS, STEP

SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS workflow_states (
    id bigserial PRIMARY KEY,
    batch_id bigint REFERENCES batches (id),
    step_name text NOT NULL,
    status text NOT NULL,
    payload jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS workflow_states_stuck_idx ON workflow_states (status, step_name, updated_at);
CREATE TABLE IF NOT EXISTS jobs (
    id bigserial PRIMARY KEY,
    customer_id text NOT NULL,
    status text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS jobs_stuck_idx ON jobs (status, updated_at);
"""


def start(pgdata: Path) -> str:
    """Start (or reuse) a pgserver Postgres in `pgdata`; it keeps running after this process exits."""
    import warnings

    with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on import
        warnings.simplefilter("ignore")
        import pgserver

        server = pgserver.get_server(pgdata, cleanup_mode=None)
    return server.get_uri()


def postmaster_pid(pgdata: Path) -> int | None:
    """The pid of the running postmaster recorded in pgdata, if it is running."""
    from pipectl.sandbox.procs import pid_alive

    try:
        pid = int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if pid_alive(pid) else None


def stop(pgdata: Path, timeout: float = 10.0) -> bool:
    """Fast shutdown of the postmaster recorded in pgdata (SIGINT, then SIGKILL); False if none ran."""
    from pipectl.sandbox.procs import pid_alive

    pid = postmaster_pid(pgdata)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.05)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5.0  # then its files are free to delete (`down --purge`)
        while time.monotonic() < deadline and pid_alive(pid):
            time.sleep(0.05)
    return True


def connect(dsn: str):
    import psycopg

    return psycopg.connect(dsn, autocommit=True, connect_timeout=5)


def seed(dsn: str, rows: int = ROWS) -> None:
    """The first incident's starting point: one batch of `rows` fresh PENDING rows, nothing else."""
    with connect(dsn) as conn:
        conn.execute(SCHEMA)
        conn.execute("TRUNCATE workflow_states, batches, jobs RESTART IDENTITY CASCADE")
        batch = conn.execute("INSERT INTO batches (name) VALUES ('sandbox-batch-1') RETURNING id").fetchone()[0]
        conn.execute(
            "INSERT INTO workflow_states (batch_id, step_name, status, payload) "
            "SELECT %s, %s, 'PENDING', jsonb_build_object('company_name', 'Company ' || n) "
            "FROM generate_series(1, %s) AS n",
            (batch, STEP, rows),
        )
        conn.execute(
            "INSERT INTO jobs (customer_id, status) SELECT 'customer-' || n, 'completed' FROM generate_series(1, 5) n"
        )


TABLES = ("workflow_states", "jobs", "batches")
INDEXES = ("workflow_states_stuck_idx", "jobs_stuck_idx")


def reset(dsn: str, rows: int = ROWS, lock_timeout: str = "10s") -> None:
    """Drop and recreate the sandbox's tables, then seed them: undoes a renamed or dropped column,
    table or index as well as any change to the rows. Waits at most `lock_timeout` for other sessions."""
    from psycopg import sql

    with connect(dsn) as conn:
        conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(lock_timeout)))
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(
            sql.SQL(", ").join(map(sql.Identifier, TABLES))))
        # an index renamed along with its table would keep the name CREATE INDEX IF NOT EXISTS checks
        conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.SQL(", ").join(map(sql.Identifier, INDEXES))))
    seed(dsn, rows)


def status_counts(dsn: str, table: str = "workflow_states") -> dict[str, int]:
    from psycopg import sql

    with connect(dsn) as conn:
        query = sql.SQL("SELECT status, count(*) FROM {} GROUP BY status").format(sql.Identifier(table))
        return dict(conn.execute(query).fetchall())


def age_rows(dsn: str, status: str, minutes: int, table: str = "workflow_states") -> int:
    """Move `updated_at` back, as if the rows had sat there for `minutes`: drills need no waiting."""
    from psycopg import sql

    with connect(dsn) as conn:
        query = sql.SQL("UPDATE {} SET updated_at = now() - make_interval(mins => %s) WHERE status = %s").format(
            sql.Identifier(table)
        )
        return conn.execute(query, (minutes, status)).rowcount


def set_status(dsn: str, status: str, table: str = "workflow_states") -> int:
    from psycopg import sql

    with connect(dsn) as conn:
        query = sql.SQL("UPDATE {} SET status = %s, updated_at = now()").format(sql.Identifier(table))
        return conn.execute(query, (status,)).rowcount


def add_pending_jobs(dsn: str, count: int, minutes_old: int) -> list[int]:
    with connect(dsn) as conn:
        rows = conn.execute(
            "INSERT INTO jobs (customer_id, status, created_at, updated_at) "
            "SELECT 'customer-new-' || n, 'pending', now() - make_interval(mins => %s), "
            "now() - make_interval(mins => %s) FROM generate_series(1, %s) n RETURNING id",
            (minutes_old, minutes_old, count),
        ).fetchall()
    return [r[0] for r in rows]


def clear_timestamps(dsn: str, status: str, table: str = "workflow_states") -> int:
    """Rows written by code that never sets `updated_at` (a column without NOT NULL): their age is unknown."""
    from psycopg import sql

    with connect(dsn) as conn:
        conn.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN updated_at DROP NOT NULL").format(sql.Identifier(table)))
        query = sql.SQL("UPDATE {} SET updated_at = NULL WHERE status = %s").format(sql.Identifier(table))
        return conn.execute(query, (status,)).rowcount
