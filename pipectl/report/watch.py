"""How `pipectl watch status` reads: the watchdog, then one line per run (newest first) with its state,
the findings it left not OK, the events it emitted and a link to its report; or the same as JSON."""

from __future__ import annotations

import json
from typing import Any

from pipectl.durations import format_duration


def render_status(status, fmt: str = "terminal") -> str:
    """`status` is a `pipectl.watch.WatchStatus`."""
    data = as_dict(status)
    if fmt == "json":
        return json.dumps(data, indent=2, default=str) + "\n"
    every = format_duration(status.watchdog.every_s) if status.watchdog.every_s else "no schedule"
    head = [f"Watchdog {data['deployment']} on pool {data['work_pool']}, every {every}"
            + (" (PAUSED)" if status.watchdog.paused else "")
            + (f"; next run {_when(status.next_run)}" if status.next_run else ""), data["url"], ""]
    if not data["runs"]:
        first = f"No run yet: the first starts when scheduled (or now: `pipectl trigger {data['deployment']} --yes`)."
        return "\n".join([*head, first]) + "\n"
    table = [("STARTED (UTC)", "STATE", "FAIL", "WARN", "ERROR", "EVENTS", "REPORT")]
    for run, shown in zip(status.runs, data["runs"], strict=True):
        counts = shown["counts"]
        table.append((_when(run.start or run.expected_start), shown["state"] or "?",
                      *(str(counts[k]) if counts else "-" for k in ("fail", "warn", "error")),
                      _events(shown["events"]), shown["report"] or "-"))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]) - 1)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1]
             for row in table]
    return "\n".join([*head, *(line.rstrip() for line in lines)]) + "\n"


def as_dict(status) -> dict[str, Any]:
    """The JSON shape (also what the terminal table is drawn from)."""
    watchdog, ui = status.watchdog, status.ui
    return {
        "deployment": watchdog.name,
        "deployment_id": watchdog.id,
        "url": f"{ui}/deployments/deployment/{watchdog.id}",
        "work_pool": watchdog.work_pool,
        "every_s": watchdog.every_s,
        "paused": watchdog.paused,
        "next_run": _iso(status.next_run),
        "runs": [_run(run, ui) for run in status.runs],
    }


def _run(run, ui: str) -> dict[str, Any]:
    counts = None
    if run.findings is not None:
        counts = {k: sum(1 for row in run.findings if row.get("status") == k) for k in ("fail", "warn", "error")}
    return {
        "flow_run_id": run.id,
        "name": run.name,
        "state": run.state_name or run.state_type,
        "state_type": run.state_type,
        "message": run.message,
        "expected_start": _iso(run.expected_start),
        "started": _iso(run.start),
        "counts": counts,
        "events": dict(run.events),
        "url": f"{ui}/runs/flow-run/{run.id}",
        "report": f"{ui}/artifacts/artifact/{run.report_artifact}" if run.report_artifact else None,
    }


def _events(events: dict[str, int]) -> str:
    if not events:
        return "-"
    return ", ".join(f"{n} {name.rsplit('.', 1)[-1]}" for name, n in sorted(events.items()))


def _when(moment) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S}" if moment else "-"


def _iso(moment) -> str | None:
    return moment.isoformat() if moment else None
