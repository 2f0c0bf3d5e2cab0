"""An append-only, tamper-evident record of every doctor run, plan, change (with before-values), verification
and outcome, each run tagged with the pipeline it acted on.

It is what `pipectl undo` reverses and what `pipectl report` tells the story from. SQLite in the user's
state folder; every text that enters it passes the secret classifier and the redactor first, so secrets
never do. Rows cannot be updated or deleted (triggers), and every record carries a hash chained to the one
before it, so `pipectl journal verify` finds a record deleted or forged behind SQLite's back.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import os
import socket
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipectl.errors import PipectlError
from pipectl.redact import redactor

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    command TEXT NOT NULL,
    pipeline TEXT NOT NULL,
    started_at TEXT NOT NULL,
    actor TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs (id),
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_run ON events (run_id, seq);
CREATE TRIGGER IF NOT EXISTS events_append_only BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER IF NOT EXISTS runs_append_only BEFORE UPDATE ON runs
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER IF NOT EXISTS runs_no_delete BEFORE DELETE ON runs
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
"""
_COLUMNS = {  # added to journals written by earlier versions
    "runs": {"config": "TEXT NOT NULL DEFAULT ''", "endpoints": "TEXT NOT NULL DEFAULT ''"},
    "events": {"hash": "TEXT NOT NULL DEFAULT ''"},
}

KINDS = ("start", "finding", "plan", "intent", "change", "verify", "note", "outcome")
"""`start` repeats the run's own record inside the hash chain; `intent` is a batch journaled before it commits."""


class JournalError(PipectlError):
    """The journal file cannot be read or written as a journal."""


def default_path() -> Path:
    """$PIPECTL_STATE_DIR, else $XDG_STATE_HOME/pipectl, else ~/.local/state/pipectl."""
    base = os.environ.get("PIPECTL_STATE_DIR")
    if base:
        return Path(base) / "journal.sqlite3"
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "pipectl" / "journal.sqlite3"


@dataclass(frozen=True)
class Run:
    id: str
    command: str
    pipeline: str
    started_at: str
    actor: str
    config: str = ""
    """The config file the run was made with."""
    endpoints: str = ""
    """Fingerprint of the pipeline's systems (see `pipectl.identity`); '' for runs of older versions."""


@dataclass(frozen=True)
class Event:
    seq: int
    run_id: str
    at: str
    kind: str
    data: dict[str, Any]


def chain_hash(previous: str, run_id: str, at: str, kind: str, data: str) -> str:
    """The hash a record carries: of the record and of the hash before it."""
    return hashlib.sha256("\x1f".join((previous, run_id, at, kind, data)).encode()).hexdigest()


