"""Files pipectl writes are private (0600, folders 0700) and never written through a symbolic link."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

import pytest

from pipectl.errors import UsageError
from pipectl.files import private_dir, write_private
from pipectl.journal import Journal

SECRET_REPORT = "someone else's file\n"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture(autouse=True)
def common_umask():
    """The usual 022 umask: a plain open() would make 0644 files, so 0600 is pipectl's doing."""
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A folder with a config that only names a variable to look for: doctor runs offline and quickly."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "pipectl.toml").write_text('pipeline = "files-test"\n[credentials]\nshell = ["HOME"]\n')
    monkeypatch.chdir(folder)
    return folder


def test_output_onto_a_symlink_is_refused_and_the_target_is_untouched(run_cli, project, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text(SECRET_REPORT)
    victim.chmod(0o600)
    (project / "report.txt").symlink_to(victim)
    code, out, err = run_cli("doctor", "--output-file", "report.txt", "--no-journal")
    assert code == 2 and out == ""
    assert err.splitlines() == ["pipectl: report.txt is a symbolic link; refusing to write through it"]
    assert victim.read_text() == SECRET_REPORT and mode(victim) == 0o600
    assert (project / "report.txt").is_symlink()


def test_a_playbook_report_onto_a_symlink_is_refused_before_any_step(run_cli, project, tmp_path):
    (project / "report.md").symlink_to(tmp_path / "elsewhere.md")
    journal = tmp_path / "journal.sqlite3"
    code, _, err = run_cli("playbook", "run", "fix-stuck-batch", "--yes", "--report", "report.md",
                           "--journal", str(journal))
    assert code == 2 and "report.md is a symbolic link" in err
    assert not journal.exists() and not (tmp_path / "elsewhere.md").exists()  # nothing ran, nothing recorded


@pytest.mark.parametrize("flag", ["--output-file", "--junit", "--sarif"])
def test_a_dangling_symlink_is_refused_not_created(run_cli, project, tmp_path, flag):
    (project / "out.xml").symlink_to(tmp_path / "created-elsewhere.xml")
    args = ["--ci"] if flag != "--output-file" else []
    code, _, err = run_cli("doctor", *args, flag, "out.xml", "--no-journal")
    assert code == 2
    assert "out.xml is a symbolic link; refusing to write through it" in err
    assert "internal error" not in err
    assert not (tmp_path / "created-elsewhere.xml").exists()


def test_report_and_journal_are_private(run_cli, project, isolated_home):
    code, _, err = run_cli("doctor", "--output-file", "reports/doctor.txt")
    assert code == 0, err
    report = project / "reports" / "doctor.txt"
    assert mode(report) == 0o600 and "files-test" in report.read_text()
    assert mode(report.parent) == 0o700  # created by pipectl
    state = Path(os.environ["PIPECTL_STATE_DIR"])
    assert mode(state) == 0o700
    assert mode(state / "journal.sqlite3") == 0o600
    assert [p.name for p in project.iterdir() if p.name.endswith(".tmp")] == []
    code, out, _ = run_cli("journal")
    assert code == 0 and "doctor" in out


def test_an_existing_report_is_replaced_and_narrowed(tmp_path):
    target = tmp_path / "report.md"
    target.write_text("old")
    target.chmod(0o644)
    write_private(target, "new")
    assert target.read_text() == "new" and mode(target) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]


def test_a_directory_target_is_a_usage_error_and_leaves_no_temp_file(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(UsageError, match="is a directory"):
        write_private(tmp_path / "out", "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_failed_write_leaves_no_temp_file(tmp_path, monkeypatch):
    def broken_replace(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(UsageError, match="cannot write .*report.md: Permission denied"):
        write_private(tmp_path / "report.md", "x")
    assert list(tmp_path.iterdir()) == []


def test_private_dir_creates_and_tightens(tmp_path):
    created = private_dir(tmp_path / "a" / "b")
    assert mode(tmp_path / "a") == 0o700 and mode(created) == 0o700
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    loose.chmod(0o755)
    private_dir(loose)
    assert mode(loose) == 0o700


def test_existing_journal_and_its_siblings_are_narrowed(tmp_path):
    import sqlite3

    state = tmp_path / "state"
    state.mkdir()
    path = state / "journal.sqlite3"
    Journal(path)
    path.chmod(0o644)
    book = Journal(path)
    assert mode(path) == 0o600
    with contextlib.closing(sqlite3.connect(path)) as keep:  # holds the write-ahead log open
        keep.execute("SELECT count(*) FROM runs").fetchall()
        book.start("pipectl doctor", "p")
        siblings = [state / f"journal.sqlite3{suffix}" for suffix in ("-wal", "-shm")]
        assert any(s.exists() for s in siblings)
        assert all(mode(s) == 0o600 for s in siblings if s.exists())  # SQLite gives them the file's mode


def test_a_journal_path_that_is_a_symlink_is_refused(run_cli, tmp_path):
    real = tmp_path / "real.sqlite3"
    Journal(real)
    link = tmp_path / "journal.sqlite3"
    link.symlink_to(real)
    code, out, err = run_cli("journal", "--journal", str(link))
    assert code == 2 and out == ""
    assert err.splitlines() == [f"pipectl: {link} is a symbolic link; refusing to write through it"]
    dangling = tmp_path / "dangling.sqlite3"
    dangling.symlink_to(tmp_path / "nowhere.sqlite3")
    code, _, err = run_cli("journal", "--journal", str(dangling))
    assert code == 2 and len(err.splitlines()) == 1
    assert not (tmp_path / "nowhere.sqlite3").exists()
