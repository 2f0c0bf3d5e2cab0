"""Wall time of `pipectl doctor` on a healthy sandbox, side by side with `prefect deployment inspect`.

    python bench/doctor.py [--runs 7] [--config PATH]

Without --config it brings a sandbox up in a temporary folder and takes it down afterwards. The two
commands run alternately (so a busy machine slows both alike); it prints the median wall and CPU time and
the peak RSS of each whole process (interpreter start-up included), doctor's ratio to the anchor, and the
checks alone in-process (after a first run warmed the imports). Targets (issue 14): doctor ≤ 0.7× the
anchor, ≤ 1.0 s on a quiet machine, peak RSS ≤ 150 MiB.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
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


_LAUNCHER = """
import json, os, subprocess, sys, time
started = time.perf_counter()
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
wall = time.perf_counter() - started
print(json.dumps([wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)]))
"""
"""Starts the measured command from a small interpreter: Linux counts the peak RSS of a process from before
its exec too, so a command started straight from this script (which has a sandbox's libraries loaded)
would report this script's memory, not its own."""


def measure(argv: list[str], env: dict[str, str]) -> tuple[float, float, float, int]:
    """(wall s, CPU s, peak RSS MiB, exit code) of one whole process, from the kernel's own accounting."""
    launched = subprocess.run([sys.executable, "-I", "-S", "-c", _LAUNCHER, *argv], env=env, check=True,
                              capture_output=True, text=True)
    wall, cpu, rss, code = json.loads(launched.stdout)
    return wall, cpu, rss, code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--config")
    args = parser.parse_args()
    with sandbox_config(args.config) as config:
        settings = tomllib.loads(config.read_text())
        deployment = settings["prefect"]["deployments"][0]["name"]
        env = {**os.environ, "PREFECT_API_URL": settings["prefect"]["api_url"]}
        prefect = shutil.which("prefect", path=str(Path(sys.executable).parent)) or "prefect"
        commands = {
            "pipectl doctor": [sys.executable, "-m", "pipectl", "doctor", "--config", str(config), "--format",
                               "json", "--no-journal"],
            "prefect deployment inspect": [prefect, "deployment", "inspect", deployment],
        }
        samples: dict[str, list[tuple[float, float, float, int]]] = {label: [] for label in commands}
        for _ in range(args.runs):
            for label, argv in commands.items():
                samples[label].append(measure(argv, env))
        medians = {}
        for label, rows in samples.items():
            wall, cpu = statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows)
            rss, codes = max(r[2] for r in rows), sorted({r[3] for r in rows})
            medians[label] = wall
            print(f"{label:<28} {wall:6.2f} s wall  {cpu:5.2f} s CPU  {rss:5.0f} MiB peak  "
                  f"median of {args.runs}, exit codes {codes}")
        ratio = medians["pipectl doctor"] / medians["prefect deployment inspect"]
        print(f"doctor / inspect             {ratio:6.2f}×     target ≤ 0.70×; doctor target ≤ 1.00 s on a quiet "
              f"machine, peak RSS ≤ 150 MiB")

        from pipectl.config_load import environment, load_config
        from pipectl.interface import Context
        from pipectl.registry import load_checks
        from pipectl.runner import run_checks

        cfg = load_config(config)
        ctx = Context(config=cfg, timeout=cfg.doctor.timeout, environ=environment(cfg.source))
        checks = list(load_checks().items.values())
        run_checks(checks, ctx)  # warm imports
        durations = [run_checks(checks, ctx).duration_s for _ in range(args.runs)]
        print(f"checks in-process            {statistics.median(durations):6.2f} s  median of {args.runs}, "
              f"{len(checks)} checks")


if __name__ == "__main__":
    main()
