"""Local fakes of Render's and Netlify's public REST APIs, so pipectl's hosting connectors meet the sandbox.

`HostedStore` holds what the two platforms would: one Render API key and one Netlify token, Render
services (`srv-…`) with their environment, deploys and events, and a Netlify account with its sites,
their environment variables and deploys. It is persisted to a JSON file (0600: it holds environment
values) after every change and re-read when another process changed the file, so a drill can break the
sandbox from outside while the fakes serve. `hosted_api` serves it over HTTP (routes in `hosted_render`
and `hosted_netlify`) with the paths, bearer-token check, JSON shapes and pagination of the published
APIs.

Run alone: python -m pipectl.sandbox.hosted_fake --state PATH --render-port N --netlify-port N
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import fcntl
import json
import os
import secrets
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pipectl.files import write_private

_ALNUM = "0123456789abcdefghijklmnopqrstuvwxyz"
ALL_SCOPES = ["builds", "functions", "runtime", "post-processing"]
PRODUCTION = ("all", "production")
_last_time = datetime.now(UTC)
_time_lock = threading.Lock()


def render_id(prefix: str) -> str:
    """Render's ids: a prefix and 20 lowercase letters and digits (`srv-d0cjkelq67qs70c2pugg`)."""
    return f"{prefix}-" + "".join(secrets.choice(_ALNUM) for _ in range(20))


def now() -> str:
    """The time as both APIs write it, strictly increasing, so events and deploys order as they happened."""
    global _last_time
    with _time_lock:
        _last_time = max(datetime.now(UTC), _last_time + timedelta(microseconds=1))
        return _last_time.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _empty() -> dict[str, Any]:
    return {
        "tokens": {"render": None, "netlify": None},
        "render": {"owner_id": render_id("tea"), "services": {}},
        "netlify": {"account": {"id": secrets.token_hex(12), "slug": "sandbox", "name": "Sandbox"}, "sites": {}},
    }


