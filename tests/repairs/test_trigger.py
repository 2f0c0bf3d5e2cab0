"""`pipectl trigger --wait` catches the first incident's silent failure the moment it happens."""

from __future__ import annotations

from pipectl.repair import Outcome
from pipectl.repairs.trigger import rows_verdict
from pipectl.sandbox import prefect_stack
from pipectl.sandbox.layout import ORCHESTRATOR, ROWS


def test_a_completed_run_that_moved_nothing_exits_1(sandbox, run_cli, tmp_path):
    prefect_stack.set_job_variables(sandbox.state.prefect_api_url, ORCHESTRATOR, prefect_stack.broken_job_variables())
    sandbox.dirty()
    code, out, err = run_cli("trigger", ORCHESTRATOR, "--wait", "--timeout", "2m", "--config",
                             str(sandbox.config_path), "--journal", str(tmp_path / "j"))
    assert code == 1
    assert f"COMPLETED but only 0 of {ROWS} PENDING row(s) reached IN_PROGRESS (QUEUED={ROWS})" in err
    assert "failed silently" in err
    assert ": Completed" in err  # the state changes were shown as they happened


def test_a_healthy_run_exits_0_with_the_rows_moved(sandbox, run_cli, tmp_path):
    sandbox.dirty()
    code, out, err = run_cli("trigger", ORCHESTRATOR, "--wait", "--config", str(sandbox.config_path),
                             "--journal", str(tmp_path / "j"), "--name", "manual-trigger-for-stuck-batch")
    assert code == 0, err
    assert f"run manual-trigger-for-stuck-batch COMPLETED; {ROWS} row(s) reached IN_PROGRESS" in err


def test_rows_verdict_table():
    def verdict(before, after, to="IN_PROGRESS") -> Outcome:
        return rows_verdict("r", "PENDING", to, before, after, {})

    assert verdict({"PENDING": 40}, {"IN_PROGRESS": 40}).ok
    assert not verdict({"PENDING": 40}, {"QUEUED": 40}).ok
    assert not verdict({"PENDING": 40}, {"IN_PROGRESS": 10, "QUEUED": 30}).ok
    assert verdict({}, {}).ok  # nothing was waiting: nothing to move
    assert verdict({"PENDING": 40}, {"DONE": 40}, to=None).ok
    assert not verdict({"PENDING": 40}, {"PENDING": 40}, to=None).ok
