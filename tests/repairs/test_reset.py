"""`pipectl reset` against a real Postgres: the plan, the batches, undo, a worker racing it, a lost connection."""

from __future__ import annotations

import io
import random
import re
import sys
import threading
from datetime import datetime, timedelta

import pytest

from pipectl.config import PipelineConfig
from pipectl.errors import ConnectorError
from pipectl.journal import Journal, changes_of
from pipectl.repair import JournalRun, execute
from pipectl.repairs.reset import ResetRows
from tests.schema_check import json_documents

pytest_plugins = ["tests.fixtures.postgres"]

LOST = re.compile(r"^connection to the database lost during batch (\d+); (\d+) rows were reset in committed batches; "
                  r"run the same command again to finish$")


def config(dsn: str, **table) -> PipelineConfig:
    return PipelineConfig(database={"dsn": dsn}, state_tables=[
        {"table": "workflow_states", "group_by": ["step_name"], "stuck_after": {"PENDING": "10m", "QUEUED": "5m"}, **table}])


def add(conn, step: str, status: str, rows: int, minutes_old: float) -> list[int]:
    """`rows` rows, the first one oldest (one second apart), all `minutes_old` minutes old or more."""
    return [r[0] for r in conn.execute(
        "INSERT INTO workflow_states (step_name, status, updated_at)"
        " SELECT %s, %s, now() - make_interval(mins => %s) - make_interval(secs => %s - n)"
        " FROM generate_series(1, %s) AS n RETURNING id", (step, status, minutes_old, rows, rows)).fetchall()]


def ids_in(conn, status: str) -> set[int]:
    return {r[0] for r in conn.execute("SELECT id FROM workflow_states WHERE status = %s", [status])}


def counts(conn) -> dict[str, int]:
    return dict(conn.execute("SELECT status, count(*) FROM workflow_states GROUP BY status").fetchall())


def journal_run(tmp_path) -> tuple[Journal, JournalRun]:
    book = Journal(tmp_path / "journal.sqlite3")
    return book, JournalRun(book, book.start("pipectl reset (test)", "reset-test"))


def journaled_ids(book: Journal, run_id: str) -> list[int]:
    return [i for e in changes_of(book.events(run_id)) for i in e.data["ids"]]


def test_plan_counts_per_group_with_the_oldest_ids(db, pg_dsn):
    enrich = add(db, "enrich", "QUEUED", 5, 20)
    add(db, "enrich", "QUEUED", 2, 1)  # too recent
    add(db, "enrich", "PENDING", 3, 60)  # another status
    score = add(db, "score", "QUEUED", 4, 30)
    cfg = config(pg_dsn)
    plan = ResetRows(cfg, cfg.state_tables[0], "QUEUED", "PENDING", older_than=timedelta(minutes=10)).plan()
    assert plan.title == "reset 9 row(s) of workflow_states from QUEUED to PENDING"
    assert [(c.target, c.summary) for c in plan.changes] == [
        ("workflow_states step_name=enrich", "5 rows QUEUED → PENDING"),
        ("workflow_states step_name=score", "4 rows QUEUED → PENDING")]
    assert plan.details["rows"] == 9
    assert plan.details["sample ids (oldest)"] == (f"step_name=enrich: {', '.join(map(str, enrich[:3]))}; "
                                                   f"step_name=score: {', '.join(map(str, score[:3]))}")
    only = ResetRows(cfg, cfg.state_tables[0], "QUEUED", "PENDING", older_than=timedelta(minutes=10), step="score")
    assert [c.summary for c in only.plan().changes] == ["4 rows QUEUED → PENDING"]
    none = ResetRows(cfg, cfg.state_tables[0], "QUEUED", "PENDING", step="export").plan()
    assert none.empty and none.details["rows"] == 0


def test_dry_run_and_no_terminal_change_nothing(db, run_cli, config_path, tmp_path, monkeypatch):
    add(db, "enrich", "QUEUED", 50, 20)
    args = ["reset", "--status", "QUEUED", "--older-than", "10m", "--config", str(config_path),
            "--journal", str(tmp_path / "j.sqlite3")]
    code, out, err = run_cli(*args, "--dry-run")
    assert code == 0, err
    assert "Plan: reset 50 row(s) of workflow_states from QUEUED to PENDING" in out
    assert "~ workflow_states step_name=enrich: 50 rows QUEUED → PENDING" in out
    assert "dry run: nothing was changed" in err
    assert counts(db) == {"QUEUED": 50}

    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # no terminal to confirm on, and no --yes
    code, out, err = run_cli(*args)
    assert code == 2
    assert err.strip().splitlines() == [
        "pipectl: refusing to change anything without --yes: there is no terminal to confirm on"]
    assert counts(db) == {"QUEUED": 50}


