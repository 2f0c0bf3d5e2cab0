"""What a check was waiting for when its time ran out, so an ERROR names the endpoint and the call.

The runner gives every check a fresh `Waiting` before it starts; connectors say what they are about to
wait for with `waiting_on(...)` (an endpoint and a call, never a secret: URLs pass through `safe_url`).
When the check's deadline passes, the runner reads the last call that had not answered yet.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class Waiting:
    """The calls in flight for one check (several when it asks in parallel)."""

    calls: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def last(self) -> str:
        with self.lock:
            return self.calls[-1] if self.calls else ""


_log = logging.getLogger("pipectl.calls")
_current: contextvars.ContextVar[Waiting | None] = contextvars.ContextVar("pipectl_waiting", default=None)


def track() -> Waiting:
    """Start tracking the calls of the check about to run in this context."""
    waiting = Waiting()
    _current.set(waiting)
    return waiting


@contextlib.contextmanager
def waiting_on(endpoint: str, call: str) -> Iterator[None]:
    """Mark `call` to `endpoint` as in flight for as long as the block runs (and log it: `pipectl -v`)."""
    text = f"{call} at {endpoint}" if endpoint else call
    _log.info("calling %s", text)
    waiting = _current.get()
    if waiting is None:
        yield
        return
    with waiting.lock:
        waiting.calls.append(text)
    try:
        yield
    finally:
        with waiting.lock, contextlib.suppress(ValueError):
            waiting.calls.remove(text)


def waiting_for(waiting: Waiting | None) -> str:
    """`, waiting for GET /deployments/filter at http://host/api` — or '' when nothing was in flight."""
    last = waiting.last() if waiting else ""
    return f", waiting for {last}" if last else ""


def retry_advice(check_id: str, timeout: float) -> str:
    """What to run to look again with more time: advice, not a fix (it heals nothing)."""
    seconds = round(max(timeout * 2, 10))
    return f"To look again with more time: `pipectl doctor --only {check_id} --timeout {seconds}`."
