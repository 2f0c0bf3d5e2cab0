"""Failure drills: each reproduces, for real, one failure of the two incidents on a running sandbox.

A drill that leaves rows stuck also moves their `updated_at` back past the config's thresholds, so the
symptom is visible at once instead of after ten minutes of waiting.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pipectl.sandbox import config_file, database, prefect_stack, queues, stack
from pipectl.sandbox.layout import MODAL_APP, ORCHESTRATOR, PROCESS_JOB, Layout, SandboxState

RUN_TIMEOUT = 90.0


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    apply: Callable[[Layout, SandboxState], None]


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


def missing_deployment(layout: Layout, state: SandboxState) -> None:
    prefect_stack.delete_deployment(state.prefect_api_url, PROCESS_JOB)
    database.add_pending_jobs(state.database_url, 5, minutes_old=30)


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


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("missing-modal-creds", "The deployment's job variables carry no MODAL_TOKEN_* env: a triggered "
             "run completes, yet the 40 rows stay QUEUED (the first incident).", missing_modal_creds),
    Scenario("modal-bad-token", "The Secret block holds a token Modal rejects: rows stay QUEUED.", modal_bad_token),
    Scenario("modal-function-missing", f"The Modal function is not deployed in app {MODAL_APP}: rows stay QUEUED.",
             modal_function_missing),
    Scenario("missing-deployment", f"{PROCESS_JOB} is not registered: pending jobs never run "
             "(the second incident).", missing_deployment),
    Scenario("no-worker", "No worker polls the work pool: runs go Late and rows stay PENDING.", no_worker),
    Scenario("queue-unreachable", "The configured queue URL names a queue that does not exist.", queue_unreachable),
    Scenario("dlq-filling", "Messages fail three receives and pile up in the dead-letter queue.", dlq_filling),
    Scenario("missing-aws-env", "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are not set for the pipeline.",
             missing_aws_env),
    Scenario("leaked-credentials", "Credentials were committed to the repository and deleted later: still in "
             "its history (random values of the right shape, drawn for the drill).", leaked_credentials),
    Scenario("stuck-in-progress", "Every row has sat IN_PROGRESS for 45 minutes: the Modal workers died.",
             stuck_in_progress),
)}


def heal(layout: Layout, state: SandboxState) -> None:
    """Put every part back as `up` left it (see `pipectl.sandbox.heal.restore`); does not verify."""
    from pipectl.sandbox.heal import restore

    restore(layout, state)
