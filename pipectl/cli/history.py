"""`pipectl journal`, `pipectl report` and `pipectl undo`: what was found and done, told and taken back.

Each defaults to the pipeline of the config in use: one journal holds every pipeline's history, and a run
made against another pipeline is never reported or undone here by accident.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipectl.cli.common import GLOBAL, ConfigOption, FormatOption, load, note, terminal_or_json, write
from pipectl.cli.repairs import DryRunOption, JournalOption, YesOption, run_repair

journal_app = typer.Typer(help="The journal of runs: list them, verify the record.", invoke_without_command=True)


@journal_app.callback()
def journal(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(help="How many runs to list.")] = 20,
    all_pipelines: Annotated[bool, typer.Option("--all", help="Runs of every pipeline, not just this one.")] = False,
    pipeline: Annotated[str | None, typer.Option("--pipeline", help="Runs of the pipeline with this name.")] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Only runs whose outcome was not ok.")] = False,
    repairs: Annotated[bool, typer.Option("--repairs", help="Only runs that planned a change.")] = False,
    format: FormatOption = "terminal",
    config: ConfigOption = None,
    journal: JournalOption = None,
) -> int:
    """List recent runs of this pipeline (doctor, repairs, playbooks), newest first, with their outcome."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = journal
        return 0
    from pipectl.journal import Journal
    from pipectl.report.incident import render_runs, runs_json

    terminal_or_json(format)
    book = Journal(journal)
    here = None if all_pipelines or pipeline else _current(config)
    last = book.last_outcomes()
    planning = book.planning_runs() if repairs else set()
    runs = [r for r in book.runs(None)
            if (pipeline is None or r.pipeline == pipeline) and (here is None or here.owns(r))
            and (not failed or (r.id in last and not last[r.id].data.get("ok")))
            and (not repairs or r.id in planning)][:limit]
    outcomes = {r.id: [last[r.id]] for r in runs if r.id in last}
    write(runs_json(runs, outcomes) if format == "json" else render_runs(runs, outcomes))
    if here is not None and format != "json":
        note(f"runs of pipeline {here.name} ({here.config}); --all for every pipeline")
    return 0


@journal_app.command("verify")
def verify(ctx: typer.Context) -> int:
    """Check the journal's hash chain: a record changed, forged or deleted behind pipectl's back is named."""
    from pipectl.journal import Journal
    from pipectl.journal_verify import verify as check

    verdict = check(Journal(ctx.obj))
    for problem in verdict.problems:
        note(f"✗ {problem}")
    unchained = f"; {verdict.unchained} older record(s) predate the chain" if verdict.unchained else ""
    note(f"{'✓ journal intact' if verdict.intact else '✗ journal tampered with'}: {verdict.records} record(s), "
         f"{verdict.runs} run(s){unchained}")
    return 0 if verdict.intact else 1


def report(
    run_id: Annotated[str | None, typer.Argument(help="A run from `pipectl journal` (default: the latest).")] = None,
    output: Annotated[Path | None, typer.Option("--output-file", help="Write to this file.")] = None,
    config: ConfigOption = None,
    journal: JournalOption = None,
    format: FormatOption = "terminal",
) -> int:
    """The incident report (Markdown) of a run, from the journal; without an id, this pipeline's latest run.
    `-o json`: the run and its journaled events as they are stored (credentials already fingerprinted)."""
    from pipectl.errors import UsageError
    from pipectl.journal import Journal
    from pipectl.report.incident import render_incident

    book = Journal(journal)
    if run_id:
        run = book.run(run_id)
        if run is None:
            raise UsageError(f"no run {run_id} in the journal")
    else:
        here = _current(config)
        run = next((r for r in book.runs(None) if here is None or here.owns(r)), None)
        if run is None:
            raise UsageError("the journal has no run of this pipeline" if here else "the journal is empty")
    from pipectl.report.settings import run_json

    events = book.events(run.id)
    write(run_json(run, events) if terminal_or_json(format) == "json" else render_incident(run, events), output)
    if output:
        note(f"report written to {output}")
    return 0


def undo(
    run_id: Annotated[str, typer.Argument(help="The run whose changes to revert.")],
    config: ConfigOption = None,
    yes: YesOption = False,
    dry_run: DryRunOption = False,
    journal: JournalOption = None,
    format: FormatOption = "terminal",
) -> int:
    """Revert what a run changed, where nobody has changed it since (compare-and-set again)."""
    from pipectl.errors import UsageError

    fmt = terminal_or_json(format)
    from pipectl.identity import identity_of
    from pipectl.journal import Journal, changes_of
    from pipectl.repairs.undo import UndoRun

    book = Journal(journal)
    run = book.run(run_id)
    if run is None:
        raise UsageError(f"no run {run_id} in the journal")
    cfg = load(config)
    here = identity_of(cfg)
    if not here.owns(run):
        raise UsageError(f"run {run_id} acted on pipeline {run.pipeline} ({run.config or 'config unknown'}), not on "
                         f"{here.name} ({here.config}): refusing to undo it here; use that pipeline's config")
    repair = UndoRun(cfg, run_id, changes_of(book.events(run_id)))
    return run_repair(cfg, repair, yes=yes, dry_run=dry_run, journal=journal, fmt=fmt)


def _current(config: Path | None):
    """The identity of the config in use, or None when there is no config here (then: every pipeline)."""
    import os

    from pipectl.config_load import find_config
    from pipectl.identity import identity_of

    named = config or GLOBAL["config"] or os.environ.get("PIPECTL_CONFIG")
    if named is None and find_config() is None:
        return None
    return identity_of(load(config))
