"""Modal: the only module that talks to Modal, through the official `modal` client.

`modal` is imported inside the functions, so importing pipectl stays fast. Each call builds its own client
from explicit credentials and server URL (never `Client.from_env`, never env or config mutation), bounds
the whole exchange with `asyncio.wait_for` (Modal itself retries an unreachable server for about a
minute), and closes the client before returning.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pipectl.durations import whole_seconds
from pipectl.errors import ConnectorError, NotFound, Unauthorized, Unreachable
from pipectl.redact import redactor

T = TypeVar("T")


async def verify_token(
    token_id: str, token_secret: str, *, server_url: str | None = None, timeout: float = 5.0
) -> str:
    """Prove the token pair authenticates with a real round trip; returns the workspace it belongs to."""

    async def lookup(client: Any) -> str:
        import modal

        workspace = modal.Workspace.from_context(client=client)
        await workspace.hydrate.aio()
        return workspace.name or "(unnamed workspace)"

    return await _with_client(token_id, token_secret, server_url, timeout, lookup)


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

    async def lookup(client: Any) -> bool:
        import modal

        try:
            await modal.Function.from_name(app, function, client=client).hydrate.aio()
        except modal.exception.NotFoundError:
            return False
        return True

    return await _with_client(token_id, token_secret, server_url, timeout, lookup)


async def _with_client(
    token_id: str,
    token_secret: str,
    server_url: str | None,
    timeout: float,
    action: Callable[[Any], Awaitable[T]],
) -> T:
    """Run `action(client)` on a fresh client within `timeout`, translating Modal's errors into pipectl's."""
    import modal
    from modal_proto import api_pb2

    redactor.add(token_id)  # server messages are passed through the redactor, so they cannot echo either
    redactor.add(token_secret)
    if any(not t.isascii() or not t.isprintable() or t != t.strip() for t in (token_id, token_secret)):
        raise Unauthorized("the Modal token has whitespace or control characters in it (a trailing newline?): "
                           "it cannot be sent as it is")
    url = server_url or modal.config.config.get("server_url")
    where = _where(url)
    client = modal.Client(url, api_pb2.CLIENT_TYPE_CLIENT, (token_id, token_secret))

    async def run() -> T:
        async with client:
            return await action(client)

    try:
        return await asyncio.wait_for(run(), timeout)
    except (TimeoutError, modal.exception.TimeoutError):  # asyncio.TimeoutError is TimeoutError
        raise Unreachable(f"Modal at {where} did not answer within {whole_seconds(timeout)}") from None
    except modal.exception.AuthError:
        raise Unauthorized(f"Modal at {where} rejected the token") from None
    except modal.exception.PermissionDeniedError:
        raise Unauthorized(f"Modal at {where} denied this token permission for the request") from None
    except modal.exception.NotFoundError as exc:
        raise NotFound(f"Modal at {where}: {redactor(str(exc))}") from None
    except (modal.exception.ConnectionError, modal.exception.ServiceError, OSError) as exc:
        raise Unreachable(f"Modal at {where} is unreachable or unavailable ({type(exc).__name__})") from None
    except modal.exception.Error as exc:
        raise ConnectorError(f"Modal at {where}: {type(exc).__name__}: {redactor(str(exc))}") from None
    finally:
        await _close(client)


async def _close(client: Any) -> None:
    """Close the client even when opening it was cut short; a close that hangs is abandoned."""
    try:
        await asyncio.wait_for(client.close.aio(), 2.0)
    except Exception:  # noqa: BLE001 - closing is best effort and must not mask the real outcome
        pass


def _where(url: str) -> str:
    """host[:port] of the first server URL for messages (never userinfo; Modal's default lists fallbacks)."""
    first = urllib.parse.urlparse(url.split(",")[0].strip())
    host = first.hostname or first.path or "?"
    return f"{host}:{first.port}" if first.port else host

