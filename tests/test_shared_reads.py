"""Reads shared within one run of checks: asked once, each caller with its own copy; never outside a run."""

from __future__ import annotations

import contextvars
import threading

import pytest

from pipectl import shared_reads
from pipectl.errors import Unreachable


class Server:
    """Stands for an outside system: counts the questions, and can hold an answer until told to give it."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, int]] = []
        self.lock = threading.Lock()
        self.hold: threading.Event | None = None
        self.arrived = threading.Event()

    @shared_reads.shared
    def read(self, name: str, limit: int = 10, timeout: float = 5.0) -> dict:
        with self.lock:
            self.asked.append((name, limit))
        self.arrived.set()
        if self.hold is not None:
            assert self.hold.wait(30)
        if name == "gone":
            raise Unreachable(f"server did not answer for {name}")
        return {"name": name, "runs": list(range(limit))}


def test_outside_a_run_every_call_asks_again():
    server = Server()
    server.read("a")
    server.read("a")
    assert server.asked == [("a", 10), ("a", 10)]


def test_within_a_run_the_same_question_is_asked_once_and_each_caller_gets_its_own_copy():
    server = Server()
    with shared_reads.scope():
        first = server.read("a", timeout=1.0)
        first["runs"].clear()  # one caller trimming its answer
        second = server.read("a", timeout=9.0)  # another budget: the same question all the same
        other = server.read("a", limit=3)
        keyword = server.read("a", limit=3)
    assert server.asked == [("a", 10), ("a", 3)]
    assert second == {"name": "a", "runs": list(range(10))}
    assert other == keyword == {"name": "a", "runs": [0, 1, 2]}
    server.read("a")  # the run is over: asked again
    assert server.asked[-1] == ("a", 10) and len(server.asked) == 3


def test_a_question_on_its_way_is_waited_for_not_asked_again():
    server = Server()
    server.hold = threading.Event()
    answers: list[dict] = []

    def caller() -> None:
        answers.append(server.read("a"))

    with shared_reads.scope():
        threads = [threading.Thread(target=contextvars.copy_context().run, args=(caller,)) for _ in range(4)]
        threads[0].start()
        assert server.arrived.wait(30)  # the first question is at the server
        for thread in threads[1:]:
            thread.start()
        server.hold.set()
        for thread in threads:
            thread.join(30)
    assert server.asked == [("a", 10)]
    assert len(answers) == 4 and all(a == {"name": "a", "runs": list(range(10))} for a in answers)


def test_an_error_is_shared_too_each_caller_raising_its_own():
    server = Server()
    with shared_reads.scope():
        with pytest.raises(Unreachable, match="did not answer for gone") as first:
            server.read("gone")
        with pytest.raises(Unreachable, match="did not answer for gone") as second:
            server.read("gone")
    assert server.asked == [("gone", 10)]
    assert first.value is not second.value


def test_runs_do_not_share_with_each_other():
    server = Server()
    with shared_reads.scope():
        server.read("a")
    with shared_reads.scope():
        server.read("a")
    assert server.asked == [("a", 10), ("a", 10)]
