"""The `repo.secrets` check on a generated 5,000-commit repository: cold, warm (anchor ≤ 50 ms), new commit.

    python bench/repo_scan.py [--commits 5000] [--runs 15] [--seed 1]

Builds the repository in a temporary folder with `git fast-import` (seconds, where `git commit` would take
minutes): about 230 files — Python modules and tests, Markdown, YAML — each commit editing one to three of
them, now and then adding or deleting one, and two leaks drawn at run time (AWS keys in a .env file deleted
twenty commits later, a Modal token that stays). Then, with a state folder of its own:

* where the time goes: the git commands the scan runs (or ran), alone;
* the check in-process, imports warmed on another repository: cold (nothing remembered), warm (the median
  of `--runs` runs on the unchanged repository: the anchor), and after one new commit;
* `pipectl doctor --only repo.secrets` as a whole process, warm (interpreter and imports included).

Each figure is printed beside its anchor and their ratio; exit 1 when the warm figure misses its anchor
or a warm run does not report what the cold one did.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import secrets
import statistics
import string
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WARM_ANCHOR_MS = 50.0
_WORDS = [
    *("pipeline", "job", "queue", "worker", "state", "batch", "retry", "schedule", "deploy", "record"),
    *("status", "result", "payload", "handler", "client", "session", "config", "cache", "token", "key"),
    *("region", "bucket", "table", "row", "column", "index", "timeout", "limit"),
]
_GIT_ENV = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def git(repo: Path, *args: str, stdin: bytes | None = None) -> bytes:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], input=stdin, env=_GIT_ENV, capture_output=True, check=True
    )
    return done.stdout


# --- the repository ------------------------------------------------------------------------------------


def _function(rng: random.Random, number: int) -> list[str]:
    a, b = rng.sample(_WORDS, 2)
    fetch = f'os.environ.get("{a.upper()}_TOKEN", "")' if rng.random() < 0.2 else "client.get(key)"
    signature = f"def {a}_{b}_{number}(client, {b}_id: str, limit: int = {rng.randint(1, 500)}) -> dict:"
    doc = f'    """Return the {a} of one {b}, retried on timeouts."""'
    body = [f'    key = f"{a}:{{{b}_id}}:{{limit}}"', f"    value = {fetch}", "    if value is None:"]
    return [signature, doc, *body, "        log.info('miss %s', key)", f"    return {{'{a}': value}}", ""]


def _paragraph(rng: random.Random, number: int) -> list[str]:
    words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(8, 20)))
    return [f"{words.capitalize()} ({number}).", ""]


def _setting(rng: random.Random, number: int) -> list[str]:
    key = rng.choice(_WORDS)
    value = rng.choice([str(number), f"env:{key.upper()}_{number}", f"{key}-{rng.choice(_WORDS)}"])
    return [f"{key}_{number}: {value}"]


_PY_HEAD = [
    "from __future__ import annotations",
    "",
    "import logging",
    "import os",
    "",
    "log = logging.getLogger(__name__)",
    "",
]
_KINDS = {
    ".py": (_PY_HEAD, _function),
    ".md": (["# Notes", ""], _paragraph),
    ".yaml": (["# settings"], _setting),
}
_FOLDERS = [("src/pipeline", ".py")] * 2 + [("tests", ".py"), ("docs", ".md"), ("config", ".yaml")]


def _new_file(rng: random.Random, number: int) -> tuple[str, list[str]]:
    folder, suffix = rng.choice(_FOLDERS)
    name = f"{folder}/{'test_' if folder == 'tests' else ''}{rng.choice(_WORDS)}_{number}{suffix}"
    head, part = _KINDS[suffix]
    return name, head + [line for index in range(rng.randint(3, 12)) for line in part(rng, index)]


def _edit(rng: random.Random, lines: list[str], suffix: str, number: int) -> None:
    """A part added somewhere; past 320 lines one as long goes elsewhere (files grow, then hold steady)."""
    head, part = _KINDS[suffix]
    addition, at = part(rng, number), rng.randint(len(head), len(lines))
    lines[at:at] = addition
    if len(lines) > 320:
        start = rng.randrange(len(head), len(lines) - len(addition))
        del lines[start : start + len(addition)]


def _leaks() -> dict[str, list[str]]:
    """Credentials drawn now, so neither this file nor the repository it builds holds a fixed one."""

    def draw(alphabet: str, length: int) -> str:
        return "".join(secrets.choice(alphabet) for _ in range(length))

    upper, alnum = string.ascii_uppercase + string.digits, string.ascii_letters + string.digits
    aws = [f"AWS_ACCESS_KEY_ID=AKIA{draw(upper, 16)}", f"AWS_SECRET_ACCESS_KEY={draw(alnum, 40)}"]
    return {"deploy/.env": aws, "config/modal.yaml": ["# settings", f"modal_token_id: ak-{draw(alnum, 24)}"]}


def build(root: Path, commits: int, seed: int) -> None:
    """A repository of `commits` commits on main, written with one `git fast-import`: a new file every
    50 commits, one deleted every 211, `deploy/.env` added at 30 % and deleted 20 commits later,
    `config/modal.yaml` (which then gets edited like the others) added at 70 %."""
    rng, leaks = random.Random(seed), _leaks()
    files = dict(_new_file(rng, number) for number in range(230))
    stream: list[bytes] = []
    for number in range(commits):
        written, deleted = set(files) if number == 0 else set(), set()
        if number and number % 50 == 0:
            name, files[name] = _new_file(rng, 1000 + number)
            written.add(name)
        elif number and number % 211 == 0:
            deleted.add(rng.choice(sorted(files)))
        for name, at in (("deploy/.env", 3), ("config/modal.yaml", 7)):
            if number == commits * at // 10:
                files[name] = leaks[name]
                written.add(name)
        if number == commits * 3 // 10 + 20:
            deleted.add("deploy/.env")
        for name in rng.sample(sorted(files), rng.randint(1, 3)) if number else []:
            if name.endswith((".py", ".md", ".yaml")) and name not in deleted:
                _edit(rng, files[name], os.path.splitext(name)[1], number)
                written.add(name)
        body = [f"D {name}\n".encode() for name in sorted(deleted & set(files))]
        for name in deleted:
            files.pop(name, None)
        for name in sorted(written - deleted):
            data = ("\n".join(files[name]) + "\n").encode()
            body.append(f"M 100644 inline {name}\ndata {len(data)}\n".encode() + data + b"\n")
        when, message = 1_700_000_000 + 60 * number, f"change {number}"
        header = f"commit refs/heads/main\ncommitter d <d@example.invalid> {when} +0000\n"
        stream.append(f"{header}data {len(message)}\n{message}\n".encode() + b"".join(body))
    git(root, "init", "-q", "-b", "main")
    git(root, "fast-import", "--quiet", stdin=b"".join(stream))
    git(root, "checkout", "-q", "-f", "main")


# --- measuring -----------------------------------------------------------------------------------------


def timed(argv: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        argv, cwd=cwd, env=_GIT_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True
    )
    return (time.perf_counter() - started) * 1000


@dataclass
class Run:
    wall_ms: float
    cpu_ms: float
    """This process's CPU (all threads) plus that of the git processes it ran and waited for."""
    result: Any

    @property
    def findings(self) -> list[tuple[str, str]]:
        return [(f.subject, f.status.value) for f in self.result.findings]

    @property
    def blobs(self) -> str:
        evidence = self.result.findings[0].evidence
        return f"{evidence['blobs_scanned']} blobs scanned, {evidence['blobs_skipped_clean']} skipped clean"


