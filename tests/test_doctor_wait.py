"""`doctor --wait-healthy`: a post-deploy gate that reruns until the pipeline is healthy or time runs out."""

from __future__ import annotations

import subprocess
import sys

from pipectl.sandbox import database
from tests.conftest import default_signals


def test_the_gate_passes_once_the_pipeline_heals(sandbox):
    sandbox.break_("stuck-in-progress")
    gate = subprocess.Popen([sys.executable, "-m", "pipectl", "--config", str(sandbox.config_path), "doctor",
                             "--no-journal", "--wait-healthy", "5m", "-o", "json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=default_signals)  # noqa: PLW1509
    try:
        seen = ""
        while "not healthy yet" not in seen and gate.poll() is None:  # the first run failed: heal meanwhile
            seen += gate.stderr.readline()
        assert "not healthy yet (run 1: db.stuck:workflow_states/IN_PROGRESS" in seen, seen
        database.set_status(sandbox.state.database_url, "PENDING")
        out, err = gate.communicate(timeout=300)
    finally:
        gate.kill()
    assert gate.returncode == 0, seen + err
    assert "healthy after" in err and '"status": "fail"' not in out


def test_the_gate_fails_at_its_deadline_with_the_last_run(sandbox, run_cli):
    sandbox.break_("stuck-in-progress")
    code, out, err = run_cli("--config", str(sandbox.config_path), "doctor", "--no-journal", "--wait-healthy",
                             "2s", "--only", "db")
    assert code == 1
    assert "not healthy yet (run 1" in err
    assert "IN_PROGRESS" in out


def test_a_bad_duration_is_bad_input(sandbox, run_cli):
    for value, message in (("soon", "--wait-healthy:"), ("0s", "must be a positive duration")):
        code, _, err = run_cli("--config", str(sandbox.config_path), "doctor", "--wait-healthy", value)
        assert code == 2 and message in err and "Traceback" not in err
