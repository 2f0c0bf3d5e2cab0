"""`pipectl config show|validate`: the config as pipectl resolves it, and a check of it for CI and editors."""

from __future__ import annotations

import typer

from pipectl.cli.common import ConfigOption, FormatOption, load, terminal_or_json, write

config_app = typer.Typer(help="The config file as pipectl reads it.", no_args_is_help=True)


@config_app.command("validate")
def validate(config: ConfigOption = None) -> int:
    """Exit 0 when the config loads, else one line per problem and exit 2 (nothing else is contacted)."""
    cfg = load(config)
    write(f"{cfg.source.path}: valid" + (f" (context {cfg.source.context})" if cfg.source.context else "") + "\n")
    return 0


@config_app.command("show")
def show(config: ConfigOption = None, format: FormatOption = "terminal") -> int:
    """Every key with its value and where it came from: file, PIPECTL_* override, env: reference or default.
    Credentials are never shown, only whether they are set."""
    from pipectl.config_view import key_sources
    from pipectl.report.settings import config_rows

    cfg = load(config)
    write(config_rows(key_sources(cfg), cfg.source.path, cfg.source.context, terminal_or_json(format)))
    return 0
