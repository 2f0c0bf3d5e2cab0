"""prefect.stalled — runs RUNNING or PENDING far longer than the deployment's runs take: zombies."""

from __future__ import annotations

import shlex
from datetime import UTC, datetime, timedelta
from typing import Any

from pipectl.checks.prefect_api import Budget, DeploymentsCheck, api, prefect_curl, runs_text

from pipectl.connectors import prefect as prefect_api
from pipectl.connectors import prefect_runs
from pipectl.durations import format_duration
from pipectl.interface import Context
from pipectl.model import Finding, Severity

HISTORY = 20
"""Finished runs whose durations say what "normal" is."""
FACTOR = 10
"""A run is stalled once it has taken this many times the longest recent COMPLETED run …"""
FLOOR = timedelta(minutes=10)
"""… and at least this long (short runs vary a lot in relative terms) …"""
WITHOUT_HISTORY = timedelta(hours=1)
"""… or this long when the deployment has no COMPLETED run to compare with (set `max_runtime` to say)."""


_CANCELLED = {"type": "CANCELLED", "name": "Cancelled",
              "message": "stalled: no process was left to finish it (cancelled as pipectl doctor advised)"}
"""Forced: a CANCELLING run with no process behind it would wait for its worker forever."""


def allowed_runtime(configured: timedelta | None, finished: list[prefect_runs.FlowRunInfo]) -> timedelta:
    """How long a run of this deployment may stay RUNNING or PENDING before it counts as stalled."""
    if configured is not None:
        return configured
    durations = [r.end_time - r.start_time for r in finished
                 if r.state_type == "COMPLETED" and r.start_time and r.end_time]
    return max(FACTOR * max(durations), FLOOR) if durations else WITHOUT_HISTORY


class PrefectStalled(DeploymentsCheck):
    """Detects: per configured deployment, flow runs that have been RUNNING, PENDING (or CANCELLING) far longer than its
    runs take (`max_runtime` on the deployment's entry, else ten times its longest recent COMPLETED run
    and at least 10 minutes, else one hour). Such a run usually has no process behind it any more: the
    machine, container or worker running it died, and nothing will ever finish it.

    Why it matters: a zombie run holds concurrency slots and makes the pipeline look busy; the rows it
    took stay IN_PROGRESS, and a deployment with a concurrency limit starts nothing new.

    Fix: set it Cancelled (forced through the API: `prefect flow-run cancel` only asks its worker, and
    there is none), then trigger the deployment again if its work must be redone.
    """

    id = "prefect.stalled"
    severity = Severity.P1

    def run(self, ctx: Context) -> list[Finding]:
        return self.per_deployment(ctx, lambda budget, entry, deployment: self._deployment(ctx, budget, entry,
                                                                                         deployment))

    def _deployment(self, ctx: Context, budget: Budget, entry: Any, deployment: prefect_api.DeploymentInfo) -> Finding:
        active = prefect_runs.recent_flow_runs(*api(ctx), deployment.id, limit=HISTORY, timeout=budget.left(),
                                               state_types=("RUNNING", "PENDING", "CANCELLING"))
        finished = prefect_runs.recent_flow_runs(*api(ctx), deployment.id, limit=HISTORY, timeout=budget.left(),
                                                 state_types=("COMPLETED",))
        return self._judge(ctx, entry.name, allowed_runtime(entry.max_runtime, finished), active)

    def _judge(self, ctx: Context, name: str, allowed: timedelta,
               active: list[prefect_runs.FlowRunInfo]) -> Finding:
        now = datetime.now(UTC)
        # RUNNING since it started; PENDING or CANCELLING since it entered that state (a Late run picked up
        # now is PENDING with an old expected start, and is not stalled)
        since = {r.id: (r.start_time if r.state_type == "RUNNING" else None) or r.state_since or r.start_time
                 for r in active}
        stalled = [r for r in active if since[r.id] and now - since[r.id] > allowed]
        evidence: dict[str, Any] = {"deployment": name, "active": len(active),
                                    "allowed": format_duration(allowed), "stalled": [r.id for r in stalled]}
        if not stalled:
            return self.ok(f"{name}: {runs_text(len(active))} active, none longer than {format_duration(allowed)}",
                           subject=name, evidence=evidence)
        oldest = min(stalled, key=lambda r: since[r.id])
        return self.fail(
            f"{runs_text(len(stalled))} of {name} {'has' if len(stalled) == 1 else 'have'} been "
            f"{oldest.state_type} for {format_duration(now - since[oldest.id])} (its runs take at most "
            f"{format_duration(allowed)}): {oldest.name} has no process behind it any more",
            subject=name, evidence=evidence,
            impact="The run will never finish: it holds its concurrency slot, and the rows it took stay where "
                   "it left them.",
            fix=[prefect_curl(ctx, "POST", f"/flow_runs/{r.id}/set_state", {"state": _CANCELLED, "force": True})
                 for r in stalled],
            advice=f"Then `pipectl trigger {shlex.quote(name)} --wait` if its work must be redone.",
        )
