"""The journal keeps pipelines apart, records how every run ended, and shows tampering."""

from __future__ import annotations

import json
import sqlite3

import pytest

from pipectl.config_load import load_config
from pipectl.identity import identity_of
from pipectl.journal import Journal

PROD = 'pipeline = "prod"\n[prefect]\napi_url = "http://127.0.0.1:9/api"\n'
DEV = 'pipeline = "dev"\n[prefect]\napi_url = "http://127.0.0.1:8/api"\n'


@pytest.fixture
def two_pipelines(tmp_path):
    """A journal holding one run of each of two pipelines, and their config files."""
    paths = {}
    for name, text in (("prod", PROD), ("dev", DEV)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "pipectl.toml").write_text(text)
        paths[name] = folder / "pipectl.toml"
    book = Journal(tmp_path / "journal.sqlite3")
    runs = {}
    for name, path in paths.items():
        config = load_config(path)
        run = book.start(f"pipectl patch a/b --env X=1 ({name})", config.pipeline, identity_of(config))
        book.record(run.id, "change", {"kind": "job_variables", "deployment": "a/b", "before": {}, "after": {}})
        book.record(run.id, "outcome", {"ok": True, "result": "ok", "summary": f"patched {name}"})
        runs[name] = run
    return book, paths, runs


def test_journal_report_and_undo_default_to_the_current_pipeline(two_pipelines, run_cli):
    book, paths, runs = two_pipelines
    base = ["--journal", str(book.path), "--config", str(paths["prod"])]
    code, out, err = run_cli("journal", *base)
    assert code == 0 and runs["prod"].id in out and runs["dev"].id not in out
    code, out, _ = run_cli("journal", "--all", "--format", "json", "--journal", str(book.path))
    listed = json.loads(out)["runs"]
    assert {r["pipeline"] for r in listed} == {"prod", "dev"}
    assert {r["result"] for r in listed} == {"ok"}
    code, out, _ = run_cli("journal", "--pipeline", "dev", "--journal", str(book.path))
    assert runs["dev"].id in out and runs["prod"].id not in out
    code, out, _ = run_cli("report", *base)
    assert code == 0 and f"`{runs['prod'].id}`" in out
    code, out, err = run_cli("undo", runs["dev"].id, "--dry-run", *base)
    assert code == 2
    assert f"run {runs['dev'].id} acted on pipeline dev ({paths['dev']}), not on prod ({paths['prod']})" in err


def test_a_run_record_cannot_be_deleted_or_changed_through_sqlite(two_pipelines):
    book, _, runs = two_pipelines
    with sqlite3.connect(book.path) as db, pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM runs WHERE id = ?", (runs["dev"].id,))
    with sqlite3.connect(book.path) as db, pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE runs SET pipeline = 'x'")


@pytest.mark.parametrize(("tamper", "problem"), [
    ("DELETE FROM runs WHERE id = '{dev}'", "run {dev} was deleted"),
    ("UPDATE runs SET command = 'pipectl doctor' WHERE id = '{dev}'", "run {dev} was changed since it was recorded"),
    ("DELETE FROM events WHERE kind = 'change' AND run_id = '{prod}'", "are missing: deleted from the journal"),
    ("UPDATE events SET data = '{{\"ok\": false}}' WHERE kind = 'outcome' AND run_id = '{dev}'", "breaks the chain"),
    ("INSERT INTO runs (id, command, pipeline, started_at, actor) VALUES ('x', 'c', 'p', '2999', 'a')",
     "run x has no start record in the chain"),
])
def test_journal_verify_names_what_was_tampered_with(two_pipelines, run_cli, tamper, problem):
    book, _, runs = two_pipelines
    code, _, err = run_cli("journal", "--journal", str(book.path), "verify")
    assert code == 0 and "✓ journal intact" in err
    with sqlite3.connect(book.path) as db:
        for trigger in ("runs_no_delete", "runs_append_only", "events_no_delete", "events_append_only"):
            db.execute(f"DROP TRIGGER {trigger}")
        db.execute(tamper.format(dev=runs["dev"].id, prod=runs["prod"].id))
    code, _, err = run_cli("journal", "--journal", str(book.path), "verify")
    assert code == 1
    assert problem.format(dev=runs["dev"].id, prod=runs["prod"].id) in err
    assert "✗ journal tampered with" in err


def test_a_corrupt_journal_is_one_line_not_an_internal_error(tmp_path, run_cli):
    broken = tmp_path / "journal.sqlite3"
    broken.write_bytes(b"this is not a database" * 100)
    code, out, err = run_cli("journal", "--journal", str(broken))
    assert code == 1
    assert err.count("\n") == 1 and f"journal {broken} cannot be used" in err and "move it aside" in err


def test_a_journal_of_an_older_version_gains_the_new_columns(tmp_path):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript("""
            CREATE TABLE runs (id TEXT PRIMARY KEY, command TEXT NOT NULL, pipeline TEXT NOT NULL,
                               started_at TEXT NOT NULL, actor TEXT NOT NULL);
            CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, at TEXT NOT NULL,
                                 kind TEXT NOT NULL, data TEXT NOT NULL);
            INSERT INTO runs VALUES ('old-run', 'pipectl reset', 'legacy', '2026-01-01T00:00:00', 'me');
            INSERT INTO events (run_id, at, kind, data) VALUES ('old-run', '2026-01-01', 'note', '{}');
        """)
    book = Journal(path)
    (old,) = book.runs()
    assert old.pipeline == "legacy" and old.endpoints == ""
    run = book.start("pipectl doctor", "new")
    book.record(run.id, "note", {"n": 1})
    from pipectl.journal_verify import verify

    verdict = verify(book)
    assert verdict.intact and verdict.unchained == 1 and verdict.records == 3


def _open_when_released(path, gate, index):
    gate.wait()
    book = Journal(path)
    run = book.start(f"pipectl reset #{index}", "concurrent")
    book.record(run.id, "note", {"n": index})


@pytest.mark.parametrize("older", [False, True], ids=["new-file", "older-version"])
def test_pipectl_processes_opening_one_journal_at_once_all_get_in(tmp_path, older):
    """A watchdog, a repair and `pipectl journal` may open the same journal at the same instant."""
    import multiprocessing

    path = tmp_path / "journal.sqlite3"
    if older:
        with sqlite3.connect(path) as db:
            db.executescript("""
                CREATE TABLE runs (id TEXT PRIMARY KEY, command TEXT NOT NULL, pipeline TEXT NOT NULL,
                                   started_at TEXT NOT NULL, actor TEXT NOT NULL);
                CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL,
                                     at TEXT NOT NULL, kind TEXT NOT NULL, data TEXT NOT NULL);
            """)
    context = multiprocessing.get_context("fork")
    gate = context.Barrier(6)
    workers = [context.Process(target=_open_when_released, args=(path, gate, i)) for i in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert [worker.exitcode for worker in workers] == [0] * 6
    assert len(Journal(path).runs()) == 6
