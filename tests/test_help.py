"""Every `--help` reads like a CLI an operator knows: words for what to type, nothing after a flag, and the
config's section names (`[[services]]`) shown as written rather than eaten as Rich markup."""

from __future__ import annotations

import re

import pytest
import typer

from pipectl.cli import app

TYPER_TYPES = ("<bool>", "<str>", "<list[", "<float>", "<int>", "<path>", "<file>", "<dir>", "<int range>")
SECTION = re.compile(r"\[[^\]\s]*\]+")
"""A config section or key in brackets as a help text names it: `[probe]`, `[[services]]`, `[contexts.NAME]`."""


def _commands(command, path=()):
    yield path, command
    for name, subcommand in sorted(getattr(command, "commands", {}).items()):
        yield from _commands(subcommand, (*path, name))


COMMANDS = list(_commands(typer.main.get_command(app)))


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) or "pipectl" for p, _ in COMMANDS])
def test_every_help_shows_words_not_python_types(run_cli, path, command):
    code, out, err = run_cli(*path, "--help")
    assert code == 0, err
    assert "Usage: pipectl" in out
    shown = [t for t in TYPER_TYPES if t in out]
    assert not shown, f"{' '.join(path)} --help shows {shown}"
    assert not re.search(r"\S \[\]", out), "a [section] in a help text was read as Rich markup"
    written = [command.help or "", *(getattr(p, "help", None) or "" for p in command.params)]
    for section in {s.replace("\\", "") for text in written for s in SECTION.findall(text.replace("\\[", "["))}:
        assert section in out, f"{' '.join(path)} --help lost {section!r}"


def test_doctor_help_names_what_each_option_takes(run_cli):
    _, out, _ = run_cli("doctor", "--help")
    rows = {line.split()[0].rstrip(","): line for line in out.splitlines() if line.strip().startswith("-")}
    assert "SECONDS" in rows["--timeout"] and "P0|P1|P2" in rows["--fail-on"] and "CHECKS" in rows["--only"]
    assert "PATH" in rows["--output-file"] and "FORMAT" in rows["-o"]
    assert "DURATION" in rows["--wait-healthy"]  # its own metavar is kept
    assert rows["--no-journal"].split()[:2] == ["--no-journal", "Do"]  # a flag takes nothing


def test_arguments_are_named_in_capitals_in_usage_and_errors(run_cli):
    _, out, _ = run_cli("service", "env", "set", "--help")
    assert "{SERVICE} {ASSIGNMENTS}..." in out and "[[services]]" in out
    code, _, err = run_cli("trace")
    assert code == 2 and "ITEM_ID" in err
