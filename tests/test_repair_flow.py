"""The plan → confirm → apply → verify → journal path, with small in-memory repairs (pure logic)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from pipectl.errors import UsageError
from pipectl.journal import Journal
from pipectl.repair import Change, JournalRun, Outcome, Plan, Repair, Step, execute, execute_steps


class Counter(Repair):
    """Adds `amount` to a shared dict entry; verify re-reads it."""

    def __init__(self, store: dict, key: str, amount: int, verify_ok: bool = True) -> None:
        self.store, self.key, self.amount, self.verify_ok = store, key, amount, verify_ok

    def plan(self) -> Plan:
        if not self.amount:
            return Plan("count", f"{self.key} unchanged")
        before = self.store.get(self.key, 0)
        return Plan("count", f"add {self.amount} to {self.key}",
                    (Change(self.key, f"{before} → {before + self.amount}", before, before + self.amount),))

    def apply(self, plan: Plan, journal: JournalRun) -> Outcome:
        before = self.store.get(self.key, 0)
        self.store[self.key] = before + self.amount
        journal.record("change", {"kind": "counter", "key": self.key, "before": before})
        return Outcome(True, f"{self.key} is {self.store[self.key]}")

    def verify(self, applied: Outcome) -> Outcome:
        return Outcome(self.verify_ok, f"re-read {self.key}: {self.store[self.key]}")


def fixed_clock():
    moments = (datetime(2026, 1, 1, 2, 14, tzinfo=UTC) + timedelta(seconds=i) for i in range(10_000))
    return lambda: next(moments)


@pytest.fixture
def journal(tmp_path) -> JournalRun:
    book = Journal(tmp_path / "journal.sqlite3", clock=fixed_clock())
    return JournalRun(book, book.start("pipectl test", "unit"))


def kinds(journal: JournalRun) -> list[str]:
    return [e.kind for e in journal.journal.events(journal.run.id)]


def test_dry_run_plans_and_stops(journal):
    store: dict = {}
    outcome = execute(Counter(store, "a", 2), journal, dry_run=True)
    assert outcome.ok and outcome.summary == "dry run: nothing was changed"
    assert store == {} and kinds(journal) == ["plan", "outcome"]


def test_confirmation_is_required_and_a_no_changes_nothing(journal):
    store: dict = {}
    assert not execute(Counter(store, "a", 2), journal, confirm=lambda q: False).ok
    assert store == {}
    assert execute(Counter(store, "a", 2), journal, confirm=lambda q: q == "Apply: add 2 to a?").ok
    assert store == {"a": 2}


def test_no_terminal_means_no_confirmation(journal, monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(UsageError, match="without --yes"):
        execute(Counter({}, "a", 2), journal)


def test_steps_are_planned_together_and_stop_at_the_first_failed_verify(journal):
    store: dict = {}
    shown: list[str] = []
    steps = [Step("one", Counter(store, "a", 1)), Step("two", Counter(store, "b", 1, verify_ok=False)),
             Step("three", Counter(store, "c", 1))]
    outcome = execute_steps(steps, journal, yes=True, show=lambda plan: shown.append(plan.title))
    assert shown == ["add 1 to a", "add 1 to b", "add 1 to c"]  # the whole plan before the first step
    assert store == {"a": 1, "b": 1}  # step three never ran
    assert not outcome.ok
    assert outcome.summary == "stopped at step 2/3 (two): re-read b: 1"
    assert outcome.details == {"done": ["one"], "not started": ["three"]}
    assert kinds(journal).count("change") == 2


def test_empty_steps_are_skipped(journal):
    store: dict = {}
    outcome = execute_steps([Step("noop", Counter(store, "a", 0)), Step("add", Counter(store, "b", 3))],
                            journal, yes=True)
    assert outcome.ok and store == {"b": 3}


def test_journal_is_append_only(journal):
    journal.record("note", {"x": 1})
    with sqlite3.connect(journal.journal.path) as db, pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE events SET data = '{}'")
    with sqlite3.connect(journal.journal.path) as db, pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM events")