@pytest.mark.parametrize(("args", "message"), [
    (["--status", "QUEUED", "--older-than", "ten"], "--older-than: invalid duration 'ten'"),
    (["--status", "QUEUED", "--table", "nope"], "no state table 'nope' in the config (state tables: workflow_states)"),
    (["--status", "X", "--to", "X"], "--status and --to are both X: nothing would change"),
    (["--status", "QUEUED", "--batch-size", "0"], "--batch-size 0: must be between 1 and"),
    (["--status", "QUEUED", "--limit", "0"], "--limit 0: must be between 1 and"),
])
def test_bad_input_is_one_line_and_touches_nothing(db, run_cli, config_path, tmp_path, args, message):
    add(db, "enrich", "QUEUED", 5, 20)
    code, _, err = run_cli("reset", *args, "--yes", "--config", str(config_path),
                             "--journal", str(tmp_path / "j.sqlite3"))
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert message in err
    assert counts(db) == {"QUEUED": 5}


def test_step_needs_a_group_by_column(db, pg_dsn):
    from pipectl.errors import UsageError

    cfg = config(pg_dsn, group_by=[])
    with pytest.raises(UsageError, match="--step needs a group_by column"):
        ResetRows(cfg, cfg.state_tables[0], "QUEUED", "PENDING", step="enrich")


def test_reset_moves_exactly_the_matching_rows_and_undo_puts_back_what_is_still_pending(
        db, run_cli, config_path, tmp_path):
    stuck = add(db, "enrich", "QUEUED", 2_500, 20)
    fresh = add(db, "enrich", "QUEUED", 100, 1)
    other_step = add(db, "score", "QUEUED", 300, 20)
    journal = tmp_path / "j.sqlite3"
    code, _, err = run_cli("reset", "--status", "QUEUED", "--older-than", "10m", "--step", "enrich",
                             "--batch-size", "1000", "--yes", "--config", str(config_path), "--journal", str(journal))
    assert code == 0, err
    assert ids_in(db, "PENDING") == set(stuck)
    assert ids_in(db, "QUEUED") == set(fresh) | set(other_step)
    assert "no QUEUED row older than the cutoff is left" in err

    book = Journal(journal)
    run = book.runs()[0]
    changes = [e.data for e in changes_of(book.events(run.id))]
    assert [(c["kind"], c["batch"], len(c["ids"])) for c in changes] == [
        ("rows", 1, 1000), ("rows", 2, 1000), ("rows", 3, 500)]
    assert {k: changes[0][k] for k in ("table", "id_column", "status_column", "updated_column", "from_status",
                                       "to_status")} == {
        "table": "workflow_states", "id_column": "id", "status_column": "status", "updated_column": "updated_at",
        "from_status": "QUEUED", "to_status": "PENDING"}
    assert sorted(journaled_ids(book, run.id)) == sorted(stuck)

    moved_on = stuck[100:110]  # a worker picked these up after the reset: undo must leave them alone
    db.execute("UPDATE workflow_states SET status = 'IN_PROGRESS' WHERE id = ANY(%s)", [moved_on])
    code, out, err = run_cli("undo", run.id, "--yes", "--journal", str(journal), "--config", str(config_path),
                             "-o", "json")
    assert code == 0, err
    *_, outcome = json_documents(out)  # a script reads the verdict from stdout, not from the prose on stderr
    assert outcome["ok"] is True and outcome["applied"] is True and outcome["verified"] is True
    assert ids_in(db, "IN_PROGRESS") == set(moved_on)
    assert ids_in(db, "QUEUED") == set(stuck) - set(moved_on) | set(fresh) | set(other_step)
    assert ids_in(db, "PENDING") == set()


def test_a_limit_moves_the_lowest_ids_only(db, pg_dsn, tmp_path):
    stuck = add(db, "enrich", "QUEUED", 2_500, 20)
    cfg = config(pg_dsn)
    book, run = journal_run(tmp_path)
    repair = ResetRows(cfg, cfg.state_tables[0], "QUEUED", "PENDING", limit=1_500, batch_size=1_000)
    plan = repair.plan()
    assert plan.title == "reset 1500 row(s) of workflow_states from QUEUED to PENDING (of 2500 matching)"
    assert [c.summary for c in plan.changes] == ["up to 1500 of 2500 rows QUEUED → PENDING"]
    outcome = execute(repair, run, yes=True)
    assert outcome.ok and "(the --limit); 1000 matching row(s) are left" in outcome.summary
    assert ids_in(db, "PENDING") == set(stuck[:1_500])
    assert [len(e.data["ids"]) for e in changes_of(book.events(run.run.id))] == [1_000, 500]


