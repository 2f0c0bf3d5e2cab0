"""`pipectl init`: a first pipectl.toml written from what the pipeline's systems hold.

Prefect's deployments and pools, the Postgres tables that look like state tables (with a `stuck_after`
for each status a row can wait in), the SQS queues with their dead-letter queues, the hosted services
whose platform token is set (with the names of the variables they have now as `required_env`). Credentials stay where
they are: the file names the variables (`env:NAME`) and never holds a value. A system that cannot be
reached is left out with a note, so `init` still writes what it could learn.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pipectl.connectors import discover
from pipectl.errors import PipectlError

LONG_RUNNING = ("progress", "running", "processing", "started", "working")
"""Statuses in which a row is being worked on: allowed longer before it counts as stuck."""


@dataclass
class Discovery:
    """What `init` found, and what it could not ask (one line per system)."""

    prefect_url: str | None = None
    prefect_key_variable: str | None = None
    database_variable: str | None = None
    region: str | None = None
    sqs_endpoint: str | None = None
    deployments: list[discover.FoundDeployment] = field(default_factory=list)
    tables: list[discover.FoundTable] = field(default_factory=list)
    queues: list[discover.FoundQueue] = field(default_factory=list)
    services: list[discover.FoundService] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def discover_all(environ: Mapping[str, str], *, prefect_url: str | None, database_variable: str,
                 timeout: float, progress: Callable[[str], None] = lambda step: None) -> Discovery:
    """Ask every system the environment points at what it holds."""
    found = Discovery(
        prefect_url=prefect_url or environ.get("PREFECT_API_URL") or None,
        prefect_key_variable="PREFECT_API_KEY" if environ.get("PREFECT_API_KEY") else None,
        database_variable=database_variable if environ.get(database_variable) else None,
        region=environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or None,
        sqs_endpoint=environ.get("AWS_ENDPOINT_URL_SQS") or environ.get("AWS_ENDPOINT_URL") or None,
    )
    if found.prefect_url:
        progress("Prefect: deployments")
        found.deployments = _ask(found, "Prefect", lambda: discover.prefect_deployments(
            found.prefect_url, environ.get("PREFECT_API_KEY") or None, timeout))
    else:
        found.notes.append("Prefect: no PREFECT_API_URL (or --prefect-url): no [prefect] section")
    if found.database_variable:
        progress("Postgres: state tables")
        found.tables = _ask(found, "Postgres", lambda: discover.state_tables(environ[database_variable], timeout))
    else:
        found.notes.append(f"Postgres: {database_variable} is not set (--database-env NAME): no [database]")
    if found.region or found.sqs_endpoint:
        progress("SQS: queues and their dead-letter queues")
        found.queues = _ask(found, "SQS", lambda: discover.sqs_queues(environ, found.region, found.sqs_endpoint,
                                                                       timeout))
    else:
        found.notes.append("SQS: no AWS_REGION (or AWS_ENDPOINT_URL_SQS): no [[queues]]")
    progress("hosting platforms: services and their variables' names")
    found.services, notes = discover.hosted_services(environ, timeout)
    found.notes += notes
    return found


def _ask(found: Discovery, system: str, ask: Callable[[], list]) -> list:
    try:
        return ask()
    except PipectlError as exc:
        found.notes.append(f"{system}: {exc}")
        return []


def render(found: Discovery, pipeline: str) -> str:
    """The config file's text: every value a literal or an `env:` reference, never a credential."""
    lines = [f"# Written by `pipectl init` on {datetime.now(UTC):%Y-%m-%d} from what the systems hold.",
             "# Review the stuck_after thresholds and required_env, and add `moves` where a run moves rows.",
             f"pipeline = {_s(pipeline)}", ""]
    if found.database_variable:
        lines += ["[database]", f'dsn = "env:{found.database_variable}"', ""]
    for table in found.tables:
        lines += ["[[state_tables]]", f"table = {_s(table.table)}"]
        if table.status_column != "status":
            lines.append(f"status_column = {_s(table.status_column)}")
        if table.updated_column != "updated_at":
            lines.append(f"updated_column = {_s(table.updated_column)}")
        if table.id_column not in (None, "id"):
            lines.append(f"id_column = {_s(table.id_column)}")
        thresholds = ", ".join(f"{_key(s)} = {_s('30m' if _long(s) else '10m')}" for s in table.statuses)
        lines += [f"stuck_after = {{ {thresholds} }}", ""]
    if found.prefect_url:
        lines += ["[prefect]", f"api_url = {_s(found.prefect_url)}"]
        if found.prefect_key_variable:
            lines.append(f'api_key = "env:{found.prefect_key_variable}"')
        lines.append("")
    for deployment in found.deployments:
        lines += ["[[prefect.deployments]]", f"name = {_s(deployment.name)}"]
        if deployment.work_pool:
            lines.append(f"work_pool = {_s(deployment.work_pool)}")
        if deployment.env_keys:
            lines.append(f"required_env = [{', '.join(_s(k) for k in deployment.env_keys)}]")
        lines.append("")
    if found.queues:
        lines += ["[aws]"] + ([f"region = {_s(found.region)}"] if found.region else [])
        lines += ([f"endpoint_url = {_s(found.sqs_endpoint)}"] if found.sqs_endpoint else []) + [""]
    for queue in found.queues:
        lines += ["[[queues]]", f"name = {_s(queue.name)}", f"url = {_s(queue.url)}"]
        lines += ([f"dlq_url = {_s(queue.dlq_url)}"] if queue.dlq_url else []) + [""]
    for service in found.services:  # the variables it has now are the ones it needs: names, never values
        lines += ["[[services]]", f"name = {_s(service.name)}", f"provider = {_s(service.provider)}",
                  f"id = {_s(service.id)}", f"required_env = [{', '.join(_s(k) for k in service.env_keys)}]"]
        lines += ([f"api_url = {_s(service.api_url)}"] if service.api_url else []) + [""]
    return "\n".join(lines).rstrip() + "\n"


def _long(status: str) -> bool:
    return any(word in status.lower() for word in LONG_RUNNING)


def _s(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(value, ensure_ascii=False)


def _key(value: str) -> str:
    bare = value.replace("_", "").replace("-", "").isalnum() and value.isascii()
    return value if bare else _s(value)
