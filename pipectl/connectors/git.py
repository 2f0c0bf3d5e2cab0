"""Git: the files of a working tree and the lines every commit added. The only place pipectl runs `git`.

Read-only and defensive, because the repository may not be ours: no external diff drivers or textconv
filters, no fsmonitor hook, no optional locks (so a scan never rewrites the index), and the caller's
GIT_DIR/GIT_WORK_TREE are dropped so a run from inside a git hook looks at the right repository.
"""

from __future__ import annotations

import codecs
import os
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pipectl.durations import whole_seconds
from pipectl.errors import ConnectorError, NotFound, Unreachable

MAX_FILE_BYTES = 1 << 20
"""Working-tree files larger than this are skipped; history diffs treat such blobs as binary."""
_BINARY_SNIFF = 8000
_SAFE_CONFIG = (
    "core.quotePath=false", "core.fsmonitor=false", f"core.bigFileThreshold={MAX_FILE_BYTES}",
    "diff.noprefix=false", "diff.relative=false", "log.showSignature=false", "color.ui=false",
)  # fmt: skip
_UNREADABLE = re.compile(
    r"(unable to|[Cc]ould not) (read|unpack)|corrupt|inflate|(bad|invalid) object|missing (blob|tree)"
)
"""What git says when an object it needs is missing or damaged."""
_OBJECT_ID = re.compile(r"\b[0-9a-f]{40}(?:[0-9a-f]{24})?\b")
_MAX_STALLS = 3
"""Failures in a row before any commit is shown (a missing tree) after which the history scan gives up."""
_DROPPED_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_NAMESPACE",
                "GIT_CEILING_DIRECTORIES", "GIT_EXTERNAL_DIFF", "GIT_PAGER", "PAGER")  # fmt: skip


@dataclass(frozen=True)
class TreeFile:
    """A file of the working tree, relative to the repository root."""

    path: str
    tracked: bool
    """False for untracked files that .gitignore does not exclude (one `git add -A` from a commit)."""


@dataclass(frozen=True)
class FilePatch:
    """The lines one commit added to one file, with their line numbers in that commit's version."""

    commit: str
    path: str
    lines: list[tuple[int, str]]


@dataclass
class History:
    """Streams the added lines of the newest commits of every ref. Iterate once.

    `commits` counts the commits seen so far; `truncated` is True when the deadline stopped git before it
    had shown every commit asked for. An object git cannot read (missing or corrupt) ends git's walk: it
    is listed in `unreadable` and the walk resumes after the commit that needed it.
    """

    root: Path
    max_commits: int
    deadline: float
    commits: int = 0
    truncated: bool = False
    unreadable: list[str] = field(default_factory=list)
    _last: str = field(default="", repr=False)
    _proc: subprocess.Popen | None = field(default=None, repr=False)

    def __iter__(self) -> Iterator[FilePatch]:
        watchdog = threading.Timer(max(self.deadline - time.monotonic(), 0.0), self._stop)
        watchdog.daemon = True
        watchdog.start()
        try:
            skip = stalled = 0
            walk_order: list[str] = []
            while self.commits < self.max_commits and not self.truncated:
                before = self.commits
                error = yield from self._walk(skip)
                if error is None or self.truncated:
                    return
                if not _UNREADABLE.search(error):
                    raise ConnectorError(f"git log failed in {self.root}: {error.splitlines()[-1]}")
                named = _OBJECT_ID.findall(error) or [error.splitlines()[-1][:200]]
                self.unreadable += [name for name in dict.fromkeys(named) if name not in self.unreadable]
                walk_order = walk_order or self._walk_order()
                # git shows a commit's header before reading its blobs: go on after that commit (`--skip`
                # counts every commit walked, shown or not); no header means it failed earlier (a missing
                # tree): step one commit further, a few times at most
                stalled = stalled + 1 if self.commits == before else 0
                if stalled > _MAX_STALLS or (not stalled and self._last not in walk_order):
                    return
                skip = skip + 1 if stalled else walk_order.index(self._last) + 1
        finally:
            watchdog.cancel()

    def _walk_order(self) -> list[str]:
        timeout = max(self.deadline - time.monotonic(), 0.1)
        try:
            return _run(self.root, ["rev-list", "--all"], timeout).decode().split()
        except (_GitFailed, Unreachable):
            return []

    def _walk(self, skip: int) -> Generator[FilePatch, None, str | None]:
        """One `git log` from the `skip`-th commit on; returns its error output when it failed."""
        args = ["log", "--all", "-p", "--no-color", "--no-ext-diff", "--no-textconv", "--no-renames",
                "--unified=0", "--diff-filter=d", "--src-prefix=a/", "--dst-prefix=b/",
                "--format=format:%x00%H", f"--max-count={self.max_commits - self.commits}",
                f"--skip={skip}"]  # fmt: skip
        with tempfile.TemporaryFile() as stderr:
            proc = subprocess.Popen(_command(self.root, args), stdout=subprocess.PIPE, stderr=stderr,
                                    stdin=subprocess.DEVNULL, env=_env())  # fmt: skip
            self._proc = proc
            try:
                yield from self._parse(proc)
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

    def _parse(self, proc: subprocess.Popen) -> Iterator[FilePatch]:
        commit = ""
        path: str | None = None
        lines: list[tuple[int, str]] = []
        old_left = new_left = 0
        number = 0
        for raw in proc.stdout:  # type: ignore[union-attr]
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
                commit, path, lines = raw[1:].strip().decode("ascii", "replace"), None, []
                self.commits += 1
                self._last = commit
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


