"""A sandbox leaves nothing running: `heal` restarts a component only after the old one is gone, and
`down` stops every process the sandbox started, also those whose pid file no longer names them, and
nothing else on the machine.

The clock is stepped in these tests the way NTP or a resumed virtual machine steps it: the pid files are
dated minutes before the processes they record seem to have started. That is how heal and down came to
take the sandbox's own processes for strangers and leave them running.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from pipectl.sandbox import heal, procs, scenarios, stack
from pipectl.sandbox.layout import Layout, SandboxState
from tests.conftest import default_signals
from tests.fixtures.postgres import create_database, drop_database

COMPONENTS = {
    "prefect-server": "prefect server start",
    "prefect-worker": "prefect worker start",
    "sqs": "pipectl.sandbox.sqs_server",
    "modal": "pipectl.sandbox.modal_fake",
    "hosting": "pipectl.sandbox.hosting",
    "push-endpoint": "pipectl.sandbox.push_endpoint",
    "subscriber": "pipectl.sandbox.subscriber",
}
"""Each long-running process of a sandbox, by what its command line runs."""


@pytest.fixture
def folder():
    """A folder outside pytest's 0700 tmp dir (pgserver runs Postgres as its own user)."""
    root = Path(tempfile.mkdtemp(prefix="pipectl-orphans-"))
    root.chmod(0o755)
    yield root
    stack.down(Layout.at(root / "sb"))
    shutil.rmtree(root, ignore_errors=True)


def mentioning(*texts: bytes) -> dict[int, str]:
    """Running processes whose command line or environment hold one of `texts`: {pid: command line}."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid() or not procs.pid_alive(int(entry.name)):
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            blob = cmdline + b"\0" + (entry / "environ").read_bytes()
        except OSError:
            continue
        if any(text in blob for text in texts):
            found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
    return found


def traces(layout: Layout, state: SandboxState) -> list[bytes]:
    """What gives a process of this sandbox away, without trusting its records: its folder, or one of its
    ports (in `--port N`, or in an address its environment holds, as the subscriber's does)."""
    ports = (state.prefect_port, state.sqs_port, state.modal_port, state.render_port, state.netlify_port,
             state.push_port)
    return [str(layout.root).encode(), *(f"--port\0{p}\0".encode() for p in ports),
            *(f"127.0.0.1:{p}{end}".encode() for p in ports for end in ("/", "\0"))]


def per_component(layout: Layout, state: SandboxState) -> dict[str, list[int]]:
    """The sandbox's processes found on the machine (not from its pid files), per component."""
    running = mentioning(*traces(layout, state))
    return {name: sorted(pid for pid, cmdline in running.items() if needle in cmdline)
            for name, needle in COMPONENTS.items()}


def step_the_clock(run_dir: Path, seconds: float = 300) -> None:
    """What a clock stepped forward does to the sandbox's records: each pid file now looks older than its
    process."""
    for pid_file in run_dir.glob("*.pid"):
        written = pid_file.stat().st_mtime - seconds
        os.utime(pid_file, (written, written))


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def gone(pids: list[int], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while any(procs.pid_alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def bystander(*args: str) -> subprocess.Popen:
    """A process the sandbox did not start (an operator's `tail -f` of a log, say)."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", *args],
                            stdin=subprocess.DEVNULL, preexec_fn=default_signals)  # noqa: PLW1509 - two signals


def test_heal_restarts_leave_one_process_each_and_down_leaves_nothing(folder, pg_server):
    layout = Layout.at(folder / "sb")
    dsn = create_database(pg_server)
    others = Path(tempfile.mkdtemp(prefix="pipectl-other-sandbox-"))
    other = procs.spawn("modal-fake", ["sleep", "120"], others / "run")  # another sandbox's process
    tail = bystander(str(layout.run_dir / "hosting.log"))
    try:
        state = stack.up(layout, dsn=dsn)
        ports = [state.prefect_port, state.sqs_port, state.modal_port, state.render_port,
                 state.netlify_port, state.push_port]
        first = per_component(layout, state)
        assert all(len(pids) == 1 for pids in first.values()), first
        step_the_clock(layout.run_dir)

        # the push endpoint's environment changed: heal restarts the platform and its services
        scenarios.SCENARIOS["push-endpoint-no-aws"].apply(layout, state)
        heal.restore(layout, state)
        second = per_component(layout, state)
        assert all(len(pids) == 1 for pids in second.values()), second
        restarted = [name for name in ("hosting", "push-endpoint", "subscriber") if second[name] != first[name]]
        assert restarted == ["hosting", "push-endpoint", "subscriber"], (first, second)
        assert gone([first[name][0] for name in restarted])
        step_the_clock(layout.run_dir)

        # the platform killed outright: its services live on without it, and heal must not add a second set
        os.kill(second["hosting"][0], signal.SIGKILL)
        assert gone(second["hosting"])
        heal.restore(layout, state)
        third = per_component(layout, state)
        assert all(len(pids) == 1 for pids in third.values()), third
        assert third["hosting"] != second["hosting"] and third["subscriber"] != second["subscriber"]

        # a process whose pid file was lost is still the sandbox's to stop
        (layout.run_dir / "modal-fake.pid").unlink()
        stopped = stack.down(layout)
        assert "hosting" in stopped and "modal-fake" not in stopped, stopped
        assert any(name.endswith("it had started") for name in stopped), stopped
        assert gone([pid for pids in third.values() for pid in pids])
        assert mentioning(*traces(layout, state)).keys() == {tail.pid}
        assert [port for port in ports if not port_free(port)] == []
        assert list(layout.run_dir.glob("*.pid")) == []
        assert procs.pid_alive(other.pid) and procs.pid_alive(tail.pid)  # nothing else was touched
    finally:
        stack.down(layout)
        for proc in (other, tail):
            proc.kill()
            proc.wait(timeout=10)
        shutil.rmtree(others, ignore_errors=True)
        drop_database(pg_server, dsn)


def test_a_recorded_process_is_known_after_the_clock_stepped_and_a_stranger_never_is(folder):
    run_dir = folder / "sb" / "run"
    ours = procs.spawn("sqs-server", ["sleep", "120"], run_dir)
    step_the_clock(run_dir)
    assert procs.recorded(["sqs-server"], run_dir) == {"sqs-server": ours.pid}

    again = procs.spawn("sqs-server", ["sleep", "120"], run_dir)  # a restart: the old one is stopped first
    assert ours.poll() is not None
    assert procs.recorded(["sqs-server"], run_dir) == {"sqs-server": again.pid}

    # a pid file naming a process the sandbox did not start (its pid reused), or another sandbox's
    stranger = bystander()
    other = procs.spawn("modal-fake", ["sleep", "120"], folder / "other" / "run")
    try:
        (run_dir / "modal-fake.pid").write_text(str(stranger.pid))
        (run_dir / "hosting.pid").write_text(str(other.pid))
        step_the_clock(run_dir)  # the files predate the processes, as a reused pid's file does
        assert procs.recorded(["modal-fake", "hosting"], run_dir) == {}
        assert procs.stop_all(["sqs-server", "modal-fake", "hosting"], run_dir) == ["sqs-server"]
        assert procs.stop_marked(run_dir) == []
        assert again.wait(timeout=10) is not None
        assert stranger.poll() is None and other.poll() is None
        assert list(run_dir.glob("*.pid")) == []
    finally:
        for proc in (stranger, other):
            proc.kill()
            proc.wait(timeout=10)
