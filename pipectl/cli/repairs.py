"""The write commands (patch, secret set, …): each parses, builds a Repair, and hands it to `execute`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from pipectl.cli.common import (
    ConfigOption,
    FormatOption,
    command_line,
    deployment_name,
    load,
    note,
    note_interrupted,
    write,
)

YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking (for CI and scripts).")]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Show the plan and stop; nothing is changed.")]
JournalOption = Annotated[Path | None, typer.Option("--journal", help="Journal file (default: user state dir).")]


def run_repair(config, repair, *, yes: bool, dry_run: bool, journal: Path | None, fmt: str = "terminal") -> int:
    """Plan → confirm → apply → verify → journal, with the plan and outcome shown to the operator; in JSON
    each step's outcome follows the plans on stdout, for scripts (the words stay on stderr).

    `repair` may be a list of `Step`s, planned together and confirmed once (patch storing a Secret block
    before pointing the deployment at it)."""
    from pipectl.errors import UsageError
    from pipectl.identity import identity_of
    from pipectl.journal import Journal
    from pipectl.repair import JournalRun, Step, StepResult, execute_steps
    from pipectl.report.plan import render_outcome, render_plan, render_step_outcome

    if fmt not in ("terminal", "json"):
        raise UsageError(f"unknown format {fmt!r}: choose terminal or json")
    steps = repair if isinstance(repair, list) else [Step(type(repair).__name__, repair)]
    book = Journal(journal)
    bound = JournalRun(book, book.start(command_line(), config.pipeline, identity_of(config)))

    def settle(step: StepResult) -> None:
        if fmt == "json":
            write(render_step_outcome(step, bound.run.id))

    try:
        outcome = execute_steps(steps, bound, yes=yes, dry_run=dry_run,
                                show=lambda plan: write(render_plan(plan, fmt)), settle=settle)
    except KeyboardInterrupt as exc:  # typer turns it into a silent exit 130: say what was committed first
        note_interrupted(exc)
        note(f"journal: run {bound.run.id} (`pipectl report {bound.run.id}`)")
        raise
    note(render_outcome(outcome).rstrip())
    note(f"journal: run {bound.run.id} (`pipectl report {bound.run.id}`)")
    return 0 if outcome.ok else 1


def patch(
    deployment: Annotated[str, typer.Argument(help="FLOW/DEPLOYMENT")],
    env: Annotated[list[str] | None, typer.Option("--env", help="KEY=secret:BLOCK, KEY=env:NAME or KEY=value")] = None,
    unset_env: Annotated[list[str] | None, typer.Option("--unset-env", help="Remove this env key.")] = None,
    job_variable: Annotated[list[str] | None, typer.Option("--job-variable", help="PATH=JSON")] = None,
    config: ConfigOption = None,
    yes: YesOption = False,
    dry_run: DryRunOption = False,
    journal: JournalOption = None,
    format: FormatOption = "terminal",
) -> int:
    """Merge env keys into a deployment's job variables; shows a diff, never touches other keys."""
    from pipectl.config_load import environment
    from pipectl.errors import UsageError
    from pipectl.repair import Step
    from pipectl.repairs.patch import PatchJobVariables, parse_env, parse_job_variables
    from pipectl.repairs.secret import SetSecretBlock

    deployment = deployment_name(deployment)
    if not (env or unset_env or job_variable):
        raise UsageError("nothing to patch: give --env, --unset-env or --job-variable")
    cfg = load(config)
    set_env, blocks = parse_env(env or [], environment(cfg.source))
    repair = PatchJobVariables(cfg, deployment, set_env, unset_env or [], parse_job_variables(job_variable or []))
    if not blocks:
        return run_repair(cfg, repair, yes=yes, dry_run=dry_run, journal=journal, fmt=format)
    steps = [Step(f"store Secret block {block}", SetSecretBlock(cfg, block, value)) for block, value in blocks.items()]
    steps.append(Step(f"patch {deployment}", repair))
    return run_repair(cfg, steps, yes=yes, dry_run=dry_run, journal=journal, fmt=format)


secret_app = typer.Typer(help="Prefect Secret blocks.", no_args_is_help=True)


@secret_app.command("set")
def secret_set(
    name: Annotated[str, typer.Argument(help="Secret block name, e.g. modal-token-id")],
    from_env: Annotated[str | None, typer.Option("--from-env", help="Read the value from this variable.")] = None,
    stdin: Annotated[bool, typer.Option("--stdin", help="Read the value from standard input.")] = False,
    config: ConfigOption = None,
    yes: YesOption = False,
    dry_run: DryRunOption = False,
    journal: JournalOption = None,
    format: FormatOption = "terminal",
) -> int:
    """Create or update a Secret block. The value never comes from the command line."""
    from pipectl.config_load import environment
    from pipectl.errors import UsageError
    from pipectl.repairs.secret import SetSecretBlock

    if bool(from_env) == stdin:
        raise UsageError("give exactly one of --from-env VAR or --stdin (never the value itself)")
    cfg = load(config)
    value = environment(cfg.source).get(from_env or "", "") if from_env else sys.stdin.read().rstrip("\n")
    if not value:
        raise UsageError(f"{'environment variable ' + from_env if from_env else 'standard input'} is empty")
    return run_repair(cfg, SetSecretBlock(cfg, name, value), yes=yes, dry_run=dry_run, journal=journal, fmt=format)
