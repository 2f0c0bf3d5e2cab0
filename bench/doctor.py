"""Wall time of `pipectl doctor` against a healthy sandbox (target ≤ 1.5 s).

    python bench/doctor.py [--runs 7] [--config PATH]

Without --config it brings a sandbox up in a temporary folder and takes it down afterwards. It prints the
median of whole-process runs (`pipectl doctor --format json`, interpreter start-up included) and of the
checks alone (in-process, after the first run warmed the imports), plus the slowest check.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


@contextlib.contextmanager
def sandbox_config(config: str | None):
    if config:
        yield Path(config)
        return
    from pipectl.sandbox import stack
    from pipectl.sandbox.layout import Layout

    with tempfile.TemporaryDirectory() as folder:
        layout = Layout.at(Path(folder) / "sandbox")
        started = time.perf_counter()
        stack.up(layout)
        print(f"sandbox up             {time.perf_counter() - started:7.2f} s")
        try:
            yield layout.config_file
        finally:
            stack.down(layout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--config")
    args = parser.parse_args()
    with sandbox_config(args.config) as config:
        argv = [sys.executable, "-m", "pipectl", "doctor", "--config", str(config), "--format", "json",
                "--no-journal"]
        walls, codes = [], set()
        for _ in range(args.runs):
            started = time.perf_counter()
            codes.add(subprocess.run(argv, capture_output=True, check=False).returncode)
            walls.append(time.perf_counter() - started)
        print(f"pipectl doctor (proc)  {statistics.median(walls):7.2f} s  median of {args.runs}, exit codes {codes}")

        from pipectl.config_load import environment, load_config
        from pipectl.interface import Context
        from pipectl.registry import load_checks
        from pipectl.runner import run_checks

        cfg = load_config(config)
        ctx = Context(config=cfg, timeout=cfg.doctor.timeout, environ=environment(cfg.source))
        checks = list(load_checks().items.values())
        run_checks(checks, ctx)  # warm imports
        durations = [run_checks(checks, ctx).duration_s for _ in range(args.runs)]
        print(f"checks in-process      {statistics.median(durations):7.2f} s  median of {args.runs}, "
              f"{len(checks)} checks")


if __name__ == "__main__":
    main()
