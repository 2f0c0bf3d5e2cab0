"""The catalog of installed checks and playbooks, built from their docstrings."""

from __future__ import annotations

import inspect
from typing import Any


def render_checks(checks: list[type], explain: bool = False) -> str:
    rows = sorted(checks, key=lambda c: c.id)
    if not rows:
        return "no checks installed\n"
    width = max(len(c.id) for c in rows)
    lines = []
    for cls in rows:
        doc = inspect.getdoc(cls) or ""
        lines.append(f"{cls.id:<{width}}  {cls.component:<9} {cls.severity.value}  {_first_sentence(doc)}")
        if explain:
            lines += ["    " + line if line else "" for line in doc.splitlines()] + [""]
    return "\n".join(lines).rstrip() + "\n"


def render_playbooks(playbooks: dict[str, Any]) -> str:
    if not playbooks:
        return "no playbooks installed\n"
    width = max(len(name) for name in playbooks)
    return "".join(
        f"{name:<{width}}  {_first_sentence(inspect.getdoc(obj) or '')}\n" for name, obj in sorted(playbooks.items())
    )


def _first_sentence(doc: str) -> str:
    text = " ".join(doc.split("\n\n")[0].split())
    return text.removeprefix("Detects: ")
