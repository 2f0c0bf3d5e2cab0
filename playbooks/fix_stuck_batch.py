"""fix-stuck-batch — the first incident's repair, as one command."""

from __future__ import annotations

from pipectl.config import DeploymentConfig, PipelineConfig, StateTable
from pipectl.errors import UsageError
from pipectl.interface import Playbook, PlaybookContext
from pipectl.repair import Step
from pipectl.repairs.secrets import block_name_for, block_template


class FixStuckBatch(Playbook):
    """Rows stuck in QUEUED because the deployment that dispatches them runs without its credentials.

    Steps: copy each required credential from the local environment into a Prefect Secret block; merge
    `env` references to those blocks into the deployment's job variables; reset the stuck rows to the
    status the orchestrator picks up; trigger the deployment and wait; verify the rows moved on and the
    checks pass. Needs a [[prefect.deployments]] entry with `required_env` and `moves`.
    """

    name = "fix-stuck-batch"

    def steps(self, ctx: PlaybookContext) -> list[Step]:
        from pipectl.repairs.patch import PatchJobVariables
        from pipectl.repairs.reset import ResetRows
        from pipectl.repairs.secret import SetSecretBlock
        from pipectl.repairs.trigger import TriggerRun
        from pipectl.repairs.verify_checks import VerifyChecks

        config = ctx.config
        deployment = _dispatching_deployment(config)
        moves = deployment.moves
        table = _state_table(config, moves.table)
        steps = []
        for key in deployment.required_env:
            value = ctx.environ.get(key)
            if not value:
                raise UsageError(f"{key} is not set here: fix-stuck-batch copies it into Secret block "
                                 f"{block_name_for(key)} (export it, or add it to the config's env file)")
            steps.append(Step(f"Secret block {block_name_for(key)} from ${key}",
                              SetSecretBlock(config, block_name_for(key), value)))
        env = {key: block_template(block_name_for(key)) for key in deployment.required_env}
        steps.append(Step(f"patch {deployment.name} env", PatchJobVariables(config, deployment.name, env)))
        for status in _stuck_between(table, moves.from_status, moves.to_status):
            steps.append(Step(f"reset {status} → {moves.from_status}",
                              ResetRows(config, table, status, moves.from_status, step=moves.step,
                                        progress=lambda done, total: None)))
        steps.append(Step(f"trigger {deployment.name} and wait",
                          TriggerRun(config, deployment.name, name="pipectl-fix-stuck-batch", wait=True,
                                     timeout_s=600, watch=ctx.progress)))
        steps.append(Step("verify with checks", VerifyChecks(
            config, ctx.environ, ["prefect.job_variables", "db.stuck", "modal.auth"])))
        return steps


def _dispatching_deployment(config: PipelineConfig) -> DeploymentConfig:
    for deployment in config.prefect.deployments:
        if deployment.required_env and deployment.moves:
            return deployment
    raise UsageError("fix-stuck-batch needs a [[prefect.deployments]] entry with required_env and moves "
                     "(the deployment that dispatches the stuck rows)")


def _state_table(config: PipelineConfig, name: str) -> StateTable:
    for table in config.state_tables:
        if table.table == name:
            return table
    raise UsageError(f"moves.table {name} has no [[state_tables]] entry")


def _stuck_between(table: StateTable, from_status: str, to_status: str | None) -> list[str]:
    """The statuses a row passes between being picked up and being worked on (QUEUED, in the incident)."""
    between = [s for s in table.stuck_after if s not in (from_status, to_status)]
    if not between:
        raise UsageError(f"{table.table}: stuck_after names no status between {from_status} and {to_status}")
    return between
