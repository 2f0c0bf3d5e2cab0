"""Read-only discovery for `pipectl init`: what a pipeline's systems hold, so nobody writes a config by hand.

Each function asks one system what is there: Prefect's deployments (and their pools, and the Modal
functions they name), Postgres tables that look like state tables (a status column and an update
timestamp), SQS queues and their dead-letter queues, the services hosting platforms run (Render,
Netlify…), and whether Modal has the functions deployed. Nothing is changed, no credential is returned.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from pipectl.connectors.prefect_rest import Conversation, call
from pipectl.errors import PipectlError

STATUS_COLUMNS = ("status", "state")
UPDATED_COLUMNS = ("updated_at", "modified_at", "last_updated", "updated", "status_changed_at")
FINAL_STATUSES = frozenset({"completed", "complete", "done", "succeeded", "success", "failed", "failure", "error",
                            "cancelled", "canceled", "skipped", "archived", "deleted"})
"""Statuses a row stays in for good: never "stuck" (compared case-insensitively)."""
DONE_STATUSES = frozenset({"completed", "complete", "done", "succeeded", "success"})
"""The final statuses that mean the work got done: where a probe's item should end up."""
MODAL_FUNCTION = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
"""APP/FUNCTION, as `[modal] functions` takes it."""


@dataclass(frozen=True)
class FoundDeployment:
    name: str
    """FLOW/DEPLOYMENT."""
    work_pool: str | None
    env_keys: list[str] = field(default_factory=list)
    """The keys of its job variables' `env`: what its runs need (values are never read into this)."""
    modal_functions: list[ModalReference] = field(default_factory=list)
    """The Modal functions its env or default parameters name (see `modal_functions_named`)."""


@dataclass(frozen=True)
class ModalReference:
    """A Modal function a deployment names, and where: `env MODAL_APP + MODAL_FUNCTION`."""

    name: str
    """APP/FUNCTION."""
    where: str


@dataclass(frozen=True)
class FoundTable:
    table: str
    status_column: str
    updated_column: str
    id_column: str | None
    statuses: list[str] = field(default_factory=list)
    """Statuses rows are in now, the final ones left out."""
    done_statuses: list[str] = field(default_factory=list)
    """Final statuses rows are in now that mean the work got done (`completed`): a probe's goal."""


@dataclass(frozen=True)
class FoundQueue:
    name: str
    url: str
    dlq_url: str | None


@dataclass(frozen=True)
class FoundService:
    """A hosted service (a Render service, a Netlify site…) and the names of the variables it has now."""

    provider: str
    id: str
    name: str
    env_keys: list[str]
    api_url: str | None = None


def hosted_services(environ: Mapping[str, str], timeout: float = 15.0) -> tuple[list[FoundService], list[str]]:
    """Every service each installed provider's token (RENDER_API_KEY, NETLIFY_AUTH_TOKEN…) sees, with its
    variables' names (never values); and one note per provider that could not be asked."""
    from pipectl.connectors.hosting import PROVIDERS_GROUP, load_provider
    from pipectl.registry import load_group

    found, notes = [], []
    for name in sorted(load_group(PROVIDERS_GROUP).items):
        cls = load_provider(name)
        if not environ.get(cls.token_env):
            continue
        api_url = environ.get(cls.api_url_env) if cls.api_url_env else None
        try:
            with cls(environ[cls.token_env], api_url or None, timeout=timeout) as client:
                for resource_id, label in client.resources():
                    keys = sorted(client.env(resource_id))
                    found.append(FoundService(name, resource_id, label, keys, api_url or None))
        except PipectlError as exc:
            notes.append(f"{cls.label}: {exc}")
    return found, notes


def prefect_deployments(api_url: str, api_key: str | None, timeout: float = 15.0) -> list[FoundDeployment]:
    """Every deployment, as FLOW/DEPLOYMENT with its work pool, its env keys and the Modal functions it names."""

    async def run(rest: Conversation) -> list[FoundDeployment]:
        deployments: list[dict] = []
        while True:
            page = await rest.post("/deployments/filter", {"limit": 200, "offset": len(deployments)})
            deployments += page
            if len(page) < 200:
                break
        flow_ids = sorted({d["flow_id"] for d in deployments})
        flows = await rest.post("/flows/filter", {"flows": {"id": {"any_": flow_ids}}, "limit": 200}) if flow_ids else []
        flow_names = {f["id"]: f["name"] for f in flows}
        return sorted((FoundDeployment(f"{flow_names.get(d['flow_id'], '?')}/{d['name']}", d.get("work_pool_name"),
                                       _env_keys(d.get("job_variables")), _modal_references(d))
                       for d in deployments), key=lambda d: d.name)

    return call(api_url, api_key, timeout, "list deployments", run)


def _env_keys(job_variables: object) -> list[str]:
    env = job_variables.get("env") if isinstance(job_variables, dict) else None
    return sorted(str(k) for k in env) if isinstance(env, dict) else []