def test_the_cli_default_batch_size_is_the_repairs():
    from pipectl.cli import reset as reset_cli
    from pipectl.repairs import reset

    assert reset_cli.DEFAULT_BATCH_SIZE == reset.DEFAULT_BATCH_SIZE


def test_a_worker_racing_the_reset_never_loses_a_row(db, pg_dsn, tmp_path):
    """A worker claims random QUEUED rows (and re-queues some) in small transactions while the reset runs."""
    import psycopg

    total = 100_000
    db.execute("INSERT INTO workflow_states (step_name, status, updated_at)"
               " SELECT 'enrich', 'QUEUED', now() - interval '1 hour' FROM generate_series(1, %s)", [total])
    claimed: set[int] = set()
    started, tick, stop = threading.Event(), threading.Event(), threading.Event()
    failure: list[Exception] = []

    def worker() -> None:
        rng = random.Random(7)
        try:
            with psycopg.connect(pg_dsn, autocommit=True) as conn:
                n = 0
                while not stop.is_set():
                    n += 1
                    with conn.transaction():
                        picked = rng.sample(range(1, total + 1), 20)
                        claimed.update(r[0] for r in conn.execute(
                            "UPDATE workflow_states SET status = 'IN_PROGRESS', updated_at = now()"
                            " WHERE id = ANY(%s) AND status = 'QUEUED' RETURNING id", [sorted(picked)]))
                    if n % 5 == 0 and claimed:  # a retry: back to QUEUED, but newer than the reset's cutoff
                        conn.execute("UPDATE workflow_states SET status = 'QUEUED', updated_at = now()"
                                     " WHERE id = ANY(%s) AND status = 'IN_PROGRESS'", [rng.sample(sorted(claimed), 2)])
                    started.set()
                    tick.set()
        except Exception as exc:  # noqa: BLE001 - surfaced by the main thread
            failure.append(exc)
            started.set()
            tick.set()

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    assert started.wait(30)
    seen = [0]

    def progress(done: int, _total: int) -> None:
        if done and seen[0] < 3:  # make sure the worker commits between the first batches
            seen[0] += 1
            tick.clear()
            assert tick.wait(30)

    book, run = journal_run(tmp_path)
    cfg = config(pg_dsn)
    repair = ResetRows(cfg, cfg.state_tables[0], "QUEUED", "PENDING", older_than=timedelta(minutes=10),
                       batch_size=5_000, progress=progress)
    try:
        outcome = execute(repair, run, yes=True)
    finally:
        stop.set()
        thread.join(30)
    assert not failure, failure
    assert outcome.ok, outcome.summary

    pending, in_progress, queued = ids_in(db, "PENDING"), ids_in(db, "IN_PROGRESS"), ids_in(db, "QUEUED")
    assert claimed, "the worker never claimed a row"
    assert not claimed & pending  # a row a worker took is never put back
    assert len(pending) + len(in_progress) + len(queued) == total == sum(counts(db).values())
    cutoff = datetime.fromisoformat(book.events(run.run.id, "plan")[0].data["details"]["cutoff"])
    assert db.execute("SELECT count(*) FROM workflow_states WHERE status = 'QUEUED' AND updated_at < %s",
                      [cutoff]).fetchone()[0] == 0
    journaled = journaled_ids(book, run.run.id)
    assert len(journaled) == len(set(journaled))
    assert set(journaled) == pending


