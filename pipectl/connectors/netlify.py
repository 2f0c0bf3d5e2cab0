"""Netlify: sites, their environment variables and deploys through Netlify's public REST API.

Paths and shapes follow Netlify's published OpenAPI document (github.com/netlify/open-api, swagger.yml,
base https://api.netlify.com/api/v1). Environment variables belong to an account (a team): they are read
with `GET /accounts/{account_id}/env?site_id=…` (one answer: the spec gives that list no pages), the
account id taken once from the site. Other lists take `page` and `per_page`; the next page is the one
the `Link: <…>; rel="next"` header names (only its page number is used: the token is never sent to a
host the header names).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from pipectl.connectors.hosting import (
    HIDDEN,
    MAX_PAGES,
    Provider,
    ProviderError,
    ProviderNotFound,
    ServiceInfo,
    ServiceStatus,
)
from pipectl.secrets import register

PER_PAGE = 100
BUILDING = frozenset({"new", "pending_review", "accepted", "enqueued", "building", "uploading", "uploaded",
                      "preparing", "prepared", "processing", "processed", "retrying"})
FAILED = frozenset({"error", "rejected"})
PRODUCTION = ("all", "production")
"""The values a production deploy gets: one for every context, or one for production."""
SECRET_CONTEXTS = ("production", "deploy-preview", "branch-deploy", "dev-server", "dev")
"""A secret needs explicit contexts (never `all`); like `netlify env:set --secret`, dev gets an empty value."""
_NEXT = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?')


class Netlify(Provider):
    """Netlify's API: a site id is a UUID; the token is a personal access token."""

    name = "netlify"
    label = "Netlify"
    token_env = "NETLIFY_AUTH_TOKEN"
    api_url_env = "NETLIFY_API_URL"
    default_api_url = "https://api.netlify.com/api/v1"

    def __init__(self, token: str, api_url: str | None = None, timeout: float = 5.0) -> None:
        super().__init__(token, api_url, timeout)
        self._accounts: dict[str, str] = {}

    def service(self, resource_id: str) -> ServiceInfo:
        site = self._site(resource_id)
        name, url = str(site.get("name") or resource_id), str(site.get("admin_url") or "")
        deploys = self._get(f"/sites/{_seg(resource_id)}/deploys", "list deploys", {"per_page": 1, "page": 1})[0]
        if not deploys:
            return ServiceInfo(name, ServiceStatus.UNKNOWN, "no deploys yet", url)
        deploy = deploys[0]
        status = _status(deploy)
        detail = f"deploy {deploy.get('id', '?')} {deploy.get('state') or 'without a state'}"
        if status is ServiceStatus.DEPLOY_FAILED and deploy.get("error_message"):
            detail += f": {' '.join(str(deploy['error_message']).split())[:200]}"
        return ServiceInfo(name, status, detail, url)

    def env(self, resource_id: str) -> dict[str, str]:
        found: dict[str, str] = {}
        path = f"/accounts/{_seg(self._account(resource_id))}/env"
        listed = self._get(path, "list environment variables", {"site_id": resource_id})[0]  # not paginated
        if not isinstance(listed, list):
            raise ProviderError("Netlify API: list environment variables: the answer is not a list")
        for var in listed:
            key = var.get("key") if isinstance(var, dict) else None
            if not isinstance(key, str):
                continue
            if var.get("is_secret"):
                found[key] = HIDDEN  # write-only on Netlify: only code running there reads it
                continue
            value = _production_value(var.get("values") or [])
            if value is not None:
                register(key, value)
                found[key] = value
        return found

    def set_env(self, resource_id: str, key: str, value: str) -> None:
        register(key, value)
        account, what = self._account(resource_id), f"set environment variable {key}"
        path = f"/accounts/{_seg(account)}/env"
        try:
            current = self._get(f"{path}/{_seg(key)}", f"read environment variable {key}",
                                {"site_id": resource_id})[0]
        except ProviderNotFound:
            current = None
        if not isinstance(current, dict):
            body = [{"key": key, "values": [{"context": "all", "value": value}]}]
            self._request("POST", path, what, params={"site_id": resource_id}, body=body, hide=(value,))
            return
        secret = bool(current.get("is_secret"))
        values = ([{"context": c, "value": "" if c == "dev" else value} for c in SECRET_CONTEXTS] if secret
                  else [{"context": "all", "value": value}])
        body = {"key": key, "scopes": current.get("scopes") or [], "values": values, "is_secret": secret}
        if not body["scopes"]:
            del body["scopes"]
        self._request("PUT", f"{path}/{_seg(key)}", what, params={"site_id": resource_id}, body=body,
                      hide=(value,))

    def delete_env(self, resource_id: str, key: str) -> None:
        path = f"/accounts/{_seg(self._account(resource_id))}/env/{_seg(key)}"  # the site is known to exist
        try:
            self._request("DELETE", path, f"delete environment variable {key}", params={"site_id": resource_id})
        except ProviderNotFound:
            pass  # not set on this site: nothing to delete

    def deploy(self, resource_id: str) -> str:
        build = self._request("POST", f"/sites/{_seg(resource_id)}/builds", "start a build")[0]
        if not isinstance(build, dict) or not build.get("deploy_id"):
            raise ProviderError(f"Netlify API: start a build of {resource_id}: the answer names no deploy")
        return str(build["deploy_id"])

    def deploy_state(self, resource_id: str, deploy_id: str) -> ServiceStatus:
        path = f"/sites/{_seg(resource_id)}/deploys/{_seg(deploy_id)}"
        deploy = self._get(path, f"read deploy {deploy_id}")[0]
        return _status(deploy if isinstance(deploy, dict) else {})

    def resources(self) -> list[tuple[str, str]]:
        return [(str(site["id"]), str(site.get("name") or site["id"]))
                for site in self._pages("/sites", "list sites", {"filter": "all"}) if site.get("id")]

    def _site(self, resource_id: str) -> dict[str, Any]:
        site = self._get(f"/sites/{_seg(resource_id)}", f"read site {resource_id}")[0]
        if not isinstance(site, dict):
            raise ProviderError(f"Netlify API: read site {resource_id}: the answer is not a site")
        if site.get("account_id"):
            self._accounts[resource_id] = str(site["account_id"])
        return site

    def _account(self, resource_id: str) -> str:
        """The account (team) the site belongs to: env variables live there. Asked once per site."""
        if resource_id not in self._accounts:
            self._site(resource_id)
        if resource_id not in self._accounts:
            raise ProviderError(f"Netlify API: read site {resource_id}: the answer names no account_id")
        return self._accounts[resource_id]

    def _get(self, path: str, what: str, params: Any = None) -> Any:
        return self._request("GET", path, what, params=params)

    def _pages(self, path: str, what: str, params: dict[str, Any]):
        """Every item of a list, page after page while the Link header names a next page (or, without a
        Link header, while pages come back full)."""
        page = 1
        for _ in range(MAX_PAGES):
            items, response = self._get(path, what, {**params, "page": page, "per_page": PER_PAGE})
            if items is None:
                return
            if not isinstance(items, list):
                raise ProviderError(f"Netlify API: {what}: the answer is not a list")
            yield from items
            link = response.headers.get("link")
            following = _next_page(link) if link is not None else (page + 1 if len(items) >= PER_PAGE else None)
            if following is None or following <= page or not items:
                return
            page = following
        raise ProviderError(f"Netlify API: {what}: more than {MAX_PAGES} pages; stopped")


def _status(deploy: dict[str, Any]) -> ServiceStatus:
    state = str(deploy.get("state") or "")
    if state == "ready":
        return ServiceStatus.RUNNING
    if state in FAILED:
        return ServiceStatus.DEPLOY_FAILED
    if state in BUILDING:
        return ServiceStatus.DEPLOYING
    return ServiceStatus.UNKNOWN


def _production_value(values: list[Any]) -> str | None:
    """The value a production deploy gets, picked as the Netlify CLI does (`all` or `production`)."""
    for item in values:
        if isinstance(item, dict) and item.get("context") in PRODUCTION and isinstance(item.get("value"), str):
            return item["value"]
    return None


def _next_page(link: str) -> int | None:
    match = _NEXT.search(link)
    if not match:
        return None
    pages = parse_qs(urlsplit(match.group(1)).query).get("page") or []
    return int(pages[0]) if pages and pages[0].isdigit() else None


def _seg(value: str) -> str:
    return quote(str(value), safe="")
