"""Discovers checks, playbooks and renderers through entry points; built-ins come the same way.

Each entry point is loaded on its own: a broken plugin becomes a warning line, never a crash, and never
hides the others.
"""

from __future__ import annotations

import functools
import inspect
import sys
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, EntryPoints, entry_points
from typing import Any

from pipectl.interface import Check

CHECKS = "pipectl.checks"
PLAYBOOKS = "pipectl.playbooks"
RENDERERS = "pipectl.renderers"


@dataclass
class Loaded:
    """What an entry-point group yielded: objects by name, and one warning per plugin that failed."""

    items: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def load_group(group: str, validate=None) -> Loaded:
    """Load every entry point of `group`, sorted by name; `validate(obj)` returns a problem or None."""
    loaded = Loaded()
    for ep in sorted(_entry_points(group), key=lambda ep: ep.name):
        try:
            obj = ep.load()
        except Exception as exc:  # a plugin's import error must not take pipectl down
            loaded.warnings.append(f"plugin {ep.name!r} ({ep.value}) failed to load: {type(exc).__name__}: {exc}")
            continue
        problem = validate(obj) if validate else None
        if problem:
            loaded.warnings.append(f"plugin {ep.name!r} ({ep.value}) ignored: {problem}")
            continue
        if ep.name in loaded.items:
            loaded.warnings.append(f"plugin {ep.name!r} is registered twice; kept the first ({loaded.items[ep.name]})")
            continue
        loaded.items[ep.name] = obj
    return loaded


def load_checks() -> Loaded:
    """Check classes by id, from every installed distribution."""
    loaded = load_group(CHECKS, _check_problem)
    loaded.items = {cls.id: cls for cls in loaded.items.values()}
    from pipectl.redact import redactor

    redactor.protect(*loaded.items, *(getattr(cls, "component", "") for cls in loaded.items.values()))
    return loaded


def load_playbooks() -> Loaded:
    """Playbook classes by name."""
    loaded = load_group(PLAYBOOKS, _playbook_problem)
    from pipectl.redact import redactor

    redactor.protect(*loaded.items)
    return loaded


def load_renderers() -> Loaded:
    return load_group(RENDERERS, lambda obj: None if callable(obj) else "not callable")


def _check_problem(obj: Any) -> str | None:
    if not (inspect.isclass(obj) and issubclass(obj, Check)):
        return "not a subclass of pipectl.interface.Check"
    if inspect.isabstract(obj):
        return "does not implement run()"
    for attr in ("id", "component"):
        if not isinstance(getattr(obj, attr, None), str):
            return f"has no class attribute {attr!r}"
    if not (obj.__doc__ or "").strip():
        return "has no docstring (Detects / Why it matters / Fix)"
    return None


def _playbook_problem(obj: Any) -> str | None:
    from pipectl.interface import Playbook

    if not (inspect.isclass(obj) and issubclass(obj, Playbook)):
        return "not a subclass of pipectl.interface.Playbook"
    if inspect.isabstract(obj):
        return "does not implement steps()"
    if not (obj.__doc__ or "").strip():
        return "has no docstring (which incident it repairs, and its steps)"
    return None


def _entry_points(group: str) -> list[EntryPoint]:
    return list(_installed(tuple(sys.path)).select(group=group))


@functools.cache
def _installed(path: tuple[str, ...]) -> EntryPoints:
    """Every entry point of every distribution on `path`, read once: each read opens every installed
    distribution's metadata (~50 ms of CPU here), and a doctor run asks for four groups."""
    return entry_points()
