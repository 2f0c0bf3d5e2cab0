"""Start a run of a deployment and, with --wait, follow it until it ends and the rows it feeds have moved.

The first incident's run ended COMPLETED while every row stayed QUEUED: here that counts as a failure.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from pipectl import secrets
from pipectl.config import PipelineConfig
from pipectl.connectors import prefect as prefect_api
from pipectl.connectors import prefect_runs, prefect_write
from pipectl.errors import ConnectorError
from pipectl.repair import Change, JournalRun, Outcome, Plan, Repair
from pipectl.repairs.parameters import checked
from pipectl.repairs.register import missing_deployment


class TriggerRun(Repair):
    """Creating a run changes nothing that needs undoing; it is journaled like every write."""

    def __init__(self, config: PipelineConfig, deployment: str, *, name: str | None = None,
                 parameters: Mapping[str, Any] | None = None, wait: bool = False, timeout_s: float = 600.0,
                 watch: Callable[[str], None] = lambda text: None, poll_s: float = 1.0) -> None:
        self.config, self.deployment, self.name = config, deployment, name
        self.parameters, self.wait, self.timeout_s, self.watch, self.poll_s = dict(parameters or {}), wait, \
            timeout_s, watch, poll_s
        self._api = (config.prefect.api_url, config.prefect.api_key)
        self._timeout = config.prefect.timeout
        entry = config.deployment(deployment)
        self.moves = entry.moves if entry else None
        self._deployment_id = ""
        self._before: dict[str, int] = {}
        self.run_id: str | None = None
        self._state = "SCHEDULED"
        self._deadline = 0.0

    def plan(self) -> Plan:
        found = prefect_api.read_deployment(*self._api, self.deployment, timeout=self._timeout)
        if found is None:
            raise missing_deployment(self.config, self.deployment)
        self._deployment_id = found.id
        self.parameters = checked(self.parameters, found.parameter_schema, found.parameters, self.deployment)
        details = {"deployment": self.deployment, "work_pool": found.work_pool_name or "-",
                   "parameters": secrets.scrub(self.parameters) or "-", "paused": found.paused}
        change = Change(f"deployment {self.deployment}", f"start flow run {self.name or '(name chosen by Prefect)'}")
        return Plan("trigger", f"start a run of {self.deployment}", (change,), details)

    def apply(self, plan: Plan, journal: JournalRun) -> Outcome:
        self._before = self._counts()
        run_id = prefect_write.create_flow_run(*self._api, self._deployment_id, self.name, self.parameters, timeout=self._timeout)
        self.run_id = run_id
        journal.record("change", {"kind": "flow_run", "deployment": self.deployment, "flow_run_id": run_id,
                                  "counts_before": self._before})
        return Outcome(True, f"started flow run {run_id}", {"flow_run_id": run_id})

    def verify(self, applied: Outcome) -> Outcome:
        if not self.wait:
            return applied
        try:
            run = self._follow()
            after = self._counts()
        except ConnectorError as exc:  # the run exists whatever happened to our view of it
            return Outcome(False, f"lost sight of flow run {self.run_id} (last seen {self._state}): {exc}; the run "
                                  "continues on the server — check it in Prefect", {"flow_run_id": self.run_id})
        details: dict[str, Any] = {"flow_run_id": run.id, "flow_run": run.name, "state": run.state_name or "-"}
        if run.start_time and run.end_time:
            details["duration_s"] = round((run.end_time - run.start_time).total_seconds(), 1)
        if not run.is_final:
            return Outcome(False, f"run {run.name} still {run.state_name} after {self.timeout_s:.0f}s", details)
        if run.state_type != "COMPLETED":
            return Outcome(False, f"run {run.name} ended {run.state_name}", details)
        if self.moves is None:
            return Outcome(True, f"run {run.name} COMPLETED", details)
        return self._rows_settled(run.name, details, after)

    def _rows_settled(self, run_name: str, details: dict[str, Any], after: dict[str, int]) -> Outcome:
        """The rows' verdict, taken again at each poll until it holds or `moves.settle` (within --timeout) is
        spent: what the run hands on (a Modal spawn, a queue message) moves the rows a little later."""
        assert self.moves is not None
        settle_until = min(self._deadline, time.monotonic() + self.moves.settle.total_seconds())
        announced = False
        while True:
            verdict = rows_verdict(run_name, self.moves.from_status, self.moves.to_status, self._before, after,
                                   details | {"counts_before": self._before, "counts_after": after})
            if verdict.ok or time.monotonic() >= settle_until:
                return verdict
            if not announced:
                announced = True
                self.watch(f"{run_name}: Completed; waiting up to {settle_until - time.monotonic():.0f}s for the "
                           f"rows to reach {self.moves.to_status or 'their next status'}")
            time.sleep(self.poll_s)
            try:
                now = self._counts()
            except ConnectorError:
                return verdict  # the verdict already taken stands
            if now != after:
                after = now
                self.watch(f"{run_name}: rows {_fmt(after)}")

    def committed(self) -> str:
        if not self.run_id:
            return "no flow run was created"
        return (f"flow run {self.run_id} was created (last seen {self._state}) and continues on the server; "
                f"follow or cancel it in Prefect")

    def _follow(self):
        self._deadline = deadline = time.monotonic() + self.timeout_s
        last = None
        while True:
            run = prefect_runs.read_flow_run(*self._api, self.run_id, timeout=self._timeout)
            self._state = run.state_name or self._state
            if run.state_name != last:
                last = run.state_name
                counts = self._counts()
                self.watch(f"{run.name}: {run.state_name}" + (f"  rows {_fmt(counts)}" if counts else ""))
            if run.is_final or time.monotonic() > deadline:
                return run
            time.sleep(self.poll_s)

    def _counts(self) -> dict[str, int]:
        if self.moves is None or not self.config.database.dsn:
            return {}
        from pipectl.connectors import postgres

        table = next((t for t in self.config.state_tables if t.table == self.moves.table), None)
        return postgres.status_counts(self.config.database.dsn, self.moves.table,
                                      table.status_column if table else "status", timeout=10)


def rows_verdict(run_name: str, from_status: str, to_status: str | None, before: Mapping[str, int],
                 after: Mapping[str, int], details: dict[str, Any]) -> Outcome:
    """Whether the rows the run was for moved on: the silent failure check, as a pure function."""
    waiting = before.get(from_status, 0)
    if to_status is None:
        moved = waiting - after.get(from_status, 0)
        ok = waiting == 0 or moved > 0
        return Outcome(ok, f"run {run_name} COMPLETED; {moved} of {waiting} {from_status} row(s) moved on", details)
    arrived = after.get(to_status, 0) - before.get(to_status, 0)
    if waiting and arrived < waiting:
        elsewhere = {s: n for s, n in after.items() if s not in (from_status, to_status) and n}
        where = f" ({_fmt(elsewhere)})" if elsewhere else ""
        return Outcome(False, f"run {run_name} COMPLETED but only {max(arrived, 0)} of {waiting} {from_status} "
                              f"row(s) reached {to_status}{where}: the run failed silently", details)
    return Outcome(True, f"run {run_name} COMPLETED; {max(arrived, 0)} row(s) reached {to_status}", details)


def _fmt(counts: Mapping[str, int]) -> str:
    return " ".join(f"{status}={n}" for status, n in sorted(counts.items()))
