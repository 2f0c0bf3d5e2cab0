"""Netlify's public REST API, as the sandbox fake answers it (routes for `hosted_api`).

Paths and fields follow Netlify's published swagger.yml (github.com/netlify/open-api; base
https://api.netlify.com/api/v1): lists take `page` and `per_page` and answer with a `Link` header;
environment variables live under `/accounts/{account_id}/env` with `site_id`; a secret's values are
write-only (only its `dev` values are shown); errors are `{"code": ..., "message": ...}`.
"""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import urlencode

from pipectl.sandbox.hosted_api import Answer, ApiError, Request, request_deploy
from pipectl.sandbox.hosted_fake import ALL_SCOPES, admin_url, netlify_value, netlify_var, now


def _site(req: Request, site_id: str | None) -> dict[str, Any]:
    rec = req.store.data["netlify"]["sites"].get(site_id or "")
    if rec is None:
        raise ApiError(404, "Not Found")
    return rec


def netlify_site(rec: dict[str, Any], account: dict[str, str]) -> dict[str, Any]:
    published = next((copy.deepcopy(d) for d in rec["deploys"] if d["state"] == "ready"), None)
    return {"id": rec["id"], "name": rec["name"], "state": "current", "plan": "nf_team_dev", "url": rec["url"],
            "ssl_url": rec["url"], "admin_url": admin_url(rec["name"]), "created_at": rec["created_at"],
            "updated_at": rec["updated_at"], "ssl": True, "account_id": account["id"],
            "account_name": account["name"], "account_slug": account["slug"], "published_deploy": published,
            "build_settings": {"repo_branch": "main", "cmd": "", "dir": ""}}


