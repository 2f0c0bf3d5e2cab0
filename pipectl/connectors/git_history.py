"""Git history for the secret scan: the blobs the newest commits brought in, and the lines they added.

Two passes, because they cost very differently (5,000 commits, `bench/repo_scan.py`): listing each
commit's changed files with their blob ids (`git log --raw`) reads commits and trees only, 0.08 s; the
lines each change added (`git diff-tree -p`, as `git log -p`) read and diff every blob, 0.45 s. The scan
lists first, then asks for the lines of just the commits that bring in a blob not already known clean.

Both passes survive a damaged repository: an object git cannot read (missing or corrupt) ends git's
output; it is listed in `unreadable`, the commit it broke off is listed in `broken`, and git starts again
after that commit.
"""

from __future__ import annotations

import codecs
import subprocess
import tempfile
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, NamedTuple

from pipectl.connectors.git import OBJECT_ID, UNREADABLE, GitFailed, command, environment, run
from pipectl.errors import ConnectorError, Unreachable

DIFF_OPTIONS = ("--no-color", "--no-ext-diff", "--no-textconv", "--no-renames", "--diff-filter=d")
"""Both passes see the same changes: no renames (a renamed file is added whole), deletions left out."""
PATCH_OPTIONS = ("-p", "--unified=0", "--src-prefix=a/", "--dst-prefix=b/")
"""Only added lines, no context: what a commit added is what it is blamed for."""
_HEADER = "--format=format:%x00%H"
_REGULAR = (b"100644", b"100755")
_MAX_STALLS = 3
"""Failures in a row before any commit is shown (a missing tree) after which a pass gives up."""


class Change(NamedTuple):
    """A file a commit added or modified: its blob before (None when the commit added it) and after. A
    tuple: thousands are listed on every scan whose refs moved."""

    commit: str
    path: str
    old: str | None
    new: str


@dataclass(frozen=True)
class FilePatch:
    """The lines one commit added to one file, with their line numbers in that commit's version."""

    commit: str
    path: str
    lines: list[tuple[int, str]]


def changes(root: Path, max_commits: int, deadline: float) -> Changes:
    """The changed regular files of the newest `max_commits` commits of all refs (merges show none),
    newest first, stopped at `deadline` (monotonic)."""
    return Changes(root, deadline, max_commits=max_commits)


def patches(root: Path, commits: list[str], deadline: float) -> Patches:
    """The lines `commits` added, file by file, in the order given, stopped at `deadline` (monotonic)."""
    return Patches(root, deadline, wanted=commits)


@dataclass
class _Pass:
    """One git command over commits in a known order. Iterate once.

    `shown` lists the commits git showed; `truncated` is True when the deadline stopped it first; `broken`
    holds the commits whose output an unreadable object cut short (a later attempt goes on after them).
    """

    root: Path
    deadline: float
    shown: list[str] = field(default_factory=list)
    truncated: bool = False
    unreadable: list[str] = field(default_factory=list)
    broken: set[str] = field(default_factory=set)
    _shown: set[str] = field(default_factory=set, repr=False)
    _proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def commits(self) -> int:
        return len(self.shown)

    @property
    def complete(self) -> set[str]:
        """The commits whose whole output was read."""
        return {commit for commit in self.shown if self.whole(commit)}

    def whole(self, commit: str) -> bool:
        """Whether git's whole output for `commit` was read; ask once git has gone past it, or ended."""
        if commit not in self._shown or commit in self.broken:
            return False
        return not (self.truncated and self.shown[-1] == commit)

    def __iter__(self) -> Iterator:
        watchdog = threading.Timer(max(self.deadline - time.monotonic(), 0.0), self._stop)
        watchdog.daemon = True
        watchdog.start()
        try:
            start = stalled = 0
            order: list[str] = []
            while self._more(start) and not self.truncated:
                before = self.commits
                error = yield from self._attempt(start)
                if error is None or self.truncated:
                    return
                if not UNREADABLE.search(error):
                    raise ConnectorError(f"git failed in {self.root}: {error.splitlines()[-1]}")
                named = OBJECT_ID.findall(error) or [error.splitlines()[-1][:200]]
                self.unreadable += [name for name in dict.fromkeys(named) if name not in self.unreadable]
                order = order or self._order()
                # git shows a commit's header before reading its blobs: go on after that commit; no header
                # means it failed earlier (a missing tree): step one commit further, a few times at most
                stalled = stalled + 1 if self.commits == before else 0
                last = self.shown[-1] if self.shown else ""
                if not stalled:
                    self.broken.add(last)
                if stalled > _MAX_STALLS or (not stalled and last not in order):
                    return
                start = start + 1 if stalled else order.index(last) + 1
        finally:
            watchdog.cancel()

    def _attempt(self, start: int) -> Generator[object, None, str | None]:
        """One run of git from the `start`-th commit on; returns its error output when it failed."""
        args, feed = self._command(start)
        with tempfile.TemporaryFile() as stderr, tempfile.TemporaryFile() as stdin:
            stdin.write(feed)
            stdin.seek(0)
            proc = subprocess.Popen(command(self.root, args), stdout=subprocess.PIPE, stderr=stderr,
                                    stdin=stdin, env=environment())  # fmt: skip
            self._proc = proc
            try:
                yield from self._parse(proc.stdout)  # type: ignore[arg-type]
                proc.wait()
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                proc.stdout.close()  # type: ignore[union-attr]
            if not proc.returncode or self.truncated:
                return None
            stderr.seek(0)
            message = stderr.read().decode("utf-8", "replace").strip()
        if not message or "does not have any commits" in message:
            return None  # a repository without commits has no history to scan
        return message

    def _stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self.truncated = True
            self._proc.kill()

    def _seen(self, header: bytes) -> None:
        self.shown.append(header[1:].strip().decode("ascii", "replace"))
        self._shown.add(self.shown[-1])

    def _more(self, start: int) -> bool:
        raise NotImplementedError

    def _order(self) -> list[str]:
        raise NotImplementedError

    def _command(self, start: int) -> tuple[list[str], bytes]:
        raise NotImplementedError

    def _parse(self, out: IO[bytes]) -> Iterator:
        raise NotImplementedError


