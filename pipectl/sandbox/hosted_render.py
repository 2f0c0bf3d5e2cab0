"""Render's public REST API, as the sandbox fake answers it (routes for `hosted_api`).

Paths, fields and enums follow Render's published OpenAPI document (servers: https://api.render.com/v1;
api-docs.render.com): lists are `[{"<resource>": {...}, "cursor": "..."}]` with `limit` (1-100,
default 20) and `cursor` (resume after that item); errors are `{"id": ..., "message": ...}`.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pipectl.sandbox.hosted_api import Answer, ApiError, Request, request_deploy
from pipectl.sandbox.hosted_fake import now

_DASHBOARD = {"web_service": "web", "background_worker": "worker", "private_service": "pserv",
              "cron_job": "cron", "static_site": "static"}


def _service(req: Request, sid: str) -> dict[str, Any]:
    rec = req.store.data["render"]["services"].get(sid)
    if rec is None:
        raise ApiError(404, "Unable to find the requested resource.")
    return rec


def render_service(rec: dict[str, Any], owner: str) -> dict[str, Any]:
    """A service as Render's API shows it (the stored record keeps only what the sandbox changes)."""
    details: dict[str, Any] = {
        "env": "python", "runtime": "python", "region": "oregon", "plan": "starter", "buildPlan": "starter",
        "numInstances": 1, "pullRequestPreviewsEnabled": "no",
        "envSpecificDetails": {"buildCommand": "pip install -r requirements.txt", "startCommand": "python main.py"}}
    if rec["type"] in ("web_service", "private_service"):
        details.update(healthCheckPath="", openPorts=[{"port": 10000, "protocol": "TCP"}],
                       url=f"https://{rec['slug']}.onrender.com")
    return {"id": rec["id"], "autoDeploy": "no", "branch": "main", "createdAt": rec["createdAt"],
            "dashboardUrl": f"https://dashboard.render.com/{_DASHBOARD.get(rec['type'], 'web')}/{rec['id']}",
            "name": rec["name"], "notifyOnFail": "default", "ownerId": owner,
            "repo": "https://github.com/pipectl/sandbox", "rootDir": "", "slug": rec["slug"],
            "suspended": rec["suspended"], "suspenders": list(rec["suspenders"]), "type": rec["type"],
            "updatedAt": rec["updatedAt"], "serviceDetails": details}


def _cursor_page(req: Request, items: list[Any], key: str, ident: Callable[[Any], str]) -> Answer:
    """Render's pagination: each item beside its cursor; `cursor` resumes after that item."""
    limit, start = req.number("limit", 20, 1, 100), 0
    if cursor := req.one("cursor"):
        try:
            after = base64.b64decode(cursor, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise ApiError(400, "invalid cursor") from None
        ids = [ident(item) for item in items]
        if after not in ids:
            raise ApiError(400, "invalid cursor")
        start = ids.index(after) + 1
    page = items[start:start + limit]
    return 200, [{key: item, "cursor": base64.b64encode(ident(item).encode()).decode()} for item in page], {}


def render_list_services(req: Request) -> Answer:
    names, types, suspended = req.many("name"), req.many("type"), req.many("suspended")
    owner = req.store.data["render"]["owner_id"]
    found = [render_service(rec, owner) for rec in req.store.data["render"]["services"].values()
             if (not names or rec["name"] in names) and (not types or rec["type"] in types)
             and (not suspended or rec["suspended"] in suspended)]
    return _cursor_page(req, found, "service", lambda s: s["id"])


def render_get_service(req: Request, sid: str) -> Answer:
    return 200, render_service(_service(req, sid), req.store.data["render"]["owner_id"]), {}


def render_list_env(req: Request, sid: str) -> Answer:
    pairs = [{"key": k, "value": v} for k, v in _service(req, sid)["env"].items()]
    return _cursor_page(req, pairs, "envVar", lambda v: v["key"])


def _env_value(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("value"), str):
        return body["value"]
    if isinstance(body, dict) and body.get("generateValue") is True:
        return base64.b64encode(secrets.token_bytes(24)).decode()
    raise ApiError(400, "body must be {\"value\": string} or {\"generateValue\": true}")


def render_replace_env(req: Request, sid: str) -> Answer:
    rec = _service(req, sid)
    if not isinstance(req.body, list) or not all(isinstance(v, dict) and isinstance(v.get("key"), str)
                                                 for v in req.body):
        raise ApiError(400, "body must be a list of environment variables")
    rec["env"] = {v["key"]: _env_value(v) for v in req.body}
    rec["updatedAt"] = now()
    return render_list_env(req, sid)


def render_env_var(req: Request, sid: str, key: str, method: str) -> Answer:
    rec = _service(req, sid)
    if method == "PUT":
        rec["env"][key] = _env_value(req.body)
        return 200, {"key": key, "value": rec["env"][key]}, {}
    if key not in rec["env"]:
        raise ApiError(404, "Unable to find the requested resource.")
    if method == "DELETE":
        del rec["env"][key]
        return 204, None, {}
    return 200, {"key": key, "value": rec["env"][key]}, {}


def render_list_deploys(req: Request, sid: str) -> Answer:
    wanted = req.many("status")
    found = [d for d in _service(req, sid)["deploys"] if not wanted or d["status"] in wanted]
    return _cursor_page(req, found, "deploy", lambda d: d["id"])


def render_get_deploy(req: Request, sid: str, did: str) -> Answer:
    deploy = next((d for d in _service(req, sid)["deploys"] if d["id"] == did), None)
    if deploy is None:
        raise ApiError(404, "Unable to find the requested resource.")
    return 200, deploy, {}


def render_action(req: Request, sid: str, action: str) -> Answer:
    _service(req, sid)
    if action == "deploys":
        return 201, request_deploy(req.store, "render", sid, "api"), {}
    if action == "restart":
        request_deploy(req.store, "render", sid, "other", restart=True)
        return 200, None, {}
    req.store.set_suspended(sid, action == "suspend")
    return 202, None, {}


def render_list_events(req: Request, sid: str) -> Answer:
    types, start, end = req.many("type"), req.one("startTime"), req.one("endTime")
    found = [e for e in _service(req, sid)["events"] if (not types or e["type"] in types)
             and (not start or _later_or_same(e["timestamp"], start))
             and (not end or _later_or_same(end, e["timestamp"]))]
    return _cursor_page(req, found, "event", lambda e: e["id"])


def _later_or_same(a: str, b: str) -> bool:
    try:
        return datetime.fromisoformat(a) >= datetime.fromisoformat(b)
    except (TypeError, ValueError):
        raise ApiError(400, "times must be ISO 8601 date-times with a time zone") from None


_SRV = r"/v1/services/([^/]+)"
RENDER = [
    ("GET", r"/v1/services", render_list_services),
    ("GET", _SRV, render_get_service),
    ("GET", _SRV + r"/env-vars", render_list_env),
    ("PUT", _SRV + r"/env-vars", render_replace_env),
    ("GET|PUT|DELETE", _SRV + r"/env-vars/([^/]+)", render_env_var),
    ("GET", _SRV + r"/deploys", render_list_deploys),
    ("GET", _SRV + r"/deploys/([^/]+)", render_get_deploy),
    ("POST", _SRV + r"/(deploys|restart|suspend|resume)", render_action),
    ("GET", _SRV + r"/events", render_list_events),
]

