"""Prefect lost in the middle of a write: the journal and the operator are told the truth, not "started"."""

from __future__ import annotations

import subprocess
import sys
import time
from urllib.parse import urlsplit

from pipectl.journal import Journal
from pipectl.sandbox.layout import ORCHESTRATOR
from tests.conftest import default_signals, python_env
from tests.fixtures.proxy import CuttableProxy


def behind_proxy(sandbox, tmp_path):
    """The sandbox's config with Prefect reached through a proxy the test can cut."""
    api = urlsplit(sandbox.state.prefect_api_url)
    proxy = CuttableProxy(api.hostname, api.port)
    source = sandbox.config_path
    text = source.read_text().replace(sandbox.state.prefect_api_url, f"http://127.0.0.1:{proxy.port}{api.path}")
    env_file = sandbox.layout.env_file  # env files must live beside their config
    (tmp_path / env_file.name).write_text(env_file.read_text())
    config = tmp_path / "pipectl.toml"
    config.write_text(text)
    return proxy, config


POLL = 0.1
"""Seconds between looks at the journal while the process writes it: a tight loop took a core from the
process it waits for (and from every other test on a 2-core machine)."""


def wait_for_event(journal, kind: str, process: subprocess.Popen, deadline_s: float = 120.0):
    """The first `kind` record of the journal's only run, read as the process writes it."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline and process.poll() is None:
        found = _read(journal, lambda book, run: book.events(run.id, kind))
        if found:
            return found[0]
        time.sleep(POLL)
    raise AssertionError(f"no {kind} record before the process ended: {process.communicate()}")


def test_prefect_lost_during_trigger_wait_is_recorded_as_failed_with_the_run_id(sandbox, tmp_path):
    proxy, config = behind_proxy(sandbox, tmp_path)
    journal = tmp_path / "journal.sqlite3"
    sandbox.dirty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipectl", "trigger", ORCHESTRATOR, "--wait", "--yes", "--timeout", "3m",
         "--config", str(config), "--journal", str(journal)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_signals,
        env=python_env(PREFECT_CLIENT_MAX_RETRIES="0"))
    created = wait_for_event(journal, "change", proc)
    proxy.cut()
    _, err = proc.communicate(timeout=300)
    flow_run = created.data["flow_run_id"]
    assert proc.returncode == 1, err
    assert "Prefect" in err and "Traceback" not in err
    book = Journal(journal)
    (run,) = book.runs()
    last = book.events(run.id, "outcome")[-1].data
    assert last["ok"] is False and last["result"] == "failed"
    code_listing = subprocess.run([sys.executable, "-m", "pipectl", "journal", "--all", "--journal", str(journal)],
                                  capture_output=True, text=True, env=python_env())
    assert f"{run.id}" in code_listing.stdout and " failed " in code_listing.stdout
    assert f"lost sight of flow run {flow_run}" in last["summary"] and "continues on the server" in err


def test_ctrl_c_during_trigger_wait_names_the_run_that_goes_on(sandbox, tmp_path):
    import signal

    journal = tmp_path / "journal.sqlite3"
    sandbox.dirty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipectl", "trigger", ORCHESTRATOR, "--wait", "--yes", "--timeout", "3m",
         "--config", str(sandbox.config_path), "--journal", str(journal)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_signals, env=python_env())
    created = wait_for_event(journal, "change", proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:  # the run was faster than the signal: nothing left to say about it
        return
    assert proc.returncode == 130, err
    assert f"flow run {created.data['flow_run_id']} was created" in err and "continues on the server" in err
    book = Journal(journal)
    (run,) = book.runs()
    assert book.events(run.id, "outcome")[-1].data["result"] == "interrupted"


def test_prefect_lost_during_a_playbook_stops_at_its_step_and_still_writes_the_report(sandbox, tmp_path):
    sandbox.break_("missing-modal-creds")
    proxy, config = behind_proxy(sandbox, tmp_path)
    journal, report = tmp_path / "journal.sqlite3", tmp_path / "report.md"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipectl", "playbook", "run", "fix-stuck-batch", "--yes", "--config", str(config),
         "--journal", str(journal), "--report", str(report)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_signals,
        env=python_env(PREFECT_CLIENT_MAX_RETRIES="0"))
    wait_for_flow_run(journal, proc)
    proxy.cut()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err
    assert "stopped at step" in err and "lost sight of flow run" in err
    text = report.read_text()
    assert "**Current Status:** ❌ NOT FIXED" in text and "stopped at step" in text


def wait_for_flow_run(journal, process: subprocess.Popen, deadline_s: float = 180.0) -> None:
    """Until the playbook has journaled the flow run it started."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline and process.poll() is None:
        if _read(journal, lambda book, run: [e for e in book.events(run.id, "change")
                                             if e.data.get("kind") == "flow_run"]):
            return
        time.sleep(POLL)
    raise AssertionError(f"no flow run journaled before the playbook ended: {process.communicate()}")


def _read(journal, look):
    """What `look(book, run)` finds in the journal's only run so far; nothing while the file is busy."""
    from pipectl.journal import JournalError

    if not journal.exists():
        return []
    try:
        book = Journal(journal)
        runs = book.runs()
        return look(book, runs[0]) if runs else []
    except JournalError:  # the process is creating it right now
        return []
