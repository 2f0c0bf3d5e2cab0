"""Failure drills: each reproduces, for real, one failure of the two incidents on a running sandbox.

A drill that leaves rows stuck also moves their `updated_at` back past the config's thresholds, so the
symptom is visible at once instead of after ten minutes of waiting.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pipectl.sandbox import config_file, database, drills, job_drills, prefect_stack, queues, stack
from pipectl.sandbox.layout import (
    MODAL_APP,
    ORCHESTRATOR,
    PROCESS_JOB,
    SITE,
    SUBSCRIBER,
    WORKER_SERVICE,
    Layout,
    SandboxState,
)
from pipectl.sandbox.prefect_stack import POOL, SECRET_TOKEN_ID, SECRET_TOKEN_SECRET

RUN_TIMEOUT = 90.0


@dataclass(frozen=True)
class Scenario:
    """One drill: what it breaks, the finding that must name the cause, and whether commands can heal it."""

    name: str
    description: str
    apply: Callable[[Layout, SandboxState], None]
    cause: str = ""
    """The id of the root-cause finding doctor must report."""
    needs_person: str = ""
    """Why no printed command can heal it (a value only a person has, code to deploy); '' when the
    commands doctor prints for the cause must heal it (the fix-verification tests run them)."""


def _run_orchestrator(state: SandboxState) -> str:
    run_id = prefect_stack.trigger(state.prefect_api_url, ORCHESTRATOR)
    final = prefect_stack.wait_for_run(state.prefect_api_url, run_id, RUN_TIMEOUT)
    if final != "COMPLETED":
        raise RuntimeError(f"the orchestrator run ended {final}, expected COMPLETED")
    return run_id


def missing_modal_creds(layout: Layout, state: SandboxState) -> None:
    prefect_stack.set_job_variables(state.prefect_api_url, ORCHESTRATOR, prefect_stack.broken_job_variables())
    _run_orchestrator(state)
    database.age_rows(state.database_url, "QUEUED", 12)


def modal_bad_token(layout: Layout, state: SandboxState) -> None:
    prefect_stack.seed(state.prefect_api_url, modal_token_id=state.modal_token_id,
                       modal_token_secret="as-" + "0" * 32)
    _run_orchestrator(state)
    database.age_rows(state.database_url, "QUEUED", 12)


def modal_function_missing(layout: Layout, state: SandboxState) -> None:
    stack.write_modal_state(layout, state, functions=[])
    _run_orchestrator(state)
    database.age_rows(state.database_url, "QUEUED", 12)


def no_worker(layout: Layout, state: SandboxState) -> None:
    prefect_stack.stop_worker(layout.run_dir)
    run_id = prefect_stack.trigger(state.prefect_api_url, ORCHESTRATOR)
    prefect_stack.wait_for_run(state.prefect_api_url, run_id, RUN_TIMEOUT, state_name="Late")
    database.age_rows(state.database_url, "PENDING", 15)


def queue_unreachable(layout: Layout, state: SandboxState) -> None:
    wrong = state.queue_url.rsplit("/", 1)[0] + "/job-queue-typo"
    config_file.write(layout, state, queue_url=wrong)


def dlq_filling(layout: Layout, state: SandboxState) -> None:
    bodies = [f'{{"job_id": {n}, "deployment": "{PROCESS_JOB}"}}' for n in range(1, 4)]
    with job_drills.suspended_subscriber(layout, state):  # while it is down, nothing else takes them
        queues.dead_letter(state.sqs_endpoint, state.queue_url, state.dlq_url, bodies)


def missing_aws_env(layout: Layout, state: SandboxState) -> None:
    config_file.write(layout, state, aws_env=False)


def leaked_credentials(layout: Layout, state: SandboxState) -> None:
    import secrets as random_source
    import string

    def drawn(alphabet: str, n: int) -> str:  # fresh each drill: random, so no one's real key, yet key-shaped
        return "".join(random_source.choice(alphabet) for _ in range(n))

    upper = string.ascii_uppercase + "234567"
    notes = layout.repo / "RAILWAY_QUICK_DEPLOY.md"
    notes.write_text(
        "# Quick deploy\n\nSet these on the service:\n\n"
        f"AWS_DEFAULT_ACCESS_KEY_ID={'AKIA' + drawn(upper, 16)}\n"
        f"AWS_DEFAULT_SECRET_ACCESS_KEY={drawn(string.ascii_letters + string.digits + '/+', 40)}\n"
        f"MODAL_TOKEN_ID={'ak-' + drawn(string.ascii_letters + string.digits, 22)}\n"
    )
    stack.git(layout.repo, "add", notes.name)
    stack.git(layout.repo, "commit", "-q", "-m", "Add quick deploy notes")
    stack.git(layout.repo, "rm", "-q", notes.name)
    stack.git(layout.repo, "commit", "-q", "-m", "Remove quick deploy notes")


def stuck_in_progress(layout: Layout, state: SandboxState) -> None:
    database.set_status(state.database_url, "IN_PROGRESS")
    database.age_rows(state.database_url, "IN_PROGRESS", 45)


_STUCK = "db.stuck:workflow_states/{}/normalize_company_name"
_FUNCTION = f"modal.function:{MODAL_APP}/start_normalize_company_name"

SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("missing-modal-creds", "The deployment's job variables carry no MODAL_TOKEN_* env: a triggered "
             "run completes, yet the 40 rows stay QUEUED (the first incident).", missing_modal_creds,
             cause=f"prefect.job_variables:{ORCHESTRATOR}"),
    Scenario("modal-bad-token", "The Secret block holds a token Modal rejects: rows stay QUEUED.", modal_bad_token,
             cause=f"modal.auth:{ORCHESTRATOR}"),
    Scenario("modal-function-missing", f"The Modal function is not deployed in app {MODAL_APP}: rows stay QUEUED.",
             modal_function_missing, cause=_FUNCTION, needs_person="the function is deployed from the "
             "workers' own repository"),
    Scenario("missing-deployment", f"{PROCESS_JOB} is not registered: the subscriber cannot start the jobs' "
             "runs and their messages land in the dead-letter queue (the second incident, P0).",
             job_drills.deployment_not_registered, cause=f"prefect.deployment:{PROCESS_JOB}"),
    Scenario("push-endpoint-no-aws", f"The push endpoint ({SITE} on Netlify) has no AWS keys: it creates jobs, "
             "queues none, and still answers 201 (the second incident, P0).", job_drills.push_endpoint_no_aws,
             cause=f"service.env:{SITE}", needs_person="the jobs it created meanwhile were never queued: "
             "whoever owns them re-sends them (pipectl does not invent messages)"),
    Scenario("subscriber-no-aws", f"The subscriber ({SUBSCRIBER} on Render) has no AWS keys: it exits at start, "
             "over and over, and queued jobs wait (the second incident, P0).", job_drills.subscriber_no_aws,
             cause=f"service.env:{SUBSCRIBER}"),
    Scenario("subscriber-wrong-queue", "The subscriber's SQS_QUEUE_URL names a queue that does not exist: it "
             "receives nothing (the second incident, P1).", job_drills.subscriber_wrong_queue,
             cause=f"service.queue:{SUBSCRIBER}"),
    Scenario("worker-no-api-url", f"The worker service ({WORKER_SERVICE} on Render) lost PREFECT_API_URL: no "
             "worker runs, the jobs' runs go Late (the second incident, P2).", job_drills.worker_no_api_url,
             cause=f"service.env:{WORKER_SERVICE}"),
    Scenario("no-worker", "No worker polls the work pool: runs go Late and rows stay PENDING.", no_worker,
             cause=f"prefect.work_pool:{POOL}"),
    Scenario("queue-unreachable", "The configured queue URL names a queue that does not exist.", queue_unreachable,
             cause="sqs.queue:jobs", needs_person="the right URL goes into the config file"),
    Scenario("dlq-filling", "Messages fail three receives and pile up in the dead-letter queue.", dlq_filling,
             cause="sqs.dlq:jobs"),
    Scenario("missing-aws-env", "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are not set for the pipeline.",
             missing_aws_env, cause="credentials.present:aws", needs_person="only a person has the keys"),
    Scenario("leaked-credentials", "Credentials were committed to the repository and deleted later: still in "
             "its history (random values of the right shape, drawn for the drill).", leaked_credentials,
             cause="repo.secrets:RAILWAY_QUICK_DEPLOY.md", needs_person="leaked keys are rotated by a person "
             "before history is rewritten"),
    Scenario("stuck-in-progress", "Every row has sat IN_PROGRESS for 45 minutes: the Modal workers died.",
             stuck_in_progress, cause=_STUCK.format("IN_PROGRESS")),
    Scenario("pool-paused", "Someone paused the work pool: runs go Late, rows stay PENDING.", drills.pool_paused,
             cause=f"prefect.work_pool:{POOL}"),
    Scenario("pool-concurrency-zero", "The work pool's concurrency limit is 0 while its worker is alive: runs go "
             "Late.", drills.pool_concurrency_zero, cause=f"prefect.work_pool:{POOL}"),
    Scenario("queue-paused", "The work pool's default queue is paused: runs go Late, rows stay PENDING.",
             drills.queue_paused, cause=f"prefect.work_pool:{POOL}"),
    Scenario("deployment-paused", f"{ORCHESTRATOR} is paused: its schedule starts nothing.",
             drills.deployment_paused, cause=f"prefect.deployment:{ORCHESTRATOR}"),
    Scenario("deployment-concurrency-zero", f"{ORCHESTRATOR}'s concurrency limit is 0: Prefect refuses each of "
             "its runs, they go Late while the worker is fine, rows stay PENDING.", drills.deployment_concurrency_zero,
             cause=f"prefect.deployment:{ORCHESTRATOR}"),
    Scenario("deployment-wrong-pool", f"{PROCESS_JOB} was moved to a pool no worker polls.",
             drills.deployment_wrong_pool, cause=f"prefect.deployment:{PROCESS_JOB}"),
    Scenario("pool-deleted", "The work pool was deleted (and its worker stopped with it).", drills.pool_deleted,
             cause=f"prefect.work_pool:{POOL}"),
    Scenario("secret-block-missing", f"Secret block {SECRET_TOKEN_SECRET} was deleted: runs start without the "
             "token.", drills.secret_block_missing, cause=f"prefect.job_variables:{ORCHESTRATOR}"),
    Scenario("secret-block-empty", f"Secret block {SECRET_TOKEN_ID} holds an empty value.",
             drills.secret_block_empty, cause=f"prefect.job_variables:{ORCHESTRATOR}"),
    Scenario("secret-block-newline", f"Secret block {SECRET_TOKEN_SECRET} holds the token with a trailing "
             "newline (pasted from a file).", drills.secret_block_newline, cause=f"modal.auth:{ORCHESTRATOR}"),
    Scenario("secret-block-typo", "The job variables name a Secret block with a typo.", drills.secret_block_typo,
             cause=f"prefect.job_variables:{ORCHESTRATOR}"),
    Scenario("block-renamed", f"Secret block {SECRET_TOKEN_ID} was renamed in the UI; the job variables still "
             "name the old one.", drills.token_id_block_renamed, cause=f"prefect.job_variables:{ORCHESTRATOR}"),
    Scenario("token-in-plain-text", "The Modal token secret is written into the job variables as plain text.",
             drills.token_in_plain_text, cause=f"prefect.job_variables:{ORCHESTRATOR}"),
    Scenario("half-a-token", "The job variables carry MODAL_TOKEN_ID but not MODAL_TOKEN_SECRET.",
             drills.half_a_token, cause=f"prefect.job_variables:{ORCHESTRATOR}"),
    Scenario("literal-token-rejected", "The job variables hold a literal token Modal rejects, and no Secret "
             "blocks exist.", drills.literal_token_rejected, cause=f"modal.auth:{ORCHESTRATOR}"),
    Scenario("stuck-queued", "Every row has sat QUEUED for 20 minutes: the spawns were lost.", drills.stuck_queued,
             cause=_STUCK.format("QUEUED")),
    Scenario("dlq-deleted", "The dead-letter queue was deleted; the queue's RedrivePolicy still names it.",
             drills.dlq_deleted, cause="sqs.dlq:jobs"),
    Scenario("redrive-to-nowhere", "The queue's RedrivePolicy names a dead-letter queue that does not exist.",
             drills.redrive_to_nowhere, cause="sqs.dlq:jobs"),
    Scenario("redrive-policy-removed", "The queue lost its RedrivePolicy: failing messages are retried until "
             "they expire.", drills.redrive_policy_removed, cause="sqs.dlq:jobs"),
    Scenario("zombie-run", f"A run of {ORCHESTRATOR} has been RUNNING for 3 hours with no process behind it.",
             drills.zombie_run, cause=f"prefect.stalled:{ORCHESTRATOR}"),
    Scenario("stuck-no-timestamp", "Rows sit IN_PROGRESS with no updated_at at all (code that never sets it).",
             drills.stuck_no_timestamp, cause=_STUCK.format("IN_PROGRESS")),
)}


def heal(layout: Layout, state: SandboxState) -> None:
    """Put every part back as `up` left it (see `pipectl.sandbox.heal.restore`); does not verify."""
    from pipectl.sandbox.heal import restore

    restore(layout, state)
