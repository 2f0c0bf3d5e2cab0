"""A printed fix is a promise. For every drill: break the sandbox, run `pipectl doctor`, take the commands it
prints for the root cause and its symptoms — literally, from the JSON — run them in a shell the way an
operator pastes them (confirming each prompt with `y`), and require doctor to pass afterwards.

A drill a person must heal (`Scenario.needs_person`) must still be named with its cause and carry advice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipectl.sandbox import stack
from pipectl.sandbox.layout import ORCHESTRATOR, ROWS
from pipectl.sandbox.scenarios import SCENARIOS
from tests.conftest import default_signals

HEALS_WITHIN = 120.0
"""Seconds a healed pipeline may take to show it: a started worker picks up its Late runs, a triggered run
finishes. Doctor is rerun until it passes or this runs out (it is a deadline, not a pause)."""
RECHECK = 1.0
"""Seconds between two doctor runs while the pipeline heals: back to back, doctor took the CPU the healing
needed (a worker starting, a flow run's process)."""
LONG_RUNNING = ("worker start",)
"""Commands that start a service which runs until stopped: started in the background, stopped at the end."""


@pytest.fixture
def doctor(run_cli, monkeypatch, sandbox):
    """`pipectl doctor --format json` in the sandbox's folder, in this process (the commands an operator
    pastes run as processes), with the operator's environment."""

    def run(env: dict[str, str]) -> tuple[int, dict]:
        for name in set(os.environ) - set(env):
            monkeypatch.delenv(name)
        code, out, err = run_cli("doctor", "--format", "json", "--no-journal", cwd=sandbox.layout.root, env=env)
        assert code in (0, 1, 3), err
        return code, json.loads(out)

    return run


def _operator_env(sandbox) -> dict[str, str]:
    """An operator's shell: the project's commands (pipectl, prefect, aws) on PATH, and the pipeline's
    environment loaded (as after `eval "$(pipectl sandbox env)"`)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # AWS credentials only from the sandbox's own env file: never this machine's profile or instance role
    env.update(AWS_SHARED_CREDENTIALS_FILE="/nonexistent/credentials", AWS_CONFIG_FILE="/nonexistent/config",
               AWS_EC2_METADATA_DISABLED="true")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        env.pop(name, None)
    for line in sandbox.layout.env_file.read_text().splitlines():
        name, _, value = line.partition("=")
        if name.strip() and not name.startswith("#"):
            env[name.strip()] = value.strip()
    return env


def fixes_in_tree_order(document: dict) -> list[str]:
    """Each failing root cause's commands, then its symptoms' (healing the cause first); no command twice."""
    findings = document["findings"]
    failing = [f for f in findings if f["status"] in ("fail", "warn", "error")]
    ids = {f["id"] for f in failing}
    roots = [f for f in failing if not any(c in ids for c in f["caused_by"])]
    ordered = []
    for root in roots:
        ordered.append(root)
        ordered += [f for f in failing if root["id"] in f["caused_by"] and f not in ordered]
    ordered += [f for f in failing if f not in ordered]
    return list(dict.fromkeys(command for f in ordered for command in f["fix"]))


def _run_as_pasted(command: str, cwd: Path, env: dict[str, str], background: list[subprocess.Popen],
                   worker_env: dict[str, str]) -> None:
    """One command through a shell with a terminal on stdin that answers the confirmation with `y`. A
    service (a worker) starts where the pipeline's workers run: with their environment (`worker_env`)."""
    import pty

    if any(marker in command for marker in LONG_RUNNING):
        background.append(subprocess.Popen(command, shell=True, cwd=cwd, env={**env, **worker_env},
                                           stdin=subprocess.DEVNULL,
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                           start_new_session=True,
                                           preexec_fn=default_signals))  # noqa: PLW1509 - sets two signals only
        return
    controller, terminal = pty.openpty()
    try:
        os.write(controller, b"y\n")
        done = subprocess.run(command, shell=True, cwd=cwd, env=env, stdin=terminal, capture_output=True,
                              text=True, timeout=300, check=False, preexec_fn=default_signals)
    finally:
        os.close(terminal)
        os.close(controller)
    assert done.returncode == 0, f"the printed fix `{command}` failed ({done.returncode}): {done.stderr[-600:]}"


def _stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, signal.SIGKILL)


_STUCK = "db.stuck:workflow_states/{}/normalize_company_name"
SYMPTOMS = {
    "missing-modal-creds": _STUCK.format("QUEUED"),
    "modal-bad-token": _STUCK.format("QUEUED"),
    "modal-function-missing": _STUCK.format("QUEUED"),
    "missing-deployment": "sqs.dlq:jobs",
    "push-endpoint-no-aws": "db.stuck:jobs/pending",
    "subscriber-no-aws": "db.stuck:jobs/pending",
    "subscriber-wrong-queue": "db.stuck:jobs/pending",
    "worker-no-api-url": "prefect.work_pool:managed-production",
    "no-worker": _STUCK.format("PENDING"),
    "pool-paused": _STUCK.format("PENDING"),
    "pool-concurrency-zero": _STUCK.format("PENDING"),
    "queue-paused": _STUCK.format("PENDING"),
    "deployment-concurrency-zero": f"prefect.runs:{ORCHESTRATOR}",
}
"""Drill → a symptom that must be reported as caused by the drill's cause."""
BLOCKED = {
    "deployment-concurrency-zero": (_STUCK.format("PENDING"), f"prefect.runs:{ORCHESTRATOR}"),
}
"""Drill → what it blocks further down: findings that must sit under the drill's cause in the tree."""
WRONG_FIXES = {
    # the worker is fine: the runs the server refuses go Late, and another worker would start none of them
    "deployment-concurrency-zero": "worker start",
}
"""Drill → a command that would not heal it and must not be printed."""

