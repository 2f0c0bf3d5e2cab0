"""HTTP: one request to an endpoint, its status and JSON body. The only place pipectl probes HTTP endpoints.

Redirects are not followed (a health URL that redirects is reported as such), the body is read up to
1 MiB, and a URL's password or token-like query values are registered with the redactor before any
message could carry them.
"""

from __future__ import annotations

import asyncio
import functools
import json
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pipectl.deadline import waiting_on
from pipectl.durations import whole_seconds
from pipectl.errors import Unreachable, UsageError

MAX_BODY = 1 << 20
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    json: Any | None
    """The parsed body when it is JSON, else None."""
    elapsed: float
    """Seconds from sending the request to the end of the body."""
    is_json: bool = False
    """True when the body parsed as JSON (so `json` None means a literal `null`)."""


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The one TLS context every HTTP client of a pipectl process shares.

    httpx builds a new one per client by default and loading the CA bundle costs ~40 ms of CPU each time,
    which, across the dozen clients of one doctor run, was a third of its CPU. Built as httpx would
    (certifi's bundle, or SSL_CERT_FILE / SSL_CERT_DIR when set)."""
    import httpx

    return httpx.create_ssl_context(trust_env=True)


def h2_tls_context() -> ssl.SSLContext:
    """The trust of `tls_context()`, offering HTTP/2 by ALPN, as gRPC (Modal's API) needs; a context of its
    own, so the HTTP/1.1 clients sharing `tls_context()` never negotiate a protocol they do not speak."""
    import httpx

    context = httpx.create_ssl_context(trust_env=True)
    context.set_alpn_protocols(["h2"])
    return context


def safe_url(url: str) -> str:
    """The URL as it may be shown: scheme, host, port and path; no userinfo, query or fragment."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<malformed URL>"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}{parts.path}" if parts.scheme else parts.path


def register_url_secrets(url: str) -> None:
    """A password in the URL, and query values named like credentials, are secrets: register them."""
    from pipectl.secrets import register

    register("url", url)


async def aprobe(url: str, method: str = "GET", timeout: float = 5.0) -> HttpAnswer:
    """One request; Unreachable when the host cannot be reached or does not answer within `timeout`."""
    import httpx

    register_url_secrets(url)
    shown = safe_url(url)
    method = method.upper()
    if method not in _METHODS:
        raise UsageError(f"{shown}: HTTP method {method!r} is not one of {', '.join(sorted(_METHODS))}")
    if urlsplit(url).scheme not in ("http", "https"):
        raise UsageError(f"{shown}: only http:// and https:// URLs can be probed")
    started = time.monotonic()
    try:
        with waiting_on(shown, method):
            async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=True,
                                         verify=tls_context()) as client:
                async with asyncio.timeout(timeout):
                    async with client.stream(method, url, headers={"Accept": "application/json"}) as response:
                        body = bytearray()
                        async for chunk in response.aiter_bytes():
                            body += chunk
                            if len(body) >= MAX_BODY:
                                break
    except TimeoutError:
        raise Unreachable(f"{shown} did not answer within {whole_seconds(timeout)}") from None
    except httpx.TimeoutException:
        raise Unreachable(f"{shown} did not answer within {whole_seconds(timeout)}") from None
    except httpx.InvalidURL:
        raise UsageError(f"{shown} is not a valid URL") from None
    except httpx.HTTPError as exc:
        raise Unreachable(f"{shown} could not be reached: {_reason(exc)}") from None
    elapsed = time.monotonic() - started
    parsed, is_json = _json(bytes(body[:MAX_BODY]))
    return HttpAnswer(response.status_code, parsed, elapsed, is_json)



def _json(body: bytes) -> tuple[Any | None, bool]:
    if not body.strip():
        return None, False
    try:
        return json.loads(body), True
    except (ValueError, UnicodeDecodeError):
        return None, False


def _reason(exc: Exception) -> str:
    """The innermost cause in a few words, e.g. `connection refused`; never the URL (it may hold a token)."""
    cause: BaseException = exc
    while cause.__cause__ is not None or cause.__context__ is not None:
        cause = cause.__cause__ or cause.__context__  # type: ignore[assignment]
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror.lower()
    text = str(cause) or type(exc).__name__
    return text.splitlines()[0][:120]
