"""Which keys look like credentials, and how a job variable refers to a Secret block instead."""

from __future__ import annotations

import re

_SECRET_KEY = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIAL|DSN)",
                         re.IGNORECASE)
_TEMPLATE = re.compile(r"^\{\{\s*prefect\.blocks\.secret\.([A-Za-z0-9_-]+)\s*\}\}$")


def looks_secret(key: str) -> bool:
    """MODAL_TOKEN_SECRET, AWS_SECRET_ACCESS_KEY, DATABASE_PASSWORD… but not LOG_LEVEL."""
    return bool(_SECRET_KEY.search(key))


def block_template(block: str) -> str:
    """The job-variable value that Prefect resolves from Secret block `block` when a run starts."""
    return "{{ prefect.blocks.secret.%s }}" % block


def template_block(value: object) -> str | None:
    """The Secret block a job-variable value refers to, or None if it is not such a reference."""
    match = _TEMPLATE.match(value) if isinstance(value, str) else None
    return match.group(1) if match else None


def block_name_for(key: str) -> str:
    """The conventional block for an env key: MODAL_TOKEN_ID → modal-token-id."""
    return key.lower().replace("_", "-")
