"""`-o json` on a repair says how it ended on stdout: after the plans, one outcome document per step, and for a
playbook its verdict last — so a script never parses the words on stderr, which stay as they are."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pipectl.journal import Journal
from pipectl.repair import (
    Change,
    Interrupted,
    JournalRun,
    Outcome,
    Plan,
    Repair,
    Step,
    StepResult,
    execute_steps,
)
from pipectl.report.plan import render_step_outcome, render_verdict
from pipectl.sandbox import prefect_stack
from pipectl.sandbox.layout import ORCHESTRATOR, ROWS
from tests.conftest import python_env
from tests.repairs.test_reset import add, counts
from tests.schema_check import check_json_output, json_documents, violations
from tests.test_repair_flow import Counter

# ------------------------------------------------------------------------------- every step settles once


class Broken(Repair):
    """A repair whose plan or apply fails the way real ones do: an error, or Ctrl-C in the middle."""

    def __init__(self, fails_in: str, error: BaseException) -> None:
        self.fails_in, self.error = fails_in, error

    def plan(self) -> Plan:
        if self.fails_in == "plan":
            raise self.error
        return Plan("broken", "change one thing", (Change("thing", "before → after", "before", "after"),))

    def apply(self, plan: Plan, journal: JournalRun) -> Outcome:
        raise self.error

    def committed(self) -> str:
        return "half of it was committed"


@pytest.fixture
def journal(tmp_path) -> JournalRun:
    book = Journal(tmp_path / "journal.sqlite3")
    return JournalRun(book, book.start("pipectl test", "json-outcomes"))


def run_steps(journal: JournalRun, steps: list[Step], **options) -> tuple[list[StepResult], BaseException | None]:
    """The steps' results as settled, and what the run raised (None when it returned)."""
    settled: list[StepResult] = []
    try:
        execute_steps(steps, journal, settle=settled.append, **options)
    except BaseException as exc:  # noqa: BLE001  (Ctrl-C is one of the endings under test)
        return settled, exc
    return settled, None


def shape(results: list[StepResult]) -> list[tuple]:
    return [(r.number, r.steps, r.ending, r.confirmed, r.applied, r.verified, r.ok) for r in results]


def test_a_failed_verify_settles_the_steps_before_it_and_the_ones_never_started(journal):
    store: dict = {}
    steps = [Step("one", Counter(store, "a", 1)), Step("two", Counter(store, "b", 1, verify_ok=False)),
             Step("three", Counter(store, "c", 1))]
    settled, raised = run_steps(journal, steps, yes=True)
    assert raised is None
    assert shape(settled) == [(1, 3, "ok", True, True, True, True), (2, 3, "failed", True, True, False, False),
                              (3, 3, "not-started", True, False, None, False)]
    assert settled[1].outcome.summary == "re-read b: 1"  # the step's own words, not the run's
    assert settled[2].outcome.summary == "not started: step 2 failed"


def test_a_refusal_and_a_dry_run_settle_every_step_unapplied(journal):
    steps = [Step("one", Counter({}, "a", 1)), Step("two", Counter({}, "b", 2))]
    refused, _ = run_steps(journal, steps, confirm=lambda question: False)
    assert shape(refused) == [(1, 2, "refused", False, False, None, False), (2, 2, "refused", False, False, None, False)]
    dry, _ = run_steps(journal, steps, dry_run=True)
    assert [(r.ending, r.dry_run, r.ok, r.outcome.details) for r in dry] == [
        ("dry-run", True, True, {"planned changes": 1})] * 2


def test_an_interrupt_or_an_error_midway_leaves_applied_unknown_and_says_what_committed(journal):
    steps = [Step("one", Counter({}, "a", 1)), Step("two", Broken("apply", KeyboardInterrupt())),
             Step("three", Counter({}, "c", 1))]
    settled, raised = run_steps(journal, steps, yes=True)
    assert isinstance(raised, Interrupted)
    assert shape(settled) == [(1, 3, "ok", True, True, True, True), (2, 3, "interrupted", True, None, None, False),
                              (3, 3, "not-started", True, False, None, False)]
    assert settled[1].outcome.summary == "interrupted at step 2/3 (two): half of it was committed"

    settled, raised = run_steps(journal, [Step("only", Broken("apply", ConnectionError("lost it")))], yes=True)
    assert isinstance(raised, ConnectionError)
    assert shape(settled) == [(1, 1, "failed", True, None, None, False)]


