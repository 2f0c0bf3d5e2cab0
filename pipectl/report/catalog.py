"""The catalog of installed checks and playbooks, built from their docstrings."""

from __future__ import annotations

import inspect
import json
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


def checks_json(checks: list[type]) -> str:
    """`checks list -o json`: one object per check, the catalog entry split into its three parts."""
    return json.dumps([{"id": c.id, "component": c.component, "severity": c.severity.value,
                        **_parts(inspect.getdoc(c) or "")} for c in sorted(checks, key=lambda c: c.id)], indent=2) + "\n"


def playbooks_json(playbooks: dict[str, Any]) -> str:
    """`playbooks list -o json`: name and description of each playbook."""
    return json.dumps([{"name": name, "description": " ".join((inspect.getdoc(obj) or "").split())}
                       for name, obj in sorted(playbooks.items())], indent=2) + "\n"


def _parts(doc: str) -> dict[str, str]:
    parts = {"detects": "", "why": "", "fix": ""}
    heads = {"Detects:": "detects", "Why it matters:": "why", "Fix:": "fix"}
    current = "detects"
    for paragraph in doc.split("\n\n"):
        text = " ".join(paragraph.split())
        for head, key in heads.items():
            if text.startswith(head):
                current, text = key, text.removeprefix(head).strip()
        parts[current] = f"{parts[current]} {text}".strip()
    return parts


def _first_sentence(doc: str) -> str:
    text = " ".join(doc.split("\n\n")[0].split())
    return text.removeprefix("Detects: ")
