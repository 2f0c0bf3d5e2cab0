"""`pipectl trigger --wait` catches the first incident's silent failure the moment it happens."""

from __future__ import annotations

import pytest

from pipectl.connectors import prefect as prefect_api
from pipectl.connectors import prefect_runs
from pipectl.journal import Journal
from pipectl.repair import Outcome
from pipectl.repairs.trigger import rows_verdict
from pipectl.sandbox import prefect_stack
from pipectl.sandbox.layout import ORCHESTRATOR, PROCESS_JOB, ROWS


def test_a_completed_run_that_moved_nothing_exits_1(sandbox, run_cli, tmp_path):
    prefect_stack.set_job_variables(sandbox.state.prefect_api_url, ORCHESTRATOR, prefect_stack.broken_job_variables())
    sandbox.dirty()
    code, out, err = run_cli("trigger", ORCHESTRATOR, "--wait", "--timeout", "2m", "--config",
                             str(sandbox.config_path), "--journal", str(tmp_path / "j"), "--yes")
    assert code == 1
    assert f"COMPLETED but only 0 of {ROWS} PENDING row(s) reached IN_PROGRESS (QUEUED={ROWS})" in err
    assert "failed silently" in err
    assert ": Completed" in err  # the state changes were shown as they happened


def test_a_healthy_run_exits_0_with_the_rows_moved(sandbox, run_cli, tmp_path):
    sandbox.dirty()
    code, out, err = run_cli("trigger", ORCHESTRATOR, "--wait", "--config", str(sandbox.config_path),
                             "--journal", str(tmp_path / "j"), "--name", "manual-trigger-for-stuck-batch", "--yes")
    assert code == 0, err
    assert f"run manual-trigger-for-stuck-batch COMPLETED; {ROWS} row(s) reached IN_PROGRESS" in err


def test_rows_that_reach_their_status_after_the_run_completed_count(sandbox, tmp_path):
    """What the run hands on (a Modal spawn) moves the rows after the run is COMPLETED: a cold start is no failure."""
    from pipectl.config_load import load_config
    from pipectl.repair import JournalRun, execute
    from pipectl.repairs.trigger import TriggerRun
    from pipectl.sandbox import database

    prefect_stack.set_job_variables(sandbox.state.prefect_api_url, ORCHESTRATOR, prefect_stack.broken_job_variables())
    sandbox.dirty()
    seen: list[str] = []

    def watch(line: str) -> None:  # the moment pipectl says it waits, the late worker claims every row
        seen.append(line)
        if "waiting up to" in line:
            database.set_status(sandbox.state.database_url, "IN_PROGRESS")

    config = load_config(sandbox.config_path)
    repair = TriggerRun(config, ORCHESTRATOR, wait=True, timeout_s=120, watch=watch, poll_s=0.2)
    book = Journal(tmp_path / "j")
    outcome = execute(repair, JournalRun(book, book.start("pipectl trigger", "sandbox")), yes=True)
    assert any("Completed; waiting up to" in line and "IN_PROGRESS" in line for line in seen), seen
    assert outcome.ok, outcome.summary
    assert f"{ROWS} row(s) reached IN_PROGRESS" in outcome.summary
    assert f"IN_PROGRESS={ROWS}" in " ".join(seen)  # the late move was shown as it happened


def test_rows_verdict_table():
    def verdict(before, after, to="IN_PROGRESS") -> Outcome:
        return rows_verdict("r", "PENDING", to, before, after, {})

    assert verdict({"PENDING": 40}, {"IN_PROGRESS": 40}).ok
    assert not verdict({"PENDING": 40}, {"QUEUED": 40}).ok
    assert not verdict({"PENDING": 40}, {"IN_PROGRESS": 10, "QUEUED": 30}).ok
    assert verdict({}, {}).ok  # nothing was waiting: nothing to move
    assert verdict({"PENDING": 40}, {"DONE": 40}, to=None).ok
    assert not verdict({"PENDING": 40}, {"PENDING": 40}, to=None).ok


def runs_named(sandbox, name: str) -> list:
    api = sandbox.state.prefect_api_url
    runs = prefect_runs.recent_flow_runs(api, None, prefect_api.read_deployment(api, None, ORCHESTRATOR).id, limit=50)
    return [r for r in runs if r.name == name]


def test_trigger_asks_first_and_a_dry_run_or_no_terminal_creates_nothing(sandbox, run_cli, tmp_path):
    base = ["--config", str(sandbox.config_path), "--journal", str(tmp_path / "j"), "--name", "never-started"]
    code, out, err = run_cli("trigger", ORCHESTRATOR, "--dry-run", *base)
    assert code == 0 and "Plan: start a run of" in out
    code, out, err = run_cli("trigger", ORCHESTRATOR, *base)
    assert code == 2 and "refusing to change anything without --yes" in err
    assert runs_named(sandbox, "never-started") == []
    outcomes = [e.data["result"] for r in Journal(tmp_path / "j").runs() for e in Journal(tmp_path / "j").events(
        r.id, "outcome")]
    assert outcomes == ["dry-run"]  # the refused one ended before an outcome: bad input, exit 2


@pytest.mark.parametrize(("param", "message"), [
    ("nope=1", "--param nope: orchestrator-main/data-enrichment-orchestrator has no such parameter (it takes: "
               "batch_size, spawn_timeout, step_name)"),
    ("batch_size=many", "--param batch_size: \"many\" is not integer"),
    ("batch_size=NaN", "--param batch_size: \"NaN\" is not integer"),
    ("spawn_timeout=[1]", "--param spawn_timeout: [1] is not number"),
])
def test_parameters_are_checked_against_the_deployment_schema(sandbox, run_cli, tmp_path, param, message):
    code, out, err = run_cli("trigger", ORCHESTRATOR, "--param", param, "--yes", "--config",
                             str(sandbox.config_path), "--journal", str(tmp_path / "j"))
    assert code == 2
    assert err.strip() == f"pipectl: {message}"


def test_parameters_are_coerced_and_required_ones_demanded(sandbox, run_cli, tmp_path):
    base = ["--config", str(sandbox.config_path), "--journal", str(tmp_path / "j")]
    code, out, err = run_cli("trigger", PROCESS_JOB, "--yes", *base)
    assert code == 2 and "process_job/production needs --param job_id=… (required" in err
    code, out, err = run_cli("trigger", PROCESS_JOB, "--param", "job_id=6", "--dry-run", "--format", "json", *base)
    assert code == 0, err
    from tests.schema_check import json_documents

    plan, outcome = json_documents(out)
    assert outcome["result"] == "dry-run" and outcome["applied"] is False
    assert plan["details"]["parameters"] == {"job_id": "6"}  # the flow takes a string: 6 is sent as "6"


def test_a_mistyped_deployment_is_bad_input_with_the_nearest_name(sandbox, run_cli, tmp_path):
    typo = ORCHESTRATOR.replace("orchestrator", "orchestrater", 1)
    code, out, err = run_cli("trigger", typo, "--yes", "--config", str(sandbox.config_path),
                             "--journal", str(tmp_path / "j"))
    assert code == 2
    assert f"no deployment {typo} in Prefect or in the config (did you mean {ORCHESTRATOR}?)" in err
