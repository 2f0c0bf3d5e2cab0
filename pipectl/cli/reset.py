"""`pipectl reset`: put rows stuck in one status back to another, in short compare-and-set batches."""

from __future__ import annotations

from typing import Annotated

import typer

from pipectl.cli.common import ConfigOption, FormatOption, load
from pipectl.cli.repairs import DryRunOption, JournalOption, YesOption, run_repair

DEFAULT_BATCH_SIZE = 20_000  # = pipectl.repairs.reset.DEFAULT_BATCH_SIZE (not imported here: startup stays fast)


def reset(
    status: Annotated[str, typer.Option("--status", help="The status the rows are stuck in, e.g. QUEUED.")],
    to: Annotated[str, typer.Option("--to", help="The status to put them in.")] = "PENDING",
    older_than: Annotated[str | None, typer.Option(
        "--older-than", help="Only rows not updated for this long, e.g. 10m; 0 for every row "
                             "(default: the table's stuck_after for --status).")] = None,
    step: Annotated[str | None, typer.Option(
        "--step", help="Only rows of this value of the table's first group_by column (e.g. step_name).")] = None,
    table: Annotated[str | None, typer.Option(
        "--table", help="A [[state_tables]] entry (default: the only one).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Reset at most this many rows (lowest ids first).")] = None,
    batch_size: Annotated[int, typer.Option(
        "--batch-size", help="Rows per transaction; each batch holds its row locks only until it commits.")
    ] = DEFAULT_BATCH_SIZE,
    allow_new_status: Annotated[bool, typer.Option(
        "--allow-new-status", help="Allow a --to status no row is in and the config does not name.")] = False,
    config: ConfigOption = None,
    yes: YesOption = False,
    dry_run: DryRunOption = False,
    journal: JournalOption = None,
    format: FormatOption = "terminal",
) -> int:
    """Reset stuck rows (e.g. QUEUED → PENDING) where they are still stuck; every batch is journaled for undo."""
    from pipectl.durations import parse_duration
    from pipectl.errors import UsageError

    if not status.strip() or not to.strip():
        raise UsageError("--status and --to must name a status")
    if status == to:
        raise UsageError(f"--status and --to are both {status}: nothing would change")
    try:
        age = parse_duration(older_than) if older_than is not None else None
    except ValueError as exc:
        raise UsageError(f"--older-than: {exc}") from None

    from pipectl.repairs.reset import ResetRows, find_table
    from pipectl.report.progress import RowsProgress

    cfg = load(config)
    state_table = find_table(cfg, table)
    bar = RowsProgress(f"{status} → {to}")
    try:
        repair = ResetRows(cfg, state_table, status, to, older_than=age, step=step, limit=limit,
                           batch_size=batch_size, progress=bar, allow_new_status=allow_new_status)
        return run_repair(cfg, repair, yes=yes, dry_run=dry_run, journal=journal, fmt=format)
    finally:
        bar.close()
