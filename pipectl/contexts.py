"""Contexts: several environments of a pipeline (dev, prod) in one config file, as kubectl has them.

A config may hold `[contexts.NAME]` tables; each overrides the top-level keys it names (tables merge,
everything else is replaced). The context in use is, first to last: `--context`, `PIPECTL_CONTEXT`, the
one chosen with `pipectl context use` for that config file, `default_context` in the file; with none, the
top-level keys alone. A context's pipeline is named `PIPELINE/CONTEXT` unless it names itself, so the
journal, `report` and `undo` keep contexts apart.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipectl.errors import UsageError

CONTEXTS = "contexts"
DEFAULT = "default_context"


def names(raw: Mapping[str, Any]) -> list[str]:
    """The contexts a config file defines, in file order."""
    contexts = raw.get(CONTEXTS, {})
    return list(contexts) if isinstance(contexts, Mapping) else []


def chosen(raw: Mapping[str, Any], path: Path, explicit: str | None = None) -> str | None:
    """The context in use for this config file (first found, in the order the module describes), or None."""
    return explicit or os.environ.get("PIPECTL_CONTEXT") or current(path) or raw.get(DEFAULT) or None


def apply(raw: dict[str, Any], path: Path, explicit: str | None = None) -> tuple[dict[str, Any], str | None]:
    """The config's keys with the chosen context's merged over them, and that context's name (or None)."""
    contexts = raw.pop(CONTEXTS, {})
    default = raw.pop(DEFAULT, None)
    if not isinstance(contexts, Mapping) or not all(isinstance(v, Mapping) for v in contexts.values()):
        raise UsageError(f"{path}: [contexts] must hold one table per context, e.g. [contexts.prod]")
    name = chosen({DEFAULT: default}, path, explicit)
    if name is None:
        return raw, None
    if name not in contexts:
        known = ", ".join(contexts) or "none: the file has no [contexts.NAME] tables"
        raise UsageError(f"{path}: unknown context {name!r} (contexts: {known})")
    merged = _merge(raw, contexts[name])
    if "pipeline" not in contexts[name]:
        merged["pipeline"] = f"{raw.get('pipeline', 'pipeline')}/{name}"
    return merged, name


def use(path: Path, name: str) -> None:
    """Remember `name` as the context of this config file (in pipectl's state folder, 0600)."""
    from pipectl.files import write_private

    chosen_by_file = _stored()
    chosen_by_file[str(path.resolve())] = name
    write_private(_store(), json.dumps(chosen_by_file, indent=2) + "\n")


def current(path: Path) -> str | None:
    """The context chosen with `pipectl context use` for this config file, if any."""
    return _stored().get(str(path.resolve()))


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _store() -> Path:
    from pipectl.journal import default_path

    return default_path().with_name("contexts.json")


def _stored() -> dict[str, str]:
    try:
        data = json.loads(_store().read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
