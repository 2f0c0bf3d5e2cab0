"""prefect.deployment — every deployment the pipeline triggers is registered, active and on its pool."""

from __future__ import annotations

import shlex

from pipectl.checks.prefect_api import Budget, DeploymentsCheck, api, prefect_curl

from pipectl.connectors import prefect as prefect_api
from pipectl.interface import Context
from pipectl.model import Finding, Severity


class PrefectDeployment(DeploymentsCheck):
    """Detects: a deployment listed under [[prefect.deployments]] that Prefect does not have, that is
    paused, that runs on another work pool than the config says, or whose work pool does not exist.

    Why it matters: triggering a deployment that is not registered fails (the second incident: every
    `process_job/production` job went to the dead-letter queue); a paused deployment or one bound to a
    missing pool never starts a run, and nothing says so.

    Fix: `pipectl deploy register FLOW/DEPLOYMENT` registers a missing one from its config entry; a
    paused one is resumed in the Prefect UI or with the API call the finding shows; a pool mismatch
    is fixed in pipectl.toml or by redeploying to the right pool.
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
            }
            problems: list[tuple[str, str, str, list[str], str]] = []  # (problem, summary, impact, fix, advice)
            if deployment.paused:
                problems.append((
                    "paused", f"deployment {name} is paused",
                    f"No scheduled run of {name} starts until it is resumed.",
                    [_resume_command(ctx, deployment.id)], "",
                ))
            if entry.work_pool and pool != entry.work_pool:
                problems.append((
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
                    problems.append((
                        "work_pool_missing", f"deployment {name} runs on work pool {pool}, which does not exist",
                        f"No worker can ever pick up a run of {name}.",
                        [f"prefect work-pool create {shlex.quote(pool)} --type process"],
                        "Use the pool type production uses (process, docker, kubernetes, prefect:managed …) "
                        "and start a worker on it.",
                    ))
            if not problems:
                findings.append(self.ok(
                    f"deployment {name} is registered on work pool {pool or '(none)'}",
                    subject=name, evidence=evidence,
                ))
                continue
            kinds = [p[0] for p in problems]
            findings.append(self.fail(
                "; ".join(p[1] for p in problems),
                subject=name,
                impact=problems[0][2],
                evidence={**evidence, "problem": kinds[0], "problems": kinds},
                fix=[command for p in problems for command in p[3]],
                advice=" ".join(p[4] for p in problems if p[4]),
            ))
        return findings


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
