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
    """Stop several process groups at once (SIGTERM to all, one shared grace period, then SIGKILL).

    Their descendants go too, even those in a session of their own (the worker's flow runs).
    """
    pids: dict[str, int] = {}
    for name in names:
        pid_file = run_dir / f"{name}.pid"
        if pid_file.exists():
            pids[name] = _read_pid(pid_file)
    leaders = list(recorded(list(pids), run_dir).values())
    family = [child for pid in leaders for child in descendants(pid)]
    _signal(leaders, family, signal.SIGTERM)
    everyone = leaders + family
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(pid_alive(pid) for pid in everyone):
        for pid in leaders:
            _reap(pid)
        time.sleep(0.05)
    _signal([p for p in leaders if pid_alive(p)], [p for p in family if pid_alive(p)], signal.SIGKILL)
    deadline = time.monotonic() + 2.0  # SIGKILL is not instant either
    while time.monotonic() < deadline and any(pid_alive(pid) for pid in everyone):
        time.sleep(0.02)
    for pid in leaders:
        _reap(pid)
    for name in pids:
        (run_dir / f"{name}.pid").unlink(missing_ok=True)
    return list(pids)


def recorded(names: list[str], run_dir: Path) -> dict[str, int]:
    """The recorded processes among `names` that are still running: {name: pid}."""
    found = {}
    for name in names:
        pid_file = run_dir / f"{name}.pid"
        pid = _read_pid(pid_file) if pid_file.is_file() else 0
        if pid and pid_alive(pid) and _started_by_then(pid, pid_file):
            found[name] = pid
    return found


def _started_by_then(pid: int, pid_file: Path) -> bool:
    """False for a pid the system reused for another process after ours ended (it started later)."""
    try:
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        started = boot + ticks / os.sysconf("SC_CLK_TCK")
        return started <= pid_file.stat().st_mtime + 2.0
    except (OSError, ValueError, IndexError, StopIteration):
        return True


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, grandchildren...), from /proc; [] where there is none."""
    children: dict[int, list[int]] = {}
    try:
        entries = [e for e in Path("/proc").iterdir() if e.name.isdigit()]
    except OSError:
        return []
    for entry in entries:
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _signal(leaders: list[int], others: list[int], sig: int) -> None:
    for pid in leaders:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
    for pid in others:
        if pid != os.getpid():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)


def _read_pid(pid_file: Path) -> int:
    try:
        return int(pid_file.read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def _reap(pid: int) -> None:
    """Collect our own child's exit status so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
