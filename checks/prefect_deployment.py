"""prefect.deployment — every deployment the pipeline triggers is registered, active and on its pool, and its
concurrency limit lets its runs start."""

from __future__ import annotations

import shlex
from datetime import UTC, datetime
from typing import Any, NamedTuple

from pipectl.checks.prefect_api import Budget, DeploymentsCheck, api, prefect_cli, prefect_curl, runs_text
from pipectl.checks.prefect_stalled import HISTORY, allowed_runtime

from pipectl.connectors import prefect as prefect_api
from pipectl.connectors import prefect_runs
from pipectl.durations import format_duration
from pipectl.interface import Context
from pipectl.model import Finding, Severity

WAITING_PAGE = 200
"""Runs read at most when counting those waiting for a slot, or holding one."""


class Problem(NamedTuple):
    kind: str  # the evidence's `problem`
    summary: str
    impact: str
    fix: list[str]
    advice: str = ""


class PrefectDeployment(DeploymentsCheck):
    """Detects: a deployment listed under [[prefect.deployments]] that Prefect does not have, that is
    paused, that runs on another work pool than the config says, or whose work pool does not exist; one
    whose concurrency limit is 0 (Prefect refuses every run) or disabled while runs wait for it; and one
    whose slots are all taken while its runs have waited for one (state `AwaitingConcurrencySlot`) longer
    than its runs take (`max_runtime`, else as prefect.stalled judges), naming slots no run holds.

    Why it matters: triggering a deployment that is not registered fails (the second incident: every
    `process_job/production` job went to the dead-letter queue); a paused deployment, one bound to a
    missing pool or one whose limit lets no run start never starts a run, and nothing says so: its runs
    go Late as if no worker were there, or wait for a slot for ever.

    Fix: `pipectl deploy register FLOW/DEPLOYMENT` registers a missing one from its config entry; a
    paused one is resumed in the Prefect UI or with the API call the finding shows; a pool mismatch
    is fixed in pipectl.toml or by redeploying to the right pool; a limit of 0 (or disabled) is removed
    with `prefect global-concurrency-limit delete deployment:ID`, and slots no run holds are given back
    with `prefect global-concurrency-limit update deployment:ID --active-slots N`.
    """

    id = "prefect.deployment"

    def run(self, ctx: Context) -> list[Finding]:
        budget = Budget(ctx)
        pools: dict[str, bool] = {}  # pool name → exists, read once per pool
        findings = []
        for entry in ctx.config.prefect.deployments:
            name = entry.name
            deployment = prefect_api.read_deployment(*api(ctx), name, timeout=budget.left())
            if deployment is None:
                findings.append(self.fail(
                    f"deployment {name} is not registered",
                    subject=name,
                    severity=Severity.P0,  # every trigger fails: all its work stops
                    impact=f"Every trigger of {name} fails; its work piles up (or lands in a dead-letter queue).",
                    evidence={"deployment": name, "problem": "not_registered"},
                    **_register(entry),
                ))
                continue
            pool = deployment.work_pool_name
            evidence = {
                "deployment": name,
                "deployment_id": deployment.id,
                "paused": deployment.paused,
                "status": deployment.status,
                "work_pool": pool,
                "concurrency_limit": deployment.concurrency_limit,
                "concurrency_limit_active": deployment.concurrency_active,
                "concurrency_limit_name": deployment.concurrency_limit_name,
                "concurrency_slots_taken": deployment.concurrency_slots_taken,
            }
            problems: list[Problem] = []
            if deployment.paused:
                problems.append(Problem(
                    "paused", f"deployment {name} is paused",
                    f"No scheduled run of {name} starts until it is resumed.",
                    [_resume_command(ctx, deployment.id)],
                ))
            if entry.work_pool and pool != entry.work_pool:
                problems.append(Problem(
                    "work_pool_mismatch",
                    f"deployment {name} runs on work pool {pool or '(none)'}, the config says {entry.work_pool}",
                    f"Its runs go to {pool or 'no pool'}, where the pipeline's workers do not look.",
                    [prefect_curl(ctx, "PATCH", f"/deployments/{deployment.id}", {"work_pool_name": entry.work_pool})],
                    (f'If {pool} is the right pool, set work_pool = "{pool}" for it in {ctx.config.source.path} '
                     "instead." if pool else ""),
                ))
            if pool:
                if pool not in pools:
                    pools[pool] = prefect_api.read_work_pool(*api(ctx), pool, timeout=budget.left()) is not None
                if not pools[pool]:
                    problems.append(Problem(
                        "work_pool_missing", f"deployment {name} runs on work pool {pool}, which does not exist",
                        f"No worker can ever pick up a run of {name}.",
                        [f"prefect work-pool create {shlex.quote(pool)} --type process"],
                        "Use the pool type production uses (process, docker, kubernetes, prefect:managed …) "
                        "and start a worker on it.",
                    ))
            if deployment.concurrency_limit is not None:
                problems += _concurrency(ctx, budget, entry, deployment, evidence)
            if not problems:
                findings.append(self.ok(
                    f"deployment {name} is registered on work pool {pool or '(none)'}",
                    subject=name, evidence=evidence,
                ))
                continue
            kinds = [p.kind for p in problems]
            findings.append(self.fail(
                "; ".join(p.summary for p in problems),
                subject=name,
                # runs waiting behind runs that still hold the slots are late, not stopped
                severity=Severity.P1 if kinds == ["concurrency_full"] else self.severity,
                impact=problems[0].impact,
                evidence={**evidence, "problem": kinds[0], "problems": kinds},
                fix=[command for p in problems for command in p.fix],
                advice=" ".join(p.advice for p in problems if p.advice),
            ))
        return findings


