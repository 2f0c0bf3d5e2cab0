"""`pipectl probe`: a canary through the whole pipeline (see `pipectl.probe`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from pipectl.cli.common import ConfigOption, load, note, write
from pipectl.cli.repairs import DryRunOption, JournalOption, YesOption


def probe(
    format: Annotated[str, typer.Option("--output", "-o", "--format", "-f",
                                        help="terminal, json or markdown.")] = "terminal",
    output: Annotated[Path | None, typer.Option("--output-file", help="Write the result to this file.")] = None,
    timeout: Annotated[float | None, typer.Option(help="Seconds the item may take end to end "
                                                  "(default: [probe] timeout).")] = None,
    config: ConfigOption = None,
    yes: YesOption = False,
    dry_run: DryRunOption = False,
    journal: JournalOption = None,
) -> int:
    """Send one marked item through the pipeline's entry point and follow it hop by hop; names the first
    hop that did not happen, with the failing checks behind it, then deletes what the item left.
    Exit 0 when it went all the way, 1 when a hop failed, 2 for bad input."""
    from pipectl.errors import UsageError
    from pipectl.files import refuse_symlink
    from pipectl.report.probe import FORMATS

    if format not in FORMATS:
        raise UsageError(f"unknown output format {format!r}: choose {', '.join(FORMATS)}")
    if timeout is not None and timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds")
    if output is not None:
        refuse_symlink(output)
    cfg = load(config)
    return run(cfg, format=format, output=output, timeout=timeout, yes=yes, dry_run=dry_run, journal=journal)


def run(cfg, *, format: str = "terminal", output: Path | None = None, timeout: float | None = None,
        yes: bool = False, dry_run: bool = False, journal: Path | None = None) -> int:
    """Plan (what the probe writes) → confirm → send and follow → journal; shared with `doctor --probe`."""
    from pipectl.cli.common import command_line
    from pipectl.config_load import environment
    from pipectl.errors import UsageError
    from pipectl.identity import identity_of
    from pipectl.journal import Journal
    from pipectl.probe import run_probe, writes
    from pipectl.report.probe import render, to_dict, verdict

    plan = writes(cfg)
    note("Plan: send one probe item through the pipeline; it writes:\n" + "\n".join(f"  - {w}" for w in plan))
    if dry_run:
        return 0
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError("the probe writes to the pipeline: pass --yes to run it without a terminal")
        if not typer.confirm("Send it?", default=False):
            note("nothing sent")
            return 1
    book = Journal(journal)
    run_record = book.start(command_line(), cfg.pipeline, identity_of(cfg))
    result = run_probe(cfg, environment(cfg.source), timeout=timeout, progress=note)
    book.record(run_record.id, "plan", {"action": "probe", "writes": plan, "marker": result.marker})
    book.record(run_record.id, "change", {"kind": "probe_item", "item_id": result.item_id, "cleanup": result.cleanup})
    book.record(run_record.id, "outcome", {"stage": "final", "ok": result.ok, "result": "ok" if result.ok else "failed",
                                           "summary": verdict(result), "probe": to_dict(result)})
    write(render(result, format), output)
    return 0 if result.ok else 1
