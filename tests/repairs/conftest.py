"""What the repair tests share: a workflow_states table on the session's Postgres, and a config naming it."""

from __future__ import annotations

import pytest

SCHEMA = """
CREATE TABLE workflow_states (
    id bigserial PRIMARY KEY,
    step_name text NOT NULL,
    status text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX workflow_states_stuck_idx ON workflow_states (status, step_name, updated_at);
CREATE TABLE jobs (id bigserial PRIMARY KEY, status text NOT NULL, updated_at timestamptz NOT NULL DEFAULT now());
"""
CONFIG = """
pipeline = "reset-test"

[database]
dsn = "env:DATABASE_URL"

[[state_tables]]
table = "workflow_states"
group_by = ["step_name"]
stuck_after = { PENDING = "10m", QUEUED = "5m" }
"""


@pytest.fixture
def db(pg_dsn):
    import psycopg

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(SCHEMA)
        yield conn


@pytest.fixture
def config_path(tmp_path, monkeypatch, pg_dsn):
    monkeypatch.setenv("DATABASE_URL", pg_dsn)
    path = tmp_path / "pipectl.toml"
    path.write_text(CONFIG)
    return path
