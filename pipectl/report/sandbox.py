"""Text for the sandbox commands: component status and the list of drills."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any


def render_status(components: Sequence[Any], fmt: str = "terminal") -> str:
    if fmt == "json":
        return json.dumps([{"name": c.name, "address": c.address, "healthy": c.healthy} for c in components],
                          indent=2) + "\n"
    if not components:
        return "no sandbox here: `pipectl sandbox up` starts one\n"
    width = max(len(c.name) for c in components)
    return "".join(
        f"{c.name:<{width}}  {'up  ' if c.healthy else 'DOWN'}  {c.address}\n" for c in components
    )


def render_scenarios(scenarios: Sequence[Any]) -> str:
    width = max(len(s.name) for s in scenarios)
    return "".join(f"{s.name:<{width}}  {s.description}\n" for s in scenarios)


def render_env(config_path: str, env_file: str, exports: dict[str, str]) -> str:
    lines = [f"export {k}={v}" for k, v in exports.items()]
    lines.append(f"set -a; . {env_file}; set +a   # tokens and DATABASE_URL (values not printed)")
    lines.append(f"# pipectl doctor --config {config_path}")
    return "\n".join(lines) + "\n"
