"""The README stays true: every installed check and playbook is in its catalog, and its commands exist."""

from __future__ import annotations

import re
from pathlib import Path

from pipectl.registry import load_checks, load_playbooks

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_check_and_playbook_is_in_the_readme():
    for check_id in load_checks().items:
        assert f"| `{check_id}` |" in README, check_id
    for name in load_playbooks().items:
        assert f"| `{name}` |" in README, name


def test_every_documented_command_exists(run_cli):
    commands = set(re.findall(r"^\| `pipectl ([a-z]+(?: [a-z]+)?)", README, flags=re.MULTILINE))
    assert {"doctor", "reset", "patch", "trigger", "redrive", "journal", "report", "undo"} <= {
        c.split()[0] for c in commands}
    for command in sorted(commands):
        code, out, err = run_cli(*command.split()[:2], "--help")
        assert code == 0, (command, err)
