"""Median wall time of `pipectl --help`, beside `python -c pass` and `prefect --help`.

    python bench/startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def median_seconds(argv: list[str], runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "pipectl --help": [sys.executable, "-m", "pipectl", "--help"],
        "pipectl checks list": [sys.executable, "-m", "pipectl", "checks", "list"],
    }
    prefect = shutil.which("prefect", path=str(Path(sys.executable).parent)) or shutil.which("prefect")
    if prefect:
        commands["prefect --help"] = [prefect, "--help"]
    for label, argv in commands.items():
        print(f"{label:<22} {median_seconds(argv, args.runs) * 1000:7.0f} ms  (median of {args.runs})")


if __name__ == "__main__":
    main()