class HostedStore:
    """The platforms' state; thread-safe, and every change is saved before the call returns."""

    def __init__(self, path: Path | str, data: dict[str, Any]) -> None:
        self.path = Path(path)
        self.data = data
        self.lock = threading.RLock()
        self.on_deploy: Callable[[str, str, str], None] | None = None
        """Called (in a thread of its own) with (provider, resource id, deploy id) when a client asks for a
        deploy or a restart; without it the fake finishes the deploy at once as live / ready."""
        self._depth = 0
        self._seen = self._signature()

    @classmethod
    def load(cls, path: Path | str) -> HostedStore:
        """The store saved at `path`, or an empty one (with fresh account ids) when there is none yet."""
        path = Path(path)
        return cls(path, json.loads(path.read_text()) if path.exists() else _empty())

    def save(self) -> None:
        with self.lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_private(self.path, json.dumps(self.data, indent=1))
            self._seen = self._signature()

    @contextlib.contextmanager
    def view(self) -> Iterator[dict[str, Any]]:
        """The current state, to read (as another process may have saved it)."""
        with self.lock:
            self._refresh()
            yield self.data

    @contextlib.contextmanager
    def edit(self) -> Iterator[dict[str, Any]]:
        """The current state, to change: other processes wait; saved when the block ends without error."""
        with self.lock:
            outer = self._depth == 0
            lock_file = self._lock_file() if outer else None
            try:
                if outer:
                    self._refresh()
                self._depth += 1
                try:
                    yield self.data
                except BaseException:
                    self._seen = None  # half a change stays in memory only: read the file again next time
                    raise
                finally:
                    self._depth -= 1
                if outer:
                    self.save()
            finally:
                if lock_file is not None:
                    lock_file.close()

    def set_tokens(self, render: str | None = None, netlify: str | None = None) -> None:
        with self.edit() as data:
            if render is not None:
                data["tokens"]["render"] = render
            if netlify is not None:
                data["tokens"]["netlify"] = netlify

    def add_render_service(self, name: str, type: str, env: dict[str, str]) -> str:
        with self.edit() as data:
            sid, at = render_id("srv"), now()
            data["render"]["services"][sid] = {
                "id": sid, "name": name, "type": type, "slug": name, "suspended": "not_suspended",
                "suspenders": [], "createdAt": at, "updatedAt": at, "env": dict(env), "deploys": [], "events": [],
            }
            return sid

    def add_netlify_site(self, name: str, env: dict[str, str]) -> str:
        with self.edit() as data:
            site_id, at = str(uuid.uuid4()), now()
            data["netlify"]["sites"][site_id] = {
                "id": site_id, "name": name, "url": f"https://{name}.netlify.app", "created_at": at,
                "updated_at": at, "env": [netlify_var(k, v) for k, v in env.items()], "deploys": [],
            }
            return site_id

    def find(self, provider: str, name: str) -> str | None:
        with self.view():
            return next((rid for rid, rec in self._records(provider).items() if rec["name"] == name), None)

    def env(self, provider: str, resource_id: str) -> dict[str, str]:
        """What the service gets when it starts (Netlify: the production value, secret or not)."""
        with self.view():
            rec = self.record(provider, resource_id)
            if provider == "render":
                return dict(rec["env"])
            return {var["key"]: value for var in rec["env"] if (value := production_value(var)) is not None}

    def set_env(self, provider: str, resource_id: str, key: str, value: str) -> None:
        with self.edit():
            rec = self.record(provider, resource_id)
            if provider == "render":
                rec["env"][key] = value
                return
            var = next((v for v in rec["env"] if v["key"] == key), None)
            if var is None:
                rec["env"].append(netlify_var(key, value))
            else:
                var.update(values=[netlify_value("all", value)], updated_at=now())

    def delete_env(self, provider: str, resource_id: str, key: str) -> None:
        with self.edit():
            rec = self.record(provider, resource_id)
            if provider == "render":
                rec["env"].pop(key, None)
            else:
                rec["env"] = [v for v in rec["env"] if v["key"] != key]

    def start_deploy(self, provider: str, resource_id: str, trigger: str = "api", restart: bool = False) -> str:
        """A new deploy, in progress (Render `build_in_progress`, or `update_in_progress` for a restart;
        Netlify `building`), newest first; Render also records a `deploy_started` event."""
        with self.edit():
            rec, at = self.record(provider, resource_id), now()
            if provider == "netlify":
                did, name = secrets.token_hex(12), rec["name"]
                rec["deploys"].insert(0, {
                    "id": did, "site_id": resource_id, "build_id": secrets.token_hex(12), "state": "building",
                    "name": name, "url": rec["url"], "ssl_url": rec["url"], "admin_url": admin_url(name),
                    "deploy_url": f"http://{did}--{name}.netlify.app",
                    "deploy_ssl_url": f"https://{did}--{name}.netlify.app", "error_message": None,
                    "branch": "main", "context": "production", "created_at": at, "updated_at": at,
                    "published_at": None, "title": None})
                return did
            did = render_id("dep")
            status = "update_in_progress" if restart else "build_in_progress"
            rec["deploys"].insert(0, {"id": did, "status": status, "trigger": trigger, "startedAt": at,
                                      "createdAt": at, "updatedAt": at})
            flags = dict.fromkeys(("envUpdated", "deployedByRender", "clearCache", "rollback"), False)
            self.add_event(resource_id, "deploy_started", {"deployId": did, "trigger": {
                **flags, "firstBuild": len(rec["deploys"]) == 1, "manual": trigger == "manual"}})
            return did

    def finish_deploy(self, provider: str, resource_id: str, deploy_id: str, ok: bool, message: str = "") -> None:
        """Render: `live` (the previous live deploy becomes `deactivated`) or `update_failed`, and a
        `deploy_ended` event; Netlify: `ready` (published) or `error` with `message`."""
        with self.edit():
            rec, at = self.record(provider, resource_id), now()
            deploy = next((d for d in rec["deploys"] if d["id"] == deploy_id), None)
            if deploy is None:
                raise KeyError(f"{provider} {resource_id} has no deploy {deploy_id}")
            if provider == "netlify":
                deploy.update(state="ready" if ok else "error", updated_at=at,
                              error_message=None if ok else (message or "Build script returned non-zero exit code"),
                              published_at=at if ok else None)
                return
            if ok:
                for other in rec["deploys"]:
                    if other["status"] == "live":
                        other.update(status="deactivated", updatedAt=at)
            deploy.update(status="live" if ok else "update_failed", finishedAt=at, updatedAt=at)
            reason = {"newDeploy": {"id": deploy_id}} if ok else {"failure": {"evicted": False}}
            self.add_event(resource_id, "deploy_ended", {
                "deployId": deploy_id, "deployStatus": "succeeded" if ok else "failed", "reason": reason})

    def add_event(self, service_id: str, type: str, details: dict[str, Any]) -> str:
        """Record a Render event (newest first); a `server_failed` reason gets Render's required `evicted`."""
        with self.edit():
            rec = self.record("render", service_id)
            details = copy.deepcopy(details)
            if type == "server_failed":
                details.setdefault("instanceID", f"{service_id}-" + "".join(secrets.choice(_ALNUM) for _ in range(5)))
                details.setdefault("reason", {}).setdefault("evicted", False)
            event_id = render_id("evt")
            rec["events"].insert(0, {"id": event_id, "timestamp": now(), "serviceId": service_id, "type": type,
                                     "details": details})
            return event_id

    def set_suspended(self, service_id: str, suspended: bool) -> None:
        with self.edit():
            rec = self.record("render", service_id)
            rec.update(suspended="suspended" if suspended else "not_suspended",
                       suspenders=["user"] if suspended else [], updatedAt=now())
            self.add_event(service_id, "service_suspended" if suspended else "service_resumed", {})

    def record(self, provider: str, resource_id: str | None) -> dict[str, Any]:
        """A service's or site's stored record (call inside `view`/`edit`); KeyError when there is none."""
        rec = self._records(provider).get(resource_id or "")
        if rec is None:
            raise KeyError(f"no {provider} resource {resource_id!r}")
        return rec

    def _records(self, provider: str) -> dict[str, dict[str, Any]]:
        if provider not in ("render", "netlify"):
            raise ValueError(f"unknown provider {provider!r}")
        return self.data["render"]["services"] if provider == "render" else self.data["netlify"]["sites"]

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def _refresh(self) -> None:
        if self._depth:
            return  # inside a change: the file is ours until it is saved
        current = self._signature()
        if current is not None and current != self._seen:
            self.data = json.loads(self.path.read_text())
            self._seen = current

    def _lock_file(self):
        """An exclusive lock on `<state>.lock`, so two processes never interleave a read-change-save."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
        handle = os.fdopen(fd, "r+")
        fcntl.flock(handle, fcntl.LOCK_EX)
        return handle


def netlify_value(context: str, value: str) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "value": value, "context": context, "context_parameter": ""}


def netlify_var(key: str, value: str, is_secret: bool = False) -> dict[str, Any]:
    """A Netlify environment variable with one value for every context, as Netlify's API shapes it."""
    return {"key": key, "scopes": list(ALL_SCOPES), "values": [netlify_value("all", value)], "is_secret": is_secret,
            "updated_at": now(), "updated_by": {"id": "sandbox", "full_name": "Sandbox", "email": "sandbox@localhost",
                                                "avatar_url": ""}}


