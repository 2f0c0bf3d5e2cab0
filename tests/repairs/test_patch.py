"""`pipectl patch` and `pipectl secret set` against the sandbox's real Prefect server."""

from __future__ import annotations

import pytest

from pipectl.config_load import load_config
from pipectl.connectors import prefect as prefect_api
from pipectl.journal import Journal
from pipectl.repair import JournalRun
from pipectl.repairs.patch import PatchJobVariables
from pipectl.sandbox import prefect_stack
from pipectl.sandbox.layout import ORCHESTRATOR

FIX = ["--env", "MODAL_TOKEN_ID=secret:modal-token-id", "--env", "MODAL_TOKEN_SECRET=secret:modal-token-secret"]


@pytest.fixture
def broken_env(sandbox):
    """The incident's job variables (no Modal env), without paying for a flow run."""
    prefect_stack.set_job_variables(sandbox.state.prefect_api_url, ORCHESTRATOR, prefect_stack.broken_job_variables())
    sandbox.dirty()
    return sandbox


def job_variables(sandbox) -> dict:
    return prefect_api.read_deployment(sandbox.state.prefect_api_url, None, ORCHESTRATOR).job_variables


def test_patch_merges_and_leaves_other_keys_alone(broken_env, run_cli, tmp_path):
    before = job_variables(broken_env)
    journal = tmp_path / "journal.sqlite3"
    code, out, err = run_cli("patch", ORCHESTRATOR, *FIX, "--config", str(broken_env.config_path), "--yes",
                             "--journal", str(journal))
    assert code == 0, err
    after = job_variables(broken_env)
    assert after["env"]["MODAL_TOKEN_ID"] == "{{ prefect.blocks.secret.modal-token-id }}"
    assert after["env"]["MODAL_TOKEN_SECRET"] == "{{ prefect.blocks.secret.modal-token-secret }}"
    assert after["env"]["LOG_LEVEL"] == before["env"]["LOG_LEVEL"]  # untouched
    assert after["pip_packages"] == before["pip_packages"]  # untouched
    assert "job_variables.env.MODAL_TOKEN_ID: (absent) → {{ prefect.blocks.secret.modal-token-id }}" in out
    book = Journal(journal)
    (run,) = book.runs()
    (change,) = book.events(run.id, "change")
    assert change.data["before"] == before and change.data["after"] == after
    assert book.events(run.id, "verify")[0].data["ok"] is True


def test_dry_run_and_missing_tty_change_nothing(broken_env, run_cli, tmp_path):
    before = job_variables(broken_env)
    code, out, _ = run_cli("patch", ORCHESTRATOR, *FIX, "--config", str(broken_env.config_path), "--dry-run",
                           "--journal", str(tmp_path / "j"))
    assert code == 0 and "Plan: merge into the job variables" in out
    code, _, err = run_cli("patch", ORCHESTRATOR, *FIX, "--config", str(broken_env.config_path),
                           "--journal", str(tmp_path / "j"))
    assert code == 2
    assert "refusing to change anything without --yes" in err
    assert job_variables(broken_env) == before


def test_plaintext_credentials_are_refused_without_echo(sandbox, run_cli, tmp_path):
    value = "as-" + "Plaintext" * 3
    code, out, err = run_cli("patch", ORCHESTRATOR, "--env", f"MODAL_TOKEN_SECRET={value}",
                             "--config", str(sandbox.config_path), "--yes", "--journal", str(tmp_path / "j"))
    assert code == 2
    assert "Secret block" in err and "pipectl secret set modal-token-secret" in err
    assert "Plai" not in out + err


def test_apply_aborts_when_the_deployment_changed_after_the_plan(broken_env, tmp_path):
    config = load_config(broken_env.config_path)
    repair = PatchJobVariables(config, ORCHESTRATOR, {"MODAL_TOKEN_ID": "{{ prefect.blocks.secret.modal-token-id }}"})
    plan = repair.plan()
    somebody_else = {**prefect_stack.broken_job_variables(), "env": {"LOG_LEVEL": "DEBUG"}}
    prefect_stack.set_job_variables(broken_env.state.prefect_api_url, ORCHESTRATOR, somebody_else)
    book = Journal(tmp_path / "j")
    outcome = repair.apply(plan, JournalRun(book, book.start("test", "sandbox")))
    assert not outcome.ok and "changed since the plan" in outcome.summary
    assert job_variables(broken_env) == somebody_else


def test_secret_set_reads_the_value_from_the_environment_only(sandbox, run_cli, tmp_path, monkeypatch):
    value = "as-" + "Rotated" * 4
    monkeypatch.setenv("NEW_MODAL_SECRET", value)
    code, out, err = run_cli("secret", "set", "modal-token-rotated", "--from-env", "NEW_MODAL_SECRET",
                             "--config", str(sandbox.config_path), "--yes", "--journal", str(tmp_path / "j"))
    assert code == 0, err
    assert prefect_api.read_secret_block(sandbox.state.prefect_api_url, None, "modal-token-rotated") == value
    assert "Rota" not in out + err
    assert "Rota" not in (tmp_path / "j").read_bytes().decode("utf-8", "replace")
