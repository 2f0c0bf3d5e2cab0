"""prefect.api — the Prefect API answers and accepts our credentials.

Also home of the small helpers the other `prefect.*` checks share (which API, how much time is left).
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable
from typing import Any

from pipectl.connectors import prefect as prefect_api
from pipectl.connectors.http import safe_url
from pipectl.errors import Unauthorized, Unreachable
from pipectl.interface import Check, Context
from pipectl.model import Finding, Severity

_MARGIN = 0.9
"""Share of the check's timeout handed to the connector, so our own message wins over the runner's."""


def skip_reason(ctx: Context) -> str | None:
    """Why no Prefect check can run here (no API configured), or None."""
    prefect = ctx.config.prefect
    if prefect.api_url:
        return None
    variable = ctx.config.source.unresolved.get("prefect.api_url")
    if variable:
        return f"prefect.api_url refers to {variable}, which is not set (export it or add it to .env)"
    return "no [prefect] api_url in the config"


def deployments_skip_reason(ctx: Context) -> str | None:
    """skip_reason, or that the config lists no deployments to look at."""
    reason = skip_reason(ctx)
    if reason is None and not ctx.config.prefect.deployments:
        return "the config lists no [[prefect.deployments]]"
    return reason


def api(ctx: Context) -> tuple[str, str | None]:
    """(api_url, api_key) for the connector; the key is None when not configured."""
    return ctx.config.prefect.api_url or "", ctx.config.prefect.api_key or None


def prefect_cli(ctx: Context, *args: str) -> str:
    """A `prefect …` command aimed at the configured API, as printed in a fix: it runs as is from any shell
    (the key, when one is needed, comes from the variable the config names, never written out)."""
    url, key = api(ctx)
    env = f"PREFECT_API_URL={shlex.quote(safe_url(url))}"
    if key:
        variable = ctx.config.source.references.get("prefect.api_key", "PREFECT_API_KEY")
        env += f' PREFECT_API_KEY="${variable}"'
    return " ".join([env, "prefect", *(shlex.quote(a) for a in args)])


def prefect_curl(ctx: Context, method: str, path: str, body: dict) -> str:
    """A `curl` call of the configured API, for changes Prefect's CLI cannot make; runnable as printed (the
    key, when one is needed, comes from the variable the config names)."""
    url, key = api(ctx)
    variable = ctx.config.source.references.get("prefect.api_key", "PREFECT_API_KEY")
    auth = f' -H "Authorization: Bearer ${variable}"' if key else ""
    return (f"curl -fsS --retry 3 -o /dev/null -X {method} {shlex.quote(safe_url(url).rstrip('/') + path)}{auth} "
            f"-H 'Content-Type: application/json' -d {shlex.quote(json.dumps(body))}")


def runs_text(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


class Budget:
    """The time left of a check's timeout, to hand to each connector call in turn."""

    def __init__(self, ctx: Context) -> None:
        self.deadline = time.monotonic() + ctx.timeout * _MARGIN

    def left(self) -> float:
        return max(0.5, self.deadline - time.monotonic())


class DeploymentsCheck(Check):
    """Base of the checks that look at each configured deployment: skipped, with the reason, when there is
    no Prefect API to ask or no deployment to look at. Subclasses write `run` and the docstring."""

    component = "prefect"
    severity = Severity.P0
    libraries = ("httpx",)

    def applies(self, ctx: Context) -> str | None:
        return deployments_skip_reason(ctx)

    def per_deployment(self, ctx: Context, judge: Callable[[Budget, Any, Any], Finding]) -> list[Finding]:
        """`judge(budget, entry, deployment)` for each configured deployment that is registered; the others
        are skipped, pointing at prefect.deployment, which reports them."""
        budget = Budget(ctx)
        findings = []
        for entry in ctx.config.prefect.deployments:
            deployment = prefect_api.read_deployment(*api(ctx), entry.name, timeout=budget.left())
            if deployment is None:
                findings.append(self.skipped(f"deployment {entry.name} is not registered (see prefect.deployment)",
                                             subject=entry.name))
            else:
                findings.append(judge(budget, entry, deployment))
        return findings


class PrefectApi(Check):
    """Detects: a Prefect API (Cloud workspace or self-hosted server) that does not answer, answers
    with errors, or refuses the configured API key (HTTP 401/403). The server version goes in the
    evidence.

    Why it matters: every deployment, work pool and run check — and every scheduled run of the
    pipeline — goes through this API; when it is down or refuses the key, nothing is orchestrated.

    Reachability and the key are judged by an authenticated read (listing work pools), as Prefect Cloud
    may answer `/health` without a key or not at all.

    Fix: check `prefect.api_url` in pipectl.toml and that the server is up; for a refused key, set
    PREFECT_API_KEY to a valid key of that workspace.
    """

    id = "prefect.api"
    component = "prefect"
    severity = Severity.P0
    libraries = ("httpx",)

    def applies(self, ctx: Context) -> str | None:
        return skip_reason(ctx)

    def run(self, ctx: Context) -> list[Finding]:
        url, key = api(ctx)
        where = safe_url(url)
        key_variable = ctx.config.source.references.get("prefect.api_key")
        try:
            version = prefect_api.api_health(url, key, timeout=Budget(ctx).left())
        except Unauthorized as exc:
            if key:
                summary = f"Prefect API key refused by {where}"
                advice = f"Set {key_variable or 'PREFECT_API_KEY'} to a valid API key of this workspace."
            else:
                summary = f"Prefect at {where} requires an API key and none is configured"
                advice = 'Add api_key = "env:PREFECT_API_KEY" to [prefect] and export PREFECT_API_KEY.'
            unresolved = ctx.config.source.unresolved.get("prefect.api_key")
            if unresolved:
                summary += f" ({unresolved} is not set)"
            return [self.fail(
                summary,
                impact="pipectl and the pipeline's own clients cannot read or schedule anything in Prefect.",
                evidence={"url": where, "error": str(exc), "api_key_configured": bool(key)},
                advice=advice,
            )]
        except Unreachable as exc:
            return [self.error(
                str(exc),
                impact="No deployment can be scheduled or run, and the other Prefect checks cannot tell anything.",
                evidence={"url": where},
                advice=f"Start the Prefect server at {where}, or correct prefect.api_url in "
                       f"{ctx.config.source.path}.",
            )]
        return [self.ok(
            f"Prefect API at {where} answers (server {version})",
            evidence={"url": where, "server_version": version, "api_key_configured": bool(key)},
        )]
