"""prefect.runs — recent runs of each deployment: Late, Crashed, Failed, and COMPLETED runs that moved nothing."""

from __future__ import annotations

import shlex
from datetime import UTC, datetime, timedelta
from typing import Any

from pipectl.checks.prefect_api import Budget, DeploymentsCheck, api, prefect_cli, runs_text

from pipectl.config import DeploymentConfig, PipelineConfig, StateTable
from pipectl.connectors import prefect as prefect_api
from pipectl.connectors import prefect_runs
from pipectl.errors import ConnectorError, UsageError
from pipectl.interface import Context
from pipectl.model import Finding, Severity

RECENT = 10
FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
GRACE = timedelta(minutes=1)
"""How long a row may sit in a status that has no `stuck_after` threshold before it counts as not moved."""


def statuses_to_move(config: PipelineConfig, deployment: DeploymentConfig) -> list[str]:
    """The statuses a COMPLETED run must have moved rows out of (see PrefectRuns: the rule)."""
    moves = deployment.moves
    if moves is None:
        return []
    table = state_table(config, moves.table)
    order = list(table.stuck_after) if table else []
    following = order[order.index(moves.from_status) + 1:] if moves.from_status in order else []
    to_status = getattr(moves, "to_status", None)
    if to_status:
        between = following[: following.index(to_status)] if to_status in following else []
    else:
        between = following[:-1]
    return [moves.from_status, *between]


def state_table(config: PipelineConfig, table: str) -> StateTable | None:
    return next((t for t in config.state_tables if t.table == table), None)


