"""Background processes of the sandbox: started with a pid file, so `down` works even after a crash.

Every process the sandbox starts carries `PIPECTL_SANDBOX_RUN=<its run folder>` in its environment, and
passes it on to its own children (a worker's flow runs, the platform's hosted services). The mark tells
whether a recorded pid is still the process we started (the pid may have been reused), and lets `down`
find every process of this sandbox and of no other, whatever became of the pid files. The clock is no
help there: a process's start time in wall-clock seconds moves whenever the clock is stepped (NTP, a
resumed virtual machine), so a check based on it took the sandbox's own processes for strangers.
"""

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


MARK = "PIPECTL_SANDBOX_RUN"
"""The environment variable that marks a process as started by the sandbox whose run folder it names."""


def mark(run_dir: Path) -> str:
    return str(run_dir.resolve())


def spawn(name: str, argv: list[str], run_dir: Path, env: dict[str, str] | None = None, *,
          inherit: bool = True) -> subprocess.Popen:
    """Start `argv` in its own process group, logging to run_dir/NAME.log and recording run_dir/NAME.pid.

    A process recorded under NAME that still runs is stopped first (and waited for): a restart never
    leaves the old one behind. `inherit=False` gives the child `env` alone (plus the sandbox's mark).
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    stop(name, run_dir)
    base = dict(os.environ) if inherit else {}
    log = open(run_dir / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
    proc = subprocess.Popen(
        argv,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**base, **(env or {}), MARK: mark(run_dir)},
        start_new_session=True,
    )
    log.close()
    _await_mark(proc, run_dir)
    tmp = run_dir / f"{name}.pid.tmp"
    tmp.write_text(str(proc.pid))
    tmp.replace(run_dir / f"{name}.pid")
    return proc


def _await_mark(proc: subprocess.Popen, run_dir: Path, within: float = 5.0) -> None:
    """Return once the new process shows its mark. Popen returns as soon as the child execs, but the kernel
    fills in the new program's environment a moment later: read before then, it is empty."""
    deadline = time.monotonic() + within
    expected = f"{MARK}={mark(run_dir)}".encode()
    while time.monotonic() < deadline and proc.poll() is None:
        environ = _environ(proc.pid)
        if environ is None or expected in environ:
            return
        time.sleep(0.001)


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

    Their descendants go too, even those in a session of their own (the worker's flow runs). Returns the
    names whose process was running; every pid file of `names` is gone afterwards.
    """
    live = recorded(names, run_dir)
    leaders = list(live.values())
    _terminate(leaders, [child for pid in leaders for child in descendants(pid)], grace)
    for name in names:
        (run_dir / f"{name}.pid").unlink(missing_ok=True)
    return list(live)


def stop_marked(run_dir: Path, grace: float = 5.0) -> list[int]:
    """Stop every process that still carries this sandbox's mark (and what runs below it): those whose
    pid file is lost or was never theirs — a flow run, a service whose platform was killed. Returns them.

    Never this process or one it runs under, and never a process of another sandbox (another mark).
    """
    stopped: list[int] = []
    for _ in range(3):  # a parent stopped in one round may have started a child meanwhile
        found = [pid for pid in marked(run_dir) if pid not in stopped]
        if not found:
            break
        family = [child for pid in found for child in descendants(pid) if child not in found]
        _terminate([], found + family, grace)
        stopped += found
    return stopped


def marked(run_dir: Path) -> list[int]:
    """The running processes whose environment carries this sandbox's mark (not this one, nor its parents)."""
    tag = f"{MARK}={mark(run_dir)}".encode()
    spared = {os.getpid(), *_ancestors()}
    found = []
    for entry in _proc_entries():
        pid = int(entry.name)
        if pid in spared or not pid_alive(pid):
            continue
        environ = _environ(pid)
        if environ is not None and tag in environ:
            found.append(pid)
    return found


def _terminate(leaders: list[int], others: list[int], grace: float) -> None:
    """SIGTERM to the groups of `leaders` and to `others`; after `grace`, SIGKILL to whoever is left."""
    _signal(leaders, others, signal.SIGTERM)
    everyone = leaders + others
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(pid_alive(pid) for pid in everyone):
        for pid in everyone:
            _reap(pid)
        time.sleep(0.05)
    _signal([p for p in leaders if pid_alive(p)], [p for p in others if pid_alive(p)], signal.SIGKILL)
    deadline = time.monotonic() + 2.0  # SIGKILL is not instant either
    while time.monotonic() < deadline and any(pid_alive(pid) for pid in everyone):
        time.sleep(0.02)
    for pid in everyone:
        _reap(pid)


def recorded(names: list[str], run_dir: Path) -> dict[str, int]:
    """The recorded processes among `names` that are still running: {name: pid}."""
    found = {}
    for name in names:
        pid_file = run_dir / f"{name}.pid"
        pid = _read_pid(pid_file) if pid_file.is_file() else 0
        if pid and pid_alive(pid) and _ours(pid, pid_file, run_dir):
            found[name] = pid
    return found


def _ours(pid: int, pid_file: Path, run_dir: Path) -> bool:
    """Whether `pid` is still the process the pid file was written for, and not a stranger that got the
    pid after ours ended: by the mark in its environment."""
    environ = _environ(pid)
    if environ is not None:
        if f"{MARK}={mark(run_dir)}".encode() in environ:
            return True
        if any(entry.startswith(f"{MARK}=".encode()) for entry in environ):
            return False  # another sandbox's process
    return _started_by_then(pid, pid_file)  # unreadable, or started by a pipectl from before the mark


def _environ(pid: int) -> list[bytes] | None:
    """The environment a process started with; None where it cannot be read (another user's, gone)."""
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None


def _started_by_then(pid: int, pid_file: Path) -> bool:
    """For a process without the mark: False if it started after its pid file was written (a reused pid).

    Wall-clock based, so wrong after the clock was stepped; only processes of an older pipectl get here.
    """
    try:
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        started = boot + ticks / os.sysconf("SC_CLK_TCK")
        return started <= pid_file.stat().st_mtime + 2.0
    except (OSError, ValueError, IndexError, StopIteration):
        return True


def _proc_entries() -> list[Path]:
    try:
        return [e for e in Path("/proc").iterdir() if e.name.isdigit()]
    except OSError:
        return []


def _ancestors() -> list[int]:
    found, pid = [], os.getppid()
    while pid > 1 and pid not in found:
        found.append(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
    return found


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, grandchildren...), from /proc; [] where there is none."""
    children: dict[int, list[int]] = {}
    for entry in _proc_entries():
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
