"""How `pipectl probe` reads: each hop the item took or did not, the likely cause, and the clean-up."""

from __future__ import annotations

import json
from typing import Any

from pipectl.probe import ProbeResult

SCHEMA = "pipectl.probe/v1"
FORMATS = ("terminal", "json", "markdown")
_MARK = {True: "✓", False: "✗", None: "·"}


def render(result: ProbeResult, fmt: str) -> str:
    """The result in one of FORMATS (the caller has checked `fmt`)."""
    if fmt == "json":
        return json.dumps(to_dict(result), indent=2) + "\n"
    return markdown(result) if fmt == "markdown" else terminal(result)


def verdict(result: ProbeResult) -> str:
    """One line: the whole way through, or the first hop that did not happen."""
    if result.ok:
        return f"probe {result.marker}: through the whole pipeline in {result.seconds:.1f}s"
    hop = next(h for h in result.hops if h.name == result.failed)
    return f"probe {result.marker}: stopped at `{hop.name}` — {hop.title} did not happen: {hop.detail}"


def to_dict(result: ProbeResult) -> dict[str, Any]:
    """The machine contract, schema `pipectl.probe/v1`."""
    return {
        "schema": SCHEMA, "ok": result.ok, "marker": result.marker, "item_id": result.item_id,
        "failed_hop": result.failed, "seconds": round(result.seconds, 1), "summary": verdict(result),
        "hops": [{"name": h.name, "title": h.title, "done": h.done, "detail": h.detail, "after_s": h.seconds}
                 for h in result.hops],
        "causes": [{"id": f.id, "status": f.status.value, "severity": f.severity.value, "summary": f.summary,
                    "fix": list(f.fix)} for f in result.causes],
        "cleanup": result.cleanup,
    }


def terminal(result: ProbeResult) -> str:
    lines = [verdict(result)]
    for hop in result.hops:
        after = f" ({hop.seconds:g}s)" if hop.seconds is not None and hop.done else ""
        lines.append(f"  {_MARK[hop.done]} {hop.name:<10} {hop.title}{after}{': ' + hop.detail if hop.detail else ''}")
    if result.causes:
        lines.append("likely cause:")
        for finding in result.causes:
            lines.append(f"  ✗ {finding.severity.value} {finding.id}  {finding.summary}")
            lines += [f"      fix: {command}" for command in finding.fix]
    elif result.failed:
        lines.append("no check explains it: `pipectl doctor` and `pipectl trace ITEM_ID` say more")
    lines += [f"cleanup: {line}" for line in result.cleanup]
    return "\n".join(lines) + "\n"


def markdown(result: ProbeResult) -> str:
    lines = [f"# Probe {result.marker}", "", f"**{_cell(verdict(result))}**", "", "| Hop | | Detail |", "|---|---|---|"]
    lines += [f"| {h.name} | {_MARK[h.done]} | {_cell(h.detail)} |" for h in result.hops]
    if result.causes:
        lines += ["", "## Likely cause", ""]
        lines += [f"- **{f.severity.value} {f.id}**: {_cell(f.summary)}" + "".join(f" — `{c}`" for c in f.fix)
                  for f in result.causes]
    if result.cleanup:
        lines += ["", "## Clean-up", ""] + [f"- {line}" for line in result.cleanup]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
