"""The one path every write takes: plan → confirm → apply → verify → journal.

A repair computes its plan as data; `--dry-run` shows it and stops; without `--yes` a person confirms on a
terminal (and with no terminal, nothing happens); apply records every change with its before-values; a
verify re-reads what was changed. Commands and playbooks all go through `execute`.
"""

from __future__ import annotations

import contextlib
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

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

    def as_dict(self) -> dict[str, Any]:
        """What the journal stores and `--format json` prints."""
        return {
            "action": self.action,
            "title": self.title,
            "details": dict(self.details),
            "changes": [{"target": c.target, "summary": c.summary, "before": c.before, "after": c.after}
                        for c in self.changes],
        }


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

    def record_many(self, kind: str, items: list[Mapping[str, Any]]) -> None:
        self.journal.record_many(self.run.id, kind, [dict(i) for i in items])


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

    def committed(self) -> str:
        """What is committed so far, in words, for a run stopped halfway ('' when there is nothing to say)."""
        return ""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a write, after the journal recorded how far it got; the message says
    what was committed."""


Confirm = Callable[[str], bool]

StepEnding = Literal["ok", "failed", "interrupted", "refused", "dry-run", "nothing-to-do", "not-started"]
"""How one step ended: the journal's words for a run (ok, failed, interrupted, refused, dry-run), and two
that only a step can have — nothing to do, and not started because an earlier step failed or stopped."""
_SUCCEEDED: frozenset[StepEnding] = frozenset({"ok", "dry-run", "nothing-to-do"})


@dataclass(frozen=True)
class StepResult:
    """How one planned step ended, in the terms a script asks about — confirmed? applied? verified? — beside
    the words the operator reads. `execute_steps` settles every step whose plan it showed exactly once,
    whatever happens (refusal, a failed verify, an error, Ctrl-C), so `-o json` can follow the plans with
    one outcome document each and a script never has to read prose to know whether the repair worked."""

    number: int
    steps: int
    plan: Plan
    ending: StepEnding
    outcome: Outcome
    confirmed: bool = False  # past the question (--yes or a yes); a dry run or nothing to do stops before it
    applied: bool | None = False  # None: a write stopped midway (the summary says what was committed)
    verified: bool | None = None  # None: no verify ran

    @property
    def ok(self) -> bool:
        return self.ending in _SUCCEEDED

    @property
    def dry_run(self) -> bool:
        return self.ending == "dry-run"


Settle = Callable[[StepResult], None]


class _Settler:
    """Hands each shown step's result on once, and whatever was not yet settled when a run stops."""

    def __init__(self, settle: Settle, plans: list[Plan], steps: int) -> None:
        self._settle, self._plans, self._steps, self._settled = settle, plans, steps, 0

    def step(self, ending: StepEnding, outcome: Outcome, **known: Any) -> None:
        """The next step, in order, ended so."""
        self._settled += 1
        self._settle(StepResult(self._settled, self._steps, self._plans[self._settled - 1], ending, outcome,
                                **known))

    def rest(self, ending: StepEnding, summary: str, **known: Any) -> None:
        """Every step not settled yet ended alike (a dry run, a refusal, the steps after a failure)."""
        while self._settled < len(self._plans):
            planned = {"planned changes": len(self._plans[self._settled].changes)}
            self.step(ending, Outcome(ending in _SUCCEEDED, summary, planned), **known)


@dataclass(frozen=True)
class Step:
    """One repair inside a sequence (a playbook), with the title the operator sees."""

    title: str
    repair: Repair


def execute(repair: Repair, journal: JournalRun, **options: Any) -> Outcome:
    """Plan, show, confirm, apply, verify, journal one repair. Returns the verify outcome."""
    return execute_steps([Step(type(repair).__name__, repair)], journal, **options)


