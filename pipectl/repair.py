"""The one path every write takes: plan → confirm → apply → verify → journal.

A repair computes its plan as data; `--dry-run` shows it and stops; without `--yes` a person confirms on a
terminal (and with no terminal, nothing happens); apply records every change with its before-values; a
verify re-reads what was changed. Commands and playbooks all go through `execute`.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipectl.errors import UsageError
from pipectl.journal import Journal, Run


@dataclass(frozen=True)
class Change:
    """One thing a repair will change, with what it was and what it will be (never secret values)."""

    target: str
    summary: str
    before: Any = None
    after: Any = None


@dataclass(frozen=True)
class Plan:
    """What a repair will do, computed before anything is touched."""

    action: str
    title: str
    changes: tuple[Change, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.changes


@dataclass(frozen=True)
class Outcome:
    """How an apply or a verify ended, in words and numbers."""

    ok: bool
    summary: str
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JournalRun:
    """The journal, bound to one run: what a repair writes its changes into."""

    journal: Journal
    run: Run

    def record(self, kind: str, data: Mapping[str, Any]) -> None:
        self.journal.record(self.run.id, kind, dict(data))


class Repair(ABC):
    """One safe write to the pipeline. Subclasses compute a plan, apply it, and verify the result."""

    @abstractmethod
    def plan(self) -> Plan: ...

    @abstractmethod
    def apply(self, plan: Plan, journal: JournalRun) -> Outcome:
        """Make the change; record each change (kind "change") with its before-values as it commits."""

    def verify(self, applied: Outcome) -> Outcome:
        """Re-read what was changed. The default trusts apply; most repairs do better."""
        return applied


Confirm = Callable[[str], bool]


def execute(
    repair: Repair,
    journal: JournalRun,
    *,
    yes: bool = False,
    dry_run: bool = False,
    confirm: Confirm | None = None,
    show: Callable[[Plan], None] = lambda plan: None,
) -> Outcome:
    """Plan, show, confirm, apply, verify, journal. Returns the verify outcome (or the plan's, if stopped)."""
    plan = repair.plan()
    journal.record("plan", _plan_data(plan))
    show(plan)
    if dry_run:
        return _stop(journal, "dry run: nothing was changed", plan)
    if plan.empty:
        return _stop(journal, "nothing to do", plan)
    if not yes:
        ask = confirm or _terminal_confirm
        if not ask(f"Apply: {plan.title}?"):
            return _stop(journal, "not confirmed: nothing was changed", plan, ok=False)
    applied = repair.apply(plan, journal)
    journal.record("outcome", {"stage": "apply", "ok": applied.ok, "summary": applied.summary, **applied.details})
    if not applied.ok:
        return applied
    verified = repair.verify(applied)
    journal.record("verify", {"ok": verified.ok, "summary": verified.summary, **verified.details})
    return verified


def _stop(journal: JournalRun, summary: str, plan: Plan, ok: bool = True) -> Outcome:
    journal.record("outcome", {"stage": "plan", "ok": ok, "summary": summary})
    return Outcome(ok=ok, summary=summary, details={"planned": len(plan.changes)})


def _terminal_confirm(question: str) -> bool:
    """Ask on a terminal; with no terminal there is nobody to ask, so refuse (exit 2, nothing changed)."""
    if not sys.stdin.isatty():
        raise UsageError("refusing to change anything without --yes: there is no terminal to confirm on")
    import typer

    return typer.confirm(question, default=False, err=True)


def _plan_data(plan: Plan) -> dict[str, Any]:
    return {
        "action": plan.action,
        "title": plan.title,
        "details": dict(plan.details),
        "changes": [{"target": c.target, "summary": c.summary, "before": c.before, "after": c.after}
                    for c in plan.changes],
    }