def toplevel(path: str | os.PathLike, timeout: float) -> Path:
    """The root of the repository holding `path`; NotFound when it is not inside one."""
    folder = Path(path).expanduser()
    if not folder.exists():
        raise NotFound(f"{folder} does not exist")
    if not folder.is_dir():
        folder = folder.parent
    try:
        result = _run(folder, ["rev-parse", "--show-toplevel"], timeout)
    except _GitFailed as exc:
        if "not a git repository" in exc.stderr.lower():
            raise NotFound(f"{folder} is not inside a git repository") from None
        raise ConnectorError(f"git cannot read {folder}: {exc.first_line}") from None
    return Path(result.decode("utf-8", "replace").strip())


def tree_files(root: Path, timeout: float) -> list[TreeFile]:
    """Tracked files, then untracked files not excluded by .gitignore; sorted, relative to `root`."""
    tracked = _run(root, ["ls-files", "-z", "--cached", "--full-name"], timeout)
    untracked = _run(root, ["ls-files", "-z", "--others", "--exclude-standard", "--full-name"], timeout)
    files = {name: True for name in _split(tracked)}
    files.update({name: False for name in _split(untracked) if name not in files})
    return [TreeFile(name, tracked) for name, tracked in sorted(files.items())]


def read_text(root: Path, path: str, max_bytes: int = MAX_FILE_BYTES) -> str | None:
    """A working-tree file's text; None when it is gone, a symlink, a folder, binary or too large."""
    full = root / path
    try:
        if full.is_symlink() or not full.is_file() or full.stat().st_size > max_bytes:
            return None
        data = full.read_bytes()
    except OSError:
        return None
    if b"\x00" in data[:_BINARY_SNIFF]:
        return None
    return data.decode("utf-8", "replace")


def history(root: Path, max_commits: int, deadline: float) -> History:
    """The added lines of the newest `max_commits` commits of all refs, stopped at `deadline` (monotonic)."""
    return History(root, max_commits, deadline)


def committed_texts(root: Path, paths: list[str], timeout: float) -> tuple[dict[str, str], dict[str, str]]:
    """Each path's text as committed at HEAD (left out when HEAD lacks it, or it is binary or too large),
    and path → object id for those HEAD has but git cannot read (missing or corrupt)."""
    listed = _run_full(root, ["ls-tree", "-r", "-z", "--full-tree", "HEAD"], timeout)
    problem = listed.stderr.decode("utf-8", "replace")
    if _UNREADABLE.search(problem):  # part of HEAD's tree cannot be read: a path may be in it, assume so
        tree = next(iter(_OBJECT_ID.findall(problem)), "HEAD^{tree}")
        return {}, {path: tree for path in paths}
    if listed.returncode:
        return {}, {}  # no commit yet
    listing = _split(listed.stdout)
    wanted, blobs = set(paths), dict[str, list[str]]()
    for meta, _, path in (entry.partition("\t") for entry in listing):
        if path in wanted and meta.split(" ")[1:2] == ["blob"]:
            blobs.setdefault(meta.split(" ")[2], []).append(path)
    texts: dict[str, str] = {}
    unreadable: dict[str, str] = {}
    pending = list(blobs)
    while pending:
        request = "".join(f"{oid}\n" for oid in pending).encode()
        try:
            answers, done = _read_batch(_run(root, ["cat-file", "--batch"], timeout, request)), True
        except _GitFailed as exc:  # died at an object it cannot read: ask again for the ones after it
            answers, done = _read_batch(exc.stdout), False
            answers.update({oid: None for oid in pending[len(answers) : len(answers) + 1]})
        for oid, data in answers.items():
            for path in blobs[oid]:
                if data is None:
                    unreadable[path] = oid
                elif len(data) <= MAX_FILE_BYTES and b"\x00" not in data[:_BINARY_SNIFF]:
                    texts[path] = data.decode("utf-8", "replace")
        pending = [] if done else pending[len(answers) :]
    return texts, unreadable


