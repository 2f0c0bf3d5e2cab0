"""The incident report, told from the journal in the shape of a post-mortem; and the journal listing.

Pure functions of journal records: the same run always gives the same report, byte for byte.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pipectl.journal import Event, Run, changes_of
from pipectl.report.common import fix_commands
from pipectl.report.plan import render_diff

_FAILING = ("fail", "error")


def render_runs(runs: Sequence[Run], outcomes: Mapping[str, Sequence[Event]]) -> str:
    """One line per run: id, time, pipeline, how it ended, the command, the last outcome's words."""
    if not runs:
        return "no run to show\n"
    lines = []
    for run in runs:
        result, verdict = _ending(outcomes.get(run.id) or [])
        lines.append(f"{run.id}  {run.started_at[:19].replace('T', ' ')}  {run.pipeline:<14} {result:<11} "
                     f"{run.command}" + (f"  → {verdict}" if verdict else ""))
    return "\n".join(lines) + "\n"


def runs_json(runs: Sequence[Run], outcomes: Mapping[str, Sequence[Event]]) -> str:
    """The same listing for scripts: one object per run."""
    listing = []
    for run in runs:
        result, verdict = _ending(outcomes.get(run.id) or [])
        listing.append({"id": run.id, "started_at": run.started_at, "pipeline": run.pipeline, "config": run.config,
                        "endpoints": run.endpoints, "actor": run.actor, "command": run.command,
                        "result": result, "summary": verdict})
    return json.dumps({"runs": listing}, indent=2) + "\n"


def _ending(outcomes: Sequence[Event]) -> tuple[str, str]:
    """How a run ended (ok, failed, interrupted, refused, dry-run; `open` if it never recorded an end)."""
    if not outcomes:
        return "-", ""
    last = outcomes[-1].data
    result = last.get("result") or ("ok" if last.get("ok") else "failed")
    return str(result), str(last.get("summary", ""))


def render_incident(run: Run, events: Sequence[Event]) -> str:
    by_kind: dict[str, list[Event]] = {}
    for event in events:
        by_kind.setdefault(event.kind, []).append(event)
    before = [e.data for e in by_kind.get("finding", []) if e.data.get("phase", "before") in ("before", "doctor")]
    after = [e.data for e in by_kind.get("finding", []) if e.data.get("phase") == "after"]
    changes = [e.data for e in changes_of(list(events))]
    verifies = [e.data for e in by_kind.get("verify", [])]
    outcomes = [e.data for e in by_kind.get("outcome", [])]
    lines = [
        f"# Incident report: {run.pipeline}",
        "",
        f"**Run**: `{run.id}` · **Started**: {_time(run.started_at, full=True)} UTC · **By**: {run.actor}  ",
        f"**Command**: `{run.command}`",
        "",
        "## Executive Summary",
        "",
        *_summary(before, after, changes, outcomes),
        "",
        "## Diagnostic Timeline",
        "",
        "| Time (UTC) | Event |",
        "|---|---|",
        *[f"| {_time(e.at)} | {_cell(_describe(e))} |" for e in events if e.kind != "finding"],
        *_findings_section("## Findings", before),
        "",
        "## Changes Made",
        "",
        *(_change_lines(changes) or ["No change was made."]),
        "",
        *_state_section(by_kind.get("note", [])),
        "## Verification",
        "",
        *([f"- {'✅' if v.get('ok') else '❌'} {v.get('step', 'verify')}: {v.get('summary', '')}" for v in verifies]
          or ["Nothing was verified (nothing was applied)."]),
        *_flow_run_lines(verifies),
        "",
        "## Remaining Risks",
        "",
        *_risks(after),
    ]
    return "\n".join(lines).rstrip() + "\n"


def _summary(before: list[dict], after: list[dict], changes: list[dict], outcomes: list[dict]) -> list[str]:
    failing = [f for f in before if f["status"] in _FAILING]
    ids = {f["id"] for f in failing}
    causes = [f for f in failing if not any(c in ids for c in f.get("caused_by", []))]
    symptoms = [f for f in failing if f not in causes]
    problem = (symptoms or failing or [{"summary": "no failing finding was recorded before the repair"}])[0]
    cause = (causes or [{"summary": "not identified"}])[0]
    final = outcomes[-1] if outcomes else {"ok": False, "summary": "no outcome recorded"}
    still = [f for f in after if f["status"] in _FAILING]
    status = "✅ FIXED" if final.get("ok") and not still else "❌ NOT FIXED"
    resolution = "; ".join(_change_title(c) for c in _merged_rows(changes)) or "no change was applied"
    return [
        f"**Problem:** {problem['summary']}",
        "",
        f"**Root Cause:** {cause['summary']}",
        "",
        f"**Resolution:** {resolution}",
        "",
        f"**Current Status:** {status} — {final.get('summary', '')}"
        + (f" ({len(still)} check finding(s) still failing)" if still else ""),
    ]


def _describe(event: Event) -> str:
    data = event.data
    if event.kind == "plan":
        return f"plan{' (' + data['step'] + ')' if data.get('step') else ''}: {data.get('title', '')}"
    if event.kind == "change":
        return f"change: {_change_title(data)}"
    if event.kind == "verify":
        return f"verify {'ok' if data.get('ok') else 'FAILED'}: {data.get('summary', '')}"
    if event.kind == "outcome":
        return f"{data.get('stage', 'outcome')}: {data.get('summary', '')}"
    if event.kind == "note" and "phase" in data:
        return f"snapshot of findings and row counts ({data['phase']})"
    return f"{event.kind}: {json.dumps(data, sort_keys=True)[:120]}"


