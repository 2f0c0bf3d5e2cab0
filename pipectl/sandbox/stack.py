"""Bring the whole sandbox pipeline up, report on it, and take it down without leaving anything behind."""

from __future__ import annotations

import secrets
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipectl.errors import UsageError
from pipectl.sandbox import config_file, database, prefect_stack, procs, queues
from pipectl.sandbox.layout import MODAL_APP, MODAL_FUNCTION, POOL, Layout, SandboxState

MODAL = "modal-fake"
SQS = "sqs-server"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Component:
    name: str
    address: str
    healthy: bool
    detail: str = ""


def up(layout: Layout, progress: Progress = lambda step: None, dsn: str | None = None) -> SandboxState:
    """Start Postgres, Prefect (server + process worker), SQS and the Modal fake, then seed them."""
    if layout.load() is not None and any(c.healthy for c in status(layout)):
        raise UsageError(f"a sandbox is already running in {layout.root}: `pipectl sandbox down` first")
    layout.run_dir.mkdir(parents=True, exist_ok=True)
    state = SandboxState(
        prefect_port=procs.free_port(), sqs_port=procs.free_port(), modal_port=procs.free_port(),
        modal_token_id="ak-" + secrets.token_hex(12), modal_token_secret="as-" + secrets.token_hex(16),
    )
    prefect_started = _in_background(
        lambda: prefect_stack.start_server(layout.prefect_home, state.prefect_port, layout.run_dir)
    )
    progress("starting Prefect server, SQS and the Modal fake")
    sqs = procs.spawn(SQS, [sys.executable, "-m", "pipectl.sandbox.sqs_server", "--port", str(state.sqs_port)],
                      layout.run_dir)
    progress("starting Postgres")
    state.database_url = dsn or database.start(layout.pgdata)
    database.seed(state.database_url)
    write_modal_state(layout, state)
    modal = procs.spawn(MODAL, [sys.executable, "-m", "pipectl.sandbox.modal_fake", "--port", str(state.modal_port),
                                "--state", str(layout.modal_state)], layout.run_dir)
    procs.wait_for_port(state.sqs_port, 30, sqs, SQS)
    state.queue_url, state.dlq_url = queues.create(state.sqs_endpoint)
    procs.wait_for_port(state.modal_port, 30, modal, MODAL)
    init_repo(layout.repo)
    progress("waiting for the Prefect server")
    prefect_started.join()
    progress("seeding Prefect: work pool, Secret blocks, deployments")
    prefect_stack.seed(state.prefect_api_url, modal_token_id=state.modal_token_id,
                       modal_token_secret=state.modal_token_secret)
    progress("starting the Prefect worker")
    start_worker(layout, state)
    layout.save(state)
    config_file.write(layout, state)
    return state


def start_worker(layout: Layout, state: SandboxState) -> None:
    prefect_stack.start_worker(state.prefect_api_url, POOL, layout.run_dir, worker_env(layout, state))


def worker_env(layout: Layout, state: SandboxState) -> dict[str, str]:
    """What flow runs inherit: the database and where Modal is, but never Modal's tokens."""
    return {
        "DATABASE_URL": state.database_url,
        "MODAL_SERVER_URL": state.modal_server_url,
        "MODAL_CONFIG_PATH": str(layout.root / "modal" / "no-modal-config.toml"),
        "MODAL_DISABLE_API_PROXY": "1",
        "PREFECT_HOME": str(layout.root / "prefect-worker"),
    }


def write_modal_state(layout: Layout, state: SandboxState, functions: list[str] | None = None) -> None:
    from pipectl.sandbox.modal_fake import write_state

    layout.modal_state.parent.mkdir(parents=True, exist_ok=True)
    write_state(layout.modal_state, {
        "tokens": {state.modal_token_id: state.modal_token_secret},
        "workspace": "sandbox",
        "apps": {MODAL_APP: [MODAL_FUNCTION] if functions is None else functions},
        "dsn": state.database_url,
        "table": "workflow_states",
    })


def init_repo(path: Path) -> None:
    """A clean git repository standing in for the pipeline's code (leaked-credentials adds to it)."""
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    (path / "README.md").write_text("# job pipeline\n\nDeploy with `python deploy.py`.\n")
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "README.md")
    git(path, "commit", "-q", "-m", "Initial commit")


def git(repo: Path, *args: str) -> None:
    identity = ["-c", "user.name=sandbox", "-c", "user.email=sandbox@example.invalid", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", *identity, *args], cwd=repo, check=True, capture_output=True)


def down(layout: Layout) -> list[str]:
    """Stop everything the sandbox started (by pid file, so this works after a crash too)."""
    stopped = procs.stop_all([prefect_stack.WORKER, prefect_stack.SERVER, SQS, MODAL], layout.run_dir)
    if database.stop(layout.pgdata):
        stopped.append("postgres")
    return stopped


def status(layout: Layout) -> list[Component]:
    state = layout.load()
    if state is None:
        return []
    components = [
        Component("prefect-server", state.prefect_api_url, procs.port_open(state.prefect_port)),
        Component("prefect-worker", f"pool {POOL}", _pid_alive(layout, prefect_stack.WORKER)),
        Component("sqs", state.sqs_endpoint, procs.port_open(state.sqs_port)),
        Component("modal", state.modal_server_url, procs.port_open(state.modal_port)),
        Component("postgres", str(layout.pgdata) if _own_postgres(layout) else "external (--dsn)",
                  _postgres_alive(layout, state)),
    ]
    return components


def worker_running(layout: Layout) -> bool:
    return _pid_alive(layout, prefect_stack.WORKER)


def _pid_alive(layout: Layout, name: str) -> bool:
    pid_file = layout.run_dir / f"{name}.pid"
    return pid_file.is_file() and procs.pid_alive(int(pid_file.read_text() or 0))


def _own_postgres(layout: Layout) -> bool:
    return (layout.pgdata / "PG_VERSION").is_file()


def _postgres_alive(layout: Layout, state: SandboxState) -> bool:
    if _own_postgres(layout):
        pid_file = layout.pgdata / "postmaster.pid"
        return pid_file.is_file() and procs.pid_alive(int(pid_file.read_text().split()[0]))
    try:
        with database.connect(state.database_url):
            return True
    except Exception:  # noqa: BLE001 - any failure to connect means: not up
        return False


class _in_background(threading.Thread):
    """Run `fn` in a thread; `join()` re-raises what it raised."""

    def __init__(self, fn: Callable[[], object]) -> None:
        super().__init__(daemon=True)
        self._fn, self._error = fn, None
        self.start()

    def run(self) -> None:
        try:
            self._fn()
        except BaseException as exc:  # re-raised in join()
            self._error = exc

    def join(self, timeout: float | None = None) -> None:
        super().join(timeout)
        if self._error is not None:
            raise self._error
