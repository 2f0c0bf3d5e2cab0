"""Median wall time of `pipectl --help`, beside `python -c pass` and its anchor `prefect --help`.

    python bench/startup.py [--runs 15]

The commands run in turn, round after round, so a busy machine slows all alike. Target (issue 14):
`pipectl --help` at least 10× faster than `prefect --help`.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def seconds(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - started


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
    samples: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(args.runs):
        for label, argv in commands.items():
            samples[label].append(seconds(argv))
    medians = {label: statistics.median(values) for label, values in samples.items()}
    for label, median in medians.items():
        print(f"{label:<22} {median * 1000:7.0f} ms  (median of {args.runs})")
    if "prefect --help" in medians:
        ratio = medians["prefect --help"] / medians["pipectl --help"]
        print(f"{'prefect / pipectl':<22} {ratio:7.1f}×   target ≥ 10×")


if __name__ == "__main__":
    main()