def execute_steps(
    steps: list[Step],
    journal: JournalRun,
    *,
    yes: bool = False,
    dry_run: bool = False,
    confirm: Confirm | None = None,
    show: Callable[[Plan], None] = lambda plan: None,
    progress: Callable[[str], None] = lambda text: None,
    settle: Settle = lambda result: None,
) -> Outcome:
    """Every plan first and shown together, one confirmation, then apply + verify step by step.

    A failed apply or verify stops the sequence, and the outcome says exactly which steps were done. Every
    run ends with an outcome in the journal — ok, failed, interrupted or refused — naming the step reached;
    Ctrl-C or SIGTERM during a write is recorded too and re-raised as `Interrupted` with what was committed.
    `settle` hears how each shown step ended, as soon as it is known and also when the run raises.
    """
    plans: list[Plan] = []
    settler = _Settler(settle, plans, len(steps))
    try:
        for step in steps:
            plan = step.repair.plan()
            journal.record("plan", {"step": step.title, **plan.as_dict()})
            show(plan)
            plans.append(plan)
    except BaseException as exc:  # the plans already shown will never run
        settler.rest("not-started", f"not started: planning {step.title} failed: {exc}")
        raise
    if dry_run:
        outcome = _stop(journal, "dry run: nothing was changed", plans, "dry-run")
        settler.rest("dry-run", outcome.summary)
        return outcome
    if all(p.empty for p in plans) and not any(getattr(s.repair, "verify_when_empty", False) for s in steps):
        outcome = _stop(journal, "nothing to do", plans, "ok")
        settler.rest("nothing-to-do", outcome.summary)
        return outcome
    if not yes:
        ask = confirm or _terminal_confirm
        title = plans[0].title if len(plans) == 1 else f"{len(steps)} steps"
        try:
            agreed = ask(f"Apply: {title}?")
        except BaseException as exc:  # no terminal to ask on (bad input, exit 2), or Ctrl-C at the question
            settler.rest("refused", str(exc) or "not confirmed: nothing was changed")
            raise
        if not agreed:
            outcome = _stop(journal, "not confirmed: nothing was changed", plans, "refused")
            settler.rest("refused", outcome.summary)
            return outcome
    done: list[str] = []
    try:
        return _apply_steps(steps, plans, journal, done, progress, settler)
    except BaseException as exc:
        number = len(done) + 1
        step = steps[min(number, len(steps)) - 1]
        interrupted = isinstance(exc, KeyboardInterrupt)
        where = f"at step {number}/{len(steps)} ({step.title})" if len(steps) > 1 else f"during: {plans[0].title}"
        if interrupted:
            committed = step.repair.committed()
            summary = f"interrupted {where}" + (f": {committed}" if committed else "")
        else:  # the error says what was committed
            summary = f"stopped {where}: {exc}" if len(steps) > 1 else str(exc) or type(exc).__name__
        with contextlib.suppress(Exception):  # a journal that cannot be written must not hide the cause
            journal.record("outcome", {"stage": "interrupted" if interrupted else "stopped", "ok": False,
                                       "result": "interrupted" if interrupted else "failed", "step": number,
                                       "summary": summary, "done": done or "none"})
        with contextlib.suppress(Exception):  # nor may an output that cannot be written
            settler.step("interrupted" if interrupted else "failed", Outcome(False, summary), confirmed=True,
                         applied=None)
            settler.rest("not-started", f"not started: the run stopped at step {number}", confirmed=True)
        if interrupted:
            raise Interrupted(summary) from None
        raise


def _apply_steps(steps: list[Step], plans: list[Plan], journal: JournalRun, done: list[str],
                 progress: Callable[[str], None], settler: _Settler) -> Outcome:
    result = Outcome(True, "nothing to do")
    for number, (step, plan) in enumerate(zip(steps, plans, strict=True), 1):
        progress(f"step {number}/{len(steps)}: {step.title}")
        if plan.empty and not getattr(step.repair, "verify_when_empty", False):
            done.append(f"{step.title} (nothing to do)")
            settler.step("nothing-to-do", Outcome(True, "nothing to do"), confirmed=True)
            continue
        applied = step.repair.apply(plan, journal) if not plan.empty else Outcome(True, "nothing to apply")
        journal.record("outcome", {"stage": "apply", "step": step.title, "ok": applied.ok,
                                   "summary": applied.summary, **applied.details})
        result = applied
        if applied.ok:
            result = step.repair.verify(applied)
            journal.record("verify", {"step": step.title, "ok": result.ok, "summary": result.summary,
                                      **result.details})
        known = {"confirmed": True, "applied": applied.ok and not plan.empty,
                 "verified": result.ok if applied.ok else None}
        if not result.ok:
            settler.step("failed", result, **known)
            settler.rest("not-started", f"not started: step {number} failed", confirmed=True)
            if len(steps) > 1:
                result = _stopped_at(number, steps, done, result)
            journal.record("outcome", {"stage": "stopped", "ok": False, "result": "failed", "step": number,
                                       "summary": result.summary})
            return result
        settler.step("ok", result, **known)
        done.append(step.title)
    if len(steps) > 1:
        result = Outcome(True, f"all {len(steps)} steps done and verified", {"last": result.summary})
    journal.record("outcome", {"stage": "done", "ok": True, "result": "ok", "step": len(steps),
                               "summary": result.summary})
    return result


def _stopped_at(number: int, steps: list[Step], done: list[str], failed: Outcome) -> Outcome:
    not_started = [s.title for s in steps[number:]]
    return Outcome(False, f"stopped at step {number}/{len(steps)} ({steps[number - 1].title}): {failed.summary}", {
        "done": done or "none", "not started": not_started or "none", **failed.details})


def _stop(journal: JournalRun, summary: str, plans: list[Plan], result: str) -> Outcome:
    ok = result != "refused"
    journal.record("outcome", {"stage": "plan", "ok": ok, "result": result, "step": 0, "summary": summary})
    return Outcome(ok=ok, summary=summary, details={"planned changes": sum(len(p.changes) for p in plans)})


def _terminal_confirm(question: str) -> bool:
    """Ask on a terminal; with no terminal there is nobody to ask, so refuse (exit 2, nothing changed)."""
    if not sys.stdin.isatty():
        raise UsageError("refusing to change anything without --yes: there is no terminal to confirm on")
    import typer

    return typer.confirm(question, default=False, err=True)