def _concurrency(ctx: Context, budget: Budget, entry: Any, deployment: prefect_api.DeploymentInfo,
                 evidence: dict[str, Any]) -> list[Problem]:
    """What the deployment's concurrency limit does to its runs; adds what it read to `evidence`."""
    name, limit, gcl = entry.name, deployment.concurrency_limit, deployment.concurrency_limit_name
    own = gcl == f"deployment:{deployment.id}"  # its own limit: removing it touches nothing else
    if gcl is None:  # a server that keeps the limit as a plain number on the deployment
        remove = [prefect_curl(ctx, "PATCH", f"/deployments/{deployment.id}", {"concurrency_limit": None})]
    else:
        remove = [prefect_cli(ctx, "global-concurrency-limit", "delete", gcl)] if own else []
    shared = (f"{name} shares the global concurrency limit {gcl} with whatever else names it: set it to what "
              f"they need (`prefect global-concurrency-limit update {shlex.quote(gcl)} --limit N`), or give "
              f"{name} a limit of its own." if gcl and not own else "")
    if limit == 0:
        late = prefect_runs.count_late_runs(*api(ctx), deployment_id=deployment.id, timeout=budget.left())
        evidence["late_runs"] = late
        return [Problem(
            "concurrency_zero",
            f"deployment {name} has a concurrency limit of 0: none of its runs can start"
            + (f"; {runs_text(late)} Late" if late else ""),
            f"Prefect refuses to start any run of {name}: they stay Scheduled and go Late, and the work they "
            "should do waits.",
            remove,
            shared or (f"Or set the limit it needs instead: `prefect global-concurrency-limit update "
                       f"{shlex.quote(gcl)} --limit N`." if own else ""),
        )]
    waiting = prefect_runs.recent_flow_runs(*api(ctx), deployment.id, limit=WAITING_PAGE, timeout=budget.left(),
                                            state_types=("SCHEDULED",), state_names=(prefect_api.AWAITING_SLOT,))
    if not waiting:
        return []
    now = datetime.now(UTC)
    waited = now - min(r.expected_start_time or now for r in waiting)
    evidence.update(awaiting_slot=len(waiting), awaiting_slot_for=format_duration(waited))
    queue = f"{runs_text(len(waiting))} waiting for a slot, the oldest for {format_duration(waited)}"
    if not deployment.concurrency_active:
        return [Problem(
            "concurrency_disabled",
            f"deployment {name}'s concurrency limit is disabled, which Prefect does not take as no limit: none "
            f"of its runs starts ({queue})",
            f"No run of {name} starts: each waits for a slot of a disabled limit, for ever.",
            remove,
            shared or (f"Or enable it again: `prefect global-concurrency-limit enable {shlex.quote(gcl)}`."
                       if own else ""),
        )]
    taken = deployment.concurrency_slots_taken
    if taken is not None and taken < limit:
        return []  # a slot is free: the worker's next poll starts the oldest
    finished = prefect_runs.recent_flow_runs(*api(ctx), deployment.id, limit=HISTORY, timeout=budget.left(),
                                             state_types=("COMPLETED",))
    allowed = allowed_runtime(entry.max_runtime, finished)
    if waited <= allowed:
        return []
    holders = prefect_runs.recent_flow_runs(*api(ctx), deployment.id, limit=WAITING_PAGE, timeout=budget.left(),
                                            state_types=("PENDING", "RUNNING", "CANCELLING"))
    evidence.update(awaiting_slot_allowed=format_duration(allowed), slot_holders=[r.id for r in holders])
    if own and taken is not None and len(holders) < taken:
        return [Problem(
            "concurrency_slots_leaked",
            f"deployment {name}: {taken - len(holders)} of its {limit} concurrency slot(s) are held by no run; "
            f"{queue}",
            f"{name} runs fewer runs at once than its limit allows (none when no slot is left) while its runs "
            "wait.",
            [prefect_cli(ctx, "global-concurrency-limit", "update", gcl, "--active-slots", str(len(holders)))],
        )]
    held = ", ".join(r.name for r in holders[:5]) or "runs Prefect does not list"
    raise_it = (f": `prefect global-concurrency-limit update {shlex.quote(gcl)} --limit N`." if gcl else ".")
    return [Problem(
        "concurrency_full",
        f"deployment {name}: all {limit} of its concurrency slot(s) are taken (by {held}) and {queue}, longer "
        f"than its runs take ({format_duration(allowed)})",
        f"Runs of {name} wait behind the runs holding its slots; the work they should do waits with them.",
        [],
        "If the runs holding the slots are stuck, prefect.stalled names them: cancelling them frees the slots. "
        f"If they are working, raise the limit{raise_it}",
    )]


def _resume_command(ctx: Context, deployment_id: str) -> str:
    """Prefect 3's CLI has no "resume deployment" (only per-schedule commands): the API call itself."""
    return prefect_curl(ctx, "PATCH", f"/deployments/{deployment_id}", {"paused": False})


def _register(entry) -> dict:
    """`pipectl deploy register` needs entrypoint, source and work_pool in the config entry."""
    lacking = [key for key in ("entrypoint", "source", "work_pool") if not getattr(entry, key)]
    command = f"pipectl deploy register {shlex.quote(entry.name)}"
    if lacking:
        return {"advice": f"Add {', '.join(lacking)} to its [[prefect.deployments]] entry, then `{command}`."}
    return {"fix": [command]}
