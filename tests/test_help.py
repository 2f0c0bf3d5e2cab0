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


def _shape(command) -> tuple:
    """What an operator sees of a command: its help, options and subcommands, all the way down."""
    params = tuple((tuple(p.opts), tuple(p.secondary_opts), getattr(p, "help", None)) for p in command.params)
    subcommands = tuple((name, _shape(sub)) for name, sub in sorted(getattr(command, "commands", {}).items()))
    return command.help, params, subcommands


WHOLE = typer.main.get_command(app)


@pytest.mark.parametrize("name", sorted(WHOLE.commands))
def test_the_invoked_command_built_alone_is_the_one_of_the_whole_app(name):
    from pipectl.cli import _only_invoked

    alone = typer.main.get_command(_only_invoked(["-c", "x.toml", "-vv", name, "--help"]))
    assert list(alone.commands) == [name]
    assert _shape(alone.commands[name]) == _shape(WHOLE.commands[name])
    assert _shape(alone)[:2] == _shape(WHOLE)[:2]  # the root's own options stay


@pytest.mark.parametrize("args", [[], ["--help"], ["-v", "-h", "doctor"], ["doctorr"], ["--install-completion"],
                                  ["--context", "doctor"]])
def test_no_command_root_help_or_an_unknown_name_gets_the_whole_app(args):
    from pipectl.cli import _only_invoked

    assert _shape(typer.main.get_command(_only_invoked(args))) == _shape(WHOLE)