def check_once(repo: Path, commits: int) -> Run:
    from pipectl.checks.repo_secrets import RepoSecrets

    from pipectl.config import PipelineConfig
    from pipectl.interface import Context
    from pipectl.runner import run_checks

    config = PipelineConfig(repo={"path": str(repo), "max_commits": commits})
    cpu, children, started = time.process_time(), _children_cpu(), time.perf_counter()
    result = run_checks([RepoSecrets], Context(config=config, timeout=120))
    wall = (time.perf_counter() - started) * 1000
    return Run(wall, (time.process_time() - cpu) * 1000 + (_children_cpu() - children), result)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * 1000


def row(label: str, value_ms: float, anchor_ms: float | None = None, note: str = "") -> str:
    anchor = f"anchor <= {anchor_ms:3.0f} ms  ratio {value_ms / anchor_ms:5.2f}" if anchor_ms else f"{'':29}"
    return f"{label:36} {value_ms:8.1f} ms   {anchor}   {note}"


def warm_row(label: str, runs: list[Run]) -> tuple[str, float]:
    wall = statistics.median(run.wall_ms for run in runs)
    note = (
        f"min {min(run.wall_ms for run in runs):.1f} ms, "
        f"CPU {statistics.median(run.cpu_ms for run in runs):.1f}"
        f" ms; {runs[0].blobs}"
    )
    return row(f"{label} (median of {len(runs)})", wall, WARM_ANCHOR_MS, note), wall


