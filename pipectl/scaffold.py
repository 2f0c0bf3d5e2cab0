"""`pipectl init`: a first pipectl.toml written from what the pipeline's systems hold.

Prefect's deployments and pools, the Postgres tables that look like state tables (with a `stuck_after`
for each status a row can wait in), the SQS queues with their dead-letter queues, the hosted services
whose platform token is set (with the names of the variables they have now as `required_env`), the Modal
functions the deployments name (confirmed with Modal when a token is set), and the probe's entry point.
Credentials stay where they are: the file names the variables (`env:NAME`) and never holds a value. A
system that cannot be reached is left out with a note, so `init` still writes what it could learn; what
it cannot know (the URL an entry point takes items at) is a comment saying how to fill it in.
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


@dataclass(frozen=True)
class FoundModalFunction:
    """A Modal function the deployments name, and what Modal said of it."""

    name: str
    """APP/FUNCTION."""
    named_by: list[str]
    """`FLOW/DEPLOYMENT (env MODAL_APP + MODAL_FUNCTION)`: where each mention is."""
    deployed: bool | None
    """True or False as Modal answered; None when Modal could not be asked (no token, unreachable)."""

    def comment(self) -> str:
        said = {True: "deployed", False: "Modal says it is not deployed", None: "not confirmed with Modal"}
        return f"named by {', '.join(self.named_by)}; {said[self.deployed]}"


@dataclass(frozen=True)
class FoundEntryPoint:
    """Where a probe's item would go in: a hosted service that writes rows and queues them, and/or the
    state table such items end in. Either may be missing; `render` writes only what was found."""

    services: list[discover.FoundService]
    table: discover.FoundTable | None
    candidate_tables: list[str]


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
    modal_server_url: str | None = None
    modal_token: bool = False
    """MODAL_TOKEN_ID and MODAL_TOKEN_SECRET are both set: `[modal]` references them."""
    modal_functions: list[FoundModalFunction] = field(default_factory=list)
    modal_not_deployed: list[FoundModalFunction] = field(default_factory=list)
    """Named by a deployment, but Modal says not deployed: written commented out unless the operator adds them."""
    probe: FoundEntryPoint | None = None
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
        modal_server_url=environ.get("MODAL_SERVER_URL") or None,
        modal_token=bool(environ.get("MODAL_TOKEN_ID") and environ.get("MODAL_TOKEN_SECRET")),
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
    if any(d.modal_functions for d in found.deployments):
        progress("Modal: the functions the deployments name")
        _modal_functions(found, environ, timeout)
    found.probe = entry_point(found)
    return found


def _modal_functions(found: Discovery, environ: Mapping[str, str], timeout: float) -> None:
    """The functions the deployments name, each confirmed with Modal as `modal.function` would when a
    token is set. One Modal says is not deployed is kept apart, with a note: it is offered, not written."""
    named: dict[str, list[str]] = {}
    for deployment in found.deployments:
        for reference in deployment.modal_functions:
            named.setdefault(reference.name, []).append(f"{deployment.name} ({reference.where})")
    deployed: dict[str, bool] = {}
    if not found.modal_token:
        found.notes.append(f"Modal: MODAL_TOKEN_ID / MODAL_TOKEN_SECRET not set: {len(named)} function(s) the "
                           "deployments name written unconfirmed")
    else:
        try:
            deployed = discover.modal_functions_deployed(
                sorted(named), environ["MODAL_TOKEN_ID"], environ["MODAL_TOKEN_SECRET"], found.modal_server_url,
                timeout)
        except PipectlError as exc:
            found.notes.append(f"Modal: {exc}: {len(named)} function(s) the deployments name written unconfirmed")
    for name, where in sorted(named.items()):
        function = FoundModalFunction(name, where, deployed.get(name))
        if function.deployed is False:
            found.modal_not_deployed.append(function)
            found.notes.append(f"Modal: {name} ({function.comment()}): left commented out in [modal] functions")
        else:
            found.modal_functions.append(function)


QUEUE_WORDS = frozenset({"queue", "sqs"})
DATABASE_WORDS = frozenset({"database", "db", "postgres", "postgresql", "pg", "supabase"})


def entry_point(found: Discovery) -> FoundEntryPoint | None:
    """Where work comes in, as far as the names in the systems tell.

    A hosted service whose variables name both a database and a queue (`DATABASE_URL` and
    `SQS_QUEUE_URL`) writes an item's row and queues it: it is where items come in (a consumer of the
    queue needs no database of its own; a worker with a database reads no queue). The table a probe's
    item ends in is the one state table whose rows reach a done status (`completed`); with several, none
    is chosen; with none that far, the only state table. None when neither was found."""
    from pipectl.secrets import words

    def names(service: discover.FoundService, wanted: frozenset[str]) -> bool:
        return any(wanted & set(words(key)) for key in service.env_keys)

    services = [s for s in found.services if names(s, QUEUE_WORDS) and names(s, DATABASE_WORDS)]
    candidates = [table for table in found.tables if table.done_statuses] or found.tables
    if not services and not candidates:
        return None
    return FoundEntryPoint(services, candidates[0] if len(candidates) == 1 else None, [t.table for t in candidates])


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
    if found.modal_functions or found.modal_not_deployed:
        lines += _modal_lines(found)
    if found.probe:
        lines += _probe_lines(found.probe, {table.table for table in found.tables})
    return "\n".join(lines).rstrip() + "\n"


def _modal_lines(found: Discovery) -> list[str]:
    lines = ["[modal]"] + ([f"server_url = {_s(found.modal_server_url)}"] if found.modal_server_url else [])
    tokens = ['token_id = "env:MODAL_TOKEN_ID"', 'token_secret = "env:MODAL_TOKEN_SECRET"']
    if found.modal_token:
        lines += tokens
    else:
        lines += ["# Set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET, and doctor checks these functions are deployed:"]
        lines += [f"# {line}" for line in tokens]
    lines.append("functions = [")
    lines += [f"    {_s(f.name)},  # {f.comment()}" for f in found.modal_functions]
    lines += [f"    # {_s(f.name)},  # {f.comment()}" for f in found.modal_not_deployed]
    return [*lines, "]", ""]


def _probe_lines(entry: FoundEntryPoint, tables: set[str]) -> list[str]:
    """`[probe]`: the table and its done status when they were found; the way in as a comment to fill in,
    for no platform's API says at which URL, or with which body, a service takes an item."""
    lines = ["[probe]"]
    if entry.services:
        services = " or ".join(f"{s.name} ({s.provider})" for s in entry.services)
        lines += [f"# Items come in through {services}: it has a database's and a queue's variables, so it",
                  "# writes an item's row and queues it. Fill in the URL it takes an item at, the JSON body",
                  '# ("{marker}" where the item\'s name goes) and the answer\'s field naming the new item, then',
                  "# run `pipectl probe` (it shows what it will write and asks first).",
                  '# url = "https://…/the path that takes an item"', '# body = { name = "{marker}" }',
                  '# id_field = "id"']
    else:
        lines += ["# No hosted service was seen taking items in: the probe can insert its item as a row. Fill in",
                  '# the columns a new item\'s row needs ("{marker}" where its name goes), then run',
                  "# `pipectl probe` (it shows what it will write and asks first).",
                  '# insert = { name = "{marker}", status = "the status a new item starts in" }']
    if entry.table and entry.table.table in tables:
        done = entry.table.done_statuses
        why = f"the state table whose rows end {' or '.join(done)}" if done else "the only state table"
        lines.append(f"table = {_s(entry.table.table)}  # {why}")
        lines += [f"final_status = [{', '.join(_s(status) for status in done)}]"] if done else []
    elif len(entry.candidate_tables) > 1:
        lines.append(f"# table = one of {', '.join(map(_s, entry.candidate_tables))}: the one a probe's item lands in")
    return [*lines, ""]


def _long(status: str) -> bool:
    return any(word in status.lower() for word in LONG_RUNNING)


def _s(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(value, ensure_ascii=False)


def _key(value: str) -> str:
    bare = value.replace("_", "").replace("-", "").isalnum() and value.isascii()
    return value if bare else _s(value)
