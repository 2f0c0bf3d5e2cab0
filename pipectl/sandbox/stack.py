"""Bring the whole sandbox pipeline up, report on it, and take it down without leaving anything behind."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipectl.errors import UsageError
from pipectl.sandbox import config_file, database, hosting, prefect_stack, procs, queues
from pipectl.sandbox.layout import MODAL_APP, MODAL_FUNCTION, POOL, Layout, SandboxState

MODAL = "modal-fake"
SQS = "sqs-server"
HOSTING = hosting.NAME
EXTERNAL = "external (--dsn)"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Component:
    """One part of the sandbox as `status` shows it; `pid` when a recorded process of it runs."""

    name: str
    address: str
    healthy: bool
    detail: str = ""
    pid: int | None = None


SANDBOX_EXTRA = {"pgserver": "pgserver", "moto": "moto[server]", "grpclib": "grpclib", "prefect": "prefect"}
"""Module → package the sandbox runs on (the `sandbox` extra; Prefect is a dependency of pipectl itself)."""


def require_extra(need_postgres: bool = True) -> None:
    """Before anything starts: the packages the sandbox's processes need, or one line saying how to get them."""
    import importlib.util

    missing = [package for module, package in SANDBOX_EXTRA.items()
               if (need_postgres or module != "pgserver") and importlib.util.find_spec(module) is None]
    if missing:
        raise UsageError(f"the sandbox needs {', '.join(missing)}: install pipectl with its sandbox extra, "
                         "`pip install 'pipectl[sandbox]'` (or `pipx inject pipectl 'pipectl[sandbox]'`)")


def up(layout: Layout, progress: Progress = lambda step: None, dsn: str | None = None) -> SandboxState:
    """Start Postgres, Prefect (server + process worker), SQS and the Modal fake, then seed them.

    If any step fails or is interrupted, everything started so far is stopped before the error goes on:
    a failed `up` leaves no process behind. The state file (ports) is written before the first process
    starts and every process records its pid as it starts, so `status` and `down` always see them.
    """
    if busy := running(layout):
        raise UsageError(f"a sandbox is already running in {layout.root} ({', '.join(busy)}): "
                         "`pipectl sandbox down` first")
    require_extra(need_postgres=dsn is None)
    layout.run_dir.mkdir(parents=True, exist_ok=True)
    state = SandboxState(
        prefect_port=procs.free_port(), sqs_port=procs.free_port(), modal_port=procs.free_port(),
        modal_token_id="ak-" + secrets.token_hex(12), modal_token_secret="as-" + secrets.token_hex(16),
        render_port=procs.free_port(), netlify_port=procs.free_port(), push_port=procs.free_port(),
        render_api_key="rnd_" + secrets.token_hex(16), netlify_token="nfp_" + secrets.token_hex(20),
    )
    layout.save(state)
    try:
        _start(layout, state, progress, dsn)
    except BaseException:
        down(layout)
        layout.state_file.unlink(missing_ok=True)
        raise
    return state


def _start(layout: Layout, state: SandboxState, progress: Progress, dsn: str | None) -> None:
    progress("starting Prefect server, SQS and the Modal fake")
    # spawned now and awaited last: it boots while the rest starts
    server = prefect_stack.spawn_server(layout.prefect_home, state.prefect_port, layout.run_dir)
    sqs = _spawn_sqs(layout, state)
    progress("starting Postgres")
    state.database_url = dsn or database.start(layout.pgdata)
    layout.save(state)
    database.seed(state.database_url)
    write_modal_state(layout, state)
    modal = _spawn_modal(layout, state)
    procs.wait_for_port(state.sqs_port, 30, sqs, SQS)
    state.queue_url, state.dlq_url = queues.create(state.sqs_endpoint)
    procs.wait_for_port(state.modal_port, 30, modal, MODAL)
    progress("starting the hosted services: push endpoint, subscriber (Render and Netlify fakes)")
    start_hosting(layout, state)
    init_repo(layout.repo)
    progress("waiting for the Prefect server")
    prefect_stack.await_server(state.prefect_port, layout.run_dir, 90.0, server)
    progress("seeding Prefect: work pool, Secret blocks, deployments")
    prefect_stack.seed(state.prefect_api_url, modal_token_id=state.modal_token_id,
                       modal_token_secret=state.modal_token_secret)
    progress("starting the Prefect worker")
    start_worker(layout, state)
    layout.save(state)
    config_file.write(layout, state)


def _spawn_sqs(layout: Layout, state: SandboxState):
    argv = [sys.executable, "-m", "pipectl.sandbox.sqs_server", "--port", str(state.sqs_port)]
    return procs.spawn(SQS, argv, layout.run_dir)


def _spawn_modal(layout: Layout, state: SandboxState):
    argv = [sys.executable, "-m", "pipectl.sandbox.modal_fake", "--port", str(state.modal_port),
            "--state", str(layout.modal_state)]
    return procs.spawn(MODAL, argv, layout.run_dir)


def start_hosting(layout: Layout, state: SandboxState) -> None:
    """Seed the platforms' state and start them with their services (stopping any that ran before)."""
    procs.stop_all([HOSTING, *HOSTED_PROCESSES], layout.run_dir)
    hosting.seed(layout, state)
    layout.save(state)
    argv = [sys.executable, "-m", "pipectl.sandbox.hosting", "--root", str(layout.root)]
    proc = procs.spawn(HOSTING, argv, layout.run_dir)
    procs.wait_for_port(state.render_port, 30, proc, HOSTING)
    procs.wait_for_port(state.push_port, 30, None, "push-endpoint")


