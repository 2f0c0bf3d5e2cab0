"""A step that changes nothing and passes only if the named checks no longer fail."""

from __future__ import annotations

import time
from collections.abc import Callable

from pipectl.config import PipelineConfig
from pipectl.repair import JournalRun, Outcome, Plan, Repair


class VerifyChecks(Repair):
    """Re-runs checks through the normal runner: verification uses the very checks doctor uses. With
    `until`, keeps re-running while they fail, for that many seconds (work a repair set moving takes time)."""

    verify_when_empty = True

    def __init__(self, config: PipelineConfig, environ: dict[str, str], only: list[str], timeout: float = 10.0,
                 *, until: float = 0.0, progress: Callable[[str], None] = lambda text: None):
        self.config, self.environ, self.only, self.timeout = config, environ, only, timeout
        self.until, self.progress = until, progress

    def plan(self) -> Plan:
        waits = f" (until they pass, at most {self.until:g}s)" if self.until else ""
        return Plan("verify", f"re-run checks: {', '.join(self.only)}{waits}", (), {"checks": self.only})

    def apply(self, plan: Plan, journal: JournalRun) -> Outcome:
        return Outcome(True, "nothing to apply")

    def verify(self, applied: Outcome) -> Outcome:
        deadline = time.monotonic() + self.until
        while True:
            result = run_selected(self.config, self.environ, self.only, self.timeout)
            failing = [f for f in result.findings if f.status.value in ("fail", "error")]
            if not failing or time.monotonic() >= deadline:
                break
            self.progress(f"waiting: {failing[0].summary}")
            time.sleep(2.0)
        if failing:
            return Outcome(False, f"{len(failing)} check finding(s) still failing: {failing[0].summary}",
                           {"failing": [f.id for f in failing]})
        return Outcome(True, f"checks pass: {', '.join(self.only)}", {"findings": len(result.findings)})


def run_selected(config: PipelineConfig, environ: dict[str, str], only: list[str], timeout: float):
    from pipectl.interface import Context
    from pipectl.registry import load_checks
    from pipectl.runner import run_checks, select

    checks = load_checks()
    return run_checks(select(checks.items, only), Context(config=config, timeout=timeout, environ=environ))
