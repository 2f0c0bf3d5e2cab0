"""Wall time of `pipectl probe` through a healthy sandbox, hop by hop.

    python bench/probe.py [--runs 5] [--config PATH]

Without --config it brings a sandbox up in a temporary folder and takes it down afterwards. The probe's
item goes in through the push endpoint, the SQS queue, the subscriber, Prefect and the process worker;
it prints the median of whole-process runs and, per hop, the median time after sending when it was seen.
The anchor is the worker itself: a Prefect process worker polls every second and starts each flow run as
a new Python process, so most of the time is the run's own start-up.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from doctor import sandbox_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--config")
    args = parser.parse_args()
    with sandbox_config(args.config) as config:
        argv = [sys.executable, "-m", "pipectl", "--config", str(config), "probe", "--yes", "-o", "json",
                "--journal", str(config.parent / "bench-journal")]
        walls, hops, codes = [], {}, set()
        for _ in range(args.runs):
            started = time.perf_counter()
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
            walls.append(time.perf_counter() - started)
            codes.add(done.returncode)
            for hop in json.loads(done.stdout)["hops"]:
                if hop["after_s"] is not None:
                    hops.setdefault(hop["name"], []).append(hop["after_s"])
        print(f"pipectl probe (proc)   {statistics.median(walls):7.2f} s  median of {args.runs}, exit codes {codes}")
        for name, seconds in hops.items():
            print(f"  {name:<20} {statistics.median(seconds):7.2f} s after sending")


if __name__ == "__main__":
    main()
