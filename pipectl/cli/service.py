"""`pipectl service`: the hosted services of `[[services]]` (Render, Netlify, … through `pipectl.providers`)."""

from __future__ import annotations

from typing import Annotated

import typer

from pipectl.cli.common import ConfigOption, FormatOption, load
from pipectl.cli.repairs import DryRunOption, JournalOption, YesOption, run_repair

service_app = typer.Typer(help="Hosted services: their environment on Render, Netlify, ….", no_args_is_help=True)
env_app = typer.Typer(help="A hosted service's environment variables.", no_args_is_help=True)
service_app.add_typer(env_app, name="env")


@env_app.command("set")
def env_set(
    service: Annotated[str, typer.Argument(help="The service's name under [[services]].")],
    assignments: Annotated[list[str], typer.Argument(help="KEY=env:NAME or KEY=value; with --from-env, one KEY.")],
    from_env: Annotated[str | None, typer.Option("--from-env", help="Read the one KEY's value from this "
                                                 "variable (the environment or the config's env file).")] = None,
    no_deploy: Annotated[bool, typer.Option("--no-deploy", help="Set only; do not redeploy the service.")] = False,
    wait: Annotated[float, typer.Option("--wait", help="Seconds to wait for the redeploy to go live.")] = 120.0,
    config: ConfigOption = None,
    yes: YesOption = False,
    dry_run: DryRunOption = False,
    journal: JournalOption = None,
    format: FormatOption = "terminal",
) -> int:
    """Set variables on a hosted service, then redeploy it and wait until it is live. Credentials come from
    the environment (`KEY=env:NAME`, `--from-env`), never from the command line."""
    from pipectl.config_load import environment
    from pipectl.errors import UsageError
    from pipectl.repairs.service_env import SetServiceEnv, parse_assignments

    if from_env:
        if len(assignments) != 1 or "=" in assignments[0]:
            raise UsageError("with --from-env NAME give exactly one KEY (no '='): "
                             "`pipectl service env set SERVICE KEY --from-env NAME`")
        assignments = [f"{assignments[0]}=env:{from_env}"]
    if wait <= 0:
        raise UsageError(f"--wait {wait:g}: give a positive number of seconds")
    cfg = load(config)
    environ = environment(cfg.source)
    repair = SetServiceEnv(cfg, service, parse_assignments(assignments, environ), environ,
                           deploy=not no_deploy, wait=wait)
    return run_repair(cfg, repair, yes=yes, dry_run=dry_run, journal=journal, fmt=format)