def _change_title(change: Mapping[str, Any]) -> str:
    kind = change.get("kind")
    if kind == "job_variables":
        return f"merged job variables of {change['deployment']}"
    if kind == "rows":
        return f"moved {len(change.get('ids', []))} row(s) of {change['table']} {change['from_status']} → " \
               f"{change['to_status']}"
    if kind == "secret_block":
        return f"set Secret block {change['block']}"
    if kind == "flow_run":
        return f"started flow run {change['flow_run_id']} of {change['deployment']}"
    if kind == "deployment_created":
        return f"registered deployment {change['deployment']}"
    if kind == "redrive":
        return f"redrove {change['moved']} message(s) of queue {change['queue']}"
    return str(kind)


def _merged_rows(changes: list[dict]) -> list[dict]:
    """The batches of one reset as one change (where the first batch stood), the rest as they are."""
    merged: list[dict] = []
    rows: dict[tuple, dict] = {}
    for change in changes:
        if change.get("kind") != "rows":
            merged.append(change)
            continue
        key = (change["table"], change["from_status"], change["to_status"])
        if key not in rows:
            rows[key] = {**change, "ids": []}
            merged.append(rows[key])
        rows[key]["ids"] = rows[key]["ids"] + list(change.get("ids", []))
    return merged


def _change_lines(changes: list[dict]) -> list[str]:
    lines: list[str] = []
    for change in _merged_rows(changes):
        title = _change_title(change)
        lines += [f"### {title[0].upper()}{title[1:]}", ""]
        if change.get("kind") == "job_variables":
            lines += ["```diff", render_diff(change["before"], change["after"], indent="").rstrip(), "```", ""]
        elif change.get("kind") == "secret_block":
            lines += [f"Value not shown; fingerprint `{change.get('fingerprint', '-')}`.", ""]
        elif change.get("kind") == "rows":
            lines += [f"Compare-and-set on status; sample ids: {', '.join(map(str, change['ids'][:5]))}.", ""]
    return lines


def _state_section(notes: list[Event]) -> list[str]:
    snapshots = {e.data["phase"]: e.data.get("counts", {}) for e in notes if "phase" in e.data}
    if not snapshots:
        return []
    before, after = snapshots.get("before", {}), snapshots.get("after", {})
    lines = ["## State Before and After", "", "| Table | Group / status | Before | After |", "|---|---|---|---|"]
    for table in sorted(set(before) | set(after)):
        old, new = before.get(table, {}), after.get(table, {})
        for key in sorted(set(old) | set(new)):
            lines.append(f"| {table} | {key} | {old.get(key, 0)} | {new.get(key, 0)} |")
    return lines + [""]


def _flow_run_lines(verifies: list[dict]) -> list[str]:
    lines = []
    for data in verifies:
        if "flow_run_id" in data:
            lines += ["", "| Flow run | State | Duration | Rows before | Rows after |", "|---|---|---|---|---|",
                      f"| `{data['flow_run_id']}` ({data.get('flow_run', '')}) | {data.get('state', '-')} | "
                      f"{data.get('duration_s', '-')} s | {_counts(data.get('counts_before'))} | "
                      f"{_counts(data.get('counts_after'))} |"]
    return lines


def _findings_section(title: str, findings: list[dict]) -> list[str]:
    failing = [f for f in findings if f["status"] in _FAILING or f["status"] == "warn"]
    if not findings:
        return []
    lines = ["", title, ""]
    if not failing:
        return lines + ["Every check passed."]
    lines += ["| Priority | Issue | Component | Evidence | Fix |", "|---|---|---|---|---|"]
    ids = {f["id"] for f in failing}
    for f in sorted(failing, key=lambda f: (any(c in ids for c in f.get("caused_by", [])), f["severity"], f["id"])):
        shown = [(k, v) for k, v in f.get("evidence", {}).items() if v not in ("", [], None)]
        evidence = "; ".join(f"{k}: {_value(v)}" for k, v in shown[:4])
        lines.append(f"| {f['severity']} | {_cell(f['summary'])} | {f['component']} | {_cell(evidence)} | "
                     f"{_cell(' && '.join(fix_commands(f.get('fix'))) and '`' + ' && '.join(fix_commands(f.get('fix'))) + '`' or '')} |")
    return lines


def _risks(after: list[dict]) -> list[str]:
    still = [f for f in after if f["status"] in _FAILING]
    if not after:
        return ["No checks were run after the repair."]
    if not still:
        return ["None: every check passes after the repair."]
    return [f"- {f['severity']} `{f['id']}`: {f['summary']}"
            + (f" — fix: `{' && '.join(fix_commands(f.get('fix')))}`" if fix_commands(f.get("fix")) else "")
            for f in still]


def _counts(counts: Any) -> str:
    if not isinstance(counts, dict) or not counts:
        return "-"
    return ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))


def _time(iso: str, full: bool = False) -> str:
    return iso[:19].replace("T", " ") if full else iso[11:19]


def _value(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
