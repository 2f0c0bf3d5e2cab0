"""The sandbox pipeline's Prefect flows, deployed from this directory with
`flow.from_source(source=<this dir>, entrypoint="pipeline_flows.py:orchestrator_main")`.

`orchestrator-main` reproduces the real orchestrator, including its flaw: when spawning the
Modal workers fails (no MODAL_TOKEN_* in the run's environment, Modal unreachable, ...), the
dispatch catches the exception and returns {"status": "failed", ...}, so the flow run still
ends COMPLETED while the rows it marked QUEUED stay QUEUED for ever.

Configuration comes from the run's environment only: DATABASE_URL, and for the Modal client
MODAL_TOKEN_ID / MODAL_TOKEN_SECRET / MODAL_SERVER_URL / MODAL_CONFIG_PATH (read by modal itself).
Heavy imports (psycopg, modal) happen inside the tasks, so loading the flows stays cheap.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

from prefect import flow, get_run_logger, task

MODAL_APP = "data-enrichment-workers"
DEFAULT_STEP = "normalize_company_name"


def _connect():
    import psycopg

    url = os.environ.get("DATABASE_URL")
    if not url:
        raise RuntimeError("DATABASE_URL is not set in the flow run's environment")
    return psycopg.connect(url, connect_timeout=10)


@task
def queue_pending_rows(step_name: str, batch_size: int) -> list[int]:
    """PENDING -> QUEUED for up to batch_size rows of the step, committed before any spawn."""
    with _connect() as conn:
        rows = conn.execute(
            """
            UPDATE workflow_states SET status = 'QUEUED', updated_at = now()
            WHERE id IN (
                SELECT id FROM workflow_states
                WHERE status = 'PENDING' AND step_name = %s
                ORDER BY id LIMIT %s
                FOR UPDATE SKIP LOCKED)
            RETURNING id
            """,
            (step_name, batch_size),
        ).fetchall()
        conn.commit()
    return sorted(row[0] for row in rows)


def _run_bounded(coro_factory, timeout: float) -> Any:
    """Run an async call to completion within `timeout` seconds, from sync code (with or without a loop)."""

    async def bounded():
        return await asyncio.wait_for(coro_factory(), timeout)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(bounded())
    # A loop is already running in this thread: run ours in a helper thread.
    box: dict[str, Any] = {}

    def target():
        try:
            box["value"] = asyncio.run(bounded())
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            box["error"] = exc

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(timeout + 5)
    if "error" in box:
        raise box["error"]
    if "value" not in box:
        raise TimeoutError(f"dispatch did not finish within {timeout}s")
    return box["value"]


@task
def spawn_workers(state_ids: list[int], step_name: str, timeout: float) -> dict[str, Any]:
    """Spawn the Modal worker for each row; like the original, never raises."""
    logger = get_run_logger()
    function_name = f"start_{step_name}"
    spawned: list[str] = []

    async def spawn_all() -> None:
        import modal

        function = modal.Function.from_name(MODAL_APP, function_name)
        for state_id in state_ids:
            call = await function.spawn.aio(state_id=state_id)
            spawned.append(call.object_id)

    try:
        _run_bounded(spawn_all, timeout)
    except Exception as exc:  # noqa: BLE001 - the original swallowed everything, on purpose here
        # Only the class name goes in the result; the log line carries a short message for humans.
        logger.error(
            "Spawning %s/%s failed after %d of %d: %s: %s",
            MODAL_APP, function_name, len(spawned), len(state_ids), type(exc).__name__,
            str(exc)[:200] or f"no answer within {timeout:g}s",
        )
        return {"status": "failed", "error": type(exc).__name__, "spawned": len(spawned)}
    logger.info("Spawned %d %s/%s call(s)", len(spawned), MODAL_APP, function_name)
    return {"status": "ok", "spawned": len(spawned), "call_ids": spawned}


@flow
def dispatch_pending_items(
    step_name: str = DEFAULT_STEP, batch_size: int = 100, spawn_timeout: float = 60.0
) -> dict[str, Any]:
    state_ids = queue_pending_rows(step_name, batch_size)
    if not state_ids:
        return {"status": "ok", "queued": 0, "spawned": 0}
    result = spawn_workers(state_ids, step_name, spawn_timeout)
    return {"queued": len(state_ids), **result}


@flow
def advance_completed_items(step_name: str = DEFAULT_STEP) -> dict[str, int]:
    """Counts the step's rows by status (the real one moves COMPLETED rows on to the next step)."""
    with _connect() as conn:
        rows = conn.execute(
            "SELECT status, count(*) FROM workflow_states WHERE step_name = %s GROUP BY status",
            (step_name,),
        ).fetchall()
    counts = {status: int(n) for status, n in rows}
    get_run_logger().info("Rows of %s by status: %s", step_name, counts)
    return counts


@flow(name="orchestrator-main")
def orchestrator_main(
    step_name: str = DEFAULT_STEP, batch_size: int = 100, spawn_timeout: float = 60.0
) -> dict[str, Any]:
    dispatched = dispatch_pending_items(step_name, batch_size, spawn_timeout)
    counts = advance_completed_items(step_name)
    return {"dispatch": dispatched, "counts": counts}


@flow(name="process_job")
def process_job(job_id: str) -> dict[str, Any]:
    """Marks one row of `jobs` as completed (fails if there is no such job)."""
    with _connect() as conn:
        cur = conn.execute(
            "UPDATE jobs SET status = 'completed', updated_at = now() WHERE id::text = %s", (str(job_id),)
        )
        conn.commit()
        if cur.rowcount == 0:
            raise ValueError(f"no job with id {job_id}")
    get_run_logger().info("Job %s completed", job_id)
    return {"job_id": str(job_id), "status": "completed"}
