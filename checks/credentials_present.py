"""credentials.present — every component has the environment variables it needs."""

from __future__ import annotations

from pipectl.config import PipelineConfig
from pipectl.interface import Check, Context
from pipectl.model import Finding, Severity

_SECTION_COMPONENT = {"database": "database", "prefect": "prefect", "modal": "modal", "queues": "sqs", "aws": "sqs"}


class CredentialsPresent(Check):
    """Detects: environment variables a component needs that are unset or empty here — the ones
    listed under [credentials] and the ones the config references as `env:NAME`. Names only; values are
    never read into a finding. AWS keys that are not set pass when the AWS credential chain finds
    credentials elsewhere (a profile, SSO, an assumed role, an instance role).

    Why it matters: both incidents began with a credential that was simply not there (AWS keys on the
    frontend, Modal tokens in the deployment) and code that failed silently without it.

    Fix: set the variable (or add it to `.env`); for a Prefect deployment use a Secret block and
    `pipectl patch FLOW/DEPLOYMENT --env NAME=secret:BLOCK`.
    """

    id = "credentials.present"
    libraries = ("botocore.session",)
    component = "config"
    severity = Severity.P0

    def applies(self, ctx: Context) -> str | None:
        return None if required_by_component(ctx.config) else "the config names no credentials"

    def run(self, ctx: Context) -> list[Finding]:
        findings = []
        for component, names in required_by_component(ctx.config).items():
            missing = [n for n in names if not ctx.environ.get(n)]
            present = [n for n in names if ctx.environ.get(n)]
            chain = _aws_chain(ctx, missing) if component in ("aws", "sqs") else None
            if chain:
                findings.append(self.ok(
                    f"{component}: AWS credentials from {chain} ({', '.join(missing)} not set)", subject=component,
                    component=component, evidence={"source": chain, "not_set": missing, "present": present}))
            elif missing:
                findings.append(self.fail(
                    f"{component}: {', '.join(missing)} not set",
                    subject=component,
                    component=component,
                    impact=f"The {component} part of the pipeline cannot authenticate or be found.",
                    evidence={"missing": missing, **({"present": present} if present else {})},
                    advice=f"Set {', '.join(missing)} in the environment or the config's env file.",
                ))
            else:
                findings.append(self.ok(f"{component}: {len(present)} variable(s) set", subject=component,
                                        component=component, evidence={"present": present}))
        return findings


def required_by_component(config: PipelineConfig) -> dict[str, list[str]]:
    """Component → variable names, from [credentials] and from the config's own `env:` references."""
    required: dict[str, list[str]] = {}
    for key, name in config.source.references.items():
        component = _SECTION_COMPONENT.get(key.split(".")[0].split("[")[0], key.split(".")[0])
        required.setdefault(component, [])
        if name not in required[component]:
            required[component].append(name)
    for component, names in config.credentials.items():
        bucket = required.setdefault(component, [])
        bucket.extend(n for n in names if n not in bucket)
    return dict(sorted(required.items()))


def _aws_chain(ctx: Context, missing: list[str]) -> str | None:
    """Where a profile, SSO or a role supplies the AWS keys that are not set as variables, if anywhere."""
    from pipectl.connectors.aws import AWS_KEY_NAMES, credential_source

    if not missing or not set(missing) <= AWS_KEY_NAMES:
        return None
    environ = {k: v for k, v in ctx.config.aws.environ(ctx.environ).items()
               if k not in AWS_KEY_NAMES}  # the chain past the variables
    source = credential_source(environ)
    return None if source in (None, "env") else source
