"""More failure drills, beyond the two incidents: what else goes wrong on this stack, done for real.

Each function breaks one thing on a running sandbox the way it breaks in production (through Prefect's
API, in Postgres, in SQS), never by editing pipectl's view of it. The registry is in `scenarios`.
"""

from __future__ import annotations

from typing import Any

from pipectl.sandbox import database, prefect_stack
from pipectl.sandbox.layout import ORCHESTRATOR, PROCESS_JOB, Layout, SandboxState
from pipectl.sandbox.prefect_procs import with_client
from pipectl.sandbox.prefect_stack import POOL, SECRET_TOKEN_ID, SECRET_TOKEN_SECRET

RUN_TIMEOUT = 90.0


def _late_run(state: SandboxState) -> None:
    """A run of the orchestrator that nothing starts, and its rows waiting past their threshold."""
    run_id = prefect_stack.trigger(state.prefect_api_url, ORCHESTRATOR)
    prefect_stack.wait_for_run(state.prefect_api_url, run_id, RUN_TIMEOUT, state_name="Late")
    database.age_rows(state.database_url, "PENDING", 15)


def _update_pool(state: SandboxState, **fields: Any) -> None:
    from prefect.client.schemas.actions import WorkPoolUpdate

    async def run(client):
        await client.update_work_pool(POOL, WorkPoolUpdate(**fields))

    with_client(state.prefect_api_url, run)


def _set_secret(state: SandboxState, name: str, value: str | None) -> None:
    """Give Secret block `name` this value, or delete it (None)."""
    from prefect.exceptions import ObjectNotFound

    async def run(client):
        if value is not None:
            return await prefect_stack._upsert_secret(client, name, value)
        try:
            block = await client.read_block_document_by_name(name, "secret", include_secrets=False)
        except ObjectNotFound:
            return None
        await client.delete_block_document(block.id)

    with_client(state.prefect_api_url, run)


def _orchestrator_env(state: SandboxState, **env: str) -> None:
    """The orchestrator's job variables with these env entries instead of the healthy ones."""
    variables = prefect_stack.healthy_job_variables()
    variables["env"].update(env)
    prefect_stack.set_job_variables(state.prefect_api_url, ORCHESTRATOR, variables)


def pool_paused(layout: Layout, state: SandboxState) -> None:
    _update_pool(state, is_paused=True)
    _late_run(state)


def pool_concurrency_zero(layout: Layout, state: SandboxState) -> None:
    _update_pool(state, concurrency_limit=0)
    _late_run(state)


def queue_paused(layout: Layout, state: SandboxState) -> None:
    """The pool's default work queue is paused (the pool itself is not): its runs go Late."""

    async def run(client):
        queue = await client.read_work_queue_by_name("default", work_pool_name=POOL)
        await client.update_work_queue(queue.id, is_paused=True)

    with_client(state.prefect_api_url, run)
    _late_run(state)


def deployment_paused(layout: Layout, state: SandboxState) -> None:
    prefect_stack.pause_deployment(state.prefect_api_url, ORCHESTRATOR)


def deployment_concurrency_zero(layout: Layout, state: SandboxState) -> None:
    """The orchestrator's concurrency limit set to 0: Prefect's deployment API refuses a 0, so it is set where
    the UI's Concurrency page and `prefect global-concurrency-limit update` set it, on the deployment's own
    global concurrency limit (`deployment:<id>`, created by giving it a limit of 1 first). The server then
    refuses to start any of its runs: they go Late while the worker is fine, and the rows wait."""
    from prefect.client.schemas.actions import DeploymentUpdate, GlobalConcurrencyLimitUpdate

    async def run(client):
        deployment = await client.read_deployment_by_name(ORCHESTRATOR)
        await client.update_deployment(deployment.id, DeploymentUpdate(concurrency_limit=1))
        await client.update_global_concurrency_limit(f"deployment:{deployment.id}",
                                                     GlobalConcurrencyLimitUpdate(limit=0))

    with_client(state.prefect_api_url, run)
    _late_run(state)


def deployment_wrong_pool(layout: Layout, state: SandboxState) -> None:
    from prefect.client.schemas.actions import DeploymentUpdate, WorkPoolCreate

    async def run(client):
        await client.create_work_pool(WorkPoolCreate(name="default-agent-pool", type="process"), overwrite=True)
        deployment = await client.read_deployment_by_name(PROCESS_JOB)
        await client.update_deployment(deployment.id, DeploymentUpdate(work_pool_name="default-agent-pool"))

    with_client(state.prefect_api_url, run)


def secret_block_missing(layout: Layout, state: SandboxState) -> None:
    _set_secret(state, SECRET_TOKEN_SECRET, None)


