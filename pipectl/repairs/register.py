"""Register a deployment that the pipeline expects but Prefect does not have (the second incident)."""

from __future__ import annotations

from pipectl.config import PipelineConfig
from pipectl.connectors import prefect as prefect_api
from pipectl.connectors import prefect_write
from pipectl.errors import NotFound, PipectlError, UsageError
from pipectl.repair import Change, JournalRun, Outcome, Plan, Repair


def missing_deployment(config: PipelineConfig, name: str) -> PipectlError:
    """What to say when Prefect has no deployment `name`: a configured one is missing (register it, exit 1);
    any other name is a typo (exit 2, with the nearest configured name)."""
    if config.deployment(name) is not None:
        return NotFound(f"deployment {name} is not registered in Prefect: `pipectl deploy register {name}`")
    import difflib

    known = [d.name for d in config.prefect.deployments]
    nearest = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    hint = f"did you mean {nearest[0]}?" if nearest else f"configured: {', '.join(known) or 'none'}"
    return UsageError(f"no deployment {name} in Prefect or in the config ({hint})")


class RegisterDeployment(Repair):
    """Creates the deployment from its [[prefect.deployments]] entry; never touches an existing one."""

    def __init__(self, config: PipelineConfig, name: str) -> None:
        entry = config.deployment(name)
        if entry is None:
            raise UsageError(f"deployment {name} is not in the config: add a [[prefect.deployments]] entry for it")
        missing = [key for key in ("entrypoint", "source", "work_pool") if not getattr(entry, key)]
        if missing:
            raise UsageError(f"deployment {name} in {config.source.path} lacks {', '.join(missing)}: "
                             "pipectl needs them to register it")
        _refuse_credentials(config, entry)
        self.config, self.entry = config, entry
        self._api = (config.prefect.api_url, config.prefect.api_key)
        self._timeout = config.prefect.timeout

    def plan(self) -> Plan:
        existing = prefect_api.read_deployment(*self._api, self.entry.name, timeout=self._timeout)
        details = {"deployment": self.entry.name, "work_pool": self.entry.work_pool,
                   "entrypoint": self.entry.entrypoint}
        if existing is not None:
            return Plan("register", f"{self.entry.name} is already registered", (), details)
        change = Change(f"deployment {self.entry.name}", f"register from {self.entry.source} "
                        f"({self.entry.entrypoint}) on pool {self.entry.work_pool}", None, details)
        return Plan("register", f"register deployment {self.entry.name}", (change,), details)

    def apply(self, plan: Plan, journal: JournalRun) -> Outcome:
        flow, name = self.entry.name.split("/")
        deployment_id = prefect_write.create_deployment(
            *self._api, flow_name=flow, name=name, entrypoint=self.entry.entrypoint, work_pool=self.entry.work_pool,
            job_variables=self.entry.job_variables, path=self.entry.source, parameters=self.entry.parameters,
            timeout=self._timeout,
        )
        journal.record("change", {"kind": "deployment_created", "deployment": self.entry.name,
                                  "deployment_id": deployment_id})
        return Outcome(True, f"registered {self.entry.name}", {"deployment_id": deployment_id})

    def verify(self, applied: Outcome) -> Outcome:
        found = prefect_api.read_deployment(*self._api, self.entry.name, timeout=self._timeout)
        if found is None:
            return Outcome(False, f"{self.entry.name} is still not registered after the create call")
        if found.work_pool_name != self.entry.work_pool:
            return Outcome(False, f"{self.entry.name} registered on pool {found.work_pool_name}, "
                                  f"not {self.entry.work_pool}")
        return Outcome(True, f"{self.entry.name} is registered on pool {found.work_pool_name}")


def _refuse_credentials(config: PipelineConfig, entry) -> None:
    """A registered deployment's job variables are readable by anyone who can read it: a credential in the
    config's entry (a value shaped like one, or an `env:` reference to one) must be a Secret block there."""
    from pipectl import secrets
    from pipectl.repairs.secrets import block_name_for, block_template, secret_leaves

    index = config.prefect.deployments.index(entry)
    prefix = f"prefect.deployments[{index}].job_variables."
    referenced = {k.removeprefix(prefix): v for k, v in config.source.references.items() if k.startswith(prefix)}
    found = [path for path, name in referenced.items() if secrets.is_secret_key(name)]
    found += [path for path, _ in secret_leaves(entry.job_variables, "") if path not in found]
    if found:
        path = found[0]
        variable = referenced.get(path) or path.rsplit(".", 1)[-1].upper()
        block = block_name_for(variable)
        raise UsageError(f"deployment {entry.name}: job_variables.{path} in {config.source.path} is a credential "
                         f"that would be written into the deployment as plain text; write "
                         f"\"{block_template(block)}\" there instead and store the value with "
                         f"`pipectl secret set {block} --from-env {variable}`")
