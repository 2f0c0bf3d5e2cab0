"""The `pipectl` command: thin typer commands that parse, call the engine and hand results to a renderer.

Nothing heavy is imported here: each command imports what it needs when it runs, so `pipectl --help`
starts fast.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import signal
import sys
import threading
from pathlib import Path

import typer

from pipectl import __version__
from pipectl.cli import (
    catalog,
    config,
    context,
    doctor,
    history,
    init,
    operate,
    probe,
    repairs,
    reset,
    serve,
    trace,
    watch,
)
from pipectl.cli.common import GLOBAL, remember_invocation
from pipectl.cli.help_format import tidy
from pipectl.cli.playbook import playbook_app
from pipectl.cli.playbook import run as run_playbook
from pipectl.cli.sandbox import sandbox_app
from pipectl.cli.service import service_app
from pipectl.errors import PipectlError
from pipectl.redact import RedactingFilter, redactor


def _optional_click_exception() -> type[Exception] | None:
    try:
        from click import ClickException
    except ImportError:
        return None
    return ClickException


app = typer.Typer(
    name="pipectl",
    help="Why is my pipeline's work stuck, and what exactly do I run to fix it?",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command(name="doctor")(doctor.doctor)
app.command(name="init")(init.init)
app.add_typer(catalog.checks_app, name="checks")
app.add_typer(catalog.playbooks_app, name="playbooks")
app.add_typer(sandbox_app, name="sandbox")
app.command(name="reset")(reset.reset)
app.command(name="patch")(repairs.patch)
app.add_typer(repairs.secret_app, name="secret")
app.add_typer(service_app, name="service")
app.command(name="trigger")(operate.trigger)
app.add_typer(operate.deploy_app, name="deploy")
app.command(name="redrive")(operate.redrive)
app.add_typer(playbook_app, name="playbook")
# `playbook` and `playbooks` both work for both verbs: the singular/plural split surprised users
playbook_app.command("list", help="List installed playbooks.")(catalog.list_playbooks)
catalog.playbooks_app.command("run", help="Run a named repair.")(run_playbook)
app.add_typer(history.journal_app, name="journal")
app.command(name="report")(history.report)
app.add_typer(context.context_app, name="context")
app.add_typer(config.config_app, name="config")
app.add_typer(catalog.checks_app, name="check", hidden=True)  # the singular noun works too
app.command(name="undo")(history.undo)
app.command(name="trace")(trace.trace)
app.command(name="probe")(probe.probe)
app.command(name="serve")(serve.serve)
app.add_typer(watch.watch_app, name="watch")


@app.command()
def version() -> None:
    """Print pipectl's version."""
    typer.echo(__version__)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", "-V", callback=_print_version, is_eager=True,
                                 help="Print pipectl's version and exit."),
    config: Path | None = typer.Option(None, "--config", "-c", help="pipectl.toml to use, for every command "
                                       "(also $PIPECTL_CONFIG; default: the nearest one)."),
    context: str | None = typer.Option(None, "--context", help="The [contexts.NAME] to use (also "
                                       "$PIPECTL_CONTEXT, or `pipectl context use`)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors on stderr."),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="Log what pipectl does (-vv: more)."),
) -> None:
    """Why is my pipeline's work stuck, and what exactly do I run to fix it?"""
    GLOBAL.update(config=config, context=context, quiet=quiet)
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.getLogger("pipectl").setLevel(level)
    logging.getLogger().setLevel(level)


INTERNAL_ERROR = 70
# Typer ≥ 0.2x vendors click and raises its own copies of click's exceptions; older releases raise click's
# (imported only for those: loading click costs `--help` a twentieth of its time).
_CLICK_ERRORS: tuple[type[Exception], ...] = tuple(
    cls for cls in ((getattr(typer, "TyperException", None),) if hasattr(typer, "TyperException")
                    else (_optional_click_exception(),)) if cls is not None
)


def main(argv: list[str] | None = None) -> int:
    """Entry point: every error ends as one redacted line on stderr and a documented exit code."""
    _configure_logging()
    remember_invocation(sys.argv[1:] if argv is None else argv)
    if any(len(arg) >= 8 for arg in (sys.argv[1:] if argv is None else argv)):
        from pipectl.secrets import register_arguments

        register_arguments(sys.argv[1:] if argv is None else argv)
    try:
        with _sigterm_interrupts():
            command = typer.main.get_command(_only_invoked(sys.argv[1:] if argv is None else argv))
            result = tidy(command)(args=argv, prog_name="pipectl", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        _error("aborted")
        return 130
    except _CLICK_ERRORS as exc:  # bad flags, unknown commands: click's usage errors, one line, exit 2
        _error(exc.format_message())
        return getattr(exc, "exit_code", 2)
    except PipectlError as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:
            _error(line)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        _error(f"interrupted: {exc}" if str(exc) else "interrupted")
        return 130
    except Exception as exc:  # the last line of defence: never a traceback
        _error(f"internal error: {type(exc).__name__}: {exc}")
        return INTERNAL_ERROR
    return result if isinstance(result, int) else 0


_ROOT_OPTIONS_WITH_VALUE = frozenset({"--config", "-c", "--context"})


def _only_invoked(args: list[str]) -> typer.Typer:
    """The app with only the command the arguments name (building all 23 costs every run ~40 ms of CPU); the
    whole app when they name none, ask the root for help, or name one that does not exist (its message
    then lists the commands)."""
    words = iter(args)
    for word in words:
        if word in ("--help", "-h") or word.startswith("--") and "completion" in word:
            return app
        if word in _ROOT_OPTIONS_WITH_VALUE:
            next(words, None)
        elif not word.startswith("-"):
            return _pruned(word)
    return app


def _pruned(name: str) -> typer.Typer:
    commands = [c for c in app.registered_commands if (c.name or c.callback.__name__) == name]
    groups = [g for g in app.registered_groups if g.name == name]
    if not commands and not groups:
        return app
    pruned = copy.copy(app)
    pruned.registered_commands, pruned.registered_groups = commands, groups
    return pruned


@contextlib.contextmanager
def _sigterm_interrupts():
    """SIGTERM (a CI runner's cancel, `kill`) stops a write at a safe point exactly as Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt("terminated (SIGTERM)")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _error(message: str) -> None:
    sys.stderr.write(f"pipectl: {redactor(message)}\n")


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("pipectl: %(levelname)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    handler.addFilter(_InterruptedRollback())


class _InterruptedRollback(logging.Filter):
    """psycopg warns that it could not roll back a query Ctrl-C cut short; the server rolls it back anyway."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "error ignored in rollback" not in record.getMessage()
