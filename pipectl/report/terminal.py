"""The default output: a tree of causes with their symptoms under them, and a summary line."""

from __future__ import annotations

from io import StringIO

from rich.console import Console
from rich.text import Text
from rich.tree import Tree

from pipectl.interface import RenderOptions
from pipectl.model import DoctorResult, Finding, Status
from pipectl.report.common import display_order, evidence_text, summary_line

_STYLE = {
    Status.OK: ("✓", "green"),
    Status.WARN: ("!", "yellow"),
    Status.FAIL: ("✗", "bold red"),
    Status.ERROR: ("?", "magenta"),
    Status.SKIPPED: ("-", "dim"),
}


def render(result: DoctorResult, options: RenderOptions = RenderOptions()) -> str:
    buffer = StringIO()
    console = Console(
        file=buffer,
        width=options.width,
        color_system="standard" if options.color else None,
        force_terminal=options.color,
        no_color=not options.color,
        highlight=False,
        emoji=False,
    )
    tree = Tree(Text(f"pipectl doctor · {result.pipeline}", style="bold"), guide_style="dim")
    for cause in display_order(result.causes()):
        _add(tree, cause, result, seen=set())
    console.print(tree)
    console.print(Text(summary_line(result), style="bold"))
    return buffer.getvalue()


def _add(parent: Tree, finding: Finding, result: DoctorResult, seen: set[str]) -> None:
    seen.add(finding.id)
    node = parent.add(_label(finding))
    if finding.status not in (Status.OK, Status.SKIPPED):
        for label, value in (("impact", finding.impact), ("evidence", evidence_text(finding))):
            if value:
                node.add(Text.assemble((f"{label}: ", "dim"), value))
        for command in finding.fix:
            node.add(Text.assemble(("fix: ", "dim"), (command, "cyan")))
        if finding.advice:
            node.add(Text.assemble(("advice: ", "dim"), finding.advice))
    for symptom in display_order(result.symptoms_of(finding)):
        if symptom.id not in seen:
            _add(node, symptom, result, seen)


def _label(finding: Finding) -> Text:
    mark, style = _STYLE[finding.status]
    text = Text.assemble((f"{mark} {finding.status.value.upper():<7}", style))
    if finding.status not in (Status.OK, Status.SKIPPED):
        text.append(f" {finding.severity.value}", style=style)
    text.append(f" {finding.id}", style="bold")
    text.append(f"  {finding.summary}")
    return text
