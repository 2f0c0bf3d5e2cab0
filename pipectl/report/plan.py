"""How a repair's plan and outcome read on the terminal (and in JSON for scripts).

With `-o json` a repair prints on stdout its plans (one document per step), then one outcome document per
step as each ends, and a playbook a last document with its verdict: a script reads whether the repair
worked from `ok`, `applied` and `verified` instead of the words on stderr, which stay as they are.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pipectl.repair import Outcome, Plan, StepResult

OUTCOME_SCHEMA = "pipectl.outcome/v1"
PLAYBOOK_SCHEMA = "pipectl.playbook/v1"


def render_plan(plan: Plan, fmt: str = "terminal") -> str:
    if fmt == "json":
        return json.dumps(plan.as_dict(), indent=2, default=str) + "\n"
    lines = [f"Plan: {plan.title}"]
    for key, value in plan.details.items():
        lines.append(f"  {key}: {_flat(value)}")
    if plan.empty:
        lines.append("  (no changes)")
    for change in plan.changes:
        lines.append(f"  ~ {change.target}: {change.summary}")
    return "\n".join(lines) + "\n"


def render_diff(before: object, after: object, indent: str = "    ") -> str:
    """A line diff of two JSON values, keys sorted: what `patch` shows before it asks."""
    import difflib

    old = json.dumps(before, indent=2, sort_keys=True, default=str).splitlines()
    new = json.dumps(after, indent=2, sort_keys=True, default=str).splitlines()
    diff = difflib.unified_diff(old, new, "before", "after", lineterm="", n=2)
    return "\n".join(indent + line for line in diff) + "\n"


def render_outcome(outcome: Outcome) -> str:
    mark = "✓" if outcome.ok else "✗"
    lines = [f"{mark} {outcome.summary}"]
    lines += [f"  {k}: {_flat(v)}" for k, v in outcome.details.items()]
    return "\n".join(lines) + "\n"


def outcome_to_dict(step: StepResult, run_id: str) -> dict[str, Any]:
    """How one step ended, with the journal run that holds its changes (`pipectl report RUN_ID`)."""
    return {
        "schema": OUTCOME_SCHEMA,
        "run_id": run_id,
        "step": step.number,
        "steps": step.steps,
        "action": step.plan.action,
        "title": step.plan.title,
        "result": step.ending,
        "dry_run": step.dry_run,
        "confirmed": step.confirmed,
        "applied": step.applied,
        "verified": step.verified,
        "ok": step.ok,
        "summary": step.outcome.summary,
        "details": dict(step.outcome.details),
    }


def render_step_outcome(step: StepResult, run_id: str) -> str:
    return json.dumps(outcome_to_dict(step, run_id), indent=2, default=str) + "\n"


def render_verdict(playbook: str, run_id: str, steps: Sequence[StepResult], *, outcome: Outcome | None = None,
                   error: BaseException | None = None, dry_run: bool = False) -> str:
    """A playbook's last document: the incident report's FIXED / NOT FIXED (null for a dry run, which
    changes nothing) and every step's outcome, from the run's `outcome` or the `error` that stopped it."""
    from pipectl.playbook import STILL_FAILING

    final = outcome or Outcome(False, str(error) or type(error).__name__)
    endings = {step.ending for step in steps}
    if isinstance(error, KeyboardInterrupt) or "interrupted" in endings:
        result = "interrupted"
    elif final.ok:
        result = "dry-run" if dry_run else "ok"
    else:
        result = "refused" if endings == {"refused"} else "failed"
    verdict = None if result == "dry-run" else "FIXED" if result == "ok" else "NOT FIXED"
    document = {
        "schema": PLAYBOOK_SCHEMA,
        "playbook": playbook,
        "run_id": run_id,
        "dry_run": dry_run,
        "result": result,
        "verdict": verdict,
        "ok": result in ("ok", "dry-run"),
        "summary": final.summary,
        "still_failing": list(final.details.get(STILL_FAILING, [])),
        "details": dict(final.details),
        "steps": [outcome_to_dict(step, run_id) for step in steps],
    }
    return json.dumps(document, indent=2, default=str) + "\n"


def _flat(value: object) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value)
