"""Set variables on a hosted service (Render, Netlify, …) and redeploy it, so they take effect."""

from __future__ import annotations

import time
from collections.abc import Mapping

from pipectl import secrets
from pipectl.config import PipelineConfig
from pipectl.errors import UsageError
from pipectl.redact import redactor
from pipectl.repair import Change, JournalRun, Outcome, Plan, Repair
from pipectl.services import find, provider_for


def parse_assignments(specs: list[str], environ: Mapping[str, str]) -> dict[str, str]:
    """`KEY=env:NAME` (the value from the environment or the config's env file) or `KEY=value`; a
    credential is never taken from the command line."""
    from pipectl.repairs.patch import _KEY
    from pipectl.repairs.secrets import name_part

    values: dict[str, str] = {}
    for spec in specs:
        key, sep, value = spec.partition("=")
        if not sep or not _KEY.match(key):
            raise UsageError(f"{name_part(spec)!r}…: expected KEY=env:NAME or KEY=value")
        if value.startswith("env:"):
            name = value.removeprefix("env:")
            if not environ.get(name):
                raise UsageError(f"{key}: environment variable {name} is not set")
            value = environ[name]
            secrets.register(key, value)
        elif secrets.is_secret(key, value):
            secrets.register(key, value)
            raise UsageError(f"{key}: refusing a credential typed on the command line (shell history and "
                             f"process lists keep it); export it and pass {key}=env:NAME")
        if not value.strip():
            raise UsageError(f"{key}: the value is empty")
        values[key] = value
    if not values:
        raise UsageError("nothing to set: give KEY=env:NAME or KEY=value")
    return values


class SetServiceEnv(Repair):
    """Values are registered with the redactor before anything is read; plans and the journal name the
    variables and a fingerprint, never a credential. Verified: the service holds every value, and the
    deploy that followed is live."""

    def __init__(self, config: PipelineConfig, service: str, values: dict[str, str], environ: Mapping[str, str],
                 *, deploy: bool = True, wait: float = 120.0) -> None:
        self.service = find(config, service)
        for value in values.values():
            redactor.add(value)
        self.values, self.deploy, self.wait = values, deploy, wait
        self.provider = provider_for(self.service, environ, timeout=max(config.doctor.timeout, 10.0))
        self.deploy_id: str | None = None

    def plan(self) -> Plan:
        current = self.provider.env(self.service.id)
        changes = []
        for key, value in self.values.items():
            if current.get(key) == value:
                continue
            shown = "the new value (not shown)" if _secret(key, value) else value
            before = "absent" if key not in current else ("empty" if not current[key].strip() else "another value")
            changes.append(Change(f"{self.service.name} {key}", f"{before} → {shown}"))
        where = f"{self.service.name} ({self.service.provider})"
        if not changes:
            return Plan("service_env", f"{where} already holds these values", (), {"service": self.service.name})
        if self.deploy:
            changes.append(Change(where, "redeploy, so the service starts with them"))
        return Plan("service_env", f"set {len(self.values)} variable(s) on {where}", tuple(changes),
                    {"service": self.service.name, "keys": sorted(self.values)})

    def apply(self, plan: Plan, journal: JournalRun) -> Outcome:
        for key, value in self.values.items():
            self.provider.set_env(self.service.id, key, value)
            journal.record("change", {"kind": "service_env", "service": self.service.name, "key": key,
                                      "fingerprint": secrets.fingerprint(value)})
        if self.deploy:
            self.deploy_id = self.provider.deploy(self.service.id)
            journal.record("change", {"kind": "service_deploy", "service": self.service.name,
                                      "deploy": self.deploy_id})
        return Outcome(True, f"set {', '.join(self.values)} on {self.service.name}"
                       + (f"; deploy {self.deploy_id} started" if self.deploy else ""))

    def verify(self, applied: Outcome) -> Outcome:
        from pipectl.connectors.hosting import ServiceStatus

        held = self.provider.env(self.service.id)
        wrong = [key for key, value in self.values.items() if held.get(key) != value]
        if wrong:
            return Outcome(False, f"{self.service.name} does NOT hold {', '.join(wrong)}")
        if not self.deploy_id:
            return Outcome(True, f"{self.service.name} holds {', '.join(self.values)} (not redeployed)")
        deadline, state = time.monotonic() + self.wait, ServiceStatus.DEPLOYING
        while time.monotonic() < deadline:
            state = self.provider.deploy_state(self.service.id, self.deploy_id)
            if state is not ServiceStatus.DEPLOYING:
                break
            time.sleep(1.0)
        ok = state is ServiceStatus.RUNNING
        verdict = "live" if ok else f"NOT live ({state.value})"
        return Outcome(ok, f"{self.service.name} holds {', '.join(self.values)}; deploy {self.deploy_id} {verdict}")


def _secret(key: str, value: str) -> bool:
    return secrets.is_secret(key, value)
