"""Doctor on the healthy sandbox, and on a component that accepts connections but never answers.

Every drill's cause, symptoms and printed fix are tested in `test_drill_fixes`."""

from __future__ import annotations

import json
import shutil
import socket


def doctor(run_cli, sandbox, *extra: str) -> tuple[int, dict]:
    code, out, _ = run_cli("doctor", "--config", str(sandbox.config_path), "--format", "json", "--no-journal",
                             *extra)
    return code, {f["id"]: f for f in json.loads(out)["findings"]}


def test_healthy_sandbox_is_all_ok(sandbox, run_cli):
    code, findings = doctor(run_cli, sandbox)
    assert {i: f["summary"] for i, f in findings.items() if f["status"] not in ("ok", "skipped")} == {}
    assert code == 0


def test_a_component_that_accepts_but_never_answers_is_an_error_within_the_timeout(sandbox, run_cli, tmp_path):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # the kernel completes the handshake; nobody ever reads or answers
    port = silent.getsockname()[1]
    text = sandbox.config_path.read_text().replace(sandbox.state.prefect_api_url, f"http://127.0.0.1:{port}/api")
    shutil.copy(sandbox.layout.env_file, tmp_path / "sandbox.env")
    config = tmp_path / "pipectl.toml"
    config.write_text(text)
    try:
        code, out, _ = run_cli("doctor", "--config", str(config), "--format", "json", "--no-journal",
                               "--timeout", "2")
    finally:
        silent.close()
    findings = json.loads(out)["findings"]
    prefect = [f for f in findings if f["component"] == "prefect" and f["check"] != "modal.auth"]
    others = [f for f in findings if f["component"] in ("database", "sqs")]
    assert prefect and all(f["status"] == "error" for f in prefect if f["check"] == "prefect.api")
    (api,) = [f for f in prefect if f["check"] == "prefect.api"]
    assert f"127.0.0.1:{port}" in api["summary"] and "POST /work_pools/filter" in api["summary"], api
    assert not api["fix"] and "curl" not in api["advice"]  # nothing to run that heals it; no unauthenticated call
    # every other Prefect check that could not read through it sits under it in the tree
    by_id = {f["id"]: f for f in findings}

    def under_api(finding: dict) -> bool:  # directly, or under something that is
        return any(c == api["id"] or (c in by_id and under_api(by_id[c])) for c in finding["caused_by"])

    loose = [(f["id"], f["summary"]) for f in prefect if f["status"] == "error" and f is not api and not under_api(f)]
    assert loose == []
    assert all(f["status"] in ("ok", "skipped", "error") for f in prefect)
    assert others and all(f["status"] == "ok" for f in others)
    assert code == 3
