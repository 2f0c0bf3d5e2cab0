"""Hosted services (`[[services]]`): reaching their provider, and where a missing variable's value is.

Shared by the `service.*` checks, `pipectl service` and the repair that sets a variable, so all three
agree on which token a provider takes and on the command that puts a variable back.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping

from pipectl.config import HostedService, PipelineConfig
from pipectl.errors import UsageError


def find(config: PipelineConfig, name: str) -> HostedService:
    """The configured service called `name`, or a usage error naming the ones there are."""
    for service in config.services:
        if service.name == name:
            return service
    known = ", ".join(s.name for s in config.services) or "none configured"
    raise UsageError(f"no service {name!r} in the config (services: {known})")


def token_name(service: HostedService) -> str:
    """The variable the provider's token comes from: the config's `env:` reference or the provider's own."""
    from pipectl.connectors.hosting import load_provider

    return load_provider(service.provider).token_env


def provider_for(service: HostedService, environ: Mapping[str, str], timeout: float = 5.0):
    """A connected provider client for the service; a usage error when its token is not set."""
    from pipectl.connectors.hosting import load_provider

    cls = load_provider(service.provider)
    token = service.token or environ.get(cls.token_env, "")
    if not token:
        raise UsageError(f"service {service.name}: {cls.token_env} is not set (the {service.provider} API token)")
    return cls(token, service.api_url, timeout=timeout)


def value_source(config: PipelineConfig, key: str) -> str:
    """`KEY=…` for `pipectl service env set`: the value the config already knows (a queue's URL, Prefect's
    API URL), or `KEY=env:NAME` where a credential comes from the environment, never the value itself."""
    references = config.source.references
    known = {
        "PREFECT_API_URL": config.prefect.api_url,
        "AWS_DEFAULT_REGION": config.aws.region,
        "AWS_REGION": config.aws.region,
    }
    if len(config.queues) == 1:
        known |= {"SQS_QUEUE_URL": config.queues[0].url, "SQS_DLQ_URL": config.queues[0].dlq_url}
    from_config = {"DATABASE_URL": references.get("database.dsn"), "PREFECT_API_KEY": references.get("prefect.api_key"),
                   "MODAL_TOKEN_ID": references.get("modal.token_id"),
                   "MODAL_TOKEN_SECRET": references.get("modal.token_secret")}
    if from_config.get(key):
        return f"{key}=env:{from_config[key]}"
    if known.get(key):
        return f"{key}={known[key]}"
    return f"{key}=env:{key}"


def set_command(config: PipelineConfig, service: str, keys: list[str]) -> str:
    """The command that sets `keys` on the service and redeploys it."""
    assignments = " ".join(shlex.quote(value_source(config, key)) for key in keys)
    return f"pipectl service env set {shlex.quote(service)} {assignments}"
