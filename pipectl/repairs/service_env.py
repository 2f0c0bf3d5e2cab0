"""Set variables on a hosted service (Render, Netlify, …) and redeploy it, so they take effect."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from pipectl import secrets
from pipectl.config import PipelineConfig
from pipectl.errors import UsageError
from pipectl.repair import Change, JournalRun, Outcome, Plan, Repair
from pipectl.services import find, provider_for


@dataclass(frozen=True)
class Assignment:
    """A value to set, and where it came from: `$NAME` when read from the environment (never shown)."""

    value: str
    source: str = ""


def parse_assignments(specs: list[str], environ: Mapping[str, str]) -> dict[str, Assignment]:
    """`KEY=env:NAME` (the value from the environment or the config's env file) or `KEY=value`; a
    credential is never taken from the command line."""
    from pipectl.repairs.patch import _KEY
    from pipectl.repairs.secrets import name_part

    values: dict[str, Assignment] = {}
    for spec in specs:
        key, sep, value = spec.partition("=")
        if not sep or not _KEY.match(key):
            raise UsageError(f"{name_part(spec)!r}…: expected KEY=env:NAME or KEY=value")
        source = ""
        if value.startswith("env:"):
            source = "$" + value.removeprefix("env:")
            if not environ.get(source[1:]):
                raise UsageError(f"{key}: environment variable {source[1:]} is not set")
            value = environ[source[1:]]
            secrets.register(key, value)
        elif secrets.is_secret(key, value):
            secrets.register(key, value)
            raise UsageError(f"{key}: refusing a credential typed on the command line (shell history and "
                             f"process lists keep it); export it and pass {key}=env:NAME")
        if not value.strip():
            raise UsageError(f"{key}: the value is empty")
        values[key] = Assignment(value, source)
    if not values:
        raise UsageError("nothing to set: give KEY=env:NAME or KEY=value")
    return values


class SetServiceEnv(Repair):
    """Values are registered with the redactor before anything is read; plans and the journal name the
    variables and a fingerprint, never a credential. Verified: the service holds every value, and the
    deploy that followed is live."""

    def __init__(self, config: PipelineConfig, service: str, assignments: dict[str, Assignment],
                 environ: Mapping[str, str], *, deploy: bool = True, wait: float = 120.0) -> None:
        self.service = find(config, service)
        for key, assignment in assignments.items():
            secrets.register(key, assignment.value)
        self.sources = {key: a.source for key, a in assignments.items()}
        values = {key: a.value for key, a in assignments.items()}
        self.values, self.deploy, self.wait = values, deploy, wait
        self.provider = provider_for(self.service, environ, timeout=max(config.doctor.timeout, 10.0))
        self.deploy_id: str | None = None

    def plan(self) -> Plan:
        current = self.provider.env(self.service.id)
        changes = []
        for key, value in self.values.items():
            if current.get(key) == value:
                continue
            shown = (f"the value of {self.sources[key]} (not shown)" if self.sources[key] else
                     "the new value (not shown)" if secrets.is_secret(key, value) else value)
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