@dataclass
class Changes(_Pass):
    """`git log --all --raw`: the changes of the newest commits, newest first."""

    max_commits: int = 1000

    def _more(self, start: int) -> bool:
        return self.commits < self.max_commits

    def _order(self) -> list[str]:
        """Every commit in the order `git log` walks them, for `--skip` (which counts each one, shown
        or not)."""
        timeout = max(self.deadline - time.monotonic(), 0.1)
        try:
            return run(self.root, ["rev-list", "--all"], timeout).decode().split()
        except (GitFailed, Unreachable):
            return []

    def _command(self, start: int) -> tuple[list[str], bytes]:
        args = ["log", "--all", "--raw", "--no-abbrev", *DIFF_OPTIONS, _HEADER,
                f"--max-count={self.max_commits - self.commits}", f"--skip={start}"]  # fmt: skip
        return args, b""

    def _parse(self, out: IO[bytes]) -> Iterator[Change]:
        commit = ""
        for raw in out:
            if raw.startswith(b":"):  # `:oldmode newmode old new status<TAB>path`
                meta, _, path = raw.partition(b"\t")
                fields = meta.split(b" ")
                if len(fields) == 5 and fields[1] in _REGULAR:
                    old = None if fields[4].startswith(b"A") else fields[2].decode()
                    yield Change(commit, _unquote(path.rstrip(b"\r\n")), old, fields[3].decode())
            elif raw.startswith(b"\x00"):
                self._seen(raw)
                commit = self.shown[-1]


@dataclass
class Patches(_Pass):
    """`git diff-tree --stdin -p`: the lines the given commits added, in the order given."""

    wanted: list[str] = field(default_factory=list)

    def _more(self, start: int) -> bool:
        return start < len(self.wanted)

    def _order(self) -> list[str]:
        return self.wanted

    def _command(self, start: int) -> tuple[list[str], bytes]:
        args = ["diff-tree", "--stdin", "--root", "--always", *DIFF_OPTIONS, *PATCH_OPTIONS, _HEADER]
        return args, "".join(f"{commit}\n" for commit in self.wanted[start:]).encode()

    def _parse(self, out: IO[bytes]) -> Iterator[FilePatch]:
        commit = ""
        path: str | None = None
        lines: list[tuple[int, str]] = []
        old_left = new_left = 0
        number = 0
        for raw in out:
            if old_left > 0 or new_left > 0:  # inside a hunk: the counts say which lines are content
                marker = raw[:1]
                if marker == b"+":
                    lines.append((number, raw[1:].rstrip(b"\r\n").decode("utf-8", "replace")))
                    number += 1
                    new_left -= 1
                    continue
                if marker == b"-":
                    old_left -= 1
                    continue
                if marker == b"\\":
                    continue
                old_left = new_left = 0  # the hunk ended early (should not happen): read it as a header
            if raw[:1] == b"\x00":
                if path and lines:
                    yield FilePatch(commit, path, lines)
                self._seen(raw)
                commit, path, lines = self.shown[-1], None, []
            elif raw.startswith(b"diff --git "):
                if path and lines:
                    yield FilePatch(commit, path, lines)
                path, lines = None, []
            elif raw.startswith(b"+++ "):
                path = _diff_path(raw[4:].rstrip(b"\r\n"))
            elif raw.startswith(b"@@ ") and path is not None:
                old_left, number, new_left = _hunk_header(raw)
        if path and lines:
            yield FilePatch(commit, path, lines)


def _unquote(raw: bytes) -> str:
    """A path as git prints it: C-quoted (`"tab\\there"`) when it holds special characters."""
    if raw.startswith(b'"') and raw.endswith(b'"'):
        raw = codecs.escape_decode(raw[1:-1])[0]
    return raw.decode("utf-8", "replace")


def _diff_path(raw: bytes) -> str | None:
    """The path of a `+++ b/path` line; None for /dev/null. Git ends an unquoted path that holds a space
    with a tab (for patch(1)); a path that really ends in a tab is quoted."""
    if raw == b"/dev/null":
        return None
    if not raw.startswith(b'"') and raw.endswith(b"\t"):
        raw = raw[:-1]
    path = _unquote(raw)
    return path.removeprefix("b/")


def _hunk_header(raw: bytes) -> tuple[int, int, int]:
    """(old line count, first new line number, new line count) from `@@ -a,b +c,d @@`."""
    try:
        old, new = raw.split(b" ")[1:3]
        old_count = int(old.split(b",")[1]) if b"," in old else 1
        start, _, count = new[1:].partition(b",")
        return old_count, int(start), int(count) if count else 1
    except (ValueError, IndexError):
        return 0, 0, 0
