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


def stripe_key() -> str:
    import secrets as random_source

    return "sk_" + "live_" + random_source.token_hex(16)


def fragments_in(value: str, text: str) -> list[str]:
    return [value[i : i + 8] for i in range(len(value) - 7) if value[i : i + 8] in text]


@pytest.mark.parametrize("option", [
    ["--env", "STRIPE_KEY={v}"],
    ["--env", "LOG_SINK={v}"],  # an ordinary name, but the value is shaped like a Stripe key
    ["--job-variable", 'env.MODAL_TOKEN_SECRET="{v}"'],
    ["--job-variable", 'stripe_webhook={{"signing_secret": "{v}"}}'],
    ["--job-variable", 'env={{"DATABASE_URL": "postgresql://app:{v}@db:5432/app"}}'],
])
def test_every_way_of_writing_a_plain_credential_is_refused_with_the_alternative(sandbox, run_cli, tmp_path, option):
    value = stripe_key()
    before = job_variables(sandbox)
    args = [option[0], option[1].format(v=value)]
    code, out, err = run_cli("patch", ORCHESTRATOR, *args, "--config", str(sandbox.config_path), "--yes",
                             "--journal", str(tmp_path / "j"))
    assert code == 2, err
    assert "refusing to write a credential as plain text" in err and "pipectl secret set " in err
    assert "secret:" in err or "prefect.blocks.secret." in err
    assert fragments_in(value, out + err) == []
    assert job_variables(sandbox) == before


def test_env_reference_to_a_credential_becomes_a_secret_block(sandbox, run_cli, tmp_path, monkeypatch):
    value = stripe_key()
    monkeypatch.setenv("STRIPE_KEY", value)
    journal = tmp_path / "j"
    code, out, err = run_cli("patch", ORCHESTRATOR, "--env", "STRIPE_KEY=env:STRIPE_KEY", "--config",
                             str(sandbox.config_path), "--yes", "--journal", str(journal))
    sandbox.dirty()
    assert code == 0, err
    assert job_variables(sandbox)["env"]["STRIPE_KEY"] == "{{ prefect.blocks.secret.stripe-key }}"
    assert prefect_api.read_secret_block(sandbox.state.prefect_api_url, None, "stripe-key") == value
    assert fragments_in(value, out + err + journal.read_bytes().decode("utf-8", "replace")) == []


def test_plain_credentials_already_there_show_as_fingerprints_and_undo_says_it_cannot_restore_them(
        sandbox, run_cli, tmp_path, monkeypatch):
    from pipectl.secrets import fingerprint

    value, nested = stripe_key(), "whsec_" + stripe_key()[8:]
    pasted = {**job_variables(sandbox), "stripe_webhook": {"signing_secret": nested}}
    pasted["env"] = {**pasted["env"], "STRIPE_KEY": value}
    prefect_stack.set_job_variables(sandbox.state.prefect_api_url, ORCHESTRATOR, pasted)
    sandbox.dirty()
    monkeypatch.setenv("STRIPE_KEY", value)
    journal = tmp_path / "j"
    base = ["--config", str(sandbox.config_path), "--journal", str(journal)]
    code, out, err = run_cli("patch", ORCHESTRATOR, "--env", "STRIPE_KEY=secret:stripe-key", "--env",
                             "LOG_LEVEL=DEBUG", "--yes", *base)
    assert code == 0, err
    assert f"job_variables.env.STRIPE_KEY: ‹secret {fingerprint(value)}› → {{{{ prefect.blocks" in out
    assert job_variables(sandbox)["stripe_webhook"]["signing_secret"] == nested  # never asked to change
    (run,) = Journal(journal).runs()
    code, undo_out, undo_err = run_cli("undo", run.id, "--yes", *base)
    assert code == 0, undo_err
    assert "env.STRIPE_KEY: the secret value it held before the run was never journaled" in undo_out + undo_err
    restored = job_variables(sandbox)
    assert restored["env"]["LOG_LEVEL"] == pasted["env"]["LOG_LEVEL"]  # the rest comes back
    assert restored["stripe_webhook"]["signing_secret"] == nested  # unchanged secrets are kept as they are
    code, report, _ = run_cli("report", run.id, *base)
    everything = out + err + undo_out + undo_err + report + journal.read_bytes().decode("utf-8", "replace")
    assert fragments_in(value, everything) == [] and fragments_in(nested, everything) == []


def test_an_object_job_variable_merges_instead_of_replacing(sandbox, run_cli, tmp_path):
    before = job_variables(sandbox)
    code, out, err = run_cli("patch", ORCHESTRATOR, "--job-variable", "env={}", "--config",
                             str(sandbox.config_path), "--yes", "--journal", str(tmp_path / "j"))
    assert code == 0, err
    assert "nothing to do" in out + err
    assert job_variables(sandbox) == before


def test_trigger_refuses_a_credential_as_a_parameter(sandbox, run_cli, tmp_path):
    value = stripe_key()
    code, out, err = run_cli("trigger", ORCHESTRATOR, "--param", f"api_token={value}", "--config",
                             str(sandbox.config_path), "--journal", str(tmp_path / "j"))
    assert code == 2
    assert "--param api_token: refusing to write a credential as plain text" in err
    assert fragments_in(value, out + err) == []
