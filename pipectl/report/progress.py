"""Progress on long repairs: a rich bar with rows/s on stderr, only when stderr is a terminal."""

from __future__ import annotations

import sys


class RowsProgress:
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