def revive(layout: Layout, state: SandboxState) -> list[str]:
    """Start again, on their recorded ports, the parts of a sandbox that stopped; returns their names.

    Used by `heal`: a person may have killed a server. The worker is `heal`'s to restart (last).
    """
    started: list[str] = []
    server = None
    if not procs.port_open(state.prefect_port):  # each spawn stops what still runs under its name first
        server = prefect_stack.spawn_server(layout.prefect_home, state.prefect_port, layout.run_dir)
        started.append(prefect_stack.SERVER)
    if _own_postgres(layout) and database.postmaster_pid(layout.pgdata) is None:
        state.database_url = database.start(layout.pgdata)
        started.append("postgres")
    for name, port, spawn in ((SQS, state.sqs_port, _spawn_sqs), (MODAL, state.modal_port, _spawn_modal)):
        if not procs.port_open(port):
            procs.wait_for_port(port, 30, spawn(layout, state), name)
            started.append(name)
    if server is not None:
        prefect_stack.await_server(state.prefect_port, layout.run_dir, 90.0, server)
    if state.render_port and not procs.port_open(state.render_port):
        start_hosting(layout, state)
        started.append(HOSTING)
    return started


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


HOSTED_PROCESSES = [s.pid_name for s in hosting.SERVICES if s.module]
PROCESSES = [HOSTING, *HOSTED_PROCESSES, prefect_stack.WORKER, prefect_stack.SERVER, SQS, MODAL]
SHOWN_AS = {prefect_stack.SERVER: "prefect-server", prefect_stack.WORKER: "prefect-worker", SQS: "sqs",
            MODAL: "modal", HOSTING: "hosting (render, netlify)", "push-endpoint": "push-endpoint",
            "subscriber": "subscriber"}


def down(layout: Layout) -> list[str]:
    """Stop everything the sandbox started: by pid file (so this works after a crash too), then every
    process still carrying this sandbox's mark (a flow run, a service whose pid file was lost)."""
    stopped = procs.stop_all(PROCESSES, layout.run_dir)
    if strays := procs.stop_marked(layout.run_dir):
        stopped.append(f"{len(strays)} other process{'es' if len(strays) > 1 else ''} it had started")
    if database.stop(layout.pgdata):
        stopped.append("postgres")
    return stopped


def running(layout: Layout) -> list[str]:
    """The sandbox's own parts that run now (by pid file or port; not a --dsn Postgres): `up` refuses then."""
    return [c.name for c in status(layout) if c.pid or (c.healthy and c.address != EXTERNAL)]


def status(layout: Layout) -> list[Component]:
    """Each part, its address and whether it answers; a recorded process that runs is never left out."""
    state = layout.load()
    live = procs.recorded(PROCESSES, layout.run_dir)
    pg_pid = database.postmaster_pid(layout.pgdata)
    if state is None:  # an `up` killed before it wrote sandbox.json (or one from an older pipectl)
        found = [Component(SHOWN_AS[name], f"pid {pid}, no {layout.state_file.name}", True, pid=pid)
                 for name, pid in live.items()]
        if pg_pid:
            found.append(Component("postgres", str(layout.pgdata), True, pid=pg_pid))
        return found
    ports = {prefect_stack.SERVER: (state.prefect_port, state.prefect_api_url), SQS: (state.sqs_port,
             state.sqs_endpoint), MODAL: (state.modal_port, state.modal_server_url),
             HOSTING: (state.render_port, f"{state.render_api_url} {state.netlify_api_url}"),
             "push-endpoint": (state.push_port, state.push_url)}
    components = []
    for name in (prefect_stack.SERVER, prefect_stack.WORKER, SQS, MODAL, HOSTING, *HOSTED_PROCESSES):
        pid = live.get(name)
        if name not in ports:
            detail = f"pool {POOL}" if name == prefect_stack.WORKER else "polls the job queue"
            components.append(Component(SHOWN_AS[name], detail, pid is not None, pid=pid))
            continue
        port, address = ports[name]
        healthy = procs.port_open(port)
        if pid and not healthy:
            address += f" (pid {pid} runs but does not answer)"
        components.append(Component(SHOWN_AS[name], address, healthy, pid=pid))
    own = _own_postgres(layout)
    components.append(Component("postgres", str(layout.pgdata) if own else EXTERNAL,
                                pg_pid is not None if own else _connects(state.database_url), pid=pg_pid))
    return components


def hosted_running(layout: Layout) -> bool:
    """The platforms and each hosted service (but the worker, which has its own) are running."""
    return len(procs.recorded([HOSTING, *HOSTED_PROCESSES], layout.run_dir)) == 1 + len(HOSTED_PROCESSES)


def worker_running(layout: Layout) -> bool:
    return bool(procs.recorded([prefect_stack.WORKER], layout.run_dir))


def _own_postgres(layout: Layout) -> bool:
    return (layout.pgdata / "PG_VERSION").is_file()


def _connects(dsn: str) -> bool:
    if not dsn:
        return False
    try:
        with database.connect(dsn):
            return True
    except Exception:  # noqa: BLE001 - any failure to connect means: not up
        return False
