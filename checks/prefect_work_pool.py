"""prefect.work_pool — the pipeline's work pools exist, are not paused, and a live worker polls them."""

from __future__ import annotations

from datetime import UTC, datetime

from pipectl.checks.prefect_api import Budget, DeploymentsCheck, api, prefect_cli, runs_text

from pipectl.connectors import prefect as prefect_api
from pipectl.connectors import prefect_runs
from pipectl.interface import Context
from pipectl.model import Finding


class PrefectWorkPool(DeploymentsCheck):
    """Detects: a work pool used by the configured deployments that does not exist, is paused, has
    no live worker, a concurrency limit of 0, a work queue that is paused or limited to 0, or holds Late
    runs. A worker is live when Prefect reports it ONLINE: a heartbeat within 3× its heartbeat interval
    (90 s by default). Late runs with a worker that still looks ONLINE mean that worker died moments ago,
    hangs, or the pool's concurrency limit is reached. Late runs of a deployment whose own concurrency limit
    is 0 are not counted: no worker could start them (prefect.deployment names that).

    Why it matters: runs of a pool nobody polls are never started; they go Late and the rows they
    should move stay PENDING, while every deployment looks fine.

    Fix: start a worker for the pool (`prefect worker start --pool POOL`), resume a paused pool or queue
    (`prefect work-pool resume POOL`, `prefect work-queue resume QUEUE --pool POOL`), or clear a limit of 0.
    """

    id = "prefect.work_pool"

    def run(self, ctx: Context) -> list[Finding]:
        budget = Budget(ctx)
        pools: dict[str, list[str]] = {}  # pool → deployments using it
        for entry in ctx.config.prefect.deployments:
            pool = entry.work_pool
            if pool is None:
                deployment = prefect_api.read_deployment(*api(ctx), entry.name, timeout=budget.left())
                pool = deployment.work_pool_name if deployment else None
            if pool:
                pools.setdefault(pool, []).append(entry.name)
        if not pools:
            return [self.skipped("no configured deployment names a work pool, and none registered has one")]
        return [self._pool(ctx, budget, pool, users) for pool, users in pools.items()]

    def _pool(self, ctx: Context, budget: Budget, name: str, users: list[str]) -> Finding:
        info = prefect_api.read_work_pool(*api(ctx), name, timeout=budget.left())
        start = prefect_cli(ctx, "worker", "start", "--pool", name)
        if info is None:
            return self.fail(
                f"work pool {name} does not exist",
                subject=name,
                impact=f"No run of {', '.join(users)} can ever start.",
                evidence={"pool": name, "deployments": users, "problem": "missing"},
                fix=[prefect_cli(ctx, "work-pool", "create", name, "--type", "process"), start],
                advice="Use the pool type production uses (process, docker, kubernetes, prefect:managed …); "
                       "the worker keeps running: start it where workers run.",
            )
        late = prefect_runs.count_late_runs(*api(ctx), pool=name, timeout=budget.left())
        now = datetime.now(UTC)
        live = [w for w in info.workers if w.status == "ONLINE" and w.last_heartbeat is not None]
        newest = max((w.last_heartbeat for w in info.workers if w.last_heartbeat), default=None)
        evidence = {
            "pool": name,
            "type": info.type,
            "status": info.status,
            "paused": info.paused,
            "deployments": users,
            "workers": [w.name for w in info.workers],
            "live_workers": [w.name for w in live],
            "last_heartbeat_s": round((now - newest).total_seconds(), 1) if newest else None,
            "late_runs": late,
            "concurrency_limit": info.concurrency_limit,
        }
        impact = f"Runs of {', '.join(users)} are not started; the rows they should move stay where they are."
        if info.paused:
            return self.fail(
                f"work pool {name} is paused" + (f"; {runs_text(late)} Late" if late else ""),
                subject=name, impact=impact, evidence={**evidence, "problem": "paused"},
                fix=[prefect_cli(ctx, "work-pool", "resume", name)],
            )
        if not live:
            seen = f"last heartbeat {evidence['last_heartbeat_s']:g}s ago" if newest else "no worker ever seen"
            return self.fail(
                f"no worker polls work pool {name} ({seen})" + (f"; {runs_text(late)} Late" if late else ""),
                subject=name, impact=impact, evidence={**evidence, "problem": "no_worker"},
                fix=[start], advice="The worker keeps running: start it where the pipeline's workers run.",
            )
        # a queue that starts nothing matters when runs wait, or when it is the one deployments land in
        blocked = [q for q in info.queues
                   if (q.paused or q.concurrency_limit == 0) and (late or q.name == "default")]
        if blocked:
            queue = blocked[0]
            why = "is paused" if queue.paused else "has a concurrency limit of 0"
            return self.fail(
                f"work queue {queue.name} of pool {name} {why}: its runs never start"
                + (f"; {runs_text(late)} Late" if late else ""),
                subject=name, impact=impact,
                evidence={**evidence, "problem": "queue_blocked", "blocked_queues": [q.name for q in blocked]},
                fix=[prefect_cli(ctx, "work-queue", "resume" if q.paused else "clear-concurrency-limit", q.name,
                                 "--pool", name) for q in blocked],
            )
        if info.concurrency_limit == 0:
            return self.fail(
                f"work pool {name} has a concurrency limit of 0: no run can start"
                + (f"; {runs_text(late)} Late" if late else ""),
                subject=name, impact=impact, evidence={**evidence, "problem": "concurrency_zero"},
                fix=[prefect_cli(ctx, "work-pool", "clear-concurrency-limit", name)],
                advice="Or set the limit production needs: `prefect work-pool set-concurrency-limit "
                       f"{name} N`.",
            )
        held = _held_by_deployment_limits(ctx, budget, users) if late else {}
        if held:  # runs no worker could start say nothing about the workers
            evidence["late_runs_held_by"] = held
            late = max(late - sum(held.values()), 0)
        if held and not late:
            return self.ok(
                f"work pool {name}: {len(live)} live worker(s); its Late runs are {', '.join(held)}'s, whose "
                "concurrency limit of 0 refuses them (see prefect.deployment)",
                subject=name, evidence=evidence,
            )
        if late:
            limit = (f", or the pool's concurrency limit ({info.concurrency_limit}) is reached"
                     if info.concurrency_limit is not None else "")
            names = ", ".join(w.name for w in live)
            return self.fail(
                f"no worker picks up runs from work pool {name}: {runs_text(late)} Late while {names} still "
                f"counts as ONLINE (last heartbeat {evidence['last_heartbeat_s']:g}s ago): it stopped "
                f"moments ago or hangs{limit}",
                subject=name, impact=impact, evidence={**evidence, "problem": "late_runs"},
                fix=[start], advice="Look at the worker's log first: a worker that hangs must be restarted.",
            )
        return self.ok(
            f"work pool {name}: {len(live)} live worker(s), no Late runs",
            subject=name, evidence=evidence,
        )


def _held_by_deployment_limits(ctx: Context, budget: Budget, users: list[str]) -> dict[str, int]:
    """Late runs, by deployment, that the deployment's own concurrency limit of 0 keeps from starting:
    no worker could start them, so they say nothing about the pool's workers."""
    held = {}
    for user in users:
        deployment = prefect_api.read_deployment(*api(ctx), user, timeout=budget.left())
        if deployment is not None and deployment.concurrency_limit == 0:
            held[user] = prefect_runs.count_late_runs(*api(ctx), deployment_id=deployment.id, timeout=budget.left())
    return {user: late for user, late in held.items() if late}
