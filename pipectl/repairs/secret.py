"""Create or update a Prefect Secret block from a value that never touched the command line."""

from __future__ import annotations

import re

from pipectl.config import PipelineConfig
from pipectl.connectors import prefect as prefect_api
from pipectl.connectors import prefect_write
from pipectl.errors import UsageError
from pipectl.redact import redactor
from pipectl.repair import Change, JournalRun, Outcome, Plan, Repair
from pipectl.secrets import fingerprint


class SetSecretBlock(Repair):
    """The value is registered with the redactor first; plans and the journal name the block, never the value."""

    def __init__(self, config: PipelineConfig, name: str, value: str) -> None:
        if not re.fullmatch(r"[a-z0-9-]+", name):
            raise UsageError(f"{name!r} is not a Secret block name (lowercase letters, digits and dashes)")
        redactor.add(value)
        self.config, self.name, self._value = config, name, value
        self._api = (config.prefect.api_url, config.prefect.api_key)
        self._timeout = config.prefect.timeout

    def plan(self) -> Plan:
        current = prefect_api.read_secret_block(*self._api, self.name, timeout=self._timeout)
        redactor.add(current)
        if current == self._value:
            return Plan("secret", f"Secret block {self.name} already holds this value", (), {"block": self.name})
        state = "absent" if current is None else "a different value"
        return Plan("secret", f"{'create' if current is None else 'update'} Secret block {self.name}",
                    (Change(f"Secret block {self.name}", f"{state} → the new value (not shown)"),),
                    {"block": self.name})

    def apply(self, plan: Plan, journal: JournalRun) -> Outcome:
        prefect_write.save_secret_block(*self._api, self.name, self._value, timeout=self._timeout)
        journal.record("change", {"kind": "secret_block", "block": self.name, "fingerprint": fingerprint(self._value)})
        return Outcome(True, f"saved Secret block {self.name}")

    def verify(self, applied: Outcome) -> Outcome:
        current = prefect_api.read_secret_block(*self._api, self.name, timeout=self._timeout)
        redactor.add(current)
        ok = current == self._value
        return Outcome(ok, f"Secret block {self.name} {'holds' if ok else 'does NOT hold'} the new value")