class PrefectRuns(DeploymentsCheck):
    """Detects: per configured deployment, Late runs (scheduled but never picked up), a latest finished
    run that ended FAILED or CRASHED, and the silent failure of the first incident: a latest run that
    ended COMPLETED while the rows it should have moved did not move.

    The rule, for a deployment with `moves = {table, from_status, to_status}`: take the latest finished
    run. The statuses it must move rows out of are `from_status` plus every status listed between
    `from_status` and `to_status` in the table's `stuck_after` (without `to_status`: every status after
    `from_status` except the last one listed, which belongs to the workers). A row counts as not moved
    when it is in `from_status` and was last updated before the run started (it was there and was not
    picked up), or in a later counted status and last updated before the run ended (the run put it
    there and nobody took it further); and in either case it is older than that status's `stuck_after`
    threshold (one minute without one), so rows still in flight do not count. In the sandbox:
    PENDING and QUEUED. With `moves.step`, only rows whose first `group_by` column equals it count.
    Not judged while the deployment has Late runs (nothing is executing it then).

    Why it matters: the orchestrator swallowed the Modal error, so Prefect showed every run COMPLETED
    while 40 rows sat QUEUED; Late runs mean nothing is executing the deployment at all.

    Fix: the findings linked as causes say what to repair (job variables, Modal, the worker); Late
    runs need a worker: `prefect worker start --pool POOL`; a failed run's logs are shown by
    `prefect flow-run logs RUN_ID`.
    """

    id = "prefect.runs"
    severity = Severity.P1

    def run(self, ctx: Context) -> list[Finding]:
        return self.per_deployment(ctx, lambda budget, entry, deployment: self._deployment(ctx, budget, entry,
                                                                                         deployment))

    def _deployment(self, ctx: Context, budget: Budget, entry: DeploymentConfig,
                    deployment: prefect_api.DeploymentInfo) -> Finding:
        name = entry.name
        pool = deployment.work_pool_name or entry.work_pool
        late = prefect_runs.count_late_runs(*api(ctx), deployment_id=deployment.id, timeout=budget.left())
        runs = prefect_runs.recent_flow_runs(*api(ctx), deployment.id, limit=RECENT, timeout=budget.left(),
                                             state_types=FINAL)
        latest = runs[0] if runs else None
        evidence: dict[str, Any] = {
            "deployment": name,
            "late": late,
            "finished_runs": len(runs),
            "failed": sum(r.state_type == "FAILED" for r in runs),
            "crashed": sum(r.state_type == "CRASHED" for r in runs),
            "latest_run": latest.name if latest else None,
            "latest_state": latest.state_name if latest else None,
        }
        problems: list[Finding] = []
        silent, rows_error = None, None
        # With Late runs the deployment is not executing: the last COMPLETED run is old news, and rows
        # that arrived since are the Late runs' to move (the Late finding covers them).
        if latest is not None and latest.state_type == "COMPLETED" and entry.moves is not None and not late:
            try:
                silent = self._silent_failure(ctx, budget, entry, latest, evidence)
            except (ConnectorError, UsageError) as exc:
                rows_error = str(exc)
                evidence["rows_checked"] = False
        if silent is not None:
            problems.append(silent)
        if latest is not None and latest.state_type in ("FAILED", "CRASHED"):
            problems.append(self.fail(
                f"latest run {latest.name} of {name} ended {latest.state_name or latest.state_type}",
                subject=name,
                impact=f"The work {name} should have done in that run was not done.",
                evidence={**evidence, "run_id": latest.id},
                advice=f"Read why in its logs (`{prefect_cli(ctx, 'flow-run', 'logs', latest.id)}`); once the "
                       f"cause is fixed, `pipectl trigger {shlex.quote(name)} --wait` runs it again.",
            ))
        if late:
            problems.append(self.fail(
                f"{runs_text(late)} of {name} {'is' if late == 1 else 'are'} Late: nothing started "
                f"{'it' if late == 1 else 'them'}" + (f" from work pool {pool}" if pool else " (no work pool)"),
                subject=name,
                impact=f"{name} is not executing at all; everything it should move stays where it is.",
                evidence=evidence,
                advice=(f"Its concurrency limit of 0 refuses them: see prefect.deployment:{name}."
                        if deployment.concurrency_limit == 0 else f"See why in prefect.work_pool:{pool}." if pool
                        else f"The deployment is on no work pool: see prefect.deployment:{name}."),
            ))
        if problems:
            first = problems[0]
            also = [p.summary for p in problems[1:]]
            return first if not also else self.fail(
                f"{first.summary}; also: {'; '.join(also)}", subject=name, severity=first.severity,
                impact=first.impact, evidence={**evidence, **first.evidence}, fix=first.fix, advice=first.advice,
            )
        if rows_error is not None:
            return self.error(
                f"latest run {latest.name} of {name} COMPLETED, but could not tell whether it moved the rows "
                f"of {entry.moves.table}: {rows_error}",
                subject=name, evidence=evidence,
                impact="A run that completes without moving anything (the first incident) would go unseen.",
                advice="See the db findings.",
            )
        if latest is None:
            return self.ok(f"{name}: no finished runs yet, none Late", subject=name, evidence=evidence)
        return self.ok(f"{name}: latest run {latest.name} {latest.state_name or latest.state_type}, none Late",
                       subject=name, evidence=evidence)

    def _silent_failure(self, ctx: Context, budget: Budget, entry: DeploymentConfig,
                        run: prefect_runs.FlowRunInfo, evidence: dict[str, Any]) -> Finding | None:
        from pipectl.connectors.rows import rows_not_moved_since

        moves = entry.moves
        dsn = ctx.config.database.dsn
        if not dsn:
            evidence["rows_checked"] = False
            return None
        started = run.start_time or run.expected_start_time
        ended = run.end_time or datetime.now(UTC)
        if started is None:
            return None
        statuses = statuses_to_move(ctx.config, entry)
        table = state_table(ctx.config, moves.table)
        thresholds = dict(table.stuck_after) if table else {}
        since = {s: (started if s == moves.from_status else ended) for s in statuses}
        match = {table.group_by[0]: moves.step} if moves.step and table and table.group_by else None
        counts = rows_not_moved_since(
            dsn, moves.table, since, budget.left(),
            older_than={s: thresholds.get(s, GRACE) for s in statuses},
            status_column=table.status_column if table else "status",
            updated_column=table.updated_column if table else "updated_at",
            match=match,
            connect_timeout=ctx.config.database.connect_timeout,
        )
        evidence["rows_checked"] = True
        total = sum(counts.values())
        if not total:
            return None
        stuck = [s for s in statuses if counts.get(s)]
        return self.fail(
            f"latest run {run.name} of {entry.name} COMPLETED but {total} rows of {moves.table} are still "
            f"{'/'.join(stuck)}: it did not move them",
            subject=entry.name,
            severity=Severity.P0,
            impact="The run reports success while the rows it should advance sit still; nothing in Prefect "
                   "shows the failure (the swallowed error is in the run's logs).",
            evidence={
                **evidence,
                "run_id": run.id,
                "run_name": run.name,
                "state": run.state_type,
                "rows_not_moved": total,
                "statuses": stuck,
                "table": moves.table,
                "since": started.isoformat(timespec="seconds"),
            },
            advice=f"The swallowed error is in the run's logs: `{prefect_cli(ctx, 'flow-run', 'logs', run.id)}`.",
        )
