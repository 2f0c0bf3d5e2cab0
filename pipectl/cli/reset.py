"""`pipectl reset`: put rows stuck in one status back to another, in short compare-and-set batches."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from pipectl.cli.common import ConfigOption, load
from pipectl.cli.repairs import DryRunOption, FormatOption, JournalOption, YesOption, run_repair

DEFAULT_BATCH_SIZE = 20_000  # = pipectl.repairs.reset.DEFAULT_BATCH_SIZE (not imported here: startup stays fast)


def reset(
    status: Annotated[str, typer.Option("--status", help="The status the rows are stuck in, e.g. QUEUED.")],
    to: Annotated[str, typer.Option("--to", help="The status to put them in.")] = "PENDING",
    older_than: Annotated[str | None, typer.Option(
        "--older-than", help="Only rows not updated for this long, e.g. 10m (default: any age).")] = None,
    step: Annotated[str | None, typer.Option(
        "--step", help="Only rows of this value of the table's first group_by column (e.g. step_name).")] = None,
    table: Annotated[str | None, typer.Option(
        "--table", help="A [[state_tables]] entry (default: the only one).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Reset at most this many rows (lowest ids first).")] = None,
    batch_size: Annotated[int, typer.Option(
        "--batch-size", help="Rows per transaction; each batch holds its row locks only until it commits.")
    ] = DEFAULT_BATCH_SIZE,
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
    if batch_size < 1:
        raise UsageError(f"--batch-size {batch_size}: must be at least 1")
    if limit is not None and limit < 1:
        raise UsageError(f"--limit {limit}: must be at least 1")
    try:
        age = parse_duration(older_than) if older_than is not None else None
    except ValueError as exc:
        raise UsageError(f"--older-than: {exc}") from None

    from pipectl.repairs.reset import ResetRows, find_table

    cfg = load(config)
    state_table = find_table(cfg, table)
    bar = _ProgressBar(f"{status} → {to}")
    repair = ResetRows(cfg, state_table, status, to, older_than=age, step=step, limit=limit, batch_size=batch_size,
                       progress=bar)
    try:
        return run_repair(cfg, repair, yes=yes, dry_run=dry_run, journal=journal, fmt=format)
    finally:
        bar.close()


class _ProgressBar:
    """A rich progress bar with rows/s on stderr, only when stderr is a terminal; otherwise silent
    (the outcome line says how many rows moved). It ends at the repair's last call (done == total),
    before the outcome is shown, or when the command ends."""

    def __init__(self, title: str) -> None:
        self.title = title
        self._progress = None
        self._task = None
        self._ended = False

    def __call__(self, done: int, total: int) -> None:
        if self._ended:
            return
        if self._progress is None:
            if not sys.stderr.isatty():
                return
            self._start(total)
        self._progress.update(self._task, completed=done, total=max(total, done))
        if done >= total > 0:
            self.close()

    def _start(self, total: int) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.text import Text

        class Rate(ProgressColumn):
            def render(self, task) -> Text:
                speed = task.finished_speed or task.speed
                return Text(f"{speed:,.0f} rows/s" if speed else "… rows/s")

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(bar_width=20), MofNCompleteColumn(), Rate(),
            TimeElapsedColumn(), console=Console(file=sys.stderr), transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task(self.title, total=total)

    def close(self) -> None:
        self._ended = True
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