def secret_block_empty(layout: Layout, state: SandboxState) -> None:
    _set_secret(state, SECRET_TOKEN_ID, "")


def secret_block_newline(layout: Layout, state: SandboxState) -> None:
    _set_secret(state, SECRET_TOKEN_SECRET, state.modal_token_secret + "\n")


def secret_block_typo(layout: Layout, state: SandboxState) -> None:
    typo = SECRET_TOKEN_SECRET.replace("secret", "secert")
    _orchestrator_env(state, MODAL_TOKEN_SECRET=f"{{{{ prefect.blocks.secret.{typo} }}}}")


def token_in_plain_text(layout: Layout, state: SandboxState) -> None:
    _orchestrator_env(state, MODAL_TOKEN_SECRET=state.modal_token_secret)


def half_a_token(layout: Layout, state: SandboxState) -> None:
    variables = prefect_stack.healthy_job_variables()
    del variables["env"]["MODAL_TOKEN_SECRET"]
    prefect_stack.set_job_variables(state.prefect_api_url, ORCHESTRATOR, variables)


def literal_token_rejected(layout: Layout, state: SandboxState) -> None:
    _orchestrator_env(state, MODAL_TOKEN_ID=state.modal_token_id, MODAL_TOKEN_SECRET="as-" + "7" * 32)
    _set_secret(state, SECRET_TOKEN_ID, None)
    _set_secret(state, SECRET_TOKEN_SECRET, None)


def stuck_queued(layout: Layout, state: SandboxState) -> None:
    database.set_status(state.database_url, "QUEUED")
    database.age_rows(state.database_url, "QUEUED", 20)


def stuck_no_timestamp(layout: Layout, state: SandboxState) -> None:
    database.set_status(state.database_url, "IN_PROGRESS")
    database.clear_timestamps(state.database_url, "IN_PROGRESS")


def pool_deleted(layout: Layout, state: SandboxState) -> None:
    prefect_stack.stop_worker(layout.run_dir)

    async def run(client):
        await client.delete_work_pool(POOL)

    with_client(state.prefect_api_url, run)


def token_id_block_renamed(layout: Layout, state: SandboxState) -> None:
    """Someone renamed the block in the UI: the old name is gone, the value lives on under a new one."""
    _set_secret(state, SECRET_TOKEN_ID, None)
    _set_secret(state, "modal-token-id-prod", state.modal_token_id)


def zombie_run(layout: Layout, state: SandboxState) -> None:
    """A run RUNNING for three hours with nothing behind it, as after a crashed machine took its process
    and worker along. Prefect sets start times itself, so the run is aged in the server's own database,
    as other drills age rows in Postgres."""
    import sqlite3
    from datetime import UTC, datetime, timedelta

    from prefect.states import Running

    async def run(client) -> str:
        deployment = await client.read_deployment_by_name(ORCHESTRATOR)
        return str((await client.create_flow_run_from_deployment(deployment.id, state=Running())).id)

    run_id = with_client(state.prefect_api_url, run)
    started = (datetime.now(UTC) - timedelta(hours=3)).replace(tzinfo=None).isoformat(sep=" ")
    with sqlite3.connect(layout.prefect_home / "prefect.db", timeout=30) as db:
        db.execute("UPDATE flow_run SET start_time = ?, expected_start_time = ? WHERE id = ?",
                   (started, started, run_id))


def dlq_deleted(layout: Layout, state: SandboxState) -> None:
    """The dead-letter queue was deleted; the queue's RedrivePolicy still names it."""
    from pipectl.sandbox import queues

    queues.client(state.sqs_endpoint).delete_queue(QueueUrl=state.dlq_url)


def redrive_to_nowhere(layout: Layout, state: SandboxState) -> None:
    """The RedrivePolicy names a dead-letter queue that was deleted since (SQS checks the target only when
    the policy is set); the configured one still exists."""
    import json

    from pipectl.sandbox import queues

    sqs = queues.client(state.sqs_endpoint)
    old_url = sqs.create_queue(QueueName="job-queue-dlq-old")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=old_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = {"deadLetterTargetArn": arn, "maxReceiveCount": "3"}
    sqs.set_queue_attributes(QueueUrl=state.queue_url, Attributes={"RedrivePolicy": json.dumps(policy)})
    sqs.delete_queue(QueueUrl=old_url)


def redrive_policy_removed(layout: Layout, state: SandboxState) -> None:
    """The queue lost its RedrivePolicy: failing messages are retried until they expire, then dropped."""
    from pipectl.sandbox import queues

    queues.client(state.sqs_endpoint).set_queue_attributes(QueueUrl=state.queue_url,
                                                           Attributes={"RedrivePolicy": ""})
