"""The sandbox's Prefect processes: a local `prefect server` (SQLite, UI off) and a process worker.

Split from `prefect_stack` (the seed and the drills' helpers), which re-exports these names. Prefect
itself is imported lazily, so importing this module (e.g. for `sandbox down`) stays cheap.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from pipectl.sandbox import procs

SERVER = "prefect-server"
WORKER = "prefect-worker"

# Environment variables the flow run must NOT inherit from the worker: it gets the Modal
# credentials only through the deployment's job variables, as in production.
WORKER_UNSET = ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET", "MODAL_PROFILE", "PREFECT_API_KEY", "PREFECT_PROFILE")


def api_url_for(port: int) -> str:
    return f"http://127.0.0.1:{port}/api"


def _quiet_env(home: Path) -> dict[str, str]:
    return {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_TELEMETRY_ENABLE_RESOURCE_METRICS": "false",
        "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
        "DO_NOT_TRACK": "1",
    }


def with_client(api_url: str, fn, timeout: float = 30.0):
    """Run `await fn(client)` with a fresh Prefect client for `api_url`, bounded by `timeout`."""
    from prefect.client.orchestration import PrefectClient

    async def main():
        async with PrefectClient(api_url) as client:
            return await fn(client)

    return asyncio.run(asyncio.wait_for(main(), timeout))


def spawn_server(home: Path, port: int, run_dir: Path) -> subprocess.Popen:
    """Start `prefect server start` on 127.0.0.1:port and return at once (its pid file is written).

    `up` spawns it first and waits for it last, so the server boots while the rest starts, with no
    thread that could start it after a failed `up` has already cleaned up.
    """
    home.mkdir(parents=True, exist_ok=True)
    env = {
        **_quiet_env(home),
        "PREFECT_SERVER_UI_ENABLED": "false",
        # runs nobody picks up are marked Late after 1 s, so the no-worker drill shows at once
        "PREFECT_SERVER_SERVICES_LATE_RUNS_AFTER_SECONDS": "PT1S",  # a duration in every 3.x
        "PREFECT_SERVER_SERVICES_LATE_RUNS_LOOP_SECONDS": "1",
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        "PREFECT_API_URL": api_url_for(port),
    }
    argv = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    return procs.spawn(SERVER, argv, run_dir, env)


def start_server(home: Path, port: int, run_dir: Path, timeout: float = 90.0) -> subprocess.Popen:
    """`prefect server start` on 127.0.0.1:port with its own PREFECT_HOME and SQLite database.

    Returns once /api/health answers; raises (and stops the server) if it does not in time.
    """
    proc = spawn_server(home, port, run_dir)
    await_server(port, run_dir, timeout, proc)
    return proc


def await_server(port: int, run_dir: Path, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Wait for a spawned server's /api/health; on failure stop it and name its log."""
    try:
        wait_for_health(api_url_for(port), timeout, proc)
    except BaseException as exc:
        procs.stop(SERVER, run_dir)
        if isinstance(exc, Exception):
            raise RuntimeError(f"{exc} (see {run_dir / (SERVER + '.log')})") from exc
        raise


def wait_for_health(api_url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"prefect server exited with code {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(f"{api_url}/health", timeout=1) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"prefect server at {api_url} did not answer /health within {timeout:.0f}s")


def start_worker(
    api_url: str,
    pool: str,
    run_dir: Path,
    env: dict[str, str] | None = None,
    *,
    name: str = "sandbox-worker",
    wait: float | None = 60.0,
) -> subprocess.Popen:
    """`prefect worker start --pool POOL --type process`, polling every second.

    `env` (DATABASE_URL, MODAL_SERVER_URL, ...) reaches the flow runs; MODAL_TOKEN_ID/SECRET (and
    other credentials) are removed from the worker's environment even if this process has them.
    With `wait`, returns only once the worker has sent its first heartbeat.
    """
    env = dict(env or {})
    for key in WORKER_UNSET:
        env.pop(key, None)
    home = Path(env.get("PREFECT_HOME") or run_dir / "prefect-worker-home")
    home.mkdir(parents=True, exist_ok=True)
    env = {
        **_quiet_env(home),
        "PREFECT_API_URL": api_url,
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_HEARTBEAT_SECONDS": "5",
        **env,
    }
    unset: list[str] = []
    for key in WORKER_UNSET:
        unset += ["-u", key]
    argv = ["env", *unset, sys.executable, "-m", "prefect", "worker", "start",
            "--pool", pool, "--type", "process", "--name", name]
    proc = procs.spawn(WORKER, argv, run_dir, env)
    if wait:
        try:
            wait_for_worker(api_url, pool, name, wait, proc)
        except BaseException as exc:
            procs.stop(WORKER, run_dir)
            if isinstance(exc, Exception):
                raise RuntimeError(f"{exc} (see {run_dir / (WORKER + '.log')})") from exc
            raise
    return proc


def wait_for_worker(api_url: str, pool: str, name: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Block until worker `name` of `pool` has a heartbeat newer than when we started waiting."""
    from datetime import UTC, datetime, timedelta

    since = datetime.now(UTC) - timedelta(seconds=1)
    deadline = time.monotonic() + timeout

    async def beat(client) -> bool:
        try:
            workers = await client.read_workers_for_work_pool(pool)
        except Exception:  # noqa: BLE001 - the pool appears when the worker creates it
            return False
        return any(w.name == name and w.last_heartbeat_time and w.last_heartbeat_time >= since for w in workers)

    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"prefect worker exited with code {proc.returncode} before its first heartbeat")
        if with_client(api_url, beat):
            return
        time.sleep(0.25)
    raise TimeoutError(f"prefect worker {name} did not heartbeat on pool {pool} within {timeout:.0f}s")


def stop_worker(run_dir: Path) -> bool:
    return procs.stop(WORKER, run_dir)


def stop_server(run_dir: Path) -> bool:
    return procs.stop(SERVER, run_dir)
