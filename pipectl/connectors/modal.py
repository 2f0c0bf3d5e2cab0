"""Modal: the only module that talks to Modal, through the Modal client's own gRPC layer.

Both look-ups pipectl needs (whose workspace a token is, whether a function is deployed) are single calls of
Modal's API, so they are made with the stub and messages the `modal` package ships (`modal_proto`, over
grpclib) rather than through the whole client, whose import alone cost a third of a doctor run's CPU. Each call
opens its own channel with explicit credentials (never `Client.from_env`, never env or config mutation),
sends the metadata the client sends, bounds the whole exchange with `asyncio.wait_for`, and closes the channel
before returning. Where no server URL is configured, Modal's own settings name it, as for the client:
MODAL_SERVER_URL, else the active profile of ~/.modal.toml, else api.modal.com.
"""

from __future__ import annotations

import asyncio
import os
import platform
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from pipectl.connectors.http import h2_tls_context
from pipectl.durations import whole_seconds
from pipectl.errors import ConnectorError, NotFound, Unauthorized, Unreachable
from pipectl.redact import redactor

T = TypeVar("T")

DEFAULT_SERVER_URL = "https://api.modal.com"


async def verify_token(
    token_id: str, token_secret: str, *, server_url: str | None = None, timeout: float = 5.0
) -> str:
    """Prove the token pair authenticates with a real round trip; returns the workspace it belongs to."""

    async def lookup(stub: Any, metadata: dict[str, str]) -> str:
        from google.protobuf.empty_pb2 import Empty

        response = await stub.WorkspaceNameLookup(Empty(), metadata=metadata)
        return response.username or "(unnamed workspace)"

    return await _with_stub(token_id, token_secret, server_url, timeout, lookup)


async def function_exists(
    app: str,
    function: str,
    *,
    token_id: str,
    token_secret: str,
    server_url: str | None = None,
    timeout: float = 5.0,
) -> bool:
    """Whether `function` is deployed in `app`: False when Modal says it does not exist."""

    async def lookup(stub: Any, metadata: dict[str, str]) -> bool:
        from grpclib import GRPCError, Status
        from modal_proto import api_pb2

        request = api_pb2.FunctionGetRequest(app_name=app, object_tag=function,
                                             environment_name=modal_setting("environment") or "")
        try:
            await stub.FunctionGet(request, metadata=metadata)
        except GRPCError as exc:
            if exc.status == Status.NOT_FOUND:
                return False
            raise
        return True

    return await _with_stub(token_id, token_secret, server_url, timeout, lookup)


async def _with_stub(
    token_id: str,
    token_secret: str,
    server_url: str | None,
    timeout: float,
    action: Callable[[Any, dict[str, str]], Awaitable[T]],
) -> T:
    """Run `action(stub, metadata)` on a fresh channel within `timeout`, translating Modal's errors."""
    from grpclib import GRPCError, Status
    from grpclib.exceptions import ProtocolError, StreamTerminatedError
    from modal_proto import api_grpc

    redactor.add(token_id)  # server messages are passed through the redactor, so they cannot echo either
    redactor.add(token_secret)
    if any(not t.isascii() or not t.isprintable() or t != t.strip() for t in (token_id, token_secret)):
        raise Unauthorized("the Modal token has whitespace or control characters in it (a trailing newline?): "
                           "it cannot be sent as it is")
    url = server_url or modal_setting("server_url") or DEFAULT_SERVER_URL
    where = _where(url)
    channel = _channel(url)

    try:
        return await asyncio.wait_for(action(api_grpc.ModalClientStub(channel), _metadata(token_id, token_secret)),
                                      timeout)
    except TimeoutError:  # asyncio.TimeoutError is TimeoutError
        raise Unreachable(f"Modal at {where} did not answer within {whole_seconds(timeout)}") from None
    except GRPCError as exc:
        if exc.status == Status.UNAUTHENTICATED:
            raise Unauthorized(f"Modal at {where} rejected the token") from None
        if exc.status == Status.PERMISSION_DENIED:
            raise Unauthorized(f"Modal at {where} denied this token permission for the request") from None
        if exc.status == Status.NOT_FOUND:
            raise NotFound(f"Modal at {where}: {redactor(exc.message or 'not found')}") from None
        if exc.status in (Status.UNAVAILABLE, Status.DEADLINE_EXCEEDED, Status.INTERNAL, Status.UNKNOWN,
                          Status.RESOURCE_EXHAUSTED, Status.ABORTED):  # Modal is down or overloaded
            raise Unreachable(f"Modal at {where} is unreachable or unavailable ({exc.status.name})") from None
        raise ConnectorError(f"Modal at {where}: {exc.status.name}: {redactor(exc.message or '')}") from None
    except (ProtocolError, StreamTerminatedError, OSError) as exc:  # ConnectionError and ssl.SSLError among them
        raise Unreachable(f"Modal at {where} is unreachable or unavailable ({type(exc).__name__})") from None
    finally:
        channel.close()


def _channel(url: str) -> Any:
    """A grpclib channel to the first server of `url` (Modal's setting may list fallbacks after a comma)."""
    from grpclib.client import Channel

    first = urllib.parse.urlparse(url.split(",")[0].strip())
    if first.scheme not in ("http", "https") or not first.hostname:
        raise ConnectorError(f"the Modal server URL {_where(url)!r} is not an http(s) URL")
    secure = first.scheme == "https"
    port = first.port or (443 if secure else 80)
    return Channel(first.hostname, port, ssl=h2_tls_context() if secure else None)


def _metadata(token_id: str, token_secret: str) -> dict[str, str]:
    """What the `modal` client sends with each request: who it is, and the token."""
    from modal_proto import api_pb2
    from modal_version import __version__

    uname = platform.uname()
    return {
        "x-modal-client-version": __version__,
        "x-modal-client-type": str(api_pb2.CLIENT_TYPE_CLIENT),
        "x-modal-python-version": platform.python_version(),
        "x-modal-platform": urllib.parse.quote("-".join(s.replace("-", "_") for s in
                                                        (uname.system, uname.release, uname.machine))),
        "x-modal-token-id": token_id,
        "x-modal-token-secret": token_secret,
    }


def modal_setting(key: str) -> str | None:
    """A setting as the `modal` client reads it: MODAL_<KEY>, else the active profile of ~/.modal.toml
    (MODAL_CONFIG_PATH; the profile named by MODAL_PROFILE, else the one marked active)."""
    value = os.environ.get(f"MODAL_{key.upper()}")
    if value:
        return value
    import tomllib

    path = Path(os.environ.get("MODAL_CONFIG_PATH") or Path.home() / ".modal.toml")
    try:
        profiles = tomllib.loads(path.read_text())
    except (OSError, ValueError):
        return None
    name = os.environ.get("MODAL_PROFILE") or next(
        (n for n, p in profiles.items() if isinstance(p, dict) and p.get("active")), None)
    profile = profiles.get(name) if name else None
    found = profile.get(key) if isinstance(profile, dict) else None
    return str(found) if found else None


def _where(url: str) -> str:
    """host[:port] of the first server URL for messages (never userinfo; Modal's default lists fallbacks)."""
    first = urllib.parse.urlparse(url.split(",")[0].strip())
    host = first.hostname or first.path or "?"
    return f"{host}:{first.port}" if first.port else host
