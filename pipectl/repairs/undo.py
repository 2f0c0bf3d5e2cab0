"""Take back what a journaled run changed, but only where nobody has changed it since."""

from __future__ import annotations

from typing import Any

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
}


class UndoRun(Repair):
    """Job variables come back if they still equal what the run set; rows go back only where they are
    still in the status the run set (compare-and-set, as the reset itself did)."""

    def __init__(self, config: PipelineConfig, run_id: str, changes: list[Event]) -> None:
        self.config, self.run_id = config, run_id
        self.changes = [e.data for e in reversed(changes)]
        self._api = (config.prefect.api_url, config.prefect.api_key)
        self._restores: list[dict[str, Any]] = []

    def plan(self) -> Plan:
        planned, skipped = [], []
        for change in self.changes:
            kind = change.get("kind")
            if kind == "job_variables":
                current = prefect_api.read_deployment(*self._api, change["deployment"])
                if current is None or current.job_variables != change["after"]:
                    skipped.append(f"{change['deployment']}: job variables changed since run {self.run_id}")
                    continue
                planned.append(Change(f"{change['deployment']} job_variables", "restore the values before the run",
                                      change["after"], change["before"]))
                self._restores.append(change)
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
                current = prefect_api.read_deployment(*self._api, change["deployment"])
                if current is None or current.job_variables != change["after"]:
                    return Outcome(False, f"{change['deployment']} changed while undoing; stopped")
                prefect_write.update_job_variables(*self._api, current.id, change["before"])
                journal.record("change", {**change, "before": change["after"], "after": change["before"],
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
                current = prefect_api.read_deployment(*self._api, change["deployment"])
                if current is None or current.job_variables != change["before"]:
                    return Outcome(False, f"{change['deployment']} does not show the restored job variables")
        return applied
