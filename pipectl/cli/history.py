"""`pipectl journal`, `pipectl report` and `pipectl undo`: what was found and done, told and taken back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipectl.cli.common import ConfigOption, load, note, write
from pipectl.cli.repairs import DryRunOption, JournalOption, YesOption, run_repair


def journal(
    limit: Annotated[int, typer.Option(help="How many runs to list.")] = 20,
    journal: JournalOption = None,
) -> int:
    """List recent runs: doctor, repairs and playbooks, newest first."""
    from pipectl.journal import Journal
    from pipectl.report.incident import render_runs

    book = Journal(journal)
    runs = book.runs(limit)
    write(render_runs(runs, {r.id: book.events(r.id, "outcome") for r in runs}))
    return 0


def report(
    run_id: Annotated[str | None, typer.Argument(help="A run from `pipectl journal` (default: the latest).")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file.")] = None,
    journal: JournalOption = None,
) -> int:
    """The incident report (Markdown) of a run, from the journal."""
    from pipectl.errors import UsageError
    from pipectl.journal import Journal
    from pipectl.report.incident import render_incident

    book = Journal(journal)
    run = book.run(run_id) if run_id else next(iter(book.runs(1)), None)
    if run is None:
        raise UsageError(f"no run {run_id} in the journal" if run_id else "the journal is empty")
    write(render_incident(run, book.events(run.id)), output)
    if output:
        note(f"report written to {output}")
    return 0


def undo(
    run_id: Annotated[str, typer.Argument(help="The run whose changes to revert.")],
    config: ConfigOption = None,
    yes: YesOption = False,
    dry_run: DryRunOption = False,
    journal: JournalOption = None,
) -> int:
    """Revert what a run changed, where nobody has changed it since (compare-and-set again)."""
    from pipectl.errors import UsageError
    from pipectl.journal import Journal
    from pipectl.repairs.undo import UndoRun

    book = Journal(journal)
    if book.run(run_id) is None:
        raise UsageError(f"no run {run_id} in the journal")
    cfg = load(config)
    repair = UndoRun(cfg, run_id, book.events(run_id, "change"))
    return run_repair(cfg, repair, yes=yes, dry_run=dry_run, journal=journal)
