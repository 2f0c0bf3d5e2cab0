"""A real wheel, installed without the checkout, must work like the editable install."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Built from a clean copy of the sources, so no stale build/ folder can slip files into it."""
    out = tmp_path_factory.mktemp("dist")
    source = tmp_path_factory.mktemp("src") / "pipectl"
    # `.venv*`: CI keeps two virtualenvs in the checkout, one still being installed while this copies
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv*", ".ci-*.log", "build", "dist", "*.egg-info", "__pycache__", ".pipectl-sandbox",
        "pipectl.toml", ".pytest_cache"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(source)],
        check=True, capture_output=True, timeout=300,
    )
    return next(out.glob("pipectl-*.whl"))


def test_wheel_maps_checks_and_playbooks_under_pipectl(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {n.split("/")[0] for n in names}
    assert "checks" not in top_level and "playbooks" not in top_level
    assert "pipectl/checks/credentials_present.py" in names
    assert "pipectl/playbooks/__init__.py" in names
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "[pipectl.checks]" in entry_points and "pipectl.checks.config_valid:ConfigValid" in entry_points


def test_installed_wheel_lists_builtin_checks_from_outside_the_checkout(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    # -I ignores the editable install's path hooks; the venv's site-packages still give the dependencies
    site = next(p for p in sys.path if p.endswith("site-packages"))
    code = (
        f"import sys; sys.path[:0] = [{str(target)!r}, {site!r}]; "
        "import pipectl.checks, pipectl.cli; print(pipectl.checks.__file__); "
        "raise SystemExit(pipectl.cli.main(['checks', 'list']))"
    )
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    first, *rest = proc.stdout.splitlines()
    assert first.startswith(str(target))
    listing = "\n".join(rest)
    assert "config.valid" in listing and "credentials.present" in listing
