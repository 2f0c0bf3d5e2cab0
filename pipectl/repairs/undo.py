"""Take back what a journaled run changed, but only where nobody has changed it since."""

from __future__ import annotations

from typing import Any

from pipectl import secrets
from pipectl.config import PipelineConfig
from pipectl.connectors import prefect as prefect_api
from pipectl.connectors import prefect_write
from pipectl.journal import Event
from pipectl.repair import Change, JournalRun, Outcome, Plan, Repair

_NOT_UNDOABLE = {
    "secret_block": "Secret block values are never journaled, so the old value cannot be restored",
    "flow_run": "a flow run that happened cannot be un-run",
    "redrive": "redriven messages may already be consumed",
    "deployment_created": "a registered deployment is left in place; delete it in Prefect if unwanted",
    "probe_item": "the probe cleaned up after itself when it ran (its report lists what it deleted)",
    "service_env": "a hosted service's variable values are never journaled, so the old value cannot be restored",
}


class UndoRun(Repair):
    """Job variables come back if they still equal what the run set; rows go back only where they are
    still in the status the run set (compare-and-set, as the reset itself did)."""

    def __init__(self, config: PipelineConfig, run_id: str, changes: list[Event]) -> None:
        self.config, self.run_id = config, run_id
        self.changes = [e.data for e in reversed(changes)]
        self._api = (config.prefect.api_url, config.prefect.api_key)
        self._timeout = config.prefect.timeout
        self._restores: list[dict[str, Any]] = []

    def plan(self) -> Plan:
        planned, skipped = [], []
        for change in self.changes:
            kind = change.get("kind")
            if kind == "job_variables":
                current = prefect_api.read_deployment(*self._api, change["deployment"], timeout=self._timeout)
                if current is None or secrets.scrub(current.job_variables) != change["after"]:
                    skipped.append(f"{change['deployment']}: job variables changed since run {self.run_id}")
                    continue
                restored, lost = restorable(change["before"], current.job_variables)
                skipped += [f"{change['deployment']} job_variables.{path}: the secret value it held before the run "
                            "was never journaled and cannot be restored; set it again with `pipectl secret set` "
                            "and `pipectl patch`" for path in lost]
                planned.append(Change(f"{change['deployment']} job_variables", "restore the values before the run",
                                      change["after"], change["before"]))
                self._restores.append({**change, "restore": restored})
            elif kind == "rows":
                planned.append(Change(f"{change['table']} rows",
                                      f"{len(change['ids'])} row(s) back to {change['from_status']} where still "
                                      f"{change['to_status']}", change["to_status"], change["from_status"]))
                self._restores.append(change)
            elif kind in _NOT_UNDOABLE:
                skipped.append(f"{kind}: {_NOT_UNDOABLE[kind]}")
        return Plan("undo", f"undo run {self.run_id}", tuple(planned), {"not undone": skipped or "nothing"})

    def apply(self, plan: Plan, journal: JournalRun) -> Outcome:
        restored_rows = 0
        for change in self._restores:
            if change["kind"] == "job_variables":
                current = prefect_api.read_deployment(*self._api, change["deployment"], timeout=self._timeout)
                if current is None or secrets.scrub(current.job_variables) != change["after"]:
                    return Outcome(False, f"{change['deployment']} changed while undoing; stopped")
                prefect_write.update_job_variables(*self._api, current.id, change["restore"], timeout=self._timeout)
                journal.record("change", {**{k: v for k, v in change.items() if k != "restore"},
                                          "before": change["after"], "after": secrets.scrub(change["restore"]),
                                          "undoes": self.run_id})
            else:
                from pipectl.connectors import postgres_write

                ids = postgres_write.set_status_where(
                    self.config.database.dsn, change["table"], change["id_column"], change["status_column"],
                    change["ids"], expected=change["to_status"], new=change["from_status"],
                    updated_column=change.get("updated_column"))
                restored_rows += len(ids)
                journal.record("change", {**change, "from_status": change["to_status"],
                                          "to_status": change["from_status"], "ids": ids, "undoes": self.run_id})
        return Outcome(True, f"undid run {self.run_id}", {"rows restored": restored_rows})

    def verify(self, applied: Outcome) -> Outcome:
        for change in self._restores:
            if change["kind"] == "job_variables":
                current = prefect_api.read_deployment(*self._api, change["deployment"], timeout=self._timeout)
                if current is None or current.job_variables != change["restore"]:
                    return Outcome(False, f"{change['deployment']} does not show the restored job variables")
        return applied


def restorable(before: Any, current: Any, path: str = "") -> tuple[Any, list[str]]:
    """The journaled before-values with each secret placeholder filled from `current` where the value there
    is still the same one (same fingerprint); the paths whose secret cannot be put back are listed."""
    if isinstance(before, dict):
        now = current if isinstance(current, dict) else {}
        result, lost = {}, []
        for key, value in before.items():
            item, missing = restorable(value, now.get(key), f"{path}.{key}" if path else str(key))
            lost += missing
            if item is not _LOST:
                result[key] = item
        return result, lost
    if isinstance(before, list):
        now = current if isinstance(current, list) and len(current) == len(before) else [None] * len(before)
        pairs = [restorable(b, c, f"{path}[{i}]") for i, (b, c) in enumerate(zip(before, now, strict=True))]
        return [p[0] for p in pairs if p[0] is not _LOST], [x for p in pairs for x in p[1]]
    if isinstance(before, str) and before.startswith("‹secret "):
        if isinstance(current, str) and secrets.placeholder(current) == before:
            return current, []
        return (current if current is not None else _LOST), [path]  # leave what is there now
    return before, []


_LOST = object()
