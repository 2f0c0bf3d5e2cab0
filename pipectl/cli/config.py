"""`pipectl config show|validate`: the config as pipectl resolves it, and a check of it for CI and editors."""

from __future__ import annotations

import json
from typing import Any

import typer

from pipectl.cli.common import GLOBAL, ConfigOption, FormatOption, load, terminal_or_json, write

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
    import os

    from pipectl import contexts
    from pipectl.config import SECRET_KEYS
    from pipectl.config_load import read_raw

    cfg = load(config)
    path, raw = read_raw(config or GLOBAL["config"])
    raw, _ = contexts.apply(raw, path, GLOBAL["context"])
    rows = []
    for key, value in _flat(cfg.model_dump(mode="json")).items():
        variable = "PIPECTL_" + key.upper().replace(".", "__")
        reference = cfg.source.references.get(key)
        if variable in os.environ:
            source = f"environment {variable}"
        elif reference:
            source = f"env:{reference}" + ("" if value not in (None, "") else " (not set)")
        elif _lookup(raw, key) is not None:
            source = "file"
        else:
            source = "default"
        if key in SECRET_KEYS:
            value = "(set)" if value else "(not set)"
        rows.append({"key": key, "value": value, "source": source})
    if terminal_or_json(format) == "json":
        write(json.dumps({"config": cfg.source.path, "context": cfg.source.context, "keys": rows}, indent=2) + "\n")
    else:
        width = max((len(r["key"]) for r in rows), default=0)
        write("".join(f"{r['key']:<{width}}  {json.dumps(r['value'])}  ({r['source']})\n" for r in rows))
    return 0


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys for nested tables; lists of tables as key[i]; other lists stay values."""
    if isinstance(value, dict) and value:
        return {k: v for name, item in value.items() for k, v in _flat(item, f"{prefix}.{name}" if prefix else name).items()}
    if isinstance(value, list) and value and all(isinstance(i, dict) for i in value):
        return {k: v for i, item in enumerate(value) for k, v in _flat(item, f"{prefix}[{i}]").items()}
    return {prefix: value}


def _lookup(raw: Any, key: str) -> Any:
    import re

    for part in re.findall(r"[^.\[\]]+|\[\d+\]", key):
        if part.startswith("["):
            index = int(part[1:-1])
            raw = raw[index] if isinstance(raw, list) and index < len(raw) else None
        else:
            raw = raw.get(part) if isinstance(raw, dict) else None
        if raw is None:
            return None
    return raw
