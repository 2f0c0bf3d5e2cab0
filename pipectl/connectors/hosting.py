"""Hosted services (Render, Netlify): one small interface over each platform's public REST API.

A `Provider` answers what an on-call engineer asks of a hosted service: is it running, which environment
does it get, set one variable, deploy again and say how that went. Providers are found through the
`pipectl.providers` entry-point group, so a platform is added without touching pipectl.

Every request carries `Authorization: Bearer <token>`; the token is registered with the redactor before
the first request, and every value `env()` returns that looks like a credential is registered before it
is returned. Errors name the platform, the operation and the HTTP status, never the token or a value.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Self

from pipectl.connectors.http import safe_url, tls_context
from pipectl.deadline import waiting_on
from pipectl.durations import whole_seconds
from pipectl.errors import ConnectorError, NotFound, Unauthorized, Unreachable, UsageError
from pipectl.redact import MASK, redactor

PROVIDERS_GROUP = "pipectl.providers"
HIDDEN = "‹secret hidden by the provider›"
"""What `env()` gives for a value the platform never reveals (a Netlify secret): present, unreadable."""
MAX_PAGES = 1000
"""A platform that keeps answering with more pages past this is looping, not listing."""


class ServiceStatus(str, enum.Enum):
    """What a hosted service is doing, in the words doctor reports."""

    RUNNING = "running"
    DEPLOYING = "deploying"
    SUSPENDED = "suspended"
    CRASHED = "crashed"
    DEPLOY_FAILED = "deploy_failed"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ServiceInfo:
    """One service's state: `detail` says why in a few words (`deploy dep-… update_failed`)."""

    name: str
    status: ServiceStatus
    detail: str
    dashboard_url: str = ""


class ProviderError(ConnectorError):
    """A hosting platform did not give an answer we can use."""


class ProviderAuthError(ProviderError, Unauthorized):
    """The platform refused the token (HTTP 401) or its permissions (HTTP 403)."""


class ProviderNotFound(ProviderError, NotFound):
    """The platform says the service, site, variable or deploy does not exist (HTTP 404)."""


class ProviderUnreachable(ProviderError, Unreachable):
    """The platform could not be reached or did not answer in time."""


class Provider(ABC):
    """A hosting platform's API, authenticated with one token; `close()` (or `with`) ends its connections."""

    name: ClassVar[str]
    label: ClassVar[str]
    token_env: ClassVar[str]
    api_url_env: ClassVar[str] = ""
    """A variable naming another API base URL (a proxy, a fake), read by `pipectl init` only."""
    default_api_url: ClassVar[str]

    def __init__(self, token: str, api_url: str | None = None, timeout: float = 5.0) -> None:
        redactor.add(token)
        if not token or not token.isascii() or not token.isprintable() or token != token.strip():
            raise ProviderAuthError(f"the {self.label} token is empty or has whitespace or control characters "
                                    f"in it (a trailing newline?): it cannot be sent as it is")
        self.api_url = (api_url or self.default_api_url).rstrip("/")
        self.timeout = timeout
        self._token = token
        self._client: Any = None

    @abstractmethod
    def service(self, resource_id: str) -> ServiceInfo:
        """The service's state, from its suspension, its latest deploy and (Render) its recent events."""

    @abstractmethod
    def env(self, resource_id: str) -> dict[str, str]:
        """Every variable the running service gets (production), all pages read; secrets registered."""

    @abstractmethod
    def set_env(self, resource_id: str, key: str, value: str) -> None:
        """Create or replace one variable; the others are left as they are. Takes effect on the next deploy."""

    @abstractmethod
    def delete_env(self, resource_id: str, key: str) -> None:
        """Remove one variable; a variable that is not there is already removed (the service must exist)."""

    @abstractmethod
    def deploy(self, resource_id: str) -> str:
        """Start a deploy of what the service runs now, with its current environment; returns the deploy id."""

    @abstractmethod
    def deploy_state(self, resource_id: str, deploy_id: str) -> ServiceStatus:
        """How that deploy went: DEPLOYING while it runs, then RUNNING, DEPLOY_FAILED or CRASHED."""

    def resources(self) -> list[tuple[str, str]]:
        """(id, name) of every service or site the token sees, for `pipectl init`; [] when not offered."""
        return []

    def find(self, name: str) -> str | None:
        """The id of the service or site called `name`, or None."""
        return next((resource_id for resource_id, label in self.resources() if label == name), None)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, what: str, *, params: Any = None, body: Any = None,
                 hide: Iterable[str] = ()) -> Any:
        """One call; returns (parsed JSON or None, response). `hide` are values the request carries: they
        are masked in any message built from the answer."""
        import httpx

        where = safe_url(self.api_url)
        try:
            if self._client is None:
                self._client = httpx.Client(
                    base_url=self.api_url, timeout=self.timeout, follow_redirects=False, verify=tls_context(),
                    headers={"Authorization": f"Bearer {self._token}", "Accept": "application/json",
                             "User-Agent": "pipectl"})
            with waiting_on(where, f"{method} {path}"):
                response = self._client.request(method, path, params=params, json=body)
        except httpx.TimeoutException:
            raise ProviderUnreachable(f"{self.label} API at {where}: {what}: no answer within "
                                      f"{whole_seconds(self.timeout)}") from None
        except httpx.HTTPError as exc:
            raise ProviderUnreachable(f"{self.label} API at {where}: {what}: could not be reached "
                                      f"({type(exc).__name__})") from None
        except httpx.InvalidURL:
            raise ProviderError(f"{self.label} API URL {where} is not a valid URL") from None
        if response.status_code >= 300:
            raise self._failure(response, what, hide)
        if not response.content.strip():
            return None, response
        try:
            return response.json(), response
        except ValueError:
            raise ProviderError(f"{self.label} API: {what}: HTTP {response.status_code} with a body that "
                                f"is not JSON") from None

    def _failure(self, response: Any, what: str, hide: Iterable[str]) -> ProviderError:
        status = response.status_code
        cls = {401: ProviderAuthError, 403: ProviderAuthError, 404: ProviderNotFound}.get(status, ProviderError)
        if status >= 500 or status == 429:
            cls = ProviderUnreachable
        said = _server_message(response)
        for value in hide:
            if value:
                said = said.replace(value, MASK)
        said = redactor(said.replace(self._token, MASK))
        return cls(f"{self.label} API: {what}: HTTP {status}" + (f" ({said})" if said else ""))


def load_provider(name: str) -> type[Provider]:
    """The installed provider class called `name` (`render`, `netlify`); UsageError names the installed ones."""
    from pipectl.registry import load_group

    loaded = load_group(PROVIDERS_GROUP, _provider_problem)
    if name not in loaded.items:
        known = ", ".join(sorted(loaded.items)) or "none"
        raise UsageError(f"no hosting provider {name!r} is installed (installed: {known})")
    return loaded.items[name]


def _provider_problem(obj: Any) -> str | None:
    import inspect

    if not (inspect.isclass(obj) and issubclass(obj, Provider)):
        return "not a subclass of pipectl.connectors.hosting.Provider"
    if inspect.isabstract(obj):
        return "does not implement every Provider method"
    return None


def _server_message(response: Any) -> str:
    """The platform's own one-line explanation (`message` of Render's and Netlify's error bodies), if any."""
    try:
        body = response.json()
    except ValueError:
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    return " ".join(str(message).split())[:200] if message else ""


def parse_time(value: object) -> datetime | None:
    """An ISO 8601 time as the platforms write it (`2024-05-20T11:04:50.667727Z`), or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
