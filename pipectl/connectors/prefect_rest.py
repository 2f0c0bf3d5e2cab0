"""Prefect's REST API over httpx, for reads: the one place pipectl speaks HTTP to Prefect to look.

`call()` runs one bounded conversation. Every request in it shares the caller's deadline, retries
included; a read is retried once on HTTP 429/500/502/503/504 or a lost connection, and only when the
deadline leaves room for the wait (Retry-After when given, else RETRY_PAUSE). Failures become pipectl
errors: `Unreachable` (no answer in time, connection failed, 5xx, 429), `Unauthorized` (401/403),
`NotFound` (404), else `ConnectorError`. Messages name the URL without credentials, the operation and
the HTTP call, never the API key or a Secret block's value. Requests are built from the explicit URL
and key only: no Prefect profile or PREFECT_* variable is read, and `prefect` is never imported.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import quote

from pipectl.connectors.http import safe_url, tls_context
from pipectl.deadline import waiting_on
from pipectl.durations import whole_seconds
from pipectl.errors import ConnectorError, NotFound, PipectlError, Unauthorized, Unreachable, UsageError

DEFAULT_TIMEOUT = 15.0
SECRET_BLOCK_TYPE = "secret"
RETRY_PAUSE = 0.5
"""Seconds to wait before the one retry when the server does not say (no Retry-After)."""
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_MIN_ATTEMPT = 0.25
"""A retry is only worth it with at least this much of the deadline left after its wait."""

T = TypeVar("T")


# ---------------------------------------------------------------- helpers shared with prefect_client


def split_deployment_name(name: str) -> tuple[str, str]:
    """("flow", "deployment") from "flow/deployment"; UsageError for anything else."""
    flow_name, sep, deployment_name = name.partition("/")
    if not sep or not flow_name or not deployment_name or "/" in deployment_name:
        raise UsageError(f"deployment name must be FLOW/DEPLOYMENT, got {name!r}")
    return flow_name, deployment_name


def as_uuid(value: str | uuid.UUID, what: str) -> uuid.UUID:
    """The id as a UUID, so a typo is a UsageError here rather than a 404 or 422 from the server."""
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        raise UsageError(f"not a valid {what} id: {value!r}") from None


def segment(value: object) -> str:
    """One URL path segment: names may hold spaces, slashes or '?'."""
    return quote(str(value), safe="")


def parse_time(value: Any) -> datetime | None:
    """An API timestamp as a timezone-aware (UTC) datetime; None stays None."""
    if not value:
        return None
    moment = datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def retry_after(value: str | None) -> float | None:
    """Seconds asked for by a Retry-After header (delta-seconds or an HTTP-date), or None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def run_sync(make_coro: Callable[[], Awaitable[T]]) -> T:
    """asyncio.run, also from code that already runs an event loop (then in a helper thread that keeps
    the caller's context, so `waiting_on` still reports to the caller's check)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coro())
    context = contextvars.copy_context()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = context.run(lambda: asyncio.run(make_coro()))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="pipectl-prefect", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


# ---------------------------------------------------------------- one conversation


class Conversation:
    """The requests of one call: one httpx client, one deadline, one way of wording failures."""

    def __init__(self, client: Any, where: str, what: str, timeout: float, secret: bool, key: str | None) -> None:
        self.client, self.where, self.what, self.timeout = client, where, what, timeout
        self.secret, self.key = secret, key
        self.deadline = time.monotonic() + timeout
        self.csrf: dict[str, str] = {}

    def left(self) -> float:
        return self.deadline - time.monotonic()

    async def get(self, path: str, params: dict[str, Any] | None = None, *, missing_ok: bool = False) -> Any:
        """The JSON answer to GET `path`; None for a 404 when `missing_ok`."""
        return await self.request("GET", path, params=params, missing_ok=missing_ok)

    async def post(self, path: str, body: dict[str, Any], *, missing_ok: bool = False) -> Any:
        """The JSON answer to POST `path` (Prefect's /filter and /count reads: safe to retry)."""
        return await self.request("POST", path, body=body, missing_ok=missing_ok)

    async def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                      body: Any = None, missing_ok: bool = False) -> Any:
        import httpx

        call = f"{method} {path}"
        retried = csrf_tried = False
        while True:
            try:
                response = await self._send(method, path, params, body, call)
            except (httpx.TransportError, OSError) as exc:
                if retried or isinstance(exc, httpx.UnsupportedProtocol) or not self._room(RETRY_PAUSE):
                    raise Unreachable(f"Prefect at {self.where} is unreachable ({type(exc).__name__}) "
                                      f"for: {self.what} ({call})") from None
                retried = True
                await asyncio.sleep(RETRY_PAUSE)
                continue
            code = response.status_code
            if code in _RETRY_STATUS and not retried:
                asked = retry_after(response.headers.get("retry-after"))
                pause = RETRY_PAUSE if asked is None else asked
                if self._room(pause):
                    retried = True
                    await asyncio.sleep(pause)
                    continue
            if code == 403 and method != "GET" and not csrf_tried and "csrf" in response.text.lower():
                csrf_tried = True  # a self-hosted server with CSRF protection: fetch a token, ask again
                if await self._fetch_csrf_token():
                    continue
            return self._answer(response, call, missing_ok)

    def _room(self, pause: float) -> bool:
        return self.left() - pause >= _MIN_ATTEMPT

    async def _send(self, method: str, path: str, params: Any, body: Any, call: str) -> Any:
        import httpx

        left = self.left()
        if left <= 0:
            raise self._late(call)
        headers = self.csrf if method != "GET" else None
        try:
            with waiting_on(self.where, call):
                async with asyncio.timeout(left):
                    return await self.client.request(
                        method, path, params=params, json=body, headers=headers, timeout=left)
        except (TimeoutError, httpx.TimeoutException):
            raise self._late(call) from None

    async def _fetch_csrf_token(self) -> bool:
        client_id = str(uuid.uuid4())
        try:
            token = await self.get("/csrf-token", {"client": client_id})
        except ConnectorError:
            return False
        if not isinstance(token, dict) or not token.get("token"):
            return False
        self.csrf = {"Prefect-Csrf-Token": str(token["token"]), "Prefect-Csrf-Client": client_id}
        return True

    def _late(self, call: str) -> Unreachable:
        return Unreachable(f"Prefect at {self.where} did not answer {call} within "
                           f"{whole_seconds(self.timeout)} ({self.what})")

    def _answer(self, response: Any, call: str, missing_ok: bool) -> Any:
        code = response.status_code
        if 200 <= code < 300:
            try:
                return response.json()
            except ValueError:
                raise ConnectorError(f"Prefect at {self.where} answered {call} with a body that is not JSON "
                                     f"({self.what})") from None
        if code in (401, 403):
            raise Unauthorized(f"Prefect at {self.where} refused the credentials (HTTP {code}) for: {self.what}")
        if code == 404:
            if missing_ok:
                return None
            raise NotFound(f"Prefect at {self.where}: {self.what}: not found (HTTP 404)")
        if code == 429:
            asked = retry_after(response.headers.get("retry-after"))
            said = f", Retry-After {whole_seconds(asked)}" if asked is not None else ""
            raise Unreachable(f"Prefect at {self.where} is rate limiting (HTTP 429{said}) for: {self.what}")
        detail = "" if self.secret else self._detail(response)
        message = f"Prefect at {self.where} answered HTTP {code} to: {self.what} ({call})"
        message += f": {detail}" if detail else ""
        raise (Unreachable if code >= 500 or code == 408 else ConnectorError)(message)

    def _detail(self, response: Any) -> str:
        """A short reason: the API's `detail` (never the request), without the API key."""
        try:
            detail = response.json().get("detail", "")
        except Exception:  # noqa: BLE001 - not JSON, or not an object
            detail = response.text or ""
        if not isinstance(detail, str):
            detail = json.dumps(detail)
        detail = " ".join(detail.split())[:200]
        return detail.replace(self.key, "***") if self.key else detail


