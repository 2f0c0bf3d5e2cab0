"""Read-only discovery for `pipectl init`: what a pipeline's systems hold, so nobody writes a config by hand.

Each function asks one system what is there: Prefect's deployments (and their pools), Postgres tables that
look like state tables (a status column and an update timestamp), SQS queues and their dead-letter
queues, the services hosting platforms run (Render, Netlify…). Nothing is changed, no credential is
returned.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pipectl.connectors.prefect_rest import Conversation, call
from pipectl.errors import PipectlError

STATUS_COLUMNS = ("status", "state")
UPDATED_COLUMNS = ("updated_at", "modified_at", "last_updated", "updated", "status_changed_at")
FINAL_STATUSES = frozenset({"completed", "complete", "done", "succeeded", "success", "failed", "failure", "error",
                            "cancelled", "canceled", "skipped", "archived", "deleted"})
"""Statuses a row stays in for good: never "stuck" (compared case-insensitively)."""


@dataclass(frozen=True)
class FoundDeployment:
    name: str
    """FLOW/DEPLOYMENT."""
    work_pool: str | None
    env_keys: list[str] = field(default_factory=list)
    """The keys of its job variables' `env`: what its runs need (values are never read into this)."""


@dataclass(frozen=True)
class FoundTable:
    table: str
    status_column: str
    updated_column: str
    id_column: str | None
    statuses: list[str] = field(default_factory=list)
    """Statuses rows are in now, the final ones left out."""


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
    """Every deployment, as FLOW/DEPLOYMENT with its work pool."""

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
                                       _env_keys(d.get("job_variables")))
                       for d in deployments), key=lambda d: d.name)

    return call(api_url, api_key, timeout, "list deployments", run)


def _env_keys(job_variables: object) -> list[str]:
    env = job_variables.get("env") if isinstance(job_variables, dict) else None
    return sorted(str(k) for k in env) if isinstance(env, dict) else []


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
                                    sorted(s for s in statuses if s.lower() not in FINAL_STATUSES)))
    return found


def sqs_queues(environ: Mapping[str, str], region: str | None, endpoint_url: str | None,
               timeout: float = 15.0) -> list[FoundQueue]:
    """Queues that have a dead-letter queue, each with the URL of that queue (the DLQs themselves left out)."""
    from pipectl.connectors.sqs import dead_letter_pairs

    return [FoundQueue(url.rstrip("/").rsplit("/", 1)[-1], url, dlq)
            for url, dlq in dead_letter_pairs(region, endpoint_url, timeout, environ)]
