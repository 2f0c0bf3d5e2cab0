"""On an engineer's busy laptop a healthy pipeline is still healthy: default `doctor`, both cores saturated by
CPU burners, passes with no ERROR (its deadlines are for hung systems, not slow machines)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import default_signals

BURN = "while True:\n    pass\n"


def test_a_healthy_sandbox_passes_with_every_core_busy(sandbox):
    burners = [subprocess.Popen([sys.executable, "-c", BURN], preexec_fn=default_signals)
               for _ in range(max(2, os.cpu_count() or 2))]
    try:
        done = subprocess.run([str(Path(sys.executable).with_name("pipectl")), "doctor", "--format", "json",
                               "--no-journal"], cwd=sandbox.layout.root, capture_output=True, text=True,
                              timeout=600)
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    findings = json.loads(done.stdout)["findings"]
    assert {f["id"]: f["summary"] for f in findings if f["status"] not in ("ok", "skipped")} == {}
    assert done.returncode == 0
    assert "Warning" not in done.stderr and "Unclosed" not in done.stderr, done.stderr
