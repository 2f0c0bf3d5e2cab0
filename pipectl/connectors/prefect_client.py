"""The plumbing under pipectl's Prefect connector: one bounded conversation with an explicitly built client.

Failures become pipectl errors: `Unreachable` (connection failed, timed out, 5xx / 429), `Unauthorized`
(401/403), `NotFound`, or `ConnectorError`; messages never contain an API key or a Secret block value.
Prefect is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

from pipectl.durations import whole_seconds
from pipectl.errors import ConnectorError, NotFound, Unauthorized, Unreachable, UsageError

DEFAULT_TIMEOUT = 15.0
SECRET_BLOCK_TYPE = "secret"

T = TypeVar("T")


def safe_url(api_url: str) -> str:
    """The URL without any user:password part, for messages."""
    parts = urlsplit(api_url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        parts = parts._replace(netloc=host)
    return urlunsplit(parts)


def _scrub(text: str, secrets: tuple[str | None, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _http_detail(exc: Exception) -> str:
    """A short reason from a Prefect/httpx HTTP error: the API's `detail`, never the request."""
    response = getattr(exc, "response", None)
    if response is None:
        return ""
    try:
        detail = response.json().get("detail", "")
    except Exception:  # noqa: BLE001 - not JSON
        detail = response.text or ""
    if not isinstance(detail, str):
        detail = json.dumps(detail)
    return " ".join(detail.split())[:200]


def status_code(exc: Exception) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _run_sync(make_coro: Callable[[], Awaitable[T]]) -> T:
    """asyncio.run, also from code that already runs an event loop (then in a helper thread)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coro())
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(make_coro())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="pipectl-prefect", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def call(
    api_url: str,
    api_key: str | None,
    timeout: float,
    what: str,
    fn: Callable[[Any], Awaitable[T]],
    *,
    secrets: tuple[str | None, ...] = (),
    carries_secret: bool = False,
) -> T:
    """Run `await fn(client)` against the API within `timeout` seconds, translating failures.

    `what` names the operation in messages ("read deployment x/y"). With `carries_secret` the
    request or response holds a secret value: the API's error detail is left out of the message
    and the original exception is not chained.
    """
    import httpx
    from prefect.client.orchestration import PrefectClient

    where = safe_url(api_url)
    hidden = (api_key, *secrets)

    async def main() -> T:
        client = PrefectClient(
            api_url,
            api_key=api_key or None,
            httpx_settings={"timeout": httpx.Timeout(timeout)},
        )
        async with client:
            return await fn(client)

    try:
        return _run_sync(lambda: asyncio.wait_for(main(), timeout))
    except (ConnectorError, UsageError):
        raise
    except Exception as exc:  # noqa: BLE001 - every failure becomes a one-line pipectl error
        cause: Exception = exc
        error = _translate(exc, where, what, timeout, hidden, carries_secret)
    if carries_secret:
        # Raised outside the except block: no __context__ that could lead back to the request body.
        raise error from None
    raise error from cause


def _translate(
    exc: Exception, where: str, what: str, timeout: float, hidden: tuple[str | None, ...], carries_secret: bool
) -> Exception:
    import httpx
    from prefect.exceptions import ObjectNotFound

    if isinstance(exc, ObjectNotFound):
        return NotFound(f"Prefect at {where}: {what}: not found")
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return Unreachable(f"Prefect at {where} did not answer within {whole_seconds(timeout)} ({what})")
    if isinstance(exc, httpx.HTTPStatusError):  # PrefectHTTPStatusError is a subclass
        code = status_code(exc)
        if code in (401, 403):
            return Unauthorized(f"Prefect at {where} refused the credentials (HTTP {code}) for: {what}")
        if code == 404:
            return NotFound(f"Prefect at {where}: {what}: not found (HTTP 404)")
        detail = "" if carries_secret else _scrub(_http_detail(exc), hidden)
        message = f"Prefect at {where} answered HTTP {code} to: {what}" + (f": {detail}" if detail else "")
        if code is not None and (code >= 500 or code in (408, 429)):
            return Unreachable(message)
        return ConnectorError(message)
    if isinstance(exc, (httpx.TransportError, OSError)):
        return Unreachable(f"Prefect at {where} is unreachable ({type(exc).__name__}) for: {what}")
    detail = "" if carries_secret else _scrub(" ".join(str(exc).split())[:200], hidden)
    return ConnectorError(f"Prefect at {where}: {what} failed: {type(exc).__name__}" + (f": {detail}" if detail else ""))


def as_datetime(value: Any) -> datetime | None:
    """A plain, timezone-aware stdlib datetime (Prefect returns its own subclasses)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return datetime.fromtimestamp(value.timestamp(), tz=timezone.utc)


def plain(value: Any) -> Any:
    """Deep plain-JSON copy (dicts, lists, str, numbers) of what the API returned."""
    if value is None:
        return None
    return json.loads(json.dumps(value, default=str))


def enum_value(value: Any) -> str | None:
    if value is None:
        return None
    return str(getattr(value, "value", value))


def as_uuid(value: str | UUID, what: str) -> UUID:
    try:
        return value if isinstance(value, UUID) else UUID(str(value))
    except ValueError:
        raise UsageError(f"not a valid {what} id: {value!r}") from None


def split_deployment_name(name: str) -> tuple[str, str]:
    flow_name, sep, deployment_name = name.partition("/")
    if not sep or not flow_name or not deployment_name or "/" in deployment_name:
        raise UsageError(f"deployment name must be FLOW/DEPLOYMENT, got {name!r}")
    return flow_name, deployment_name
