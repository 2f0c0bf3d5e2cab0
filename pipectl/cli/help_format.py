"""Help that reads like the Prefect and AWS CLIs': `--timeout SECONDS`, `--fail-on P0|P1|P2`, flags bare.

Typer from 0.2x on prints an option's Python type (`<bool>`, `<str>`, `<list[str]>`, `<path>`) where click
printed a metavar, and renders help texts as Rich markup, so `[[services]]` shows as `[]`. Rather than
repeating a metavar and an escape in every command file, `tidy(command)` walks the click command that
`typer.main.get_command` builds, once per invocation, and gives every parameter that has no metavar of its
own one that says what to type, in words the commands already use. It takes about 2 ms and imports
nothing heavy, so start-up stays fast; help is laid out by click, not Rich (see `PLAIN`). Typer releases
that still print click's metavars (and have no `type_descriptor`) are left alone.
"""

from __future__ import annotations

import re
from typing import Any, get_args, get_origin

from typer.core import TyperArgument

METAVARS_BY_NAME = {
    "only": "CHECKS",
    "skip": "CHECKS",
    "fail_on": "P0|P1|P2",
    "format": "FORMAT",
    "status": "STATUS",
    "to": "STATUS",
    "step": "GROUP",
    "table": "TABLE",
    "pipeline": "NAME",
    "name": "NAME",
    "context": "NAME",
    "prefect_url": "URL",
    "database_env": "VAR",
    "from_env": "VAR",
    "dsn": "DSN",
    "host": "HOST",
    "port": "PORT",
    "folder": "DIR",
    "env": "KEY=VALUE",
    "param": "KEY=VALUE",
    "unset_env": "KEY",
    "job_variable": "PATH=JSON",
}
"""Options whose name says more than their type; every other option gets its type's word (TEXT, PATH…)."""

TIME_OPTIONS = frozenset({"timeout", "wait", "older_than", "interval"})
"""Options that take a time: a number of SECONDS, or a DURATION such as `10m` when they take text."""

PLAIN = None
"""Typer's markup mode for every command: None is click's own help layout. Rich's boxes cost more start-up
than everything else `pipectl --help` does (importing rich's markdown, traceback and table modules: ~0.1 s
of CPU, 2.5× the rest), and `--help` is typed in a hurry; set "rich" here to have them back."""

TYPE_WORDS = {str: "TEXT", int: "INTEGER", float: "NUMBER", bool: "BOOLEAN"}

_MARKUP_TAG = re.compile(r"(?<!\\)\[(?=[a-z#/@][^\[]*?\])")
"""The `[` of what Rich would read as a style tag (`[bold]`, `[contexts.NAME]`), unless already escaped."""


def tidy(command: Any, parent_context: Any = None) -> Any:
    """Give every parameter of `command` and its subcommands a meaningful metavar, and keep its help texts'
    square brackets (`[[services]]`, `[probe]`) from being swallowed as Rich markup; returns `command`.

    The help option (`-h`, `--help`) is made here, as click would make it on first use, with the same
    names the command's context would give it, so that it too loses its `<bool>`."""
    if hasattr(command, "rich_markup_mode"):
        command.rich_markup_mode = PLAIN
    context = command.context_class(command, parent=parent_context, info_name=command.name,
                                    **command.context_settings)
    rich = getattr(command, "rich_markup_mode", None) == "rich"
    if rich:
        command.help = _escape_markup(command.help)
        command.short_help = _escape_markup(command.short_help)
        command.epilog = _escape_markup(command.epilog)
    for param in [*command.params, command.get_help_option(context)]:
        if param is None or not hasattr(param, "type_descriptor"):
            continue  # an older typer prints click's metavars already
        if rich:
            param.help = _escape_markup(getattr(param, "help", None))
        if isinstance(param, TyperArgument):
            _tidy_argument(param)
        elif param.metavar is None:  # an option's own metavar (`--wait-healthy DURATION`) is kept
            param.metavar = option_metavar(param)
    for subcommand in getattr(command, "commands", {}).values():
        tidy(subcommand, context)
    return command


def option_metavar(option: Any) -> str:
    """What the help shows after the option: nothing for a flag or a counter (`-vv`), else a word."""
    if getattr(option, "is_flag", False) or getattr(option, "count", False):
        return ""
    descriptor = option.type_descriptor
    if option.name in TIME_OPTIONS:
        return "SECONDS" if _element(descriptor.annotation) in (int, float) else "DURATION"
    return METAVARS_BY_NAME.get(option.name) or type_word(descriptor)


def type_word(descriptor: Any) -> str:
    """TEXT, INTEGER, NUMBER, PATH, FILE, DIR, or the choices (`a|b`): click's words for typer's types."""
    if descriptor.is_choice:
        return "|".join(str(getattr(choice, "value", choice)) for choice in descriptor.choices or ())
    if descriptor.is_path:
        return {"file": "FILE", "dir": "DIR"}.get(descriptor.path_type, "PATH")
    return TYPE_WORDS.get(_element(descriptor.annotation), "TEXT")


class _Argument(TyperArgument):
    """An argument named by its metavar (`ITEM_ID`) whose type column shows a word (`TEXT`), not `<str>`.

    Typer shows an option's metavar instead of its type but has no such rule for arguments, so their
    type column is the one place this module overrides a method rather than set an attribute."""

    type_label: str = "TEXT"

    def display_type_rich(self, ctx: Any) -> str | None:
        return self.type_label


def _tidy_argument(argument: TyperArgument) -> None:
    if argument.metavar is None:
        argument.metavar = (argument.name or "value").upper()
    argument.__class__ = _Argument
    argument.type_label = type_word(argument.type_descriptor) + ("..." if argument.nargs != 1 else "")


def _element(annotation: Any) -> Any:
    """`list[int]` → int: a repeatable option is described by what each occurrence takes."""
    return get_args(annotation)[0] if get_origin(annotation) is list else annotation


def _escape_markup(text: str | None) -> str | None:
    return _MARKUP_TAG.sub(r"\\[", text) if text else text
