"""docs/ci.md's GitHub Actions job, run step by step (its `run:` scripts, not a YAML runner), so it cannot rot."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from tests.conftest import default_signals

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "ci.md"


def _job() -> dict:
    first = re.search(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert first, "docs/ci.md has no yaml block"
    workflow = yaml.safe_load(first.group(1))
    (job,) = workflow["jobs"].values()
    return job


def _bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-eo", "pipefail", "-c", script], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600, preexec_fn=default_signals, check=False)


def test_the_documented_job_installs_starts_the_sandbox_and_gates_on_doctor(tmp_path):
    steps = [s for s in _job()["steps"] if "run" in s]
    install, *rest = steps
    assert install["name"] == "Install pipectl" and "pip install" in install["run"]
    # not under pytest's tmp dir: the sandbox's Postgres runs as its own user (see tests/fixtures/postgres.py)
    workspace = Path(tempfile.mkdtemp(prefix="pipectl-ci-doc-"))
    try:
        _run_job(install, rest, workspace, tmp_path)
    finally:
        shutil.rmtree(workspace, ignore_errors=True)


def _run_job(install: dict, rest: list[dict], workspace: Path, tmp_path: Path) -> None:
    summary = tmp_path / "step-summary.md"
    summary.write_text("")
    env = {**os.environ, "GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(workspace),
           "GITHUB_STEP_SUMMARY": str(summary), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for key in ("PIPECTL_CONFIG", "PIPECTL_CONTEXT", "PIPECTL_SANDBOX_DIR"):
        env.pop(key, None)

    # the install step resolves against what this venv holds (no download, nothing replaced): the command,
    # the extra and the project's metadata are what is being checked
    dry = install["run"].replace("pip install", "pip install --dry-run --no-index --no-build-isolation --quiet")
    done = _bash(dry, ROOT, env)
    assert done.returncode == 0, done.stderr[-2000:]

    stop = next(s for s in rest if s.get("if") == "always()")
    try:
        for step in (s for s in rest if s is not stop):
            done = _bash(step["run"], workspace, env)
            assert done.returncode == 0, (step["name"], done.stdout[-3000:], done.stderr[-3000:])
    finally:
        stopped = _bash(stop["run"], workspace, env)
    assert stopped.returncode == 0, stopped.stderr[-2000:]

    report = json.loads((workspace / "pipectl-report.json").read_text())
    assert report["schema"] == "pipectl.report/v2" and report["summary"]["fail"] == 0
    assert (workspace / "pipectl-junit.xml").read_text().startswith("<?xml")
    assert json.loads((workspace / "pipectl.sarif").read_text())["version"] == "2.1.0"
    assert summary.read_text().startswith("# Pipeline diagnosis")
    assert "::notice title=pipectl doctor::" in done.stdout  # the gate's annotations, inside GitHub Actions
    assert _bash("pipectl sandbox status", workspace, env).returncode == 1  # down left nothing answering
