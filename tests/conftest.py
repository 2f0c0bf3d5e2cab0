"""Shared fixtures. The autouse guard keeps every test away from real accounts and the developer's home."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from pipectl.redact import redactor

pytest_plugins = ["tests.fixtures.postgres", "tests.fixtures.sandbox"]

_ISOLATED = {
    "MODAL_CONFIG_PATH": "modal-config-that-does-not-exist.toml",
    "PREFECT_HOME": "prefect-home",
    "PIPECTL_STATE_DIR": "pipectl-state",
}
_FORGET = ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET", "PREFECT_API_KEY", "PREFECT_API_URL", "AWS_PROFILE", "DATABASE_URL")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    """No test may read or write ~/.modal.toml, ~/.prefect, the user's journal, or real credentials."""
    home = tmp_path_factory.mktemp("home")
    for name, relative in _ISOLATED.items():
        monkeypatch.setenv(name, str(home / relative))
    monkeypatch.setenv("HOME", str(home))  # anything that still reaches for ~ lands here
    for name in _FORGET:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    workdir = home / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)  # a command that writes ./pipectl.toml never writes it into the checkout
    yield home
    redactor.clear()


@pytest.fixture
def run_cli(monkeypatch):
    """Run `pipectl ARGS` in-process; returns (exit code, stdout, stderr) as the user would see them. A JSON
    output that docs/report.schema.json rejects fails the test (tests/schema_check.py)."""
    from pipectl.cli import main
    from tests.schema_check import check_json_output

    def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None):
        import io

        if cwd is not None:
            monkeypatch.chdir(cwd)
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        out, err = io.StringIO(), io.StringIO()
        monkeypatch.setattr(sys, "stdout", out)
        monkeypatch.setattr(sys, "stderr", err)
        try:
            code = main(list(args))
        finally:
            monkeypatch.setattr(sys, "stdout", sys.__stdout__)
            monkeypatch.setattr(sys, "stderr", sys.__stderr__)
        check_json_output(args, out.getvalue())  # every JSON output must match docs/report.schema.json
        return code, out.getvalue(), err.getvalue()

    return run


@pytest.fixture
def write_config(tmp_path):
    """Write a pipectl.toml into a fresh folder and return its path."""

    def write(text: str, name: str = "pipectl.toml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


def python_env(**extra: str) -> dict[str, str]:
    """The environment for a subprocess that runs this interpreter's pipectl."""
    env = dict(os.environ)
    env.update(extra)
    return env


def default_signals() -> None:
    """For a child process: Ctrl-C and SIGTERM act as at a terminal, even when the test runner was started
    in the background (a shell then starts it with SIGINT ignored, and a child inherits that)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