def _modal_references(deployment: dict) -> list[ModalReference]:
    job_variables = deployment.get("job_variables")
    env = job_variables.get("env") if isinstance(job_variables, dict) else None
    found = modal_functions_named(env if isinstance(env, dict) else {}, "env")
    found += modal_functions_named(deployment.get("parameters") or {}, "parameter")
    return list({reference.name: reference for reference in found}.values())


def modal_functions_named(values: Mapping[str, object], kind: str) -> list[ModalReference]:
    """The Modal functions a deployment's env (or default parameters) name, by the keys teams use.

    A key whose words include `modal` and end in `app` (`MODAL_APP`, `WORKER_MODAL_APP_NAME`, `modal_app`)
    names the app; one ending in `function`, `functions` or `fn` (`MODAL_FUNCTION`, `MODAL_FUNCTION_NAME`)
    names the function — with its app (`app/function`), or alone when the same env names exactly one app;
    several may be given, separated by commas or spaces. Other keys are not read: `TZ=Europe/Paris` and
    `MODAL_CONFIG_PATH=config/modal.toml` look like APP/FUNCTION and are neither. A credential's value is
    never read (`MODAL_TOKEN_SECRET` is no such key, and `is_secret_key` keys are skipped whatever their
    words), nor a template (`{{ prefect.blocks.… }}`) or reference; a function with no app is not guessed.
    """
    from pipectl.secrets import is_reference, is_secret_key, words

    apps: dict[str, str] = {}
    functions: list[tuple[str, str]] = []
    for key, value in values.items():
        parts = words(str(key))
        if "modal" not in parts or not isinstance(value, str) or is_secret_key(str(key)) or is_reference(value):
            continue
        role = parts[:-1] if parts[-1] == "name" else parts
        if role[-1] == "app":
            apps[str(key)] = value.strip()
        elif role[-1] in ("function", "functions", "fn"):
            functions += [(str(key), item) for item in re.split(r"[\s,]+", value) if item]
    named_apps = {app: key for key, app in sorted(apps.items()) if app}
    found = []
    for key, item in functions:
        if "/" in item:
            found.append(ModalReference(item, f"{kind} {key}"))
        elif len(named_apps) == 1:
            [(app, app_key)] = named_apps.items()
            found.append(ModalReference(f"{app}/{item}", f"{kind} {app_key} + {key}"))
    return [reference for reference in found if MODAL_FUNCTION.match(reference.name)]


def modal_functions_deployed(names: list[str], token_id: str, token_secret: str, server_url: str | None,
                             timeout: float = 15.0) -> dict[str, bool]:
    """For each APP/FUNCTION, whether Modal has it deployed, asked as the `modal.function` check asks.
    A rejected token or an unreachable Modal raises (PipectlError): nothing could be confirmed then."""
    import asyncio

    from pipectl.connectors import modal

    async def ask() -> list[bool]:
        return await asyncio.gather(*(modal.function_exists(
            *name.split("/", 1), token_id=token_id, token_secret=token_secret, server_url=server_url,
            timeout=timeout) for name in names))

    return dict(zip(names, asyncio.run(ask()), strict=True))


def state_tables(dsn: str, timeout: float = 15.0, max_statuses: int = 50) -> list[FoundTable]:
    """Tables outside the system schemas with a status column and an update timestamp, and their statuses."""
    from psycopg import sql

    from pipectl.connectors.postgres import session

    found = []
    with session(dsn, timeout) as db:
        rows = db.fetch(
            "SELECT table_schema, table_name, array_agg(column_name::text ORDER BY ordinal_position)"
            " FROM information_schema.columns WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
            " AND table_schema NOT LIKE 'pg_toast%%' GROUP BY 1, 2 ORDER BY 1, 2")
        for schema, table, columns in rows:
            status = next((c for c in STATUS_COLUMNS if c in columns), None)
            updated = next((c for c in UPDATED_COLUMNS if c in columns), None)
            if not status or not updated:
                continue
            name = table if schema == "public" else f"{schema}.{table}"
            query = sql.SQL("SELECT {} FROM {} GROUP BY 1 LIMIT %s").format(
                sql.Identifier(status), sql.Identifier(schema, table))
            statuses = [str(r[0]) for r in db.fetch(query, [max_statuses]) if r[0] is not None]
            found.append(FoundTable(name, status, updated, "id" if "id" in columns else None,
                                    sorted(s for s in statuses if s.lower() not in FINAL_STATUSES),
                                    sorted(s for s in statuses if s.lower() in DONE_STATUSES)))
    return found


def sqs_queues(environ: Mapping[str, str], region: str | None, endpoint_url: str | None,
               timeout: float = 15.0) -> list[FoundQueue]:
    """Queues that have a dead-letter queue, each with the URL of that queue (the DLQs themselves left out)."""
    from pipectl.connectors.sqs import dead_letter_pairs

    return [FoundQueue(url.rstrip("/").rsplit("/", 1)[-1], url, dlq)
            for url, dlq in dead_letter_pairs(region, endpoint_url, timeout, environ)]