def call(
    api_url: str,
    api_key: str | None,
    timeout: float,
    what: str,
    fn: Callable[[Conversation], Awaitable[T]],
    *,
    carries_secret: bool = False,
) -> T:
    """Run `await fn(conversation)` against the API within `timeout` seconds in all, translating failures.

    `what` names the operation in messages ("read deployment x/y"). With `carries_secret` the answer
    holds a secret: no response text goes into a message and no exception is chained.
    """
    import httpx

    where = safe_url(api_url)
    headers = {"Accept": "application/json", "User-Agent": "pipectl"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"

    async def main() -> T:
        async with httpx.AsyncClient(base_url=api_url.rstrip("/"), headers=headers, timeout=timeout,
                                     verify=tls_context()) as client:
            return await fn(Conversation(client, where, what, timeout, carries_secret, api_key))

    try:
        return run_sync(main)
    except PipectlError as exc:
        if not carries_secret:
            raise
        error: PipectlError = exc
    except Exception as exc:  # an answer of an unexpected shape, a malformed URL, ...
        error = ConnectorError(f"Prefect at {where}: {what} failed: unexpected {type(exc).__name__}")
        if not carries_secret:
            raise error from exc
    # Nothing that could lead back to the answer: no cause, no context, no frames of the conversation.
    error.__cause__ = error.__context__ = None
    error.__suppress_context__ = True
    raise error.with_traceback(None)
