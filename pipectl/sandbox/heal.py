"""`sandbox heal`: put every part of a running sandbox back as `up` left it, whatever a drill or a
person changed, and prove it with the very checks `pipectl doctor` runs.

Each part is rebuilt rather than patched, so damage nobody foresaw is undone too: the tables are
dropped and recreated, the queues deleted and recreated, the Prefect objects re-seeded and the run
history cleared.
"""

from __future__ import annotations

from collections.abc import Callable

from pipectl.sandbox import config_file, database, hosting, prefect_stack, queues, stack
from pipectl.sandbox.layout import Layout, SandboxState

Progress = Callable[[str], None]


def restore(layout: Layout, state: SandboxState, progress: Progress = lambda step: None) -> None:
    """Rebuild processes, Prefect, Modal state, Postgres, SQS, the repo and the config; saves the state."""
    progress("restarting what stopped")
    stack.revive(layout, state)
    api = state.prefect_api_url
    if stack.worker_running(layout) and prefect_stack.active_runs(api):
        # a run still executing would move rows after the reseed: stop it with its worker
        prefect_stack.stop_worker(layout.run_dir)
    progress("Prefect: flow runs, work pool, Secret blocks, deployments")
    prefect_stack.delete_flow_runs(api)
    prefect_stack.seed(api, modal_token_id=state.modal_token_id, modal_token_secret=state.modal_token_secret)
    stack.write_modal_state(layout, state)
    progress("Postgres: tables and rows")
    database.reset(state.database_url)
    progress("SQS: queues, redrive policy")
    state.queue_url, state.dlq_url = queues.reset(state.sqs_endpoint)
    stack.init_repo(layout.repo)
    if not hosting.pristine(state) or not stack.hosted_running(layout):
        progress("hosted services: their environments, restarted")
        stack.start_hosting(layout, state)
    state.broken = []
    layout.save(state)
    config_file.write(layout, state)
    if not stack.worker_running(layout):
        progress("starting the Prefect worker")
        stack.start_worker(layout, state)


VERIFY_TIMEOUT = 30.0
"""Seconds per check when heal verifies: generous, so a busy machine is not mistaken for a broken sandbox."""


def still_failing(layout: Layout, timeout: float = VERIFY_TIMEOUT) -> list[str]:
    """Run every check doctor runs against the sandbox's own config: one line per finding that failed
    or could not tell (an empty list means `pipectl doctor` passes)."""
    from pipectl.config_load import environment, load_config
    from pipectl.repairs.verify_checks import run_selected

    config = load_config(layout.config_file)
    result = run_selected(config, environment(config.source), [], max(timeout, config.doctor.timeout))
    return [f"{f.id}: {f.summary}" for f in result.findings if f.status.value in ("fail", "error")]