def production_value(var: dict[str, Any]) -> str | None:
    """The value a production deploy gets, as the Netlify CLI picks it: the first `all` or `production` one."""
    return next((v["value"] for v in var.get("values") or [] if v.get("context") in PRODUCTION), None)


def admin_url(name: str) -> str:
    return f"https://app.netlify.com/sites/{name}"


def serve(store: HostedStore, render_port: int, netlify_port: int) -> list[ThreadingHTTPServer]:
    """Start the Render fake and the Netlify fake on 127.0.0.1, each in a daemon thread; returns the servers
    (call `shutdown()` and `server_close()` on each to stop)."""
    from pipectl.sandbox.hosted_api import make_server

    servers = [make_server(store, "render", render_port), make_server(store, "netlify", netlify_port)]
    for server in servers:
        threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True,
                         name=f"{server.provider} fake").start()
    return servers


def main(argv: list[str] | None = None) -> None:
    import signal

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--render-port", type=int, required=True)
    parser.add_argument("--netlify-port", type=int, required=True)
    opts = parser.parse_args(argv)
    store = HostedStore.load(opts.state)
    store.save()
    servers = serve(store, opts.render_port, opts.netlify_port)
    print(f"hosted fakes: Render on http://127.0.0.1:{opts.render_port}/v1, Netlify on "
          f"http://127.0.0.1:{opts.netlify_port}/api/v1", file=sys.stderr, flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    for server in servers:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main()
