"""The runner: concurrency, timeouts, crashes, selection and cause linking, with checks defined inline."""

import asyncio
import threading

import pytest

from pipectl.config import PipelineConfig
from pipectl.deadline import waiting_on
from pipectl.errors import Unauthorized, Unreachable, UsageError
from pipectl.interface import Check, Context
from pipectl.links import Link, link_findings
from pipectl.model import Finding, Severity, Status
from pipectl.runner import run_checks, select


def make_check(check_id: str, behaviour, component: str = "test"):
    class Dynamic(Check):
        """Detects: test behaviour."""

        id = check_id

        def run(self, ctx):
            return behaviour(self)

    Dynamic.component = component
    return Dynamic


class AsyncSleeper(Check):
    """Detects: nothing; sleeps."""

    id = "test.async_sleep"
    component = "test"

    async def run(self, ctx):
        await asyncio.sleep(0.4)
        return [self.ok("slept")]


def ctx(timeout: float = 5.0) -> Context:
    return Context(config=PipelineConfig(), timeout=timeout)


def test_checks_run_concurrently():
    """Three thread checks meet at a barrier: run one after another, the first would wait for the others
    forever (the barrier breaks after 10 s and the checks end in ERROR)."""
    barrier = threading.Barrier(3, timeout=10)
    meeters = [make_check(f"test.meet{i}", lambda c: (barrier.wait(), [c.ok("met")])[1]) for i in range(3)]
    result = run_checks([*meeters, AsyncSleeper], ctx(timeout=30))
    assert [f.status for f in result.findings] == [Status.OK] * 4


def test_a_hung_check_is_cut_at_its_timeout_names_the_call_it_waited_for_and_the_others_are_unaffected():
    never = threading.Event()

    def hang(c):
        with waiting_on("http://127.0.0.1:9/api", "GET /deployments/name/a/b"):
            never.wait()
        return []

    hung = make_check("test.hang", hang)
    quick = make_check("test.quick", lambda c: [c.ok("fine")])
    result = run_checks([hung, quick], ctx(timeout=0.5))
    by_check = {f.check: f for f in result.findings}
    assert by_check["test.hang"].status is Status.ERROR
    assert by_check["test.hang"].summary == ("did not finish within 1s, waiting for GET /deployments/name/a/b at "
                                             "http://127.0.0.1:9/api")
    assert by_check["test.hang"].fix == () and "--timeout 10" in by_check["test.hang"].advice
    assert by_check["test.quick"].status is Status.OK
    never.set()


def test_exceptions_become_findings_naming_the_cause():
    def crash(c):
        raise KeyError("boom")

    def unreachable(c):
        raise Unreachable("prefect at 127.0.0.1:9 refused the connection")

    def unauthorized(c):
        raise Unauthorized("prefect answered 401: the API key was refused")

    result = run_checks(
        [make_check("test.crash", crash), make_check("test.down", unreachable), make_check("test.auth", unauthorized)],
        ctx(),
    )
    by_check = {f.check: f for f in result.findings}
    assert by_check["test.crash"].status is Status.ERROR
    assert by_check["test.crash"].summary == "check crashed: KeyError: 'boom'"
    assert by_check["test.down"].status is Status.ERROR
    assert "refused the connection" in by_check["test.down"].summary
    assert by_check["test.auth"].status is Status.FAIL


def test_an_empty_answer_still_shows_the_check_ran_and_skips_are_explained():
    class NotHere(Check):
        """Detects: nothing here."""

        id = "test.skip"
        component = "test"

        def applies(self, ctx):
            return "no queues configured"

        def run(self, ctx):  # pragma: no cover - never called
            raise AssertionError

    result = run_checks([make_check("test.empty", lambda c: []), NotHere], ctx())
    assert [(f.check, f.status, f.summary) for f in result.findings] == [
        ("test.empty", Status.OK, "nothing to report"),
        ("test.skip", Status.SKIPPED, "no queues configured"),
    ]


def test_selection_by_id_prefix_and_component():
    registry = {c.id: c for c in (
        make_check("prefect.api", None, "prefect"),
        make_check("prefect.runs", None, "prefect"),
        make_check("modal.auth", None, "modal"),
        make_check("db.stuck", None, "database"),
    )}
    assert [c.id for c in select(registry, ["prefect"])] == ["prefect.api", "prefect.runs"]
    assert [c.id for c in select(registry, ["modal", "database"])] == ["modal.auth", "db.stuck"]
    assert [c.id for c in select(registry, [], ["prefect.runs", "modal"])] == ["prefect.api", "db.stuck"]
    with pytest.raises(UsageError, match="unknown check or component 'nope'"):
        select(registry, ["nope"])


def _f(check, state, subject="", **evidence):
    return Finding(check=check, status=state, severity=Severity.P1, component="c", summary=check,
                   subject=subject, evidence=evidence)


def test_symptoms_are_linked_to_failing_causes_only():
    findings = [
        _f("db.stuck", Status.FAIL, "workflow_states/QUEUED", status="QUEUED"),
        _f("db.stuck", Status.FAIL, "workflow_states/PENDING", status="PENDING"),
        _f("prefect.job_variables", Status.FAIL, "orchestrator"),
        _f("modal.auth", Status.OK),
        _f("prefect.deployment", Status.ERROR, "orchestrator"),
        _f("prefect.api", Status.ERROR),
    ]
    linked = {f.id: f.caused_by for f in link_findings(findings)}
    assert linked["db.stuck:workflow_states/QUEUED"] == ("prefect.job_variables:orchestrator",)
    # the API outage explains the deployment finding, which explains the rows: a chain, not two edges
    assert linked["db.stuck:workflow_states/PENDING"] == ("prefect.deployment:orchestrator",)
    assert linked["prefect.deployment:orchestrator"] == ("prefect.api",)
    assert linked["prefect.api"] == ()


def test_a_link_that_would_close_a_cycle_is_dropped():
    links = [Link("a.x", ("b.x",)), Link("b.x", ("a.x",))]
    linked = link_findings([_f("a.x", Status.FAIL), _f("b.x", Status.FAIL)], links)
    assert [f.caused_by for f in linked] == [("b.x",), ()]
