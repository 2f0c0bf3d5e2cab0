"""HTTP for the hosted fakes: Render's API under /v1 and Netlify's under /api/v1, over one `HostedStore`.

The routes live in `hosted_render` and `hosted_netlify`; this module authenticates (every request needs
`Authorization: Bearer <token>`, else 401 with the platform's error body), parses the query and JSON
body, runs a route inside the store's lock (a change is saved before the answer goes out) and writes
the answer.
"""

from __future__ import annotations

import copy
import hmac
import json
import re
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from pipectl.sandbox.hosted_fake import HostedStore

Answer = tuple[int, Any, dict[str, str]]
_ERROR_IDS = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 500: "internal_server_error"}


class ApiError(Exception):
    """An answer other than success: the status and the message of the platform's error body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class Request:
    """One request as the routes see it: path parameters, query, JSON body, and the store."""

    def __init__(self, store: HostedStore, query: dict[str, list[str]], body: Any, base: str) -> None:
        self.store, self.query, self.body, self.base = store, query, body, base

    def one(self, name: str, default: str | None = None) -> str | None:
        return (self.query.get(name) or [default])[0]

    def many(self, name: str) -> list[str]:
        """An array parameter, repeated as OpenAPI's default form style sends it (`type=a&type=b`)."""
        return [value for value in self.query.get(name, []) if value]

    def number(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.one(name)
        if raw is None:
            return default
        if not raw.isdigit() or not low <= int(raw) <= high:
            raise ApiError(400, f"{name} must be a whole number from {low} to {high}")
        return int(raw)


def request_deploy(store: HostedStore, provider: str, resource_id: str, trigger: str,
                   restart: bool = False) -> dict[str, Any]:
    """What a client's deploy or restart does: start one and hand it to `store.on_deploy` in a thread of its
    own, so the answer is not delayed (without a hook: finish it at once as live / ready); returns the
    deploy as it was created. A restart also records Render's `server_restarted` event."""
    with store.edit():
        deploy_id = store.start_deploy(provider, resource_id, trigger, restart)
        if restart:
            store.add_event(resource_id, "server_restarted", {"triggeredByUser": None})
        created = copy.deepcopy(store.record(provider, resource_id)["deploys"][0])
        hook = store.on_deploy
        if hook is None:
            store.finish_deploy(provider, resource_id, deploy_id, True)
    if hook is not None:
        threading.Thread(target=_run_hook, args=(hook, provider, resource_id, deploy_id), daemon=True,
                         name=f"on_deploy {deploy_id}").start()
    return created


def _run_hook(hook: Callable[[str, str, str], None], provider: str, resource_id: str, deploy_id: str) -> None:
    try:
        hook(provider, resource_id, deploy_id)
    except Exception as exc:  # noqa: BLE001 - the hook's failure must not take the fake down
        print(f"hosted fake: on_deploy({provider}, {resource_id}, {deploy_id}) failed: {type(exc).__name__}",
              file=sys.stderr, flush=True)


class _Handler(BaseHTTPRequestHandler):
    """One provider's API; `make_server` binds it to a store and that provider's routes."""

    store: HostedStore
    provider: str
    routes: list[tuple[str, re.Pattern[str], Callable[..., Answer]]]
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stall
    server_version = "hosted-fake"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            status, body, headers = self._answer(method, parts.path.rstrip("/") or "/", parts.query, raw)
        except Exception as exc:  # noqa: BLE001 - every request gets an answer in the platform's error shape
            error = exc if isinstance(exc, ApiError) else ApiError(500, f"internal error ({type(exc).__name__})")
            status, headers = error.status, {}
            body = ({"id": _ERROR_IDS.get(status, "error"), "message": error.message} if self.provider == "render"
                    else {"code": status, "message": error.message})
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        for name, value in headers.items():
            if value:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _answer(self, method: str, path: str, query: str, raw: bytes) -> Answer:
        given = self.headers.get("Authorization") or ""
        with self.store.view() as data:
            expected = data["tokens"].get(self.provider)
        if not expected or not hmac.compare_digest(given.encode(), f"Bearer {expected}".encode()):
            message = "Authorization information is missing or invalid." if self.provider == "render" else \
                "Access Denied: your session has expired or is otherwise invalid"
            raise ApiError(401, message)
        body = None
        if raw.strip() and "json" in (self.headers.get("Content-Type") or "json"):
            try:
                body = json.loads(raw)
            except ValueError:
                raise ApiError(400, "the body is not JSON") from None
        req = Request(self.store, parse_qs(query, keep_blank_values=True), body,
                      f"http://{self.headers.get('Host') or '127.0.0.1'}")
        for methods, pattern, route in self.routes:
            match = pattern.fullmatch(path)
            if match and method in methods.split("|"):
                args = [unquote(g) for g in match.groups()] + ([method] if "|" in methods else [])
                if method == "GET":
                    with self.store.view():
                        return route(req, *args)
                with self.store.edit():
                    return route(req, *args)
        raise ApiError(404, "Not Found")


def make_server(store: HostedStore, provider: str, port: int) -> ThreadingHTTPServer:
    """An HTTP server on 127.0.0.1:`port` answering as `provider` ("render" or "netlify") does."""
    from pipectl.sandbox.hosted_netlify import NETLIFY
    from pipectl.sandbox.hosted_render import RENDER

    routes = [(m, re.compile(p), fn) for m, p, fn in (RENDER if provider == "render" else NETLIFY)]
    handler = type(f"{provider.title()}Handler", (_Handler,), {"store": store, "provider": provider,
                                                               "routes": routes})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    server.provider = provider  # type: ignore[attr-defined]
    return server
