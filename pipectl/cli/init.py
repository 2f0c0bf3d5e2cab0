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
) -> int:
    """Write a pipectl.toml from what Prefect, Postgres and SQS hold (credentials stay env: references)."""
    import os

    from rich.console import Console

    from pipectl.errors import UsageError
    from pipectl.files import refuse_symlink, write_private
    from pipectl.scaffold import discover_all, render

    if output.exists() and not force and not dry_run:
        raise UsageError(f"{output} exists: pass --force to replace it, or --dry-run to see what init would write")
    refuse_symlink(output)
    environ = dict(os.environ)
    dotenv = Path(".env")
    if dotenv.is_file():
        from dotenv import dotenv_values

        environ = {**{k: v for k, v in dotenv_values(dotenv).items() if v is not None}, **environ}
    with Console(stderr=True).status("asking the systems") as spinner:
        found = discover_all(environ, prefect_url=prefect_url, database_variable=database_env, timeout=timeout,
                             progress=spinner.update)
    text = render(found, pipeline or Path.cwd().resolve().name)
    for line in found.notes:
        note(f"pipectl init: {line}")
    if dry_run:
        write(text)
        return 0
    write_private(output, text)
    note(f"wrote {output}: {len(found.deployments)} deployment(s), {len(found.tables)} state table(s), "
         f"{len(found.queues)} queue(s); review it, then `pipectl doctor`")
    return 0
