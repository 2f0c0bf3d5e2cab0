"""The config as pipectl resolved it, key by key, with where each value came from (`pipectl config show`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pipectl.config import PipelineConfig, secret_key


def dotted(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys for nested tables, `key[i]` for lists of tables; other values (lists too) as they are."""
    if isinstance(value, Mapping) and value:
        return {k: v for name, item in value.items()
                for k, v in dotted(item, f"{prefix}.{name}" if prefix else str(name)).items()}
    if isinstance(value, list) and value and all(isinstance(i, Mapping) for i in value):
        return {k: v for i, item in enumerate(value) for k, v in dotted(item, f"{prefix}[{i}]").items()}
    return {prefix: value}


def key_sources(config: PipelineConfig) -> list[dict[str, Any]]:
    """Every key with its value and where it came from: a PIPECTL_* override, an `env:` reference, the file,
    or the default. Credentials only as "(set)" / "(not set)"."""
    source, rows = config.source, []
    for key, value in dotted(config.model_dump(mode="json")).items():
        variable = "PIPECTL_" + key.upper().replace(".", "__")
        reference = source.references.get(key)
        if variable in os.environ:
            origin = f"environment {variable}"
        elif reference:
            origin = f"env:{reference}" + ("" if value not in (None, "") else " (not set)")
        elif key in source.file_keys:
            origin = "file"
        else:
            origin = "default"
        if secret_key(key):
            value = "(set)" if value else "(not set)"
        rows.append({"key": key, "value": value, "source": origin})
    return rows
