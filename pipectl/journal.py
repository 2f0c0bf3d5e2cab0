"""An append-only record of every doctor run, plan, change (with before-values), verification and outcome.

It is what `pipectl undo` reverses and what `pipectl report` tells the story from. SQLite in the user's
state folder; every text that enters it passes the redactor first, so secrets never do.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
"""

KINDS = ("finding", "plan", "change", "verify", "note", "outcome")


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


@dataclass(frozen=True)
class Event:
    seq: int
    run_id: str
    at: str
    kind: str
    data: dict[str, Any]


class Journal:
    """One SQLite file; each write is its own committed transaction, so a crash loses nothing written."""

    def __init__(self, path: Path | str | None = None, clock=lambda: datetime.now(UTC),
                 actor: str | None = None) -> None:
        self.path = Path(path) if path else default_path()
        self._actor = actor
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        with self._connect() as db:
            db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=10)
        db.row_factory = sqlite3.Row
        return db

    def start(self, command: str, pipeline: str) -> Run:
        now = self._clock()
        run = Run(
            id=f"{now:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}",
            command=redactor(command),
            pipeline=pipeline,
            started_at=now.isoformat(),
            actor=self._actor or f"{_user()}@{socket.gethostname()}",
        )
        redactor.protect(run.id)
        with self._connect() as db:
            db.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?)",
                       (run.id, run.command, run.pipeline, run.started_at, run.actor))
        return run

    def record(self, run_id: str, kind: str, data: dict[str, Any]) -> None:
        self.record_many(run_id, kind, [data])

    def record_many(self, run_id: str, kind: str, items: list[dict[str, Any]]) -> None:
        """Append events in one transaction: all of them, or none."""
        if kind not in KINDS:
            raise ValueError(f"unknown journal event kind {kind!r}")
        at = self._clock().isoformat()
        rows = [(run_id, at, kind, json.dumps(_safe(data), sort_keys=True)) for data in items]
        with self._connect() as db:
            db.executemany("INSERT INTO events (run_id, at, kind, data) VALUES (?, ?, ?, ?)", rows)

    def runs(self, limit: int = 20) -> list[Run]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM runs ORDER BY started_at DESC, id DESC LIMIT ?", (limit,)).fetchall()
        redactor.protect(*(r["id"] for r in rows))
        return [Run(**dict(r)) for r in rows]

    def run(self, run_id: str) -> Run | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row:
            redactor.protect(row["id"])
        return Run(**dict(row)) if row else None

    def events(self, run_id: str, kind: str | None = None) -> list[Event]:
        return list(self._events(run_id, kind))

    def _events(self, run_id: str, kind: str | None) -> Iterator[Event]:
        query = "SELECT * FROM events WHERE run_id = ?" + (" AND kind = ?" if kind else "") + " ORDER BY seq"
        with self._connect() as db:
            for row in db.execute(query, (run_id, kind) if kind else (run_id,)):
                yield Event(row["seq"], row["run_id"], row["at"], row["kind"], json.loads(row["data"]))


def _safe(data: dict[str, Any]) -> Any:
    """JSON-ready, every credential (by name or shape) replaced by its fingerprint, the rest redacted."""
    from pipectl.secrets import scrub

    return redactor.data(scrub(json.loads(json.dumps(data, default=str))))


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
