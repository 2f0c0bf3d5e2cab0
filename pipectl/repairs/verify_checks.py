"""A step that changes nothing and passes only if the named checks no longer fail."""

from __future__ import annotations

import time
from collections.abc import Callable

from pipectl.config import PipelineConfig
from pipectl.repair import JournalRun, Outcome, Plan, Repair


GRACE = 30.0
"""Seconds `until` waits even when nothing seems in motion (a redeployed service is starting)."""


class VerifyChecks(Repair):
    """Re-runs checks through the normal runner: verification uses the very checks doctor uses. With
    `until`, keeps re-running while they fail, for at most that many seconds, as long as `moving()` says work
    is still on its way (a repair set it moving; nothing moving, it stops waiting after a short grace)."""

    verify_when_empty = True

    def __init__(self, config: PipelineConfig, environ: dict[str, str], only: list[str], timeout: float = 10.0,
                 *, until: float = 0.0, moving: Callable[[], bool] | None = None,
                 progress: Callable[[str], None] = lambda text: None):
        self.config, self.environ, self.only, self.timeout = config, environ, only, timeout
        self.until, self.moving, self.progress = until, moving, progress

    def plan(self) -> Plan:
        waits = f" (until they pass, at most {self.until:g}s)" if self.until else ""
        return Plan("verify", f"re-run checks: {', '.join(self.only)}{waits}", (), {"checks": self.only})

    def apply(self, plan: Plan, journal: JournalRun) -> Outcome:
        return Outcome(True, "nothing to apply")

    def _moving(self) -> bool:
        from pipectl.errors import PipectlError

        try:
            return self.moving is None or self.moving()
        except PipectlError:  # cannot tell: keep waiting, within `until`
            return True

    def verify(self, applied: Outcome) -> Outcome:
        started = time.monotonic()
        while True:
            result = run_selected(self.config, self.environ, self.only, self.timeout)
            failing = [f for f in result.findings if f.status.value in ("fail", "error")]
            waited = time.monotonic() - started
            if not failing or waited >= self.until or (waited >= GRACE and not self._moving()):
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
