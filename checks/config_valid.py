"""config.valid — the pipeline description itself."""

from __future__ import annotations

from pipectl.interface import Check, Context
from pipectl.model import Finding, Severity


class ConfigValid(Check):
    """Detects: credentials written into the config file as plain values, and state tables described
    too loosely to be checked (no `stuck_after` thresholds).

    Why it matters: a secret in a committed config file is a leaked secret (the second incident leaked
    AWS, Supabase, Prefect and Stripe keys this way); a table without a threshold can never be "stuck".

    Fix: write `env:NAME` instead of the value, rotate the leaked credential, and add thresholds.
    """

    id = "config.valid"
    component = "config"
    severity = Severity.P1

    def run(self, ctx: Context) -> list[Finding]:
        config = ctx.config
        source = config.source
        findings: list[Finding] = []
        if source.literal_secrets:
            keys = ", ".join(source.literal_secrets)
            findings.append(self.fail(
                f"credentials written into {source.path} as plain values: {keys}",
                severity=Severity.P0,
                impact="Anyone who can read the file (or its git history) holds these credentials.",
                evidence={"keys": list(source.literal_secrets), "file": source.path},
                advice=f"Replace each with env:NAME in {source.path} and rotate the credential.",
            ))
        loose = [t.table for t in config.state_tables if not t.stuck_after]
        if loose:
            findings.append(self.warn(
                f"state tables without stuck_after thresholds: {', '.join(loose)}",
                severity=Severity.P2,
                impact="Rows in these tables are never reported as stuck.",
                evidence={"tables": loose},
                advice=f'Add stuck_after = {{ QUEUED = "5m" }} under [[state_tables]] in {source.path}.',
            ))
        if not findings:
            findings.append(self.ok(
                f"{source.path} is valid",
                evidence={
                    "state_tables": len(config.state_tables),
                    "deployments": len(config.prefect.deployments),
                    "queues": len(config.queues),
                    "modal_functions": len(config.modal.functions),
                },
            ))
        return findings