# --- plumbing ------------------------------------------------------------------------------------------


class _GitFailed(Exception):
    def __init__(self, stderr: str, stdout: bytes = b"") -> None:
        super().__init__(stderr)
        self.stderr = stderr
        self.stdout = stdout

    @property
    def first_line(self) -> str:
        lines = [line for line in self.stderr.strip().splitlines() if line.strip()]
        return lines[0] if lines else "unknown error"


def _command(root: Path, args: list[str]) -> list[str]:
    config = [item for pair in _SAFE_CONFIG for item in ("-c", pair)]
    return ["git", "--no-pager", "-C", str(root), *config, *args]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
    env.update(GIT_OPTIONAL_LOCKS="0", GIT_TERMINAL_PROMPT="0", LC_ALL="C")
    return env


def _run(root: Path, args: list[str], timeout: float, data: bytes | None = None) -> bytes:
    result = _run_full(root, args, timeout, data)
    if result.returncode:
        raise _GitFailed(result.stderr.decode("utf-8", "replace"), result.stdout)
    return result.stdout


def _run_full(
    root: Path, args: list[str], timeout: float, data: bytes | None = None
) -> subprocess.CompletedProcess:
    feed = {"stdin": subprocess.DEVNULL} if data is None else {"input": data}
    try:
        result = subprocess.run(_command(root, args), capture_output=True, timeout=timeout, env=_env(),
                                check=False, **feed)  # type: ignore[call-overload]  # fmt: skip
    except FileNotFoundError:
        raise ConnectorError("git is not installed (or not on PATH)") from None
    except subprocess.TimeoutExpired:
        raise Unreachable(f"git {args[0]} did not finish within {whole_seconds(timeout)} in {root}") from None
    return result


def _split(output: bytes) -> list[str]:
    return [name.decode("utf-8", "replace") for name in output.split(b"\x00") if name]


def _diff_path(raw: bytes) -> str | None:
    """`b/path` (or a C-quoted `"b/pa\\th"`) from a `+++` line; None for /dev/null."""
    if raw.startswith(b'"') and raw.endswith(b'"'):
        raw = codecs.escape_decode(raw[1:-1])[0]
    if raw == b"/dev/null":
        return None
    if raw.startswith(b"b/"):
        raw = raw[2:]
    return raw.decode("utf-8", "replace")


def _hunk_header(raw: bytes) -> tuple[int, int, int]:
    """(old line count, first new line number, new line count) from `@@ -a,b +c,d @@`."""
    try:
        old, new = raw.split(b" ")[1:3]
        old_count = int(old.split(b",")[1]) if b"," in old else 1
        start, _, count = new[1:].partition(b",")
        return old_count, int(start), int(count) if count else 1
    except (ValueError, IndexError):
        return 0, 0, 0


def _read_batch(out: bytes) -> dict[str, bytes | None]:
    """Object id → content from `cat-file --batch` output (None for a missing object), in order, up to
    where the output ends or breaks off."""
    answers: dict[str, bytes | None] = {}
    position = 0
    while (end := out.find(b"\n", position)) >= 0:
        header, position = out[position:end].decode("ascii", "replace").split(" "), end + 1
        if len(header) == 2 and header[1] == "missing":
            answers[header[0]] = None
            continue
        if len(header) != 3 or not header[2].isdigit() or len(out) < position + int(header[2]):
            break
        answers[header[0]] = out[position : position + int(header[2])]
        position += int(header[2]) + 1
    return answers
