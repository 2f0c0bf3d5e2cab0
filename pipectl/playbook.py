"""Running a playbook: doctor before, the steps (one plan, one confirmation), doctor after, all journaled.

The before/after findings and row counts are what `pipectl report` turns into the incident report.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipectl.config import PipelineConfig
from pipectl.interface import Playbook, PlaybookContext
from pipectl.model import DoctorResult
from pipectl.repair import Confirm, JournalRun, Outcome, Plan, Settle, execute_steps

STILL_FAILING = "still failing"
"""The key of a NOT FIXED verdict's details naming the findings that still fail after the repair."""


def run_playbook(
    playbook: Playbook,
    ctx: PlaybookContext,
    journal: JournalRun,
    *,
    yes: bool = False,
    dry_run: bool = False,
    confirm: Confirm | None = None,
    show: Callable[[Plan], None] = lambda plan: None,
    settle: Settle = lambda result: None,
    timeout: float = 10.0,
) -> Outcome:
    """`settle` hears how each step ended as it ends (see `execute_steps`); the outcome returned is the
    verdict, which only a doctor run after the steps can give."""
    record_snapshot(journal, ctx, "before", timeout)
    steps = playbook.steps(ctx)
    outcome = execute_steps(steps, journal, yes=yes, dry_run=dry_run, confirm=confirm, show=show,
                            progress=ctx.progress, settle=settle)
    if dry_run or not outcome.ok:
        if not dry_run:
            record_snapshot(journal, ctx, "after", timeout)
        return outcome
    after = record_snapshot(journal, ctx, "after", timeout)
    return final_verdict(outcome, after, journal)


def final_verdict(outcome: Outcome, after: DoctorResult, journal: JournalRun) -> Outcome:
    """The playbook's ✓/✗ is the incident report's FIXED/NOT FIXED: every step verified *and* no check
    failing afterwards. A step that verified while the pipeline is still broken is not a fix."""
    still = [f for f in after.findings if f.status.value in ("fail", "error")]
    if not still:
        return outcome
    verdict = Outcome(False, f"all steps done, but {len(still)} check finding(s) still fail after the repair: "
                             f"{still[0].summary}", {STILL_FAILING: [f.id for f in still]})
    journal.record("outcome", {"stage": "final", "ok": False, "result": "failed", "summary": verdict.summary,
                               STILL_FAILING: [f.id for f in still]})
    return verdict


def record_snapshot(journal: JournalRun, ctx: PlaybookContext, phase: str, timeout: float) -> DoctorResult:
    """Every check's findings and every state table's row counts, into the journal under `phase`."""
    from pipectl.repairs.verify_checks import run_selected

    result = run_selected(ctx.config, ctx.environ, [], timeout)
    record_findings(journal, result, phase)
    journal.record("note", {"phase": phase, "counts": row_counts(ctx.config, timeout)})
    return result


def record_findings(journal: JournalRun, result: DoctorResult, phase: str) -> None:
    journal.record_many("finding", [{"phase": phase, **f.as_dict()} for f in result.findings])


def row_counts(config: PipelineConfig, timeout: float) -> dict[str, Any]:
    """{table: {"group/STATUS": rows}}; an unreachable database gives {"error": "..."} instead."""
    if not config.database.dsn or not config.state_tables:
        return {}
    from pipectl.connectors import postgres
    from pipectl.errors import PipectlError

    counts: dict[str, Any] = {}
    for table in config.state_tables:
        try:
            counts[table.table] = postgres.status_counts(config.database.dsn, table, timeout=timeout)
        except PipectlError as exc:
            counts[table.table] = {"error": str(exc)}
    return counts
