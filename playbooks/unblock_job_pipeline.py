"""unblock-job-pipeline — the second incident's repair, as one command."""

from __future__ import annotations

from pipectl.errors import UsageError
from pipectl.interface import Playbook, PlaybookContext
from pipectl.repair import Step

SETTLE_SECONDS = 180.0
"""How long the final verification waits for the pending jobs to move through subscriber and worker."""
VERIFIED_BY = ["service.env", "service.queue", "prefect.deployment", "sqs.dlq", "db.stuck"]


class UnblockJobPipeline(Playbook):
    """Jobs pile up `pending` because the services that carry them are misconfigured, the deployment that
    runs them was never registered, and their messages went to the dead-letter queue.

    Steps: register every configured deployment Prefect lacks; put back the variables the hosted services
    lack (where the config or this environment has their values) and redeploy them; point services at the
    configured queue; move the dead-letter queues' messages back; then verify — the checks pass
    and the pending jobs reached their final status through the real subscriber and worker.
    """

    name = "unblock-job-pipeline"

    def steps(self, ctx: PlaybookContext) -> list[Step]:
        from pipectl.repairs.redrive import Redrive
        from pipectl.repairs.register import RegisterDeployment
        from pipectl.repairs.verify_checks import VerifyChecks

        config = ctx.config
        registrable = [d for d in config.prefect.deployments if d.entrypoint and d.source and d.work_pool]
        queues = [q for q in config.queues if q.url and q.dlq_url]
        if not registrable and not queues and not config.services:
            raise UsageError("unblock-job-pipeline needs [[services]], deployments with entrypoint/source/"
                             "work_pool, or queues with a dlq_url, in the config")
        # registered first: a subscriber brought back must not dead-letter what it takes before then
        steps = [Step(f"register {d.name}", RegisterDeployment(config, d.name)) for d in registrable]
        steps += _service_steps(ctx)
        steps += [Step(f"redrive {q.name or q.url}", Redrive(config, q.name or q.url, ctx.environ,
                                                             progress=ctx.progress)) for q in queues]
        steps.append(Step("verify: checks pass and pending jobs reach their final status", VerifyChecks(
            config, ctx.environ, VERIFIED_BY, until=SETTLE_SECONDS, moving=lambda: _in_motion(ctx),
            progress=ctx.progress)))
        return steps


def _in_motion(ctx: PlaybookContext) -> bool:
    """Whether work is still on its way: messages in the queues, or runs scheduled, pending or running."""
    from pipectl.connectors import prefect, prefect_runs, sqs

    config = ctx.config
    for queue in config.queues:
        if queue.url:
            stats = sqs.queue_stats(queue.url, endpoint_url=config.aws.endpoint_url, region=config.aws.region,
                                    timeout=5.0, environ=config.aws.environ(ctx.environ))
            if stats.visible + stats.in_flight:
                return True
    api = (config.prefect.api_url, config.prefect.api_key)
    if not api[0]:
        return False
    timeout = config.prefect.timeout
    ids = [d.id for entry in config.prefect.deployments
           if (d := prefect.read_deployment(*api, entry.name, timeout=timeout)) is not None]
    return bool(ids) and prefect_runs.count_moving_runs(*api, ids, timeout=timeout) > 0


def _service_steps(ctx: PlaybookContext) -> list[Step]:
    """One step per hosted service with variables to put back, judged by the very checks doctor runs."""
    from pipectl.errors import PipectlError
    from pipectl.repairs.service_env import SetServiceEnv, parse_assignments
    from pipectl.repairs.verify_checks import run_selected
    from pipectl.services import value_source

    if not ctx.config.services:
        return []
    result = run_selected(ctx.config, ctx.environ, ["service.env", "service.queue"], ctx.config.doctor.timeout)
    keys: dict[str, list[str]] = {}
    for finding in result.findings:
        if finding.status.value == "fail":
            wrong = finding.evidence.get("missing") or finding.evidence.get("keys") or []
            keys.setdefault(finding.subject, []).extend(k for k in wrong if k not in keys.get(finding.subject, []))
    steps = []
    for service, names in keys.items():
        try:
            values = parse_assignments([value_source(ctx.config, k) for k in names], ctx.environ)
        except PipectlError as exc:  # a value only a person has: verification will say what is left
            ctx.progress(f"{service}: not set by this playbook: {exc}")
            continue
        steps.append(Step(f"set {', '.join(names)} on {service} and redeploy",
                          SetServiceEnv(ctx.config, service, values, ctx.environ)))
    return steps
