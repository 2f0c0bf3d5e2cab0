"""`pipectl watch deploy` and `pipectl watch status`: doctor on a schedule, run by the team's own Prefect."""

from __future__ import annotations

from typing import Annotated

import typer

from pipectl.cli.common import ConfigOption, FormatOption, load, terminal_or_json, write
from pipectl.cli.repairs import DryRunOption, JournalOption, YesOption, run_repair

watch_app = typer.Typer(help="Run doctor as a Prefect deployment; events only when a finding changes.",
                        no_args_is_help=True)

NameOption = Annotated[str | None, typer.Option(
    "--name", help="The watchdog deployment's name (default: the pipeline's), under flow pipectl-watch.")]


@watch_app.command("deploy")
def deploy(
    every: Annotated[str, typer.Option("--every", help="How often doctor runs, e.g. 5m (at least 1m).")],
    work_pool: Annotated[str, typer.Option("--work-pool", help="The work pool whose workers run it.")],
    name: NameOption = None,
    worker_config: Annotated[str | None, typer.Option(
        "--worker-config", help="The config's path as the worker sees it (default: the config used here, "
        "as an absolute path).")] = None,
    context: Annotated[str | None, typer.Option(
        "--context", help="The [contexts.NAME] to use, here and on the worker.")] = None,
    timeout: Annotated[float | None, typer.Option(
        "--timeout", help="Seconds each check may take on the worker (default: the config's).")] = None,
    config: ConfigOption = None,
    yes: YesOption = False,
    dry_run: DryRunOption = False,
    journal: JournalOption = None,
    format: FormatOption = "terminal",
) -> int:
    """Register (or update) a Prefect deployment that runs doctor on a schedule on your own workers."""
    from pathlib import Path, PurePosixPath, PureWindowsPath

    from pipectl.cli.common import GLOBAL
    from pipectl.errors import UsageError
    from pipectl.watch import WatchDeploy, parse_every

    seconds = parse_every(every)
    if timeout is not None and timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds")
    if worker_config is not None and not any(p(worker_config).is_absolute() for p in (PurePosixPath, PureWindowsPath)):
        raise UsageError(f"--worker-config {worker_config!r}: give an absolute path (the worker runs each flow "
                         "in a fresh folder)")
    if context is not None:
        GLOBAL["context"] = context
    cfg = load(config)
    chosen = cfg.source.context
    repair = WatchDeploy(cfg, every=seconds, work_pool=work_pool, name=name, context=chosen, timeout=timeout,
                         worker_config=worker_config or str(Path(cfg.source.path).resolve()))
    return run_repair(cfg, repair, yes=yes, dry_run=dry_run, journal=journal, fmt=format)


@watch_app.command("status")
def status(
    name: NameOption = None,
    limit: Annotated[int, typer.Option("--limit", help="How many of the latest runs to show (1-100).")] = 10,
    config: ConfigOption = None,
    format: FormatOption = "terminal",
) -> int:
    """The watchdog's last runs: when, how they ended, what was not OK, the events they sent, the report."""
    from pipectl.report.watch import render_status
    from pipectl.watch import status as read_status

    fmt = terminal_or_json(format)
    write(render_status(read_status(load(config), name, limit), fmt))
    return 0