def test_a_plan_that_fails_leaves_the_plans_shown_before_it_not_started(journal):
    shown: list[str] = []
    steps = [Step("store block", Counter({}, "a", 1)), Step("patch", Broken("plan", ValueError("no such thing")))]
    settled, raised = run_steps(journal, steps, yes=True, show=lambda plan: shown.append(plan.title))
    assert isinstance(raised, ValueError) and shown == ["add 1 to a"]
    assert shape(settled) == [(1, 2, "not-started", False, False, None, False)]
    assert settled[0].outcome.summary == "not started: planning patch failed: no such thing"


def test_the_documents_validate_and_a_verdict_follows_how_the_run_ended(journal):
    store: dict = {}
    settled, _ = run_steps(journal, [Step("one", Counter(store, "a", 1)), Step("two", Counter(store, "b", 1))],
                           yes=True)
    documents = [json.loads(render_step_outcome(step, "RUN")) for step in settled]
    fixed = json.loads(render_verdict("demo", "RUN", settled, outcome=Outcome(True, "all 2 steps done")))
    not_fixed = json.loads(render_verdict("demo", "RUN", settled, outcome=Outcome(
        False, "all steps done, but 1 check finding(s) still fail", {"still failing": ["db.stuck:jobs/pending"]})))
    interrupted = json.loads(render_verdict("demo", "RUN", settled[:1], error=Interrupted("interrupted at step 2")))
    assert [violations(d) for d in [*documents, fixed, not_fixed, interrupted]] == [[]] * 5
    assert [d["title"] for d in documents] == ["add 1 to a", "add 1 to b"]
    assert (fixed["verdict"], fixed["result"], fixed["ok"], fixed["steps"]) == ("FIXED", "ok", True, documents)
    assert (not_fixed["verdict"], not_fixed["ok"], not_fixed["still_failing"]) == (
        "NOT FIXED", False, ["db.stuck:jobs/pending"])
    assert (interrupted["verdict"], interrupted["result"], interrupted["summary"]) == (
        "NOT FIXED", "interrupted", "interrupted at step 2")


# --------------------------------------------------------------------------------- reset on Postgres


def reset_args(config_path, journal) -> list[str]:
    return ["reset", "--status", "QUEUED", "--older-than", "10m", "-o", "json", "--config", str(config_path),
            "--journal", str(journal)]


def test_a_reset_prints_its_plan_then_an_outcome_saying_it_was_applied_and_verified(db, run_cli, config_path,
                                                                                      tmp_path):
    add(db, "enrich", "QUEUED", 30, 20)
    journal = tmp_path / "j.sqlite3"
    code, out, err = run_cli(*reset_args(config_path, journal), "--yes")
    assert code == 0, err
    plan, outcome = json_documents(out)
    (run,) = Journal(journal).runs()
    assert plan["title"] == outcome["title"] == "reset 30 row(s) of workflow_states from QUEUED to PENDING"
    assert {k: outcome[k] for k in ("schema", "run_id", "step", "steps", "action", "result", "dry_run",
                                    "confirmed", "applied", "verified", "ok")} == {
        "schema": "pipectl.outcome/v1", "run_id": run.id, "step": 1, "steps": 1, "action": "reset",
        "result": "ok", "dry_run": False, "confirmed": True, "applied": True, "verified": True, "ok": True}
    assert outcome["summary"].startswith("30 row(s) QUEUED → PENDING")
    assert counts(db) == {"PENDING": 30}
    assert f"✓ {outcome['summary']}" in err and f"journal: run {run.id}" in err  # the words stay on stderr


