"""Render: services, their environment variables, deploys and events through Render's public REST API.

Paths and shapes follow Render's published OpenAPI document (https://api.render.com/v1): list endpoints
answer `[{"<resource>": {...}, "cursor": "..."}]` and take `limit` (at most 100) and `cursor` — the
cursor of the last item of the previous page; a page with no items ends the list.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from pipectl.connectors.hosting import (
    MAX_PAGES,
    Provider,
    ProviderError,
    ProviderNotFound,
    ServiceInfo,
    ServiceStatus,
    parse_time,
)
from pipectl.secrets import register

PAGE = 100
IN_PROGRESS = frozenset({"created", "queued", "build_in_progress", "update_in_progress", "pre_deploy_in_progress"})
FAILED = frozenset({"build_failed", "update_failed", "pre_deploy_failed", "canceled"})
"""A canceled deploy never went live: for whoever asked for it, it failed."""
CRASH_EVENTS = ("server_failed", "server_available")


class Render(Provider):
    """Render's API: a service id is `srv-…`; the token is an API key from the account settings."""

    name = "render"
    label = "Render"
    token_env = "RENDER_API_KEY"
    api_url_env = "RENDER_API_URL"
    default_api_url = "https://api.render.com/v1"

    def service(self, resource_id: str) -> ServiceInfo:
        svc = self._service(resource_id)
        name, url = str(svc.get("name") or resource_id), str(svc.get("dashboardUrl") or "")
        if svc.get("suspended") == "suspended":
            by = ", ".join(svc.get("suspenders") or []) or "unknown"
            return ServiceInfo(name, ServiceStatus.SUSPENDED, f"suspended (by {by})", url)
        deploys = self._get(f"/services/{_seg(resource_id)}/deploys", "list deploys", {"limit": 1})[0]
        if not deploys:
            return ServiceInfo(name, ServiceStatus.UNKNOWN, "no deploys yet", url)
        status, detail = self._judge(resource_id, deploys[0].get("deploy") or {})
        return ServiceInfo(name, status, detail, url)

    def env(self, resource_id: str) -> dict[str, str]:
        found: dict[str, str] = {}
        for item in self._pages(f"/services/{_seg(resource_id)}/env-vars", "list environment variables"):
            var = item.get("envVar") or {}
            key, value = var.get("key"), var.get("value")
            if isinstance(key, str) and isinstance(value, str):
                register(key, value)
                found[key] = value
        return found

    def set_env(self, resource_id: str, key: str, value: str) -> None:
        register(key, value)
        path = f"/services/{_seg(resource_id)}/env-vars/{_seg(key)}"
        self._request("PUT", path, f"set environment variable {key}", body={"value": value}, hide=(value,))

    def delete_env(self, resource_id: str, key: str) -> None:
        try:
            self._request("DELETE", f"/services/{_seg(resource_id)}/env-vars/{_seg(key)}",
                          f"delete environment variable {key}")
        except ProviderNotFound:
            self._service(resource_id)  # the service is there: so the variable was not

    def deploy(self, resource_id: str) -> str:
        answer, response = self._request("POST", f"/services/{_seg(resource_id)}/deploys", "trigger a deploy",
                                         body={"clearCache": "do_not_clear"})
        if response.status_code == 202 or not isinstance(answer, dict) or not answer.get("id"):
            raise ProviderError(f"Render API: trigger a deploy of {resource_id}: the deploy was queued behind "
                                f"another one and has no id yet; look again in a minute")
        return str(answer["id"])

    def deploy_state(self, resource_id: str, deploy_id: str) -> ServiceStatus:
        deploy = self._get(f"/services/{_seg(resource_id)}/deploys/{_seg(deploy_id)}", f"read deploy {deploy_id}")[0]
        return self._judge(resource_id, deploy if isinstance(deploy, dict) else {})[0]

    def resources(self) -> list[tuple[str, str]]:
        return [(str(svc["id"]), str(svc.get("name") or svc["id"])) for item in self._pages("/services", "list services")
                if (svc := item.get("service") or {}).get("id")]

    def _service(self, resource_id: str) -> dict[str, Any]:
        svc = self._get(f"/services/{_seg(resource_id)}", f"read service {resource_id}")[0]
        if not isinstance(svc, dict):
            raise ProviderError(f"Render API: read service {resource_id}: the answer is not a service")
        return svc

    def _judge(self, resource_id: str, deploy: dict[str, Any]) -> tuple[ServiceStatus, str]:
        """A deploy's status, and for a live one whether the server failed since it went live."""
        status, did = str(deploy.get("status") or ""), str(deploy.get("id") or "?")
        if status in FAILED:
            return ServiceStatus.DEPLOY_FAILED, f"deploy {did} {status}"
        if status in IN_PROGRESS:
            return ServiceStatus.DEPLOYING, f"deploy {did} {status}"
        if status not in ("live", "deactivated"):
            return ServiceStatus.UNKNOWN, f"deploy {did} {status or 'without a status'}"
        crash = self._crash_since(resource_id, parse_time(deploy.get("finishedAt")))
        if crash:
            return ServiceStatus.CRASHED, crash
        # deactivated: it went live, and a newer deploy replaced it since
        return ServiceStatus.RUNNING, f"deploy {did} {status}"

    def _crash_since(self, resource_id: str, since: datetime | None) -> str:
        """'server failed …' when the newest server event since `since` is a failure, else ''."""
        params = {"startTime": since.isoformat().replace("+00:00", "Z")} if since else {}
        events = [item.get("event") or {} for item in
                  self._pages(f"/services/{_seg(resource_id)}/events", "list events", params)]
        server = [(when, e) for e in events if e.get("type") in CRASH_EVENTS
                  and (when := parse_time(e.get("timestamp"))) is not None and (since is None or when > since)]
        if not server:
            return ""
        when, event = max(server, key=lambda pair: pair[0])
        if event.get("type") != "server_failed":
            return ""
        reason = (event.get("details") or {}).get("reason") or {}
        return f"server failed{_why(reason)} at {event.get('timestamp')}"

    def _get(self, path: str, what: str, params: Any = None) -> Any:
        return self._request("GET", path, what, params=params)

    def _pages(self, path: str, what: str, params: dict[str, Any] | None = None):
        """Every item of a cursor-paginated list, page after page until an empty one."""
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            query = {**(params or {}), "limit": PAGE, **({"cursor": cursor} if cursor else {})}
            page = self._get(path, what, query)[0]
            if not isinstance(page, list):
                raise ProviderError(f"Render API: {what}: the answer is not a list")
            if not page:
                return
            yield from page
            last = page[-1].get("cursor") if isinstance(page[-1], dict) else None
            if not last or last == cursor:
                return
            cursor = str(last)
        raise ProviderError(f"Render API: {what}: more than {MAX_PAGES} pages; stopped")


def _why(reason: dict[str, Any]) -> str:
    """` (exit code 1)`, ` (out of memory)`… from a server_failed event's reason."""
    if reason.get("nonZeroExit") is not None:
        return f" (exit code {reason['nonZeroExit']})"
    if reason.get("oomKilled"):
        return " (out of memory)"
    if reason.get("unhealthy"):
        return " (unhealthy)"
    if reason.get("evicted"):
        return " (evicted)"
    return ""


def _seg(value: str) -> str:
    return quote(str(value), safe="")
