"""unblock-job-pipeline — the second incident's repair, as one command."""

from __future__ import annotations

from pipectl.errors import UsageError
from pipectl.interface import Playbook, PlaybookContext
from pipectl.repair import Step


class UnblockJobPipeline(Playbook):
    """Jobs pile up because a deployment was never registered and their messages went to the DLQ.

    Steps: register every configured deployment that Prefect lacks (from its config entry); move the
    dead-letter queues' messages back to their queues; verify with the deployment and DLQ checks.
    """

    name = "unblock-job-pipeline"

    def steps(self, ctx: PlaybookContext) -> list[Step]:
        from pipectl.repairs.redrive import Redrive
        from pipectl.repairs.register import RegisterDeployment
        from pipectl.repairs.verify_checks import VerifyChecks

        config = ctx.config
        registrable = [d for d in config.prefect.deployments if d.entrypoint and d.source and d.work_pool]
        queues = [q for q in config.queues if q.url and q.dlq_url]
        if not registrable and not queues:
            raise UsageError("unblock-job-pipeline needs deployments with entrypoint/source/work_pool, "
                             "or queues with a dlq_url, in the config")
        steps = [Step(f"register {d.name}", RegisterDeployment(config, d.name)) for d in registrable]
        steps += [Step(f"redrive {q.name or q.url}", Redrive(config, q.name or q.url, ctx.environ,
                                                             progress=ctx.progress)) for q in queues]
        steps.append(Step("verify with checks", VerifyChecks(config, ctx.environ, ["prefect.deployment", "sqs.dlq"])))
        return steps