def _terminate_reset(dsn: str) -> int:
    """Kill the reset's backend (found by application_name) and wait until it is gone."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 10000)) FROM pg_stat_activity"
            " WHERE application_name = 'pipectl-reset' AND datname = current_database()").fetchone()[0]


def test_a_lost_connection_mid_batch_keeps_only_committed_batches_and_a_rerun_finishes(db, pg_dsn, tmp_path):
    """The killer blocks the reset's second batch on a table lock, then terminates its backend in that batch."""
    import psycopg

    add(db, "enrich", "QUEUED", 5_000, 20)
    first_batch, locked, killed = threading.Event(), threading.Event(), threading.Event()
    failure: list[Exception] = []

    def killer() -> None:
        try:
            assert first_batch.wait(30)
            with psycopg.connect(pg_dsn) as conn:  # one transaction holding a lock every UPDATE waits for
                conn.execute("LOCK TABLE workflow_states IN SHARE MODE")
                locked.set()
                with psycopg.connect(pg_dsn, autocommit=True) as watch:
                    while not watch.execute(  # wait until the reset's next batch is blocked on our lock
                            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pipectl-reset'"
                            " AND datname = current_database() AND wait_event_type = 'Lock'").fetchone()[0]:
                        watch.execute("SELECT pg_sleep(0.01)")
                assert _terminate_reset(pg_dsn) == 1
                conn.rollback()
            killed.set()
        except Exception as exc:  # noqa: BLE001 - surfaced by the main thread
            failure.append(exc)
            locked.set()

    def progress(done: int, _total: int) -> None:
        if done and not first_batch.is_set():
            first_batch.set()
            assert locked.wait(30)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    book, run = journal_run(tmp_path)
    cfg = config(pg_dsn)
    repair = ResetRows(cfg, cfg.state_tables[0], "QUEUED", "PENDING", batch_size=1_000, progress=progress)
    with pytest.raises(ConnectorError) as caught:
        execute(repair, run, yes=True)
    thread.join(30)
    assert not failure, failure
    assert killed.is_set()
    message = str(caught.value)
    assert LOST.match(message), message
    assert LOST.match(message).groups() == ("2", "1000")  # batch 2 was in flight, and rolled back

    journaled = journaled_ids(book, run.run.id)
    assert len(journaled) == 1_000
    assert ids_in(db, "PENDING") == set(journaled)  # the journal holds only what committed
    assert book.events(run.run.id, "outcome")[-1].data["summary"] == message

    book2, run2 = journal_run(tmp_path)
    outcome = execute(ResetRows(cfg, cfg.state_tables[0], "QUEUED", "PENDING", batch_size=1_000), run2, yes=True)
    assert outcome.ok, outcome.summary
    assert counts(db) == {"PENDING": 5_000}
    assert len(journaled_ids(book2, run2.run.id)) == 4_000


def test_a_lost_connection_reaches_the_operator_as_one_line(db, run_cli, config_path, tmp_path, monkeypatch, pg_dsn):
    from pipectl.report.progress import RowsProgress

    add(db, "enrich", "QUEUED", 3_000, 20)
    killed = threading.Event()

    def progress(self, done: int, total: int) -> None:
        if done and not killed.is_set():  # after the first committed batch, a DBA kills the session
            killed.set()
            assert _terminate_reset(pg_dsn) == 1

    monkeypatch.setattr(RowsProgress, "__call__", progress)
    journal = tmp_path / "j.sqlite3"
    args = ["reset", "--status", "QUEUED", "--batch-size", "1000", "--yes", "--config", str(config_path),
            "--journal", str(journal)]
    code, out, err = run_cli(*args)
    assert code == 1
    assert err.splitlines() == [(
        "pipectl: connection to the database lost during batch 2; 1000 rows were reset in committed batches; "
        "run the same command again to finish")]
    assert len(ids_in(db, "PENDING")) == 1_000

    code, out, err = run_cli(*args)  # the same command again finishes the job
    assert code == 0, err
    assert counts(db) == {"PENDING": 3_000}
    assert "2000 rows QUEUED → PENDING" in out


def test_a_partitioned_table_with_uuid_ids_resets_by_key_and_undoes(db, pg_dsn, tmp_path):
    """A ctid is unique only within one partition: here every partition has a row at (0,1)."""
    from pipectl.repairs.undo import UndoRun

    db.execute("CREATE TABLE tasks (id uuid NOT NULL DEFAULT gen_random_uuid(), kind text NOT NULL,"
               " state text NOT NULL, touched timestamptz NOT NULL, PRIMARY KEY (id, kind)) PARTITION BY LIST (kind)")
    db.execute("CREATE TABLE tasks_a PARTITION OF tasks FOR VALUES IN ('a')")
    db.execute("CREATE TABLE tasks_b PARTITION OF tasks FOR VALUES IN ('b')")
    db.execute("INSERT INTO tasks (kind, state, touched) SELECT 'a', 'QUEUED', now() - interval '1 hour'"
               " FROM generate_series(1, 30)")
    db.execute("INSERT INTO tasks (kind, state, touched) SELECT 'b', 'QUEUED', now() FROM generate_series(1, 30)")
    cfg = PipelineConfig(database={"dsn": pg_dsn}, state_tables=[
        {"table": "public.tasks", "status_column": "state", "updated_column": "touched", "group_by": ["kind"],
         "stuck_after": {"PENDING": "10m", "QUEUED": "5m"}}])
    book, run = journal_run(tmp_path)
    repair = ResetRows(cfg, cfg.state_tables[0], "QUEUED", "PENDING", older_than=timedelta(minutes=10), batch_size=7)
    outcome = execute(repair, run, yes=True)
    assert outcome.ok, outcome.summary
    state = dict(db.execute("SELECT kind || '/' || state, count(*) FROM tasks GROUP BY 1").fetchall())
    assert state == {"a/PENDING": 30, "b/QUEUED": 30}
    assert len(book.events(run.run.id, "change")) == 5  # 7 + 7 + 7 + 7 + 2

    undo_run = JournalRun(book, book.start("pipectl undo (test)", "reset-test"))
    outcome = execute(UndoRun(cfg, run.run.id, changes_of(book.events(run.run.id))), undo_run, yes=True)
    assert outcome.ok, outcome.summary
    state = dict(db.execute("SELECT kind || '/' || state, count(*) FROM tasks GROUP BY 1").fetchall())
    assert state == {"a/QUEUED": 30, "b/QUEUED": 30}


