"""Contexts: several environments in one config file, chosen by flag, variable, `context use` or default."""

from __future__ import annotations

import json

CONFIG = """
pipeline = "enrich"
default_context = "dev"

[credentials]
shell = ["HOME"]

[prefect]
api_url = "http://127.0.0.1:4200/api"

[contexts.dev]
prefect = { api_url = "http://127.0.0.1:4201/api" }

[contexts.prod]
pipeline = "enrich-prod"
prefect = { api_url = "http://127.0.0.1:4299/api" }
"""


def show(run_cli, *args: str, env: dict[str, str] | None = None) -> dict:
    code, out, err = run_cli(*args, "context", "show", "-o", "json", env=env)
    assert code == 0, err
    return json.loads(out)


def test_a_context_merges_over_the_file_and_names_its_pipeline(run_cli, write_config):
    path = str(write_config(CONFIG))
    dev = show(run_cli, "--config", path)  # default_context
    assert (dev["context"], dev["pipeline"], dev["prefect"]) == ("dev", "enrich/dev", "http://127.0.0.1:4201/api")
    prod = show(run_cli, "--config", path, "--context", "prod")
    assert (prod["pipeline"], prod["prefect"]) == ("enrich-prod", "http://127.0.0.1:4299/api")


def test_flag_beats_variable_beats_use_beats_default(run_cli, write_config, monkeypatch):
    path = write_config(CONFIG)
    monkeypatch.setenv("PIPECTL_CONFIG", str(path))  # no --config: the variable names the file
    assert run_cli("context", "use", "prod")[0] == 0
    assert show(run_cli)["context"] == "prod"
    assert show(run_cli, env={"PIPECTL_CONTEXT": "dev"})["context"] == "dev"
    assert show(run_cli, "--context", "prod", env={"PIPECTL_CONTEXT": "dev"})["context"] == "prod"
    code, out, _ = run_cli("context", "list", "-o", "json", env={"PIPECTL_CONTEXT": ""})
    assert json.loads(out) == {"config": str(path), "contexts": ["dev", "prod"], "current": "prod"}


def test_an_unknown_context_is_one_line_and_exit_2(run_cli, write_config):
    path = str(write_config(CONFIG))
    code, out, err = run_cli("--config", path, "--context", "staging", "doctor", "--no-journal")
    assert code == 2 and out == "" and "unknown context 'staging' (contexts: dev, prod)" in err
    code, _, err = run_cli("--config", path, "context", "use", "staging")
    assert code == 2 and "unknown context 'staging'" in err


def test_the_journal_keeps_contexts_apart(run_cli, write_config):
    path = str(write_config(CONFIG.replace("[prefect]\napi_url", "[prefect]\n#api_url")
                            .replace('prefect = { api_url = "http://127.0.0.1:4201/api" }', "")
                            .replace('prefect = { api_url = "http://127.0.0.1:4299/api" }', "")))
    for context in ("dev", "prod"):
        code, _, err = run_cli("--config", path, "--context", context, "doctor")
        assert code == 0, err
    code, out, _ = run_cli("--config", path, "--context", "prod", "journal", "-o", "json")
    runs = json.loads(out)["runs"]
    assert code == 0 and runs and {r["pipeline"] for r in runs} == {"enrich-prod"}


def test_report_has_json_output_too(run_cli, write_config, tmp_path):
    path = str(write_config('pipeline = "r"\n[credentials]\nshell = ["HOME"]\n'))
    journal = str(tmp_path / "j.sqlite3")
    assert run_cli("--config", path, "doctor", "--journal", journal)[0] == 0
    code, out, err = run_cli("--config", path, "report", "--journal", journal, "-o", "json")
    assert code == 0, err
    document = json.loads(out)
    assert document["run"]["pipeline"] == "r" and any(e["kind"] == "finding" for e in document["events"])
