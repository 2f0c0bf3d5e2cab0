"""The second incident's drills: the job pipeline broken where it broke, in the hosted services.

Each breaks a service's environment through the provider's API (as a person in the Render or Netlify
dashboard would), redeploys it, then sends jobs in through the push endpoint as users do, so the
symptoms — jobs left `pending`, messages in the dead-letter queue, late runs — are real consequences.
"""

from __future__ import annotations

import time

import httpx

from pipectl.sandbox import database, hosting, prefect_stack, queues
from pipectl.sandbox.layout import PROCESS_JOB, SITE, SUBSCRIBER, WORKER_SERVICE, Layout, SandboxState

AGE_MINUTES = 30
"""How far back the drills move the jobs' `updated_at`: past the config's 10-minute threshold."""
SETTLE = 60.0


def change_env(state: SandboxState, service: str, *, drop: tuple[str, ...] = (), **values: str) -> None:
    """Edit a service's variables on its platform and redeploy it; returns once the deploy ended."""
    from pipectl.connectors.hosting import ServiceStatus

    resource_id = state.service_ids[service]
    with hosting.provider(state, service) as client:
        for key in drop:
            client.delete_env(resource_id, key)
        for key, value in values.items():
            client.set_env(resource_id, key, value)
        deploy_id = client.deploy(resource_id)
        deadline = time.monotonic() + SETTLE
        while client.deploy_state(resource_id, deploy_id) is ServiceStatus.DEPLOYING:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the redeploy of {service} did not end within {SETTLE:.0f}s")
            time.sleep(0.2)


def push_jobs(state: SandboxState, count: int) -> list[int]:
    """Jobs created the way users create them: POST to the push endpoint (which always says 201)."""
    ids = []
    with httpx.Client(timeout=10) as client:
        for n in range(count):
            response = client.post(state.push_url, json={"customerId": f"customer-drill-{n}"})
            response.raise_for_status()
            ids.append(response.json()["jobId"])
    return ids


def _runs_of(state: SandboxState, deployment: str, state_name: str | None = None) -> int:
    flow, name = deployment.split("/")
    with httpx.Client(base_url=state.prefect_api_url, timeout=10) as client:
        found = client.get(f"/deployments/name/{flow}/{name}")
        found.raise_for_status()
        runs = {"state": {"name": {"any_": [state_name]}}} if state_name else {}
        count = client.post("/flow_runs/count", json={"deployments": {"id": {"any_": [found.json()["id"]]}},
                                                      "flow_runs": runs})
        count.raise_for_status()
        return int(count.json())


def _age_jobs(state: SandboxState) -> None:
    database.age_rows(state.database_url, "pending", AGE_MINUTES, table="jobs")


def _wait(what: str, done, timeout: float = SETTLE) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout:.0f}s")
        time.sleep(0.2)


def push_endpoint_no_aws(layout: Layout, state: SandboxState) -> None:
    """P0: the push endpoint has no AWS keys; it creates jobs, queues nothing, and answers 201."""
    change_env(state, SITE, drop=hosting.AWS_KEYS)
    push_jobs(state, 3)
    _age_jobs(state)


def subscriber_no_aws(layout: Layout, state: SandboxState) -> None:
    """P0: the subscriber has no AWS keys: it exits at start, over and over; queued jobs wait."""
    change_env(state, SUBSCRIBER, drop=hosting.AWS_KEYS)
    push_jobs(state, 3)
    _age_jobs(state)


def subscriber_wrong_queue(layout: Layout, state: SandboxState) -> None:
    """P1: the subscriber polls a queue URL with a typo: it runs, logs InvalidQueueUrl, receives nothing."""
    change_env(state, SUBSCRIBER, SQS_QUEUE_URL=state.queue_url.rsplit("/", 1)[0] + "/job-queu")
    push_jobs(state, 3)
    _age_jobs(state)


def worker_no_api_url(layout: Layout, state: SandboxState) -> None:
    """P2: the worker service lost PREFECT_API_URL: it cannot start, so the jobs' runs go Late."""
    change_env(state, WORKER_SERVICE, drop=("PREFECT_API_URL",))
    ids = push_jobs(state, 2)
    _wait("the jobs' runs did not go Late", lambda: _runs_of(state, PROCESS_JOB, state_name="Late") >= len(ids),
          timeout=90.0)
    _age_jobs(state)


def deployment_not_registered(layout: Layout, state: SandboxState) -> None:
    """P0: process_job/production is not registered: the subscriber cannot start the jobs' runs, each
    message is received three times and lands in the dead-letter queue."""
    prefect_stack.delete_deployment(state.prefect_api_url, PROCESS_JOB)
    ids = push_jobs(state, 5)
    _wait("the jobs' messages did not reach the dead-letter queue",
          lambda: queues.depth_of(state.sqs_endpoint, state.dlq_url) >= len(ids))
    _age_jobs(state)


def suspended_subscriber(layout: Layout, state: SandboxState):
    """A context in which the subscriber does not run (suspended on Render), resumed on leaving."""
    import contextlib

    from pipectl.sandbox import procs

    @contextlib.contextmanager
    def suspended():
        render = f"{state.render_api_url}/services/{state.service_ids[SUBSCRIBER]}"
        headers = {"Authorization": f"Bearer {state.render_api_key}"}
        httpx.post(f"{render}/suspend", headers=headers, timeout=10).raise_for_status()
        _wait("the subscriber did not stop", lambda: not procs.recorded(["subscriber"], layout.run_dir), 30)
        try:
            yield
        finally:
            httpx.post(f"{render}/resume", headers=headers, timeout=10).raise_for_status()
            _wait("the subscriber did not start again", lambda: procs.recorded(["subscriber"], layout.run_dir), 30)

    return suspended()
