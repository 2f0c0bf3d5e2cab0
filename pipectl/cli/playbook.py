"""`pipectl playbook run NAME`: a named repair, planned whole, confirmed once, verified step by step."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from pipectl.cli.common import (
    ConfigOption,
    FormatOption,
    command_line,
    load,
    note,
    note_interrupted,
    terminal_or_json,
    write,
)
from pipectl.cli.repairs import DryRunOption, JournalOption, YesOption

playbook_app = typer.Typer(help="Run a named repair.", no_args_is_help=True)


@playbook_app.command("run")
def run(
    name: Annotated[str, typer.Argument(help="A playbook from `pipectl playbooks list`.")],
    config: ConfigOption = None,
    yes: YesOption = False,
    dry_run: DryRunOption = False,
    journal: JournalOption = None,
    report: Annotated[Path | None, typer.Option("--output-file", "--report", help="Where to write the incident "
                                                "report (default: ./pipectl-report-RUN_ID.md).")] = None,
    format: FormatOption = "terminal",
) -> int:
    """Plan every step, confirm once, then apply and verify each; a failed verify stops the run."""
    from pipectl.config_load import environment
    from pipectl.errors import PipectlError, UsageError
    from pipectl.identity import identity_of
    from pipectl.interface import PlaybookContext
    from pipectl.journal import Journal
    from pipectl.playbook import run_playbook
    from pipectl.registry import load_playbooks
    from pipectl.repair import JournalRun, StepResult
    from pipectl.report.incident import render_incident
    from pipectl.report.plan import render_outcome, render_plan, render_step_outcome, render_verdict

    terminal_or_json(format)
    if report is not None:
        from pipectl.files import refuse_symlink

        refuse_symlink(report)  # bad input: found before any step runs, not after the repair
    loaded = load_playbooks()
    if name not in loaded.items:
        raise UsageError(f"unknown playbook {name!r}: choose one of {', '.join(sorted(loaded.items)) or 'none'}")
    cfg = load(config)
    book = Journal(journal)
    bound = JournalRun(book, book.start(command_line(), cfg.pipeline, identity_of(cfg)))
    ctx = PlaybookContext(config=cfg, environ=environment(cfg.source), progress=note)
    def write_report() -> None:
        target = report or Path(f"pipectl-report-{bound.run.id}.md")
        write(render_incident(book.run(bound.run.id), book.events(bound.run.id)), target)
        note(f"incident report written to {target}")

    settled: list[StepResult] = []

    def settle(step: StepResult) -> None:  # each step's outcome as it ends, all of them again in the verdict
        settled.append(step)
        if format == "json":
            write(render_step_outcome(step, bound.run.id))

    try:
        outcome = run_playbook(loaded.items[name](), ctx, bound, yes=yes, dry_run=dry_run,
                               show=lambda plan: write(render_plan(plan, format)), settle=settle)
    except (PipectlError, KeyboardInterrupt) as exc:  # stopped halfway: the report says how far it got
        if format == "json":
            with contextlib.suppress(Exception):  # an output that cannot be written must not hide the cause
                write(render_verdict(name, bound.run.id, settled, error=exc, dry_run=dry_run))
        if isinstance(exc, KeyboardInterrupt):
            note_interrupted(exc)
        if not dry_run and book.events(bound.run.id, "outcome"):  # it got past planning
            with contextlib.suppress(Exception):
                write_report()
        note(f"journal: run {bound.run.id}")
        raise
    if format == "json":
        write(render_verdict(name, bound.run.id, settled, outcome=outcome, dry_run=dry_run))
    note(render_outcome(outcome).rstrip())
    if not dry_run:
        write_report()
    note(f"journal: run {bound.run.id}")
    return 0 if outcome.ok else 1
