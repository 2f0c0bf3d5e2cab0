"""A flow run's parameters checked against the deployment's parameter schema before the run is created.

Prefect stores what it is given; a run whose `job_id` arrived as the string "6", or that lacks a required
parameter, fails or crashes minutes later on a worker. Here it is bad input, refused before anything exists.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from pipectl.errors import UsageError

_TRUE, _FALSE = {"true", "yes", "1", "on"}, {"false", "no", "0", "off"}


def checked(given: Mapping[str, Any], schema: Mapping[str, Any], defaults: Mapping[str, Any],
            deployment: str) -> dict[str, Any]:
    """`given` coerced to the schema's types; unknown names, missing required ones and values that cannot be
    the declared type are refused with one line naming the parameter. No schema: passed through unchanged."""
    properties: Mapping[str, Any] = schema.get("properties") or {}
    if not properties and not schema.get("required"):
        return dict(given)
    unknown = sorted(set(given) - set(properties))
    if unknown:
        raise UsageError(f"--param {unknown[0]}: {deployment} has no such parameter "
                         f"(it takes: {', '.join(sorted(properties)) or 'none'})")
    missing = [n for n in schema.get("required") or [] if n not in given and n not in defaults]
    if missing:
        raise UsageError(f"{deployment} needs --param {missing[0]}=… (required, no default in the deployment)")
    return {name: _coerce(name, value, properties[name]) for name, value in given.items()}


def _coerce(name: str, value: Any, spec: Mapping[str, Any]) -> Any:
    types = _types(spec)
    if not types or value is None and "null" in types:
        return value
    for kind in types:
        try:
            return _as(kind, value)
        except (ValueError, TypeError):
            continue
    raise UsageError(f"--param {name}: {json.dumps(value)[:60]} is not {' or '.join(types)}")


def _types(spec: Mapping[str, Any]) -> list[str]:
    if "type" in spec:
        kinds = spec["type"]
        return list(kinds) if isinstance(kinds, list) else [kinds]
    return [t for option in spec.get("anyOf") or [] for t in _types(option)]


def _as(kind: str, value: Any) -> Any:
    if kind == "string":
        if isinstance(value, (dict, list)):
            raise TypeError
        return value if isinstance(value, str) else json.dumps(value)
    if kind == "integer":
        if isinstance(value, bool):
            raise TypeError
        number = int(value) if isinstance(value, (int, str)) else None
        if number is None and isinstance(value, float) and value.is_integer():
            number = int(value)
        if number is None:
            raise TypeError
        return number
    if kind == "number":
        if isinstance(value, bool):
            raise TypeError
        number = float(value)
        if not math.isfinite(number):
            raise ValueError
        return int(number) if isinstance(value, int) else number
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in _TRUE | _FALSE:
            return text in _TRUE
        raise ValueError
    if kind == "array" and isinstance(value, list) or kind == "object" and isinstance(value, dict):
        return value
    if kind == "null" and value is None:
        return None
    raise TypeError
