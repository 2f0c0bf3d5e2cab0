"""`pipectl checks list` and `pipectl playbooks list`: what is installed, from the plugin registry."""

from __future__ import annotations

from typing import Annotated

import typer

from pipectl.cli.common import FormatOption, note, terminal_or_json, write

checks_app = typer.Typer(help="The checks doctor can run.", no_args_is_help=True)
playbooks_app = typer.Typer(help="The named repairs.", no_args_is_help=True)


@checks_app.command("list")
def list_checks(
    explain: Annotated[bool, typer.Option("--explain", help="Show each check's Detects / Why / Fix.")] = False,
    output: FormatOption = "terminal",
) -> int:
    """List installed checks: id, component, default severity and what each detects."""
    from pipectl.registry import load_checks
    from pipectl.report.catalog import checks_json, render_checks

    loaded = load_checks()
    for warning in loaded.warnings:
        note(f"pipectl: warning: {warning}")
    checks = list(loaded.items.values())
    write(checks_json(checks) if terminal_or_json(output) == "json" else render_checks(checks, explain=explain))
    return 0


@playbooks_app.command("list")
def list_playbooks(output: FormatOption = "terminal") -> int:
    """List installed playbooks."""
    from pipectl.registry import load_playbooks
    from pipectl.report.catalog import playbooks_json, render_playbooks

    loaded = load_playbooks()
    for warning in loaded.warnings:
        note(f"pipectl: warning: {warning}")
    write(playbooks_json(loaded.items) if terminal_or_json(output) == "json" else render_playbooks(loaded.items))
    return 0
