"""service.env — each hosted service has the variables it needs, and runs."""

from __future__ import annotations

from pipectl.interface import Check, Context
from pipectl.model import Finding


class ServiceEnv(Check):
    """Detects: a hosted service (`[[services]]`: a Render service, a Netlify site, any `pipectl.providers`
    plugin) whose environment there lacks a required variable or holds it empty, or that the provider reports
    suspended, crashing or with a failed last deploy. Names only: values the API returns are never shown.

    Why it matters: in the second incident the push endpoint on Netlify and the subscriber on Render ran
    without their AWS keys — the first answered 201 while queueing nothing, the second crashed at start —
    and nothing on pipectl's own machine could see it.

    Fix: `pipectl service env set SERVICE KEY=env:NAME …` sets the variables there and redeploys the service.
    """

    id = "service.env"
    component = "hosting"
    libraries = ("httpx",)

    def applies(self, ctx: Context) -> str | None:
        return None if ctx.config.services else "no [[services]] configured"

    def run(self, ctx: Context) -> list[Finding]:
        return [self._judge(ctx, service) for service in ctx.config.services]

    def _judge(self, ctx: Context, service) -> Finding:
        from pipectl.connectors.hosting import ProviderError, ServiceStatus
        from pipectl.errors import UsageError
        from pipectl.services import provider_for, set_command

        where = f"{service.name} ({service.provider})"
        common = {"subject": service.name, "severity": service.severity}
        try:
            provider = provider_for(service, ctx.environ, ctx.timeout)
            info = provider.service(service.id)
            env = provider.env(service.id)
        except UsageError as exc:
            return self.error(str(exc), **common, advice="Set the provider's API token in the environment.")
        except ProviderError as exc:
            return self.error(f"{where}: {exc}", **common, evidence={"provider": service.provider})
        missing = [key for key in service.required_env if not env.get(key, "").strip()]
        evidence = {"provider": service.provider, "status": info.status.value,
                    **({"missing": missing} if missing else {}), **({"detail": info.detail} if info.detail else {})}
        running = info.status in (ServiceStatus.RUNNING, ServiceStatus.DEPLOYING)
        state = "" if running else f" — {info.detail or info.status.value}"
        if missing:
            return self.fail(
                f"{where}: {', '.join(missing)} not set there{state}", **common, evidence=evidence,
                impact=f"{service.name} runs without {', '.join(missing)}: what needs them fails or, worse, "
                       "fails silently.",
                fix=set_command(ctx.config, service.name, missing))
        if info.status in (ServiceStatus.SUSPENDED, ServiceStatus.CRASHED, ServiceStatus.DEPLOY_FAILED):
            return self.fail(f"{where}: {info.status.value}{': ' + info.detail if info.detail else ''}", **common,
                             evidence=evidence, impact=f"{service.name} is not doing its work.",
                             advice=_advice(info.status, service, info.dashboard_url))
        return self.ok(f"{where}: {info.status.value}, {len(service.required_env)} required variable(s) set",
                       **common, evidence=evidence)


def _advice(status, service, dashboard: str) -> str:
    from pipectl.connectors.hosting import ServiceStatus

    where = dashboard or f"the {service.provider} dashboard"
    if status is ServiceStatus.SUSPENDED:
        return f"Resume {service.name} in {where} (or through its API)."
    return f"Read {service.name}'s logs in {where} for why it exits; once fixed, redeploy it there."
