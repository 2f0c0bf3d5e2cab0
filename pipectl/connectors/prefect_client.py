"""The plumbing under pipectl's Prefect writes: one bounded conversation with an explicitly built client.

Reads go over the REST API (`prefect_rest`); writes still use the Prefect client, with its own retries
off: its backoff (5 tries, exponential) would spend the whole deadline. Instead pipectl runs the write
once more, within the deadline, when the server said the request was not done and may be repeated
(HTTP 503, which Prefect sends when its database was busy, or 429). Failures become pipectl errors: `Unreachable` (connection
failed, timed out, 5xx / 429), `Unauthorized` (401/403), `NotFound`, or `ConnectorError`; messages never
contain an API key or a Secret block value. Prefect is imported inside the functions, so importing this
module stays cheap.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pipectl.connectors.prefect_rest import (  # noqa: F401 - shared with prefect_write
    DEFAULT_TIMEOUT,
    RETRY_PAUSE,
    SECRET_BLOCK_TYPE,
    as_uuid,
    retry_after,
    run_sync,
    safe_url,
    split_deployment_name,
)
from pipectl.durations import whole_seconds
from pipectl.errors import ConnectorError, NotFound, Unauthorized, Unreachable, UsageError

T = TypeVar("T")
_MIN_RETRY_BUDGET = 1.0
"""Seconds a repeated write needs left after its pause, else the first failure is the answer."""


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
    """Run `await fn(client)` against the API within `timeout` seconds in all, translating failures.

    `what` names the operation in messages ("read deployment x/y"). With `carries_secret` the
    request or response holds a secret value: the API's error detail is left out of the message
    and the original exception is not chained.
    """
    import httpx
    from prefect.client.orchestration import PrefectClient

    where = safe_url(api_url)
    hidden = (api_key, *secrets)

    deadline = time.monotonic() + timeout

    async def main() -> T:
        from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, temporary_settings

        # The client would retry 429/5xx up to 5 times with backoff, far past our deadline.
        with temporary_settings({PREFECT_CLIENT_MAX_RETRIES: 0}):
            client = PrefectClient(
                api_url,
                api_key=api_key or None,
                httpx_settings={"timeout": httpx.Timeout(timeout)},
            )
            async with client:
                return await fn(client)

    for attempt in range(1, WRITE_ATTEMPTS + 1):
        try:
            return run_sync(lambda: asyncio.wait_for(main(), max(deadline - time.monotonic(), 0.001)))
        except (ConnectorError, UsageError):
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes a one-line pipectl error
            pause = _repeatable(exc, attempt)
            if (attempt < WRITE_ATTEMPTS and pause is not None
                    and deadline - time.monotonic() - pause >= _MIN_RETRY_BUDGET):
                time.sleep(pause)
                continue
            cause: Exception = exc
            error = _translate(exc, where, what, timeout, hidden, carries_secret)
            break
    if carries_secret:
        # Raised outside the except block: no __context__ that could lead back to the request body.
        raise error from None
    raise error from cause


WRITE_ATTEMPTS = 4
"""A write the server did not carry out (503: its database was busy; 429) is sent again, within the deadline,
after RETRY_PAUSE, then twice as long each time (or what Retry-After asks)."""


def _repeatable(exc: Exception, attempt: int) -> float | None:
    """Seconds to wait before repeating a request the server did not carry out (503, 429), else None."""
    if status_code(exc) not in (429, 503):
        return None
    asked = retry_after(exc.response.headers.get("retry-after"))  # type: ignore[attr-defined]
    return RETRY_PAUSE * 2 ** (attempt - 1) if asked is None else asked


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
