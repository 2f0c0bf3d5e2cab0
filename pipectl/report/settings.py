"""How pipectl's own settings read: `config show`, `context list|show`, and a run as JSON (`report -o json`)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any


def config_rows(rows: list[dict[str, Any]], config: str, context: str | None, fmt: str) -> str:
    """`config show`: one key a line (value as JSON, then its source), or the same as a JSON document."""
    if fmt == "json":
        return json.dumps({"config": config, "context": context, "keys": rows}, indent=2) + "\n"
    width = max((len(r["key"]) for r in rows), default=0)
    return "".join(f"{r['key']:<{width}}  {json.dumps(r['value'])}  ({r['source']})\n" for r in rows)


def context_list(config: str, names: list[str], current: str | None, fmt: str) -> str:
    """`context list`: the context in use marked with `*`."""
    if fmt == "json":
        return json.dumps({"config": config, "contexts": names, "current": current}, indent=2) + "\n"
    return "".join(f"{'*' if n == current else ' '} {n}\n" for n in names) or f"{config} defines no contexts\n"


def facts(items: dict[str, Any], fmt: str) -> str:
    """`context show`: name and value a line (lists joined), or a JSON object."""
    if fmt == "json":
        return json.dumps(items, indent=2) + "\n"
    return "".join(f"{k:<12} {', '.join(v) if isinstance(v, list) else (v or '-')}\n" for k, v in items.items())


def run_json(run: Any, events: Sequence[Any]) -> str:
    """`report -o json`: the run and its events as the journal holds them (credentials already fingerprinted)."""
    return json.dumps({"run": dataclasses.asdict(run), "events": [dataclasses.asdict(e) for e in events]},
                      indent=2, default=str) + "\n"