def test_status_counts_by_group_and_by_bare_name(db, pg_dsn):
    from pipectl.connectors import postgres

    add(db, "enrich", "QUEUED", 3, 20)
    add(db, "score", "PENDING", 2, 1)
    cfg = config(pg_dsn)
    assert postgres.status_counts(pg_dsn, cfg.state_tables[0]) == {"enrich/QUEUED": 3, "score/PENDING": 2}
    assert postgres.status_counts(pg_dsn, "workflow_states", timeout=5) == {"QUEUED": 3, "PENDING": 2}
    db.execute("INSERT INTO jobs (status) VALUES ('completed'), ('completed')")
    assert postgres.status_counts(pg_dsn, "jobs", status_column="status") == {"completed": 2}


def test_a_status_nothing_uses_is_refused_and_the_default_cutoff_is_stuck_after(db, run_cli, config_path, tmp_path):
    add(db, "enrich", "QUEUED", 5, 20)  # stuck for 20 minutes: past stuck_after QUEUED = 5m
    add(db, "enrich", "QUEUED", 7, 1)  # queued a minute ago: not stuck yet
    base = ["--config", str(config_path), "--journal", str(tmp_path / "j.sqlite3")]
    code, out, err = run_cli("reset", "--status", "QUEUED", "--to", "PENDNG", "--yes", *base)
    assert code == 2
    assert "--to PENDNG: no row of workflow_states is in that status" in err and "PENDING, QUEUED" in err
    assert counts(db) == {"QUEUED": 12}
    code, out, err = run_cli("reset", "--status", "QUEUED", "--dry-run", *base)
    assert code == 0, err
    assert "older than 5m (stuck_after.QUEUED of workflow_states)" in out
    assert "reset 5 row(s)" in out
    code, out, err = run_cli("reset", "--status", "QUEUED", "--older-than", "0", "--dry-run", *base)
    assert code == 0 and "reset 12 row(s)" in out
    code, out, err = run_cli("reset", "--status", "PENDING", "--to", "QUEUED", "--dry-run", *base)
    assert code == 0, err  # PENDING is named in the config, so it is a status the pipeline knows
    code, out, err = run_cli("reset", "--status", "IN_PROGRESS", "--to", "QUEUED", "--dry-run", *base)
    assert code == 2 and "no stuck_after for IN_PROGRESS" in err and "--older-than" in err


def test_rows_without_a_timestamp_are_reset_and_verified(db, pg_dsn, tmp_path):
    """A nullable updated column: rows with no timestamp have an unknown age, so any cutoff takes them."""
    db.execute("ALTER TABLE workflow_states ALTER COLUMN updated_at DROP NOT NULL")
    undated = add(db, "enrich", "QUEUED", 30, 20)
    db.execute("UPDATE workflow_states SET updated_at = NULL WHERE id = ANY(%s)", [undated])
    old = add(db, "enrich", "QUEUED", 20, 20)
    fresh = add(db, "enrich", "QUEUED", 10, 1)
    cfg = config(pg_dsn)
    book, run = journal_run(tmp_path)
    repair = ResetRows(cfg, cfg.state_tables[0], "QUEUED", "PENDING", older_than=timedelta(minutes=10),
                       batch_size=25)
    assert repair.plan().title.startswith("reset 50 row(s)")
    outcome = execute(repair, run, yes=True)
    assert outcome.ok, outcome.summary
    assert ids_in(db, "PENDING") == set(undated) | set(old)
    assert ids_in(db, "QUEUED") == set(fresh)
    assert sorted(journaled_ids(book, run.run.id)) == sorted(undated + old)
