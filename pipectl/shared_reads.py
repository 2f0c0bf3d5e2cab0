"""Reads shared by the checks of one doctor run: the same question is asked of an outside system once.

Several checks look at the same thing (four read each Prefect deployment, two its work pool), and each
read costs a round trip and the server's CPU, which on a small machine is the CPU doctor itself needs.
Inside `scope()` (the runner opens one around each run of checks), a connector function marked
`@shared` answers a repeated call, same arguments but the timeout, with the first call's answer or error;
a call made while the first is still on its way waits for it rather than asking again.

Outside a scope, as in every repair, each call asks again: a repair's check after its write must see the
system as it is now, never a remembered answer.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextvars import ContextVar
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

_answers: ContextVar[_Answers | None] = ContextVar("pipectl_shared_reads", default=None)


class _Answers:
    """The answers (or errors) of one scope, each a Future its first caller settles."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.futures: dict[tuple[str, str], Future] = {}


@contextlib.contextmanager
def scope() -> Iterator[None]:
    """Within this block (and the threads and tasks started from it), `@shared` reads are asked once."""
    token = _answers.set(_Answers())
    try:
        yield
    finally:
        _answers.reset(token)


def shared(fn: Callable[P, T]) -> Callable[P, T]:
    """Mark a read-only connector call whose answer one doctor run may reuse (see the module docstring)."""
    name = f"{fn.__module__}.{fn.__qualname__}"

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        answers = _answers.get()
        if answers is None:
            return fn(*args, **kwargs)
        key = (name, repr((args, sorted((k, v) for k, v in kwargs.items() if k != "timeout"))))
        with answers.lock:
            future = answers.futures.get(key)
            first = future is None
            if first:
                future = answers.futures[key] = Future()
        if first:
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # noqa: BLE001 - handed to every caller below
                future.set_exception(exc)
        try:
            return copy.deepcopy(future.result())  # each caller gets its own copy to sort or trim
        except BaseException as exc:  # noqa: BLE001 - re-raised, one copy per caller
            raise _own_copy(exc) from None

    return wrapper


def _own_copy(exc: BaseException) -> BaseException:
    """The error again for one more caller: a copy, so threads raising it at once do not share its traceback."""
    try:
        return copy.copy(exc).with_traceback(None)
    except Exception:  # noqa: BLE001 - an exception class that cannot be rebuilt from its args
        return exc