HEALED_BY_COMMANDS = [name for name, s in SCENARIOS.items() if not s.needs_person]
NEEDS_A_PERSON = [name for name, s in SCENARIOS.items() if s.needs_person]


def test_there_are_enough_drills_with_verified_fixes():
    assert len(SCENARIOS) >= 25 and len(HEALED_BY_COMMANDS) >= 20
    assert all(s.cause for s in SCENARIOS.values())


@pytest.mark.parametrize("drill", HEALED_BY_COMMANDS)
def test_the_printed_fix_heals_the_drill(sandbox, doctor, drill):
    sandbox.break_(drill)
    env = _operator_env(sandbox)
    code, document = doctor(env)
    findings = {f["id"]: f for f in document["findings"]}
    cause = SCENARIOS[drill].cause
    assert code == 1
    assert findings.get(cause, {}).get("status") == "fail", {i: f["summary"] for i, f in findings.items()
                                                             if f["status"] != "ok"}
    _assert_linked(drill, findings)
    commands = fixes_in_tree_order(document)
    assert commands and findings[cause]["fix"], findings[cause]
    assert not any(WRONG_FIXES.get(drill, "\0") in command for command in commands), commands
    background: list[subprocess.Popen] = []
    try:
        for command in commands:
            _run_as_pasted(command, sandbox.layout.root, env, background,
                           stack.worker_env(sandbox.layout, sandbox.state))
        deadline = time.monotonic() + HEALS_WITHIN
        while True:
            code, document = doctor(env)
            left = {f["id"]: f["summary"] for f in document["findings"] if f["status"] not in ("ok", "skipped")}
            if code == 0 or time.monotonic() > deadline:
                break
            time.sleep(RECHECK)
        assert (code, left) == (0, {}), f"after {commands}"
    finally:
        _stop(background)
        sandbox.dirty()


INCIDENT_PRIORITY = {
    "push-endpoint-no-aws": "P0", "missing-deployment": "P0", "subscriber-no-aws": "P0",
    "leaked-credentials": "P1", "subscriber-wrong-queue": "P1", "worker-no-api-url": "P2",
}
"""The second incident's six breaking points, with the priority its report gave each."""
PRIORITY = {**INCIDENT_PRIORITY, "deployment-concurrency-zero": "P0"}
"""Drill → the priority of its cause: a configured deployment that can never run is as bad as a paused one."""


def test_every_breaking_point_of_the_second_incident_has_a_drill():
    assert set(INCIDENT_PRIORITY) <= set(SCENARIOS)


def _assert_linked(drill: str, findings: dict[str, dict]) -> None:
    """The cause is a root (nothing failing explains it), explains the drill's symptom, and carries the
    incident's priority."""
    cause = SCENARIOS[drill].cause
    if drill in PRIORITY:
        assert findings[cause]["severity"] == PRIORITY[drill], findings[cause]
    assert not any(c in findings and findings[c]["status"] != "ok" for c in findings[cause]["caused_by"])
    if drill in SYMPTOMS:
        symptom = findings[SYMPTOMS[drill]]
        assert symptom["status"] == "fail" and cause in symptom["caused_by"], symptom
    for blocked in BLOCKED.get(drill, ()):
        assert findings[blocked]["status"] == "fail" and cause in _causes_of(findings, blocked), findings[blocked]


def _causes_of(findings: dict[str, dict], finding_id: str) -> set[str]:
    """Every finding above this one in the tree: its causes, their causes …"""
    found, stack = set(), list(findings[finding_id]["caused_by"])
    while stack:
        cause = stack.pop()
        if cause not in found:
            found.add(cause)
            stack += findings.get(cause, {}).get("caused_by", [])
    return found


HEAL_ALSO = ["pool-deleted", "zombie-run", "stuck-no-timestamp"]
"""Drills the commands heal, broken again to prove `sandbox heal` undoes them from the broken state too."""


@pytest.mark.parametrize("drill", NEEDS_A_PERSON + HEAL_ALSO)
def test_sandbox_heal_undoes_the_drill(sandbox, doctor, drill):
    """What a person must heal is named with advice; `sandbox heal` undoes every drill (the others are
    healed by the harness after each test, from whatever state the fix left)."""
    sandbox.break_(drill)
    env = _operator_env(sandbox)
    code, document = doctor(env)
    findings = {f["id"]: f for f in document["findings"]}
    cause = findings.get(SCENARIOS[drill].cause, {})
    assert code == 1 and cause.get("status") == "fail"
    assert cause["advice"] or cause["fix"]
    _assert_linked(drill, findings)
    sandbox.heal()
    code, document = doctor(env)
    assert [f["id"] for f in document["findings"] if f["status"] not in ("ok", "skipped")] == [] and code == 0
    assert sandbox.counts() == {"PENDING": ROWS}
