"""`sandbox up` that fails leaves nothing running, `status` never denies a process the sandbox started,
and `down --purge` leaves nothing on disk but a pipectl.toml the user wrote."""

from __future__ import annotations

import shutil
import socket
import tempfile
import time
from pathlib import Path

import pytest

from pipectl.sandbox import config_file, procs, stack
from pipectl.sandbox.layout import Layout


@pytest.fixture
def sandbox_dir():
    """A folder for a second sandbox, outside pytest's 0700 tmp dir (pgserver runs Postgres as its own user)."""
    root = Path(tempfile.mkdtemp(prefix="pipectl-sandbox-test-"))
    root.chmod(0o755)  # mkdtemp's 0700 would lock that user out
    yield root
    stack.down(Layout.at(root / "sb"))
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def spawned(monkeypatch) -> list[int]:
    """The pid of every process the sandbox spawns during the test."""
    pids: list[int] = []
    real = procs.spawn

    def spy(*args, **kwargs):
        proc = real(*args, **kwargs)
        pids.append(proc.pid)
        return proc

    monkeypatch.setattr(procs, "spawn", spy)
    return pids


def gone(pids: list[int], timeout: float = 10.0) -> bool:
    """Whether every pid has exited, polling until a bounded deadline."""
    deadline = time.monotonic() + timeout
    while any(procs.pid_alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def processes_mentioning(text: str) -> list[int]:
    """Processes whose command line or environment mention `text` (e.g. the sandbox folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or not procs.pid_alive(int(entry.name)):
            continue
        try:
            blob = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
        except OSError:
            continue
        if text.encode() in blob:
            found.append(int(entry.name))
    return found


def assert_failed_up_left_nothing(layout: Layout, pids: list[int], code: int, err: str, run_cli) -> None:
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and err.startswith("pipectl: sandbox up failed: "), err
    assert pids, "up failed before it started anything: the test proves nothing"
    assert gone(pids)
    assert processes_mentioning(str(layout.root)) == []
    assert list(layout.run_dir.glob("*.pid")) == []
    assert not (layout.pgdata / "postmaster.pid").exists()
    assert stack.status(layout) == []
    code, out, _ = run_cli("sandbox", "status", "--dir", str(layout.root))
    assert code == 1 and "no sandbox here" in out


def test_up_with_an_unreachable_dsn_stops_what_it_started(sandbox_dir, spawned, run_cli):
    layout = Layout.at(sandbox_dir / "sb")
    code, _, err = run_cli("sandbox", "up", "--dir", str(layout.root), "--dsn",
                           "postgresql://nobody@127.0.0.1:1/nothing", cwd=sandbox_dir)
    assert_failed_up_left_nothing(layout, spawned, code, err, run_cli)
    assert not (sandbox_dir / "pipectl.toml").exists()


def test_up_with_the_prefect_port_taken_stops_postgres_and_the_rest(sandbox_dir, spawned, run_cli, monkeypatch):
    blocker = socket.socket()  # bound, not listening: nobody else can bind the port, nothing answers on it
    blocker.bind(("127.0.0.1", 0))
    taken = blocker.getsockname()[1]
    ports = iter([taken])
    real_free_port = procs.free_port
    monkeypatch.setattr(procs, "free_port", lambda: next(ports, None) or real_free_port())
    layout = Layout.at(sandbox_dir / "sb")
    try:
        code, _, err = run_cli("sandbox", "up", "--dir", str(layout.root), cwd=sandbox_dir)  # its own Postgres
    finally:
        blocker.close()
    assert "prefect server" in err
    assert (layout.pgdata / "PG_VERSION").is_file()  # Postgres had started, and was stopped again
    assert_failed_up_left_nothing(layout, spawned, code, err, run_cli)


def test_status_shows_and_down_stops_processes_of_an_up_that_was_killed(sandbox_dir, run_cli):
    layout = Layout.at(sandbox_dir / "sb")
    # what `up` killed before writing sandbox.json leaves: a recorded process, no state file
    child = procs.spawn(stack.SQS, ["sleep", "60"], layout.run_dir)
    code, out, _ = run_cli("sandbox", "status", "--dir", str(layout.root))
    assert code == 1 and "sqs" in out and str(child.pid) in out
    code, _, err = run_cli("sandbox", "up", "--dir", str(layout.root))
    assert code == 2 and "already running" in err
    code, _, err = run_cli("sandbox", "down", "--dir", str(layout.root))
    assert code == 0 and "sqs-server" in err
    child.wait(timeout=10)
    assert not procs.pid_alive(child.pid)


def test_down_purge_removes_the_folder_and_the_generated_config(sandbox_dir, spawned, run_cli):
    layout = Layout.at(sandbox_dir / "sb")
    code, _, err = run_cli("sandbox", "up", "--dir", str(layout.root), cwd=sandbox_dir)  # its own Postgres
    assert code == 0, err
    generated = sandbox_dir / "pipectl.toml"
    assert generated.read_text().startswith(config_file.MARKER)
    code, _, err = run_cli("sandbox", "down", "--dir", str(layout.root), "--purge", cwd=sandbox_dir)
    assert code == 0, err
    assert not layout.root.exists()
    assert not generated.exists()
    assert gone(spawned)
    assert processes_mentioning(str(layout.root)) == []


def _fake_sandbox(layout: Layout, folder: Path) -> Path:
    """The files of a sandbox (no processes): enough for purge to decide what to delete."""
    from pipectl.sandbox.layout import SandboxState

    state = SandboxState(prefect_port=1, sqs_port=2, modal_port=3, database_url="postgresql:///none")
    layout.save(state)
    config_file.write(layout, state)
    return config_file.link_into(folder, layout)


def test_down_purge_keeps_a_config_the_user_wrote_or_changed(tmp_path, run_cli):
    mine, edited = tmp_path / "mine", tmp_path / "edited"
    mine.mkdir()
    edited.mkdir()
    layout = Layout.at(tmp_path / "sb")
    linked = _fake_sandbox(layout, edited)
    (mine / "pipectl.toml").write_text('pipeline = "mine"\n')
    assert config_file.link_into(mine, layout) is None  # never over a file of the user's
    linked.write_text(linked.read_text() + "# my change\n")
    code, _, err = run_cli("sandbox", "down", "--dir", str(layout.root), "--purge", cwd=mine)
    assert code == 0, err
    assert not layout.root.exists()
    assert (mine / "pipectl.toml").read_text() == 'pipeline = "mine"\n'
    assert linked.read_text().endswith("# my change\n")
    assert f"kept {linked}" in err


def test_down_purge_refuses_a_folder_with_other_files(tmp_path, run_cli):
    (tmp_path / "thesis.tex").write_text("years of work")
    code, _, err = run_cli("sandbox", "down", "--dir", str(tmp_path), "--purge")
    assert code == 2 and "refusing to purge" in err and "thesis.tex" in err
    assert (tmp_path / "thesis.tex").exists()


def test_without_the_sandbox_extra_up_says_how_to_get_it_and_starts_nothing(run_cli, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pgserver" else real(name, *a))
    code, out, err = run_cli("sandbox", "up", "--dir", str(tmp_path / "sb"))
    assert code == 2 and "pip install 'pipectl[sandbox]'" in err and "pgserver" in err
    assert not (tmp_path / "sb" / "run").exists()
