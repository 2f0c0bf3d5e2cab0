"""`pipectl trace ITEM_ID`: "where is job 42?" answered from every system at once, as one timeline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipectl.cli.common import ConfigOption, load, note, terminal_width, use_color, write


def trace(
    item_id: Annotated[str, typer.Argument(help="The work item's id, as its state table's id column holds it.")],
    table: Annotated[str | None, typer.Option(
        "--table", help="Search only this state table (default: every configured one).")] = None,
    format: Annotated[str, typer.Option(
        "--output", "-o", "--format", "-f", help="terminal, json or markdown.")] = "terminal",
    output: Annotated[Path | None, typer.Option("--output-file", help="Write the timeline to this file.")] = None,
    timeout: Annotated[float | None, typer.Option(
        help="Seconds each source may take (default: the config's doctor.timeout).")] = None,
    config: ConfigOption = None,
) -> int:
    """One item's timeline across the state tables, Prefect flow runs, the dead-letter queues and Modal.
    Exit 0 when it was found somewhere, 1 when nowhere, 2 for bad input."""
    from pipectl.config_load import environment
    from pipectl.errors import UsageError
    from pipectl.files import refuse_symlink
    from pipectl.report.trace import FORMATS, render
    from pipectl.trace import check_table, gather

    if format not in FORMATS:
        raise UsageError(f"unknown output format {format!r}: choose {', '.join(FORMATS)}")
    item_id = item_id.strip()
    if not item_id or len(item_id) > 200:
        raise UsageError("ITEM_ID must be 1 to 200 characters")
    if timeout is not None and timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds")
    if output is not None:
        refuse_symlink(output)
    cfg = load(config)
    tables = check_table(cfg, table)
    timeline = gather(cfg, item_id, tables, environment(cfg.source), timeout or cfg.doctor.timeout)
    write(render(timeline, format, color=use_color(output) and format == "terminal", width=terminal_width(output)),
          output)
    if output is not None:
        note(f"trace written to {output}")
    return 0 if timeline.found else 1
