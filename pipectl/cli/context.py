"""`pipectl context list|use|show`: the environments one config file describes, as in kubectl."""

from __future__ import annotations

from typing import Annotated

import typer

from pipectl.cli.common import GLOBAL, ConfigOption, FormatOption, load, terminal_or_json, write

context_app = typer.Typer(help="Contexts: the environments ([contexts.NAME]) of one config file.",
                          no_args_is_help=True)


def _file(config):
    from pipectl.config_load import read_raw

    return read_raw(config or GLOBAL["config"])


@context_app.command("list")
def list_contexts(config: ConfigOption = None, format: FormatOption = "terminal") -> int:
    """The contexts of the config file; the one in use is marked."""
    from pipectl import contexts
    from pipectl.report.settings import context_list

    path, raw = _file(config)
    names, using = contexts.names(raw), contexts.chosen(raw, path, GLOBAL["context"])
    write(context_list(str(path), names, using, terminal_or_json(format)))
    return 0


@context_app.command("use")
def use_context(name: Annotated[str, typer.Argument(help="A context of the config file.")],
                config: ConfigOption = None) -> int:
    """Use this context of the config file from now on (until `--context` or PIPECTL_CONTEXT says otherwise)."""
    from pipectl import contexts
    from pipectl.errors import UsageError

    path, raw = _file(config)
    if name not in contexts.names(raw):
        raise UsageError(f"{path}: unknown context {name!r} (contexts: {', '.join(contexts.names(raw)) or 'none'})")
    contexts.use(path, name)
    write(f"using context {name} of {path}\n")
    return 0


@context_app.command("show")
def show_context(config: ConfigOption = None, format: FormatOption = "terminal") -> int:
    """What the context in use points at: pipeline, Prefect, database, queues (never a credential)."""
    from pipectl.connectors.http import safe_url
    from pipectl.connectors.pg_connect import target
    from pipectl.report.settings import facts

    cfg = load(config)
    shown = {
        "context": cfg.source.context, "config": cfg.source.path, "pipeline": cfg.pipeline,
        "prefect": safe_url(cfg.prefect.api_url) if cfg.prefect.api_url else None,
        "database": str(target(cfg.database.dsn)) if cfg.database.dsn else None,
        "queues": [q.name or safe_url(q.url or "") for q in cfg.queues],
        "deployments": [d.name for d in cfg.prefect.deployments],
    }
    write(facts(shown, terminal_or_json(format)))
    return 0
