"""`pipectl init`: write a first pipectl.toml from what the pipeline's systems hold."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipectl.cli.common import note, write


def init(
    output: Annotated[Path, typer.Option("--output-file", help="Where to write the config.")] = Path("pipectl.toml"),
    pipeline: Annotated[str | None, typer.Option(help="A name for reports (default: this folder's name).")] = None,
    prefect_url: Annotated[str | None, typer.Option(help="Prefect API URL (default: $PREFECT_API_URL).")] = None,
    database_env: Annotated[str, typer.Option(help="The variable holding the Postgres DSN.")] = "DATABASE_URL",
    timeout: Annotated[float, typer.Option(help="Seconds each system may take to answer.")] = 15.0,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the config instead of writing it.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Take every section found without asking.")] = False,
) -> int:
    """Write a pipectl.toml from what Prefect, Postgres, SQS, the hosting platforms (RENDER_API_KEY,
    NETLIFY_AUTH_TOKEN) and Modal (MODAL_TOKEN_ID) hold; credentials stay env: references."""
    import os
    import sys

    from rich.console import Console

    from pipectl.errors import UsageError
    from pipectl.files import refuse_symlink, write_private
    from pipectl.scaffold import discover_all, render

    if output.exists() and not force and not dry_run:
        raise UsageError(f"{output} exists: pass --force to replace it, or --dry-run to see what init would write")
    ask = not (yes or dry_run)
    if ask and not sys.stdin.isatty():
        raise UsageError("no terminal to ask on: pass --yes to take every section found, or --dry-run")
    refuse_symlink(output)
    environ = dict(os.environ)
    dotenv = Path(".env")
    if dotenv.is_file():
        from dotenv import dotenv_values

        environ = {**{k: v for k, v in dotenv_values(dotenv).items() if v is not None}, **environ}
    with Console(stderr=True).status("asking the systems") as spinner:
        found = discover_all(environ, prefect_url=prefect_url, database_variable=database_env, timeout=timeout,
                             progress=spinner.update)
    for line in found.notes:
        note(f"pipectl init: {line}")
    if ask:
        _choose(found)
    text = render(found, pipeline or Path.cwd().resolve().name)
    if dry_run:
        write(text)
        return 0
    write_private(output, text)
    note(f"wrote {output}: {len(found.deployments)} deployment(s), {len(found.tables)} state table(s), "
         f"{len(found.queues)} queue(s), {len(found.services)} hosted service(s), "
         f"{len(found.modal_functions)} Modal function(s){', [probe]' if found.probe else ''}; doctor on it:")
    _first_doctor(output)
    return 0


def _choose(found) -> None:
    """Ask before each section (`--yes` takes them all, and leaves out what Modal says is not deployed)."""
    sections = (("deployments", "deployment(s) from Prefect", lambda d: d.name),
                ("tables", "state table(s) from Postgres", lambda t: t.table),
                ("queues", "queue(s) with their dead-letter queues from SQS", lambda q: q.name),
                ("services", "hosted service(s)", lambda s: f"{s.name} on {s.provider}"),
                ("modal_functions", "Modal function(s) the deployments name", lambda f: f.name))
    for attribute, what, name in sections:
        items = getattr(found, attribute)
        if items and not typer.confirm(f"Add {len(items)} {what} ({', '.join(map(name, items))})?",
                                       default=True, err=True):
            setattr(found, attribute, [])
    for function in list(found.modal_not_deployed):  # a spawn of it fails today: worth watching, or a stale name
        if typer.confirm(f"Add {function.name} anyway ({function.comment()}; doctor fails until it is deployed)?",
                         default=False, err=True):
            found.modal_not_deployed.remove(function)
            found.modal_functions.append(function)
    if found.probe and not typer.confirm(f"Add [probe] ({_describe(found.probe)})?", default=True, err=True):
        found.probe = None


def _describe(entry) -> str:
    """The probe's entry point in a few words, for the question."""
    parts = [f"items come in through {' or '.join(s.name for s in entry.services)}"] if entry.services else []
    parts += [f"they end in {entry.table.table}"] if entry.table else []
    return "; ".join(parts or ["a row inserted into a state table"]) + "; the way in is left for you to fill in"


def _first_doctor(path: Path) -> None:
    """Run doctor's checks on the new file and say how it went (the file is written either way)."""
    from pipectl.config_load import environment, load_config
    from pipectl.errors import PipectlError
    from pipectl.exit_codes import exit_code
    from pipectl.interface import Context
    from pipectl.registry import load_checks
    from pipectl.report.common import summary_line
    from pipectl.runner import run_checks

    try:
        cfg = load_config(path)
        result = run_checks(list(load_checks().items.values()), Context(config=cfg, timeout=cfg.doctor.timeout,
                                                                         environ=environment(cfg.source)))
    except PipectlError as exc:
        note(f"pipectl init: the new config does not load: {exc}")
        return
    problems = [f.id for f in result.findings if f.status.value in ("fail", "error")]
    note(f"  {summary_line(result)}; `pipectl doctor` exits {exit_code(result.findings)}"
         + (f" ({', '.join(problems[:5])})" if problems else ""))
