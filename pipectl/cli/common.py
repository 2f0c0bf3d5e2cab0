"""What every command shares: the --config option, loading the config, and writing results safely."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from pipectl.redact import redactor

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="pipectl.toml to use (default: nearest one in this folder or above)."),
]


_invocation: list[str] = []


def remember_invocation(argv: list[str]) -> None:
    """main() records its arguments, so journals name the command as typed (also when run in-process)."""
    _invocation[:] = argv


def command_line() -> str:
    import shlex

    return shlex.join(["pipectl", *(_invocation or sys.argv[1:])])


GLOBAL: dict[str, object] = {"config": None, "context": None, "quiet": False}
"""`pipectl --config PATH --context NAME COMMAND`: what the root options chose, for every command."""


def load(config_path: Path | None):
    """The validated config; a ConfigError propagates to main() as one line per problem."""
    from pipectl.config_load import load_config

    return load_config(config_path or GLOBAL["config"], context=GLOBAL["context"])


def deployment_name(value: str) -> str:
    """A FLOW/DEPLOYMENT argument, checked by the same rule as the config's deployment names."""
    from pipectl.config import deployment_name as check
    from pipectl.errors import UsageError

    try:
        return check(value)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def split_list(values: list[str] | None) -> list[str]:
    """`--only a,b --only c` → [a, b, c]."""
    return [item.strip() for value in values or [] for item in value.split(",") if item.strip()]


FormatOption = Annotated[str, typer.Option("--output", "-o", "--format", "-f", help="terminal or json.")]
"""`-o json` on every command whose output is a listing, a plan or an outcome (as in kubectl and the
Prefect and AWS CLIs); doctor's own option also offers its report formats."""


def terminal_or_json(output: str) -> str:
    """The chosen format of a terminal-or-JSON command; anything else is bad input."""
    from pipectl.errors import UsageError

    if output not in ("terminal", "json"):
        raise UsageError(f"unknown output format {output!r}: choose terminal or json")
    return output


def terminal_width(output: Path | None) -> int:
    """The terminal's columns when the report goes to one (COLUMNS is honoured), else 100."""
    import shutil

    if output is None and sys.stdout.isatty():
        return max(40, shutil.get_terminal_size((100, 24)).columns)
    return 100


def use_color(output: Path | None = None) -> bool:
    """Colour only on an interactive terminal, and never under NO_COLOR (https://no-color.org)."""
    return output is None and sys.stdout.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def write(text: str, output: Path | None = None) -> None:
    """The only way commands write results: always through the redactor; to a file or stdout."""
    safe = redactor.json_text(text) if redactor.active else None  # JSON stays valid JSON
    safe = safe if safe is not None else redactor(text)
    if output is None:
        sys.stdout.write(safe)
        sys.stdout.flush()
    else:
        from pipectl.files import write_private

        write_private(output, safe)  # 0600, atomic, never through a symlink


def note(message: str) -> None:
    """A diagnostic for the person at the terminal, on stderr, so machine output stays clean. With `-q`
    only warnings and errors (the lines that start with `pipectl:`) are written."""
    if GLOBAL["quiet"] and not message.startswith("pipectl"):
        return
    sys.stderr.write(redactor(message) + "\n")


def note_interrupted(exc: BaseException) -> None:
    """Say what an interrupted write committed: typer turns Ctrl-C into a silent exit 130."""
    note(f"pipectl: interrupted: {exc}" if str(exc) else "pipectl: interrupted")