def _page(req: Request, items: list[Any], path: str) -> Answer:
    """Netlify's pagination: `page` (from 1) and `per_page`; a `Link` header names next, last, prev, first."""
    page, per_page = req.number("page", 1, 1, 1 << 30), min(req.number("per_page", 100, 1, 1 << 30), 100)
    last = max(1, -(-len(items) // per_page))
    rels = {"next": page + 1} if page < last else {}
    rels |= {"last": last} | ({"first": 1, "prev": min(page - 1, last)} if page > 1 else {})
    query = {k: v[0] for k, v in req.query.items() if k not in ("page", "per_page")}
    link = ", ".join(f'<{req.base}{path}?{urlencode({**query, "page": n, "per_page": per_page})}>; rel="{rel}"'
                     for rel, n in rels.items())
    return 200, items[(page - 1) * per_page:page * per_page], {"Link": link}


def netlify_list_sites(req: Request) -> Answer:
    name, account = (req.one("name") or "").lower(), req.store.data["netlify"]["account"]
    found = [netlify_site(s, account) for s in req.store.data["netlify"]["sites"].values() if name in s["name"].lower()]
    return _page(req, found, "/api/v1/sites")


def netlify_get_site(req: Request, site_id: str) -> Answer:
    return 200, netlify_site(_site(req, site_id), req.store.data["netlify"]["account"]), {}


def _shown(var: dict[str, Any]) -> dict[str, Any]:
    """A variable as the API shows it: a secret's values are write-only (only `dev` values are readable)."""
    shown = copy.deepcopy(var)
    if shown.get("is_secret"):
        for value in shown["values"]:
            if value.get("context") != "dev":
                value.pop("value", None)
    return shown


def _account_site(req: Request, account_id: str, need_site: bool = True) -> dict[str, Any] | None:
    account = req.store.data["netlify"]["account"]
    if account_id not in (account["id"], account["slug"]):
        raise ApiError(404, "Not Found")
    if req.one("site_id") is None and not need_site:
        return None
    if req.one("site_id") is None:
        raise ApiError(400, "the sandbox holds site environment variables only: give site_id")
    return _site(req, req.one("site_id"))


def netlify_list_env(req: Request, account_id: str | None = None, site_id: str | None = None) -> Answer:
    rec = _site(req, site_id) if site_id else _account_site(req, account_id or "", need_site=False)
    context, scope = req.one("context_name"), (req.one("scope") or "").replace("_", "-")
    found = [_shown(v) for v in (rec["env"] if rec else [])
             if (not scope or scope in v["scopes"])
             and (not context or any(x["context"] in ("all", context) for x in v["values"]))]
    return 200, found, {}


def _var_body(body: Any, key: str | None = None) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("key", key), str):
        raise ApiError(400, "an environment variable needs a key")
    values = body.get("values") or []
    if not isinstance(values, list) or not all(isinstance(v, dict) and isinstance(v.get("value", ""), str)
                                               for v in values):
        raise ApiError(400, "values must be a list of {context, value}")
    var = netlify_var(body.get("key", key), "", bool(body.get("is_secret")))
    var.update(scopes=list(body.get("scopes") or ALL_SCOPES),
               values=[{**netlify_value(v.get("context", "all"), v.get("value", "")),
                        "context_parameter": v.get("context_parameter", "")} for v in values])
    return var


def netlify_create_env(req: Request, account_id: str) -> Answer:
    rec = _account_site(req, account_id)
    if not isinstance(req.body, list):
        raise ApiError(400, "body must be a list of environment variables")
    created = [_var_body(item) for item in req.body]
    existing = {v["key"] for v in rec["env"]}
    if clash := [v["key"] for v in created if v["key"] in existing]:
        raise ApiError(400, f"environment variable {clash[0]} already exists")
    rec["env"] += created
    return 201, [_shown(v) for v in created], {}


def netlify_env_var(req: Request, account_id: str, key: str, method: str) -> Answer:
    rec = _account_site(req, account_id)
    var = next((v for v in rec["env"] if v["key"] == key), None)
    if var is None:
        raise ApiError(404, "Not Found")
    if method == "DELETE":
        rec["env"].remove(var)
        return 204, None, {}
    if method == "PUT":
        replacement = _var_body(req.body, key)
        var.clear()
        var.update(replacement)
    elif method == "PATCH":
        body = req.body if isinstance(req.body, dict) else {}
        if not isinstance(body.get("value"), str) or not body.get("context"):
            raise ApiError(400, "body must be {context, value}")
        where = (body["context"], body.get("context_parameter", ""))
        var["values"] = [v for v in var["values"] if (v["context"], v.get("context_parameter", "")) != where]
        var["values"].append({**netlify_value(body["context"], body["value"]), "context_parameter": where[1]})
        var["updated_at"] = now()
        return 201, _shown(var), {}
    return 200, _shown(var), {}


def netlify_list_deploys(req: Request, site_id: str) -> Answer:
    state = req.one("state")
    found = [d for d in _site(req, site_id)["deploys"] if not state or d["state"] == state]
    return _page(req, found, f"/api/v1/sites/{site_id}/deploys")


def netlify_get_deploy(req: Request, site_id: str | None, deploy_id: str) -> Answer:
    sites = [_site(req, site_id)] if site_id else list(req.store.data["netlify"]["sites"].values())
    deploy = next((d for s in sites for d in s["deploys"] if d["id"] == deploy_id), None)
    if deploy is None:
        raise ApiError(404, "Not Found")
    return 200, deploy, {}


def netlify_build(req: Request, site_id: str) -> Answer:
    _site(req, site_id)
    deploy = request_deploy(req.store, "netlify", site_id, "api")
    return 200, {"id": deploy["build_id"], "deploy_id": deploy["id"], "sha": None, "done": False, "error": None,
                 "created_at": deploy["created_at"]}, {}


_ACC = r"/api/v1/accounts/([^/]+)/env"
NETLIFY = [
    ("GET", r"/api/v1/sites", netlify_list_sites),
    ("GET", r"/api/v1/sites/([^/]+)", netlify_get_site),
    ("GET", r"/api/v1/sites/([^/]+)/env", lambda req, site: netlify_list_env(req, site_id=site)),
    ("GET", _ACC, netlify_list_env),
    ("POST", _ACC, netlify_create_env),
    ("GET|PUT|PATCH|DELETE", _ACC + r"/([^/]+)", netlify_env_var),
    ("GET", r"/api/v1/sites/([^/]+)/deploys", netlify_list_deploys),
    ("GET", r"/api/v1/sites/([^/]+)/deploys/([^/]+)", netlify_get_deploy),
    ("GET", r"/api/v1/deploys/([^/]+)", lambda req, did: netlify_get_deploy(req, None, did)),
    ("POST", r"/api/v1/sites/([^/]+)/builds", netlify_build),
]