def doctor_process(base: Path, repo: Path, commits: int, runs: int) -> tuple[float, float]:
    """Median wall time of `pipectl doctor --only repo.secrets`, and of the run it reports (imports
    included)."""
    config = base / "pipectl.toml"
    config.write_text(f'[repo]\npath = "{repo}"\nmax_commits = {commits}\n[doctor]\ntimeout = 60\n')
    argv = [sys.executable, "-m", "pipectl", "doctor", "--config", str(config), "--only", "repo.secrets"]
    walls, reported = [], []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run([*argv, "--format", "json", "--no-journal"], capture_output=True, check=False)
        walls.append((time.perf_counter() - started) * 1000)
        reported.append(json.loads(done.stdout)["duration_s"] * 1000)
    return statistics.median(walls), statistics.median(reported)


def where_time_goes(repo: Path, commits: int) -> None:
    print("where the time goes: git alone")
    history = [f"--max-count={commits}", "--all", "--no-renames"]
    for label, argv in [
        ("git log -p (the scan before ran it)", ["git", "log", "-p", "--unified=0", *history]),
        ("git log --raw (list the changes)", ["git", "log", "--raw", "--no-abbrev", *history]),
        ("git rev-parse --all (the refs)", ["git", "rev-parse", "--all"]),
        ("git ls-files (the working tree)", ["git", "ls-files", "--cached", "--others"]),
    ]:
        print(row(f"  {label}", timed(argv, repo)))


def in_process(repo: Path, commits: int, runs: int) -> tuple[float, bool]:
    """Cold, warm, one commit on, warm again; the warm median and whether every run found the same."""
    print("\nrepo.secrets, in-process")
    cold = check_once(repo, commits)
    print(row("  cold (nothing remembered)", cold.wall_ms, note=f"CPU {cold.cpu_ms:.0f} ms; {cold.blobs}"))
    warm_runs = [check_once(repo, commits) for _ in range(runs)]
    line, warm = warm_row("  warm", warm_runs)
    print(f"{line}\n  {'cold / warm':34} {cold.wall_ms / warm:8.1f} x")
    (repo / "docs" / "release.md").write_text("# Release\n\nOne more page.\n")
    git(repo, "add", "docs/release.md")
    git(repo, "-c", "user.name=b", "-c", "user.email=b@example.invalid", "commit", "-qm", "one more")
    after = check_once(repo, commits)
    print(
        row("  one new commit (refs moved)", after.wall_ms, note=f"CPU {after.cpu_ms:.0f} ms; {after.blobs}")
    )
    print(warm_row("  warm again", [check_once(repo, commits) for _ in range(runs)])[0])
    print(f"  findings: {', '.join(f'{s} {v}' for s, v in cold.findings)}")
    return warm, all(run.findings == cold.findings for run in [*warm_runs, after])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--commits", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        os.environ["PIPECTL_STATE_DIR"] = str(base / "state")  # never the user's cache
        repo, warmup = base / "repo", base / "warmup"
        repo.mkdir()
        warmup.mkdir()
        started = time.perf_counter()
        build(repo, args.commits, args.seed)
        build(warmup, 20, args.seed + 1)
        files = len(git(repo, "ls-files").splitlines())
        built = time.perf_counter() - started
        print(f"repository: {args.commits} commits, {files} files, built in {built:.1f} s; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")  # fmt: skip
        where_time_goes(repo, args.commits)
        check_once(warmup, 20)  # imports and the scanner's version: paid once per process, not by a scan
        warm, same = in_process(repo, args.commits, args.runs)
        wall, reported = doctor_process(base, repo, args.commits, args.runs)
        note = f"whole process; {reported:.0f} ms the run it reports (its `duration_s`)"
        print(row(f"\ndoctor --only repo.secrets (median of {args.runs})", wall, note=note))
        print(f"\nevery run found the same: {same}; load average {os.getloadavg()[0]:.1f}")
    return 0 if warm <= WARM_ANCHOR_MS and same else 1


if __name__ == "__main__":
    sys.exit(main())
