"""The default output: a tree of causes with their symptoms under them, and a summary line."""

from __future__ import annotations

from io import StringIO

from rich.console import Console
from rich.text import Text
from rich.tree import Tree

from pipectl.interface import RenderOptions
from pipectl.model import DoctorResult, Finding, Status
from pipectl.report.common import display_order, evidence_text, summary_line, suppressed_text

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
    seen: set[str] = set()  # a symptom of several causes is shown once, under the first; named under the rest
    causes = display_order(result.causes())
    passing = [c for c in causes if c.status in (Status.OK, Status.SKIPPED) and not result.symptoms_of(c)]
    for cause in causes:
        if options.show_all or cause not in passing:
            _add(tree, cause, result, seen)
    if not options.show_all:
        for component, line in _folded(passing).items():
            mark, style = _STYLE[Status.OK if "passed" in line else Status.SKIPPED]
            label = "OK" if "passed" in line else "SKIPPED"
            tree.add(Text.assemble((f"{mark} {label:<7}", style), (f" {component}", "bold"), f"  {line}"))
    for finding in display_order(list(result.suppressed)):
        tree.add(Text.assemble(("⊘ SUPPRESSED", "dim"), (f" {finding.status.value.upper()} {finding.severity.value}",
                               "dim"), (f" {finding.id}", "bold"), f"  {finding.summary}",
                               (f"  ({suppressed_text(finding)})", "dim")))
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
        else:
            node.add(Text.assemble(("also explains: ", "dim"), symptom.id, (" (shown above)", "dim")))


def _folded(passing: list[Finding]) -> dict[str, str]:
    """One line per component for the checks that passed or did not apply (`--all` lists them)."""
    lines: dict[str, str] = {}
    for component in dict.fromkeys(f.component for f in passing):
        ok = sum(f.component == component and f.status is Status.OK for f in passing)
        skipped = sum(f.component == component and f.status is Status.SKIPPED for f in passing)
        lines[component] = ", ".join(x for x in (ok and f"{ok} passed", skipped and f"{skipped} skipped") if x)
    return lines


def _label(finding: Finding) -> Text:
    mark, style = _STYLE[finding.status]
    text = Text.assemble((f"{mark} {finding.status.value.upper():<7}", style))
    if finding.status not in (Status.OK, Status.SKIPPED):
        text.append(f" {finding.severity.value}", style=style)
    text.append(f" {finding.id}", style="bold")
    text.append(f"  {finding.summary}")
    return text
