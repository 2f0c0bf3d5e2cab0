"""The pipeline as described in `pipectl.toml`: what to look at, and where its credentials come from.

Secrets are never written here: a value `env:NAME` is read from the environment (or `.env`) at load time,
and `PIPECTL_<SECTION>__<KEY>` variables override any key (pydantic-settings).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from pipectl.durations import parse_duration
from pipectl.model import Severity, Suppression

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")
_DEPLOYMENT = re.compile(r"^[^/\s]+/[^/\s]+$")
_MODAL_FUNCTION = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _identifier(value: str) -> str:
    """A SQL identifier, optionally schema-qualified; quoted later with psycopg.sql.Identifier."""
    parts = value.split(".")
    if len(parts) > 2 or not all(_IDENTIFIER.match(p) for p in parts):
        raise ValueError(f"{value!r} is not a plain SQL name (letters, digits, _; optionally schema.table)")
    return value


def deployment_name(value: str) -> str:
    if not _DEPLOYMENT.match(value):
        raise ValueError(f"{value!r} is not FLOW/DEPLOYMENT, e.g. orchestrator-main/data-enrichment-orchestrator")
    return value


def _modal_function(value: str) -> str:
    if not _MODAL_FUNCTION.match(value):
        raise ValueError(f"{value!r} is not APP/FUNCTION, e.g. data-enrichment-workers/start_normalize_company_name")
    return value


def _env_name(value: str) -> str:
    if not _ENV_NAME.match(value):
        raise ValueError(f"{value!r} is not an environment variable name")
    return value


def _duration(value: Any) -> timedelta:
    return value if isinstance(value, timedelta) else parse_duration(value)


Identifier = Annotated[str, AfterValidator(_identifier)]
DeploymentName = Annotated[str, AfterValidator(deployment_name)]
ModalFunctionName = Annotated[str, AfterValidator(_modal_function)]
EnvName = Annotated[str, AfterValidator(_env_name)]
Duration = Annotated[timedelta, BeforeValidator(_duration)]


class Section(BaseModel):
    """Config sections reject unknown keys, so a typo is an error instead of a silently ignored line."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseConfig(Section):
    dsn: str | None = None
    """Postgres connection string (URL or key=value). Use `env:DATABASE_URL`; its password is a secret."""
    connect_timeout: float = 5.0


class StateTable(Section):
    """A table whose rows move through statuses; rows that stop moving are the first symptom of trouble."""

    table: Identifier
    id_column: Identifier = "id"
    status_column: Identifier = "status"
    updated_column: Identifier = "updated_at"
    group_by: list[Identifier] = Field(default_factory=list)
    stuck_after: dict[str, Duration] = Field(default_factory=dict)


class RowsMove(Section):
    """Ties a deployment to the rows it must advance, so a COMPLETED run that moved nothing is caught."""

    table: Identifier
    from_status: str
    to_status: str | None = None
    """The status rows must reach for a run to count as working (e.g. IN_PROGRESS)."""
    step: str | None = None
    settle: Duration = timedelta(seconds=60)
    """How long after the run COMPLETES the rows may take to reach `to_status` (a Modal cold start, a queue)."""


class DeploymentConfig(Section):
    name: DeploymentName
    work_pool: str | None = None
    required_env: list[EnvName] = Field(default_factory=list)
    entrypoint: str | None = None
    source: str | None = None
    job_variables: dict[str, Any] = Field(default_factory=dict)
    parameters: dict[str, Any] = Field(default_factory=dict)
    moves: RowsMove | None = None
    max_runtime: Duration | None = None
    """A run RUNNING or PENDING longer than this is stalled (default: from the deployment's own history)."""


class PrefectConfig(Section):
    api_url: str | None = None
    api_key: str | None = None
    """Secret. Use `env:PREFECT_API_KEY`."""
    timeout: float = Field(default=15.0, gt=0)
    """Seconds each request a repair or the watchdog makes to Prefect may take, retries included."""
    deployments: list[DeploymentConfig] = Field(default_factory=list)


class AwsConfig(Section):
    region: str | None = None
    endpoint_url: str | None = None
    """Only for SQS-compatible servers such as the sandbox; empty for real AWS."""
    profile: str | None = None
    """A named profile of ~/.aws/config (SSO, an assumed role, keys): used instead of AWS_PROFILE."""

    def environ(self, environ: Mapping[str, str]) -> dict[str, str]:
        """The environment AWS calls read credentials from: with the configured profile, if any."""
        return {**environ, "AWS_PROFILE": self.profile} if self.profile else dict(environ)


class QueueConfig(Section):
    url: str | None = None
    dlq_url: str | None = None
    name: str | None = None
    max_depth: int = Field(default=1000, ge=0)


class ModalConfig(Section):
    server_url: str | None = None
    token_id: str | None = None
    """Secret. Use `env:MODAL_TOKEN_ID`."""
    token_secret: str | None = None
    """Secret. Use `env:MODAL_TOKEN_SECRET`."""
    functions: list[ModalFunctionName] = Field(default_factory=list)


class HttpEndpoint(Section):
    url: str
    name: str | None = None
    method: str = "GET"
    expect_status: int = 200
    json_field: str | None = None
    json_value: Any = None