def test_a_dry_run_says_so_and_applies_nothing(db, run_cli, config_path, tmp_path):
    add(db, "enrich", "QUEUED", 5, 20)
    add(db, "score", "QUEUED", 5, 20)
    code, out, err = run_cli(*reset_args(config_path, tmp_path / "j.sqlite3"), "--dry-run")
    assert code == 0, err
    plan, outcome = json_documents(out)
    assert len(plan["changes"]) == 2
    assert (outcome["result"], outcome["dry_run"], outcome["confirmed"], outcome["applied"], outcome["verified"],
            outcome["ok"]) == ("dry-run", True, False, False, None, True)
    assert outcome["details"] == {"planned changes": 2}
    assert counts(db) == {"QUEUED": 10}


def test_no_terminal_and_no_yes_exits_2_with_an_outcome_saying_nothing_was_applied(db, config_path, tmp_path):
    add(db, "enrich", "QUEUED", 5, 20)
    args = reset_args(config_path, tmp_path / "j.sqlite3")
    proc = subprocess.run([sys.executable, "-m", "pipectl", *args], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, env=python_env(), timeout=120, check=False)
    assert proc.returncode == 2, proc.stderr
    check_json_output(args, proc.stdout)  # as run_cli does; stdin here is no terminal, for certain
    plan, outcome = json_documents(proc.stdout)
    assert plan["title"] == outcome["title"] == "reset 5 row(s) of workflow_states from QUEUED to PENDING"
    assert (outcome["result"], outcome["confirmed"], outcome["applied"], outcome["ok"]) == (
        "refused", False, False, False)
    assert outcome["summary"] == "refusing to change anything without --yes: there is no terminal to confirm on"
    assert proc.stderr.strip() == f"pipectl: {outcome['summary']}"
    assert counts(db) == {"QUEUED": 5}


# -------------------------------------------------------------------------------------- on the sandbox


def test_a_verify_that_fails_says_applied_but_not_verified_and_exits_1(sandbox, run_cli, tmp_path):
    """The first incident's silent failure: the run COMPLETES, the rows do not move."""
    prefect_stack.set_job_variables(sandbox.state.prefect_api_url, ORCHESTRATOR, prefect_stack.broken_job_variables())
    sandbox.dirty()
    code, out, err = run_cli("trigger", ORCHESTRATOR, "--wait", "--timeout", "2m", "--yes", "-o", "json",
                             "--config", str(sandbox.config_path), "--journal", str(tmp_path / "j"))
    assert code == 1, err
    plan, outcome = json_documents(out)
    assert plan["action"] == "trigger"
    assert (outcome["action"], outcome["result"], outcome["applied"], outcome["verified"], outcome["ok"]) == (
        "trigger", "failed", True, False, False)
    assert f"only 0 of {ROWS} PENDING row(s) reached IN_PROGRESS" in outcome["summary"]


def test_a_playbook_ends_with_its_verdict_after_every_step_outcome(sandbox, run_cli, tmp_path):
    sandbox.break_("missing-modal-creds")
    base = ["playbook", "run", "fix-stuck-batch", "-o", "json", "--config", str(sandbox.config_path),
            "--journal", str(tmp_path / "j")]
    code, out, err = run_cli(*base, "--dry-run")
    assert code == 0, err
    *_, verdict = json_documents(out)
    assert (verdict["verdict"], verdict["result"], verdict["ok"]) == (None, "dry-run", True)
    assert {step["result"] for step in verdict["steps"]} == {"dry-run"}

    code, out, err = run_cli(*base, "--yes", "--report", str(tmp_path / "report.md"))
    assert code == 0, err
    documents = json_documents(out)
    plans = [d for d in documents if "schema" not in d]
    outcomes = [d for d in documents if d.get("schema") == "pipectl.outcome/v1"]
    verdict = documents[-1]
    assert documents == [*plans, *outcomes, verdict] and len(plans) == len(outcomes) > 1
    assert [o["title"] for o in outcomes] == [p["title"] for p in plans]
    assert all(o["ok"] and o["result"] in ("ok", "nothing-to-do") for o in outcomes), outcomes
    assert {k: verdict[k] for k in ("schema", "playbook", "verdict", "result", "ok", "still_failing")} == {
        "schema": "pipectl.playbook/v1", "playbook": "fix-stuck-batch", "verdict": "FIXED", "result": "ok",
        "ok": True, "still_failing": []}
    assert verdict["steps"] == outcomes
    assert sandbox.counts() == {"IN_PROGRESS": ROWS}
