"""Spreading one doctor run over two processes, so its CPU-bound part uses both cores of a small machine.

A doctor run is mostly CPU spent importing client libraries (botocore, psycopg, modal, httpx), and threads
cannot overlap imports (the GIL). So, when it is safe, the runner forks once: the child imports and runs the
checks that need AWS, Postgres or nothing but local files, while the parent imports and runs the ones that
talk HTTP and gRPC (Prefect, Modal, the hosting platforms). The child sends back its findings and what its
checks handed to the redactor (a secret a child's check found must be masked in what the parent prints).

The child is forked early (`start_helper`, at the start of `pipectl doctor`), so that its libraries are
imported while this process reads the config and loads the checks; it then gets its checks, the run's
context and the redactor's state down a pipe. Where they cannot be sent, the run forks again as before.

It is only done on Linux (macOS's system frameworks, which proxy look-ups reach, are not safe to use in a
forked child), from a process with no other thread (a fork copies one thread and every lock as it was),
and when both sides have work; otherwise everything runs in this process, as before.
`PIPECTL_ONE_PROCESS=1` turns it off.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import logging
import os
import pickle
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

from pipectl.interface import Check
from pipectl.model import Finding
from pipectl.redact import redactor

_log = logging.getLogger("pipectl.spread")

CHILD_LIBRARIES = frozenset({"botocore.session", "psycopg"})
"""Checks needing one of these, or no client library at all, run in the child."""
_GRACE = 30.0
"""Seconds, beyond the checks' own timeout, the parent waits for the child (its imports take time too)."""

RunGroup = Callable[[Sequence[Check]], list[list[Finding]]]


def split(checks: Sequence[Check]) -> tuple[list[Check], list[Check]] | None:
    """(checks for the parent, checks for the child), or None when this run stays in one process."""
    if not _may_fork():
        return None
    child = [c for c in checks if not c.libraries or CHILD_LIBRARIES & set(c.libraries)]
    parent = [c for c in checks if c not in child]
    return (parent, child) if parent and child else None


def _may_fork() -> bool:
    return (not os.environ.get("PIPECTL_ONE_PROCESS") and sys.platform.startswith("linux")
            and threading.active_count() == 1)


@dataclass
class _Helper:
    """A child forked before the config was read: it imports CHILD_LIBRARIES, then waits for its job."""

    pid: int
    job: int
    """Write end: (run_group, checks, redactor state), pickled; closed unwritten, the helper leaves."""
    answer: int
    """Read end: what `_child` sends back."""


_helper: _Helper | None = None


def start_helper() -> None:
    """Fork now the process that will run the child's half of the next run, so it imports botocore and psycopg
    (a third of doctor's CPU) while this one parses the config and loads the checks. Does nothing where a
    run would not be spread; an unused helper is stopped when this process ends or a run stays in one."""
    global _helper
    if _helper is not None or not _may_fork():
        return
    job_read, job_write = os.pipe()
    answer_read, answer_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the helper; its findings are what the tests look at
        try:
            os.close(job_write)
            os.close(answer_read)
            _serve(job_read, answer_write)
        finally:
            os._exit(1)  # whatever happens, the helper never returns into the parent's code
    os.close(job_read)
    os.close(answer_write)
    _helper = _Helper(pid, job_write, answer_read)
    atexit.register(dismiss_helper)


def _serve(job_read: int, answer_write: int) -> None:  # pragma: no cover - runs in the helper
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for name in sorted(CHILD_LIBRARIES):
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001, S112 - the check that needs it reports a library that cannot load
            continue
    with os.fdopen(job_read, "rb") as pipe:
        job = pipe.read()
    if not job:
        os._exit(0)
    try:
        run_group, checks, state = pickle.loads(job)
        redactor.merge(state)  # what the parent learnt while loading the config is masked here too
    except BaseException:  # noqa: BLE001 - the parent reads an empty answer as a crash
        os._exit(1)
    _child(checks, run_group, answer_write)


