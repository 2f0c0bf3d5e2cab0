"""How a write takes a credential: never as plain text, always by reference to a Secret block.

`--env`, `--job-variable` and `--param` all pass `refuse_plaintext`, which asks `pipectl.secrets` (the one
place that decides what is secret) and answers a refusal with the exact command to use instead.
"""

from __future__ import annotations

import re
from typing import Any

from pipectl import secrets
from pipectl.errors import UsageError
from pipectl.redact import redactor

_TEMPLATE = re.compile(r"^\{\{\s*prefect\.blocks\.secret\.([A-Za-z0-9_-]+)\s*\}\}$")


def block_template(block: str) -> str:
    """The job-variable value that Prefect resolves from Secret block `block` when a run starts."""
    return "{{ prefect.blocks.secret.%s }}" % block


def template_block(value: object) -> str | None:
    """The Secret block a job-variable value refers to, or None if it is not such a reference."""
    match = _TEMPLATE.match(value) if isinstance(value, str) else None
    return match.group(1) if match else None


def block_name_for(key: str) -> str:
    """The conventional block for an env key: MODAL_TOKEN_ID → modal-token-id."""
    return re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-") or "secret"


def variable_for(path: str) -> str:
    """The environment variable a value at `path` is read from: stripe_webhook.signing_secret →
    STRIPE_WEBHOOK_SIGNING_SECRET."""
    return re.sub(r"[^A-Za-z0-9]+", "_", path).strip("_").upper() or "SECRET"


def name_part(spec: str) -> str:
    """The leading name of a malformed `KEY=value` spec: what an error may echo (never what follows)."""
    return re.match(r"[A-Za-z0-9_.\-\[\]]{0,40}", spec).group(0)


def secret_leaves(value: Any, path: str) -> list[tuple[str, str]]:
    """(path, value) of every secret string inside a value, by its own key's name or by its shape."""
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in secret_leaves(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, list):
        return [leaf for i, v in enumerate(value) for leaf in secret_leaves(v, f"{path}[{i}]")]
    key = re.split(r"[.\[]", path)[-1].rstrip("]") if path else None
    return [(path, value)] if secrets.is_secret(key, value) else []


def refuse_plaintext(option: str, path: str, value: Any, *, env_key: bool = False) -> None:
    """Raise a one-line UsageError when `value` (or anything inside it) is a credential; the message names
    the Secret block to create and the exact option to pass instead. The value is registered first."""
    leaves = secret_leaves(value, path)
    if not leaves:
        return
    where = leaves[0][0]
    for _, leaf in leaves:
        secrets.register("secret", leaf)
    block, variable = block_name_for(where), variable_for(where)
    store = f"`pipectl secret set {block} --from-env {variable}`"
    if option == "--env" or env_key:
        instead = f"--env {where.removeprefix('env.')}=secret:{block}"
    elif option == "--job-variable":
        instead = f"--job-variable '{where}=\"{block_template(block)}\"'"
    else:
        instead = f"no {option} {where}: let the flow read the block (`Secret.load(\"{block}\").get()`)"
    redactor.protect(store, instead)  # our own commands, whatever the secrets are
    raise UsageError(f"{option} {where}: refusing to write a credential as plain text (parameters and job "
                     f"variables are readable by anyone who can read the deployment); store it in a Secret "
                     f"block with {store} and pass {instead}")
