"""Third-party checks and renderers arrive through entry points, exactly like the built-ins."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

PLUGIN = '''
import time
from pipectl.interface import Check


class Queue(Check):
    """Detects: whether the third-party plugin ran."""

    id = "thirdparty.hello"
    component = "thirdparty"

    def run(self, ctx):
        return [self.ok("hello from a plugin", evidence={"timeout": ctx.timeout})]


class Sleepy(Check):
    """Detects: nothing; it hangs, to show the runner cuts it off."""

    id = "thirdparty.sleepy"
    component = "thirdparty"

    def run(self, ctx):
        time.sleep(60)
        return []


class NoDoc(Check):
    id = "thirdparty.nodoc"
    component = "thirdparty"

    def run(self, ctx):
        return []


def render(result, options):
    return "|".join(f.id for f in result.findings) + "\\n"
'''

ENTRY_POINTS = """
[pipectl.checks]
thirdparty.hello = thirdparty_checks:Queue
thirdparty.sleepy = thirdparty_checks:Sleepy
thirdparty.nodoc = thirdparty_checks:NoDoc
thirdparty.broken = thirdparty_missing_module:Nothing

[pipectl.renderers]
ids = thirdparty_checks:render
"""


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory):
    """A tiny installed distribution: a module plus a dist-info with entry_points.txt, put on sys.path."""
    root = tmp_path_factory.mktemp("site")
    (root / "thirdparty_checks.py").write_text(PLUGIN)
    info = root / "thirdparty_checks-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-checks\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(ENTRY_POINTS))
    return root


def pipectl(*args, plugin_path, cwd):
    env = {"PYTHONPATH": str(plugin_path), "NO_COLOR": "1", "PATH": "/usr/bin:/bin",
           "PIPECTL_STATE_DIR": os.environ["PIPECTL_STATE_DIR"]}  # the isolated journal, never the user's
    return subprocess.run([sys.executable, "-m", "pipectl", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=60)


def test_doctor_runs_a_third_party_check_and_survives_broken_ones(plugin_path, tmp_path):
    (tmp_path / "pipectl.toml").write_text('pipeline = "plugins"\n')
    proc = pipectl("doctor", "--only", "thirdparty", "--timeout", "1", "--format", "json",
                   plugin_path=plugin_path, cwd=tmp_path)
    data = json.loads(proc.stdout)
    by_id = {f["check"]: f for f in data["findings"]}
    assert by_id["thirdparty.hello"]["status"] == "ok"
    assert by_id["thirdparty.hello"]["evidence"] == {"timeout": 1.0}
    assert by_id["thirdparty.sleepy"]["status"] == "error"
    assert "did not finish within 1s" in by_id["thirdparty.sleepy"]["summary"]
    assert "thirdparty.nodoc" not in by_id
    assert proc.returncode == 3  # something could not tell, nothing failed
    assert "plugin 'thirdparty.broken'" in proc.stderr and "failed to load" in proc.stderr
    assert "plugin 'thirdparty.nodoc'" in proc.stderr and "has no docstring" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_third_party_renderer_and_catalog(plugin_path, tmp_path):
    (tmp_path / "pipectl.toml").write_text('pipeline = "plugins"\n')
    proc = pipectl("doctor", "--only", "thirdparty.hello", "--format", "ids", plugin_path=plugin_path, cwd=tmp_path)
    assert proc.stdout == "thirdparty.hello\n"
    listing = pipectl("checks", "list", plugin_path=plugin_path, cwd=tmp_path)
    assert "thirdparty.hello" in listing.stdout and "config.valid" in listing.stdout
    assert listing.returncode == 0
