"""Background processes of the sandbox: started with a pid file, so `down` works even after a crash."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
        return True
    return False


def spawn(name: str, argv: list[str], run_dir: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start `argv` in its own process group, logging to run_dir/NAME.log and recording run_dir/NAME.pid."""
    run_dir.mkdir(parents=True, exist_ok=True)
    log = open(run_dir / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
    proc = subprocess.Popen(
        argv,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )
    log.close()
    (run_dir / f"{name}.pid").write_text(str(proc.pid))
    return proc


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen | None = None, name: str = "") -> None:
    """Block until something accepts on the port; fail fast if the process died first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port):
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{name or proc.args[0]} exited with code {proc.returncode} before listening")
        time.sleep(0.05)
    raise TimeoutError(f"{name or 'process'} did not listen on port {port} within {timeout:.0f}s")


def pid_alive(pid: int) -> bool:
    """Whether the process runs; a zombie (exited, not yet reaped) does not count."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def stop(name: str, run_dir: Path, grace: float = 5.0) -> bool:
    """Stop the process group recorded in run_dir/NAME.pid: SIGTERM, then SIGKILL after `grace` seconds."""
    return bool(stop_all([name], run_dir, grace))


def stop_all(names: list[str], run_dir: Path, grace: float = 5.0) -> list[str]:
    """Stop several process groups at once (SIGTERM to all, one shared grace period, then SIGKILL)."""
    pids: dict[str, int] = {}
    for name in names:
        pid_file = run_dir / f"{name}.pid"
        if pid_file.exists():
            pids[name] = int(pid_file.read_text().strip() or 0)
    for pid in pids.values():
        if pid and pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(pid and pid_alive(pid) for pid in pids.values()):
        for pid in pids.values():
            _reap(pid)
        time.sleep(0.05)
    for pid in pids.values():
        if pid and pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 2.0  # SIGKILL is not instant either
    while time.monotonic() < deadline and any(pid and pid_alive(pid) for pid in pids.values()):
        time.sleep(0.02)
    for pid in pids.values():
        _reap(pid)
    for name in pids:
        (run_dir / f"{name}.pid").unlink(missing_ok=True)
    return list(pids)


def _reap(pid: int) -> None:
    """Collect our own child's exit status so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
