"""`pipectl trigger`, `pipectl deploy register` and `pipectl redrive`: start work, restore a deployment, drain a DLQ."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from pipectl.cli.common import ConfigOption, FormatOption, deployment_name, load, note
from pipectl.cli.repairs import DryRunOption, JournalOption, YesOption, run_repair


def trigger(
    deployment: Annotated[str, typer.Argument(help="FLOW/DEPLOYMENT")],
    name: Annotated[str | None, typer.Option("--name", help="Name for the flow run.")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", help="k=v (v parsed as JSON when it is JSON).")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the run to its end and check the rows moved.")] = False,
    timeout: Annotated[str, typer.Option(help="How long --wait follows the run, e.g. 10m.")] = "10m",
    config: ConfigOption = None,
    yes: YesOption = False,
    dry_run: DryRunOption = False,
    journal: JournalOption = None,
    format: FormatOption = "terminal",
) -> int:
    """Start a flow run. With --wait, exit 1 unless it COMPLETED and its rows really moved on."""
    from pipectl.durations import option_seconds
    from pipectl.repairs.trigger import TriggerRun

    deployment = deployment_name(deployment)
    limit = option_seconds(timeout, "--timeout")
    cfg = load(config)
    repair = TriggerRun(cfg, deployment, name=name, parameters=_params(param or []), wait=wait, timeout_s=limit,
                        watch=note)
    return run_repair(cfg, repair, yes=yes, dry_run=dry_run, journal=journal, fmt=format)


deploy_app = typer.Typer(help="Prefect deployments the pipeline expects.", no_args_is_help=True)


@deploy_app.command("register")
def register(
    deployment: Annotated[str, typer.Argument(help="FLOW/DEPLOYMENT, as in the config")],
    config: ConfigOption = None,
    yes: YesOption = False,
    dry_run: DryRunOption = False,
    journal: JournalOption = None,
    format: FormatOption = "terminal",
) -> int:
    """Register a missing deployment from its config entry (entrypoint, source, work pool, job variables)."""
    from pipectl.repairs.register import RegisterDeployment

    cfg = load(config)
    return run_repair(cfg, RegisterDeployment(cfg, deployment), yes=yes, dry_run=dry_run, journal=journal,
                      fmt=format)


def redrive(
    queue: Annotated[str, typer.Argument(help="Queue name (or URL) from the config")],
    rate: Annotated[int | None, typer.Option("--rate", help="Messages per second (1-500).")] = None,
    config: ConfigOption = None,
    yes: YesOption = False,
    dry_run: DryRunOption = False,
    journal: JournalOption = None,
    format: FormatOption = "terminal",
) -> int:
    """Move the dead-letter queue's messages back to their queue and wait until they are all moved."""
    from pipectl.config_load import environment
    from pipectl.repairs.redrive import Redrive

    cfg = load(config)
    repair = Redrive(cfg, queue, environment(cfg.source), max_per_second=rate, progress=note)
    return run_repair(cfg, repair, yes=yes, dry_run=dry_run, journal=journal, fmt=format)


def _not_json(name: str) -> object:
    raise ValueError(name)


def _params(specs: list[str]) -> dict[str, object]:
    """`k=v` pairs, v parsed as JSON when it is JSON; a credential is refused (parameters are plain text)."""
    from pipectl.errors import UsageError
    from pipectl.repairs.secrets import name_part, refuse_plaintext

    params: dict[str, object] = {}
    for spec in specs:
        key, sep, raw = spec.partition("=")
        if not sep or not key:
            raise UsageError(f"--param {name_part(spec)!r}…: expected k=v")
        try:
            params[key] = json.loads(raw, parse_constant=_not_json)
        except ValueError:  # plain text, and NaN/Infinity, which JSON does not have
            params[key] = raw
        refuse_plaintext("--param", key, params[key])
    return params