class HostedService(Section):
    """A service the pipeline runs on a hosting platform (Render, Netlify, ... — a `pipectl.providers` plugin)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    """How findings and `pipectl service` name it, e.g. `subscriber`."""
    provider: str
    id: str = Field(min_length=1)
    """The provider's id: Render's `srv-…` service id, Netlify's site id."""
    required_env: list[EnvName] = Field(default_factory=list)
    """Variables the service needs in its environment there (names only)."""
    token: str | None = None
    """Secret. Default: `env:` the provider's variable (RENDER_API_KEY, NETLIFY_AUTH_TOKEN)."""
    api_url: str | None = None
    """The provider's API base URL (default: its public API)."""
    severity: Severity = Severity.P1
    """How bad this service being broken is: the pipeline's entry point and consumer are P0."""


class ProbeConfig(Section):
    """The canary `pipectl probe` sends through the whole pipeline, and how it knows the item arrived.

    The entry point is an HTTP endpoint (`url`) or, without one, a row inserted into `table` (`insert`).
    In `body` and `insert`, the text `{marker}` becomes the probe's marker (`pipectl-probe-<hex>`)."""

    url: str | None = None
    method: str = "POST"
    body: dict[str, Any] = Field(default_factory=dict)
    id_field: str = "id"
    """The field of the endpoint's JSON answer that holds the created item's id (dotted for nesting)."""
    table: Identifier | None = None
    """The state table the item is a row of (default: the only one configured)."""
    insert: dict[Identifier, Any] = Field(default_factory=dict)
    final_status: list[str] = Field(default_factory=lambda: ["completed"])
    timeout: Duration = timedelta(seconds=90)
    cleanup: bool = True


class RepoConfig(Section):
    """The repository to scan for committed credentials (the second incident's leak)."""

    path: str | None = None
    """Default: the folder holding the config file."""
    history: bool = True
    max_commits: int = Field(default=1000, ge=1)


class DoctorConfig(Section):
    timeout: float = Field(default=5.0, gt=0)
    fail_on: Severity = Severity.P2


SECRET_KEYS = ("database.dsn", "prefect.api_key", "modal.token_id", "modal.token_secret", "services.token")
"""Dotted keys whose values are credentials: they must be `env:` references, and are always redacted.
A list's items share their key: `services.token` is every `[[services]]` entry's token."""


def secret_key(dotted: str) -> bool:
    """Whether a config key, list indices and all (`services[1].token`), holds a credential."""
    return re.sub(r"\[\d+\]", "", dotted) in SECRET_KEYS


class PipelineConfig(BaseSettings):
    """The whole pipeline; `pipectl.toml`, `[tool.pipectl]` in pyproject.toml, or PIPECTL_* variables."""

    model_config = SettingsConfigDict(
        env_prefix="PIPECTL_", env_nested_delimiter="__", extra="forbid", frozen=True, env_file=None
    )

    pipeline: str = "pipeline"
    env_file: str | None = None
    """A dotenv file (relative to this file) that `env:` references are also resolved from."""
    database: DatabaseConfig = DatabaseConfig()
    state_tables: list[StateTable] = Field(default_factory=list)
    prefect: PrefectConfig = PrefectConfig()
    aws: AwsConfig = AwsConfig()
    queues: list[QueueConfig] = Field(default_factory=list)
    modal: ModalConfig = ModalConfig()
    http: list[HttpEndpoint] = Field(default_factory=list)
    services: list[HostedService] = Field(default_factory=list)
    probe: ProbeConfig = ProbeConfig()
    repo: RepoConfig = RepoConfig()
    credentials: dict[str, list[EnvName]] = Field(default_factory=dict)
    """Per component, the environment variables it needs (names only), e.g. `aws = ["AWS_ACCESS_KEY_ID"]`."""
    doctor: DoctorConfig = DoctorConfig()
    suppressions: list[Suppression] = Field(default_factory=list)
    """Findings accepted until a date (also read from `.pipectl-ignore.toml` beside the config)."""

    _source: ConfigSource | None = PrivateAttr(default=None)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment beats the file: the file's contents arrive as init values, resolved already."""
        return env_settings, init_settings

    @property
    def source(self) -> ConfigSource:
        return self._source or ConfigSource()

    def deployment(self, name: str) -> DeploymentConfig | None:
        return next((d for d in self.prefect.deployments if d.name == name), None)


class ConfigSource(BaseModel):
    """Where the config came from and which `env:` references it used, for messages and checks."""

    path: str = "<defaults>"
    env_files: list[str] = Field(default_factory=list)
    """Dotenv files that were read, lowest priority first; the process environment beats them all."""
    references: dict[str, str] = Field(default_factory=dict)
    """Dotted key → environment variable name it referenced."""
    unresolved: dict[str, str] = Field(default_factory=dict)
    """Dotted key → variable that was not set (or empty)."""
    literal_secrets: list[str] = Field(default_factory=list)
    """Secret keys written into the file as plain values instead of `env:` references."""
    context: str | None = None
    """The context in use (`[contexts.NAME]`), or None for the file's top-level keys alone."""
    file_keys: list[str] = Field(default_factory=list)
    """Dotted keys the file (with its context) sets: where a value came from, without keeping values."""
