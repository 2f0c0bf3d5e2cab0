"""How a repair's plan and outcome read on the terminal (and in JSON for scripts)."""

from __future__ import annotations

import json

from pipectl.repair import Outcome, Plan


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


def _flat(value: object) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value)
