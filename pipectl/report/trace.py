"""How `pipectl trace` reads: where the item is now in one line, then its timeline, oldest first."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

from pipectl.trace import Event, Timeline

SCHEMA = "pipectl.trace/v1"
FORMATS = ("terminal", "json", "markdown")
_SOURCE_STYLE = {"postgres": "cyan", "prefect": "blue", "sqs-dlq": "magenta", "modal": "green"}


def render(timeline: Timeline, fmt: str, *, color: bool = False, width: int = 100) -> str:
    """The timeline in one of FORMATS (the caller has checked `fmt`)."""
    if fmt == "json":
        return json.dumps(to_dict(timeline), indent=2, default=str) + "\n"
    if fmt == "markdown":
        return markdown(timeline)
    return terminal(timeline, color=color, width=width)


def to_dict(timeline: Timeline) -> dict[str, Any]:
    """The machine contract, schema `pipectl.trace/v1`: times are ISO 8601 in UTC, or null when unknown."""
    return {
        "schema": SCHEMA,
        "item_id": timeline.item_id,
        "found": timeline.found,
        "summary": timeline.summary,
        "events": [{"time": e.time.isoformat() if e.time else None, "source": e.source, "kind": e.kind,
                    "detail": e.detail, **({"data": e.data} if e.data else {})} for e in timeline.events],
    }


def terminal(timeline: Timeline, *, color: bool = False, width: int = 100) -> str:
    """The summary in bold, then a table of the events (rich, coloured only on a terminal)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    buffer = StringIO()
    console = Console(file=buffer, width=width, color_system="standard" if color else None, force_terminal=color,
                      no_color=not color, highlight=False, emoji=False)
    console.print(Text(timeline.summary, style="bold" if timeline.found else "bold yellow"), soft_wrap=True)
    table = Table(box=None, show_edge=False, pad_edge=False, header_style="dim")
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("source", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("detail", overflow="fold")
    for event in timeline.events:
        style = "yellow" if event.kind == "unavailable" else ("dim" if event.kind == "note" else "")
        table.add_row(_when(event), Text(event.source, style=_SOURCE_STYLE.get(event.source, "")),
                      Text(event.kind, style=style), Text(event.detail, style=style))
    console.print(table)
    return buffer.getvalue()


def markdown(timeline: Timeline) -> str:
    """A section to paste into an incident channel or report."""
    lines = [f"# Trace of {timeline.item_id}", "", f"**Where it is now**: {_cell(timeline.summary)}", "",
             "| Time (UTC) | Source | Kind | Detail |", "|---|---|---|---|"]
    lines += [f"| {_when(e)} | {e.source} | {e.kind} | {_cell(e.detail)} |" for e in timeline.events]
    return "\n".join(lines) + "\n"


def _when(event: Event) -> str:
    return f"{event.time:%Y-%m-%d %H:%M:%S}" if event.time else "-"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