def _send_job(run_group: RunGroup, checks: Sequence[Check]) -> _Helper | None:
    """Hand `checks` to the helper; None (and the helper stopped) when there is none or it cannot take them."""
    global _helper
    helper, _helper = _helper, None
    if helper is None:
        return None
    if any(type(check).__module__ == "__main__" for check in checks):
        _stop(helper)  # a script's own checks: the helper, forked earlier, may not have them
        return None
    try:
        job = pickle.dumps((run_group, list(checks), redactor.export()))
        with os.fdopen(helper.job, "wb") as pipe:  # closed after: the helper reads to the end
            pipe.write(job)
    except Exception:  # noqa: BLE001 - a check or context that cannot be pickled, or a helper that died
        _stop(helper)
        return None
    return helper


def dismiss_helper() -> None:
    """Stop the helper, if one was started and no run has taken it (this run stays in one process)."""
    global _helper
    helper, _helper = _helper, None
    if helper is not None:
        _stop(helper)


def _stop(helper: _Helper) -> None:
    for fd in (helper.job, helper.answer):
        with contextlib.suppress(OSError):
            os.close(fd)
    with contextlib.suppress(OSError):
        os.kill(helper.pid, signal.SIGKILL)
        os.waitpid(helper.pid, 0)


def run_split(parent: Sequence[Check], child: Sequence[Check], run_group: RunGroup, timeout: float
              ) -> list[list[Finding]]:
    """Findings per check, in the order parent + child; the child's checks run in a second process (the
    helper when one was started and can take them, else one forked now)."""
    _log.info("running %s in a second process", ", ".join(c.id for c in child))
    helper = _send_job(run_group, child)
    if helper is not None:
        pid, read_end = helper.pid, helper.answer
    else:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child; its findings are what the tests look at
            os.close(read_end)
            _child(child, run_group, write_end)
        os.close(write_end)
    try:
        mine = run_group(parent)
        theirs = _collect(read_end, pid, child, time.monotonic() + timeout + _GRACE)
    finally:
        os.close(read_end)
    return mine + theirs


def _child(checks: Sequence[Check], run_group: RunGroup, write_end: int) -> None:
    """Run `checks`, send (findings, redactor state) down the pipe, and leave without running any cleanup
    of the parent's (no atexit, no buffered output of the parent's written twice)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C: the parent speaks for the run
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        payload = pickle.dumps(("ok", [[_wire(f) for f in group] for group in run_group(checks)],
                                redactor.export()))
    except BaseException as exc:  # noqa: BLE001 - reported by the parent as ERROR findings
        payload = pickle.dumps(("crashed", f"{type(exc).__name__}: {redactor(str(exc))}", redactor.export()))
    try:
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(payload)
    finally:
        os._exit(0)


def _collect(read_end: int, pid: int, checks: Sequence[Check], deadline: float) -> list[list[Finding]]:
    """The child's findings; ERROR findings for all its checks when it dies, garbles or outlives the deadline."""
    chunks: list[bytes] = []
    while True:
        left = deadline - time.monotonic()
        ready, _, _ = select.select([read_end], [], [], max(0.0, left))
        if not ready:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return _errors(checks, "did not finish (the process running it was stopped)")
        chunk = os.read(read_end, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    os.waitpid(pid, 0)
    try:
        status, body, state = pickle.loads(b"".join(chunks))
    except Exception:  # noqa: BLE001 - a child killed mid-write leaves a truncated payload
        return _errors(checks, "crashed: the process running it ended without an answer")
    redactor.merge(state)  # before any finding of the child can be printed
    if status != "ok":
        return _errors(checks, f"crashed: {body}")
    return [[Finding(**item) for item in group] for group in body]


def _wire(finding: Finding) -> dict:
    """A finding as plain picklable values (its evidence is a read-only mapping proxy)."""
    values = {f.name: getattr(finding, f.name) for f in fields(finding)}
    values["evidence"] = dict(finding.evidence)
    return values


def _errors(checks: Sequence[Check], what: str) -> list[list[Finding]]:
    return [[check.error(f"check {what}", impact="Could not tell whether this part works.")] for check in checks]