class Journal:
    """One SQLite file; each write is its own committed transaction, so a crash loses nothing written."""

    def __init__(self, path: Path | str | None = None, clock=lambda: datetime.now(UTC),
                 actor: str | None = None) -> None:
        from pipectl.files import private_dir, private_file

        self.path = Path(path) if path else default_path()
        self._actor = actor
        private_dir(self.path.parent, tighten=not path)  # never narrow a folder the user chose, e.g. /tmp
        private_file(self.path, siblings=("-wal", "-shm", "-journal"))  # 0600 before SQLite opens it
        self._clock = clock
        with self._db() as db:
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":  # kept in the file once set
                with contextlib.suppress(sqlite3.OperationalError):  # busy: another pipectl is switching it
                    db.execute("PRAGMA journal_mode = WAL")  # one writer, and readers never wait
            db.executescript(_SCHEMA)
            if self._missing_columns(db):
                db.execute("BEGIN IMMEDIATE")  # another pipectl may be adding them this very moment
                for table, column, kind in self._missing_columns(db):
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
                db.execute("COMMIT")

    @staticmethod
    def _missing_columns(db: sqlite3.Connection) -> list[tuple[str, str, str]]:
        """Columns later versions added that this file lacks, as (table, column, type)."""
        missing = []
        for table, columns in _COLUMNS.items():
            have = {row["name"] for row in db.execute(f"PRAGMA table_info({table})")}
            missing += [(table, column, kind) for column, kind in columns.items() if column not in have]
        return missing

    def _connect(self) -> sqlite3.Connection:
        from pipectl.files import refuse_symlink

        refuse_symlink(self.path)  # also if swapped for one since __init__
        db = sqlite3.connect(self.path, timeout=10)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA synchronous = NORMAL")  # with WAL: a killed pipectl loses nothing it committed
        return db

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """A connection in autocommit mode; any SQLite failure becomes one line naming the file."""
        db = None
        try:
            db = self._connect()
            db.isolation_level = None
            yield db
        except sqlite3.Error as exc:
            raise JournalError(f"journal {self.path} cannot be used ({exc}): move it aside and pipectl starts a "
                               "new one; `pipectl journal verify` tells what is wrong with it") from None
        finally:
            if db is not None:
                db.close()

    def start(self, command: str, pipeline: str, identity: Any = None) -> Run:
        """A new run; `identity` (a `PipelineIdentity`) ties it to the pipeline it acts on."""
        now = self._clock()
        run = Run(
            id=f"{now:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}",
            command=redactor(command),
            pipeline=pipeline,
            started_at=now.isoformat(),
            actor=self._actor or f"{_user()}@{socket.gethostname()}",
            config=getattr(identity, "config", "") or "",
            endpoints=getattr(identity, "endpoints", "") or "",
        )
        redactor.protect(run.id)
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO runs (id, command, pipeline, started_at, actor, config, endpoints) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)", tuple(asdict(run).values()))
            self._append(db, run.id, now.isoformat(), "start", [asdict(run)])
            db.execute("COMMIT")
        return run

    def record(self, run_id: str, kind: str, data: dict[str, Any]) -> None:
        self.record_many(run_id, kind, [data])

    def record_many(self, run_id: str, kind: str, items: list[dict[str, Any]]) -> None:
        """Append events in one transaction: all of them, or none."""
        if kind not in KINDS:
            raise ValueError(f"unknown journal event kind {kind!r}")
        at = self._clock().isoformat()
        safe = [_safe(data) for data in items]  # before the lock: classifying a batch takes a few ms
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")  # one writer at a time: the chain has one end
            self._append(db, run_id, at, kind, safe)
            db.execute("COMMIT")

    @staticmethod
    def _append(db: sqlite3.Connection, run_id: str, at: str, kind: str, items: list[Any]) -> None:
        last = db.execute("SELECT hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        previous = last["hash"] if last else ""
        for item in items:
            data = json.dumps(item, sort_keys=True, default=str)
            previous = chain_hash(previous, run_id, at, kind, data)
            db.execute("INSERT INTO events (run_id, at, kind, data, hash) VALUES (?, ?, ?, ?, ?)",
                       (run_id, at, kind, data, previous))

    def runs(self, limit: int | None = 20) -> list[Run]:
        """Newest first."""
        with self._db() as db:
            rows = db.execute("SELECT id, command, pipeline, started_at, actor, config, endpoints FROM runs "
                              "ORDER BY started_at DESC, id DESC LIMIT ?", (-1 if limit is None else limit,)).fetchall()
        redactor.protect(*(r["id"] for r in rows))
        return [Run(**dict(r)) for r in rows]

    def run(self, run_id: str) -> Run | None:
        with self._db() as db:
            row = db.execute("SELECT id, command, pipeline, started_at, actor, config, endpoints FROM runs "
                             "WHERE id = ?", (run_id,)).fetchone()
        if row:
            redactor.protect(row["id"])
        return Run(**dict(row)) if row else None

    def events(self, run_id: str, kind: str | None = None) -> list[Event]:
        """The run's records in order (its `start` record, which only the chain needs, only when asked for)."""
        query = ("SELECT * FROM events WHERE run_id = ?" + (" AND kind = ?" if kind else " AND kind != 'start'")
                 + " ORDER BY seq")
        with self._db() as db:
            rows = db.execute(query, (run_id, kind) if kind else (run_id,)).fetchall()
        return [Event(r["seq"], r["run_id"], r["at"], r["kind"], json.loads(r["data"])) for r in rows]

    def last_outcomes(self) -> dict[str, Event]:
        """Each run's last outcome record, in one read (the listing shows how every run ended)."""
        with self._db() as db:
            rows = db.execute("SELECT * FROM events WHERE seq IN (SELECT max(seq) FROM events "
                              "WHERE kind = 'outcome' GROUP BY run_id)").fetchall()
        return {r["run_id"]: Event(r["seq"], r["run_id"], r["at"], r["kind"], json.loads(r["data"])) for r in rows}

    def planning_runs(self) -> set[str]:
        """The runs that planned a change (repairs and playbooks, not doctor)."""
        with self._db() as db:
            return {r[0] for r in db.execute("SELECT DISTINCT run_id FROM events WHERE kind = 'plan'")}

    def raw_events(self) -> list[sqlite3.Row]:
        """Every event as stored, for `journal verify`."""
        with self._db() as db:
            return db.execute("SELECT * FROM events ORDER BY seq").fetchall()

    def raw_runs(self) -> list[sqlite3.Row]:
        with self._db() as db:
            return db.execute("SELECT * FROM runs").fetchall()


def changes_of(events: list[Event]) -> list[Event]:
    """The run's changes, their row ids taken from the write-ahead intents, plus every batch journaled as
    intended but never confirmed (pipectl was killed between its commit and its confirmation): those rows
    may be committed, and the compare-and-set of the undo leaves them alone where they are not."""
    intents = {(e.data.get("table"), e.data.get("batch")): e for e in events if e.kind == "intent"}
    result = []
    for event in events:
        if event.kind != "change":
            continue
        intent = intents.pop((event.data.get("table"), event.data.get("batch")), None)
        if event.data.get("kind") == "rows" and "ids" not in event.data and intent is not None:
            event = Event(event.seq, event.run_id, event.at, event.kind, {**event.data, "ids": intent.data["ids"]})
        result.append(event)
    return sorted(result + list(intents.values()), key=lambda e: e.seq)


def _safe(data: dict[str, Any]) -> Any:
    """JSON-ready, every credential (by name or shape) replaced by its fingerprint, the rest redacted."""
    from pipectl.secrets import scrub

    return redactor.data(scrub(data))  # values JSON cannot hold (uuids, times) become text when stored


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
