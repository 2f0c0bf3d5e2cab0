"""Git: a repository's refs and blobs, and how pipectl runs git. With `git_history` (the commits) and
`git_worktree` (the files), the only place pipectl runs `git`.

Read-only and defensive, because the repository may not be ours: no external diff drivers or textconv
filters, no fsmonitor hook, no optional locks (so a scan never rewrites the index), and the caller's
GIT_DIR/GIT_WORK_TREE are dropped so a run from inside a git hook looks at the right repository.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from pipectl.durations import whole_seconds
from pipectl.errors import ConnectorError, NotFound, Unreachable

MAX_FILE_BYTES = 1 << 20
"""Working-tree files and blobs larger than this are skipped; history diffs treat such blobs as binary."""
BINARY_SNIFF = 8000
"""A NUL byte in this many first bytes makes a file binary: not read as text, as git's diff decides too."""
_SAFE_CONFIG = (
    "core.quotePath=false", "core.fsmonitor=false", f"core.bigFileThreshold={MAX_FILE_BYTES}",
    "diff.noprefix=false", "diff.relative=false", "log.showSignature=false", "color.ui=false",
)  # fmt: skip
UNREADABLE = re.compile(
    r"(unable to|[Cc]ould not) (read|unpack)|corrupt|inflate|(bad|invalid) object|missing (blob|tree)"
)
"""What git says when an object it needs is missing or damaged."""
OBJECT_ID = re.compile(r"\b[0-9a-f]{40}(?:[0-9a-f]{24})?\b")
_DROPPED_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_NAMESPACE",
                "GIT_CEILING_DIRECTORIES", "GIT_EXTERNAL_DIFF", "GIT_PAGER", "PAGER")  # fmt: skip


@dataclass(frozen=True)
class Repository:
    """A repository's root, and where `git log --all` starts and stops as of now."""

    root: Path
    refs: str | None
    """A digest of every ref's commit, HEAD, and a shallow clone's boundary: equal digests mean the same
    commits, so a scan of them need not list them again. None when git could not list them."""


def repository(path: str | os.PathLike, timeout: float) -> Repository:
    """The repository holding `path`, with its refs' digest from the same git call (every process saves
    milliseconds of a scan that takes fifty); NotFound when `path` is not inside one."""
    folder = Path(path).expanduser()
    if not folder.exists():
        raise NotFound(f"{folder} does not exist")
    if not folder.is_dir():
        folder = folder.parent
    try:
        lines = run(folder, ["rev-parse", "--show-toplevel", "--all", "--git-path", "shallow", "--git-path",
                             "HEAD"], timeout).splitlines()  # fmt: skip
    except GitFailed as exc:
        if "not a git repository" in exc.stderr.lower():
            raise NotFound(f"{folder} is not inside a git repository") from None
        try:  # a ref git cannot read: the repository can still be scanned, from scratch
            return Repository(
                Path(run(folder, ["rev-parse", "--show-toplevel"], timeout).decode().strip()), None
            )
        except GitFailed as again:
            raise ConnectorError(f"git cannot read {folder}: {again.first_line}") from None
    digest = hashlib.sha256(b"\n".join(lines[1:-2]))
    for name in lines[-2:]:  # relative to `folder`: the shallow boundary, and HEAD (a detached one too)
        try:
            digest.update(b"\x00" + (folder / os.fsdecode(name)).read_bytes())
        except OSError:
            digest.update(b"\x00-")  # no shallow file: a full clone
    return Repository(Path(lines[0].decode("utf-8", "replace")), digest.hexdigest())


def is_text(data: bytes) -> bool:
    """What the scanner reads: not binary, not too large. The same test for files and blobs, so a
    working-tree file and the blob with the same bytes are read alike."""
    return len(data) <= MAX_FILE_BYTES and b"\x00" not in data[:BINARY_SNIFF]


def text_of(data: bytes) -> str | None:
    """The text of a file's or blob's bytes; None when the scanner does not read them (`is_text`)."""
    return data.decode("utf-8", "replace") if is_text(data) else None


def blob_id(data: bytes) -> str:
    """The id git gives these bytes as a blob: a working-tree file and the committed blob it equals share
    it, so a scan result remembered for one serves the other."""
    return hashlib.sha1(b"blob %d\x00" % len(data) + data, usedforsecurity=False).hexdigest()


def head_blob_ids(root: Path, paths: list[str], timeout: float) -> dict[str, str]:
    """Each path's blob id at HEAD, for those HEAD has: a look at names only, no content read, so the
    working-tree file that matches HEAD's blob need not be read from git again."""
    asked = [path for path in paths if "\n" not in path]
    listed = run_full(
        root, ["cat-file", "--batch-check"], timeout, "".join(f"HEAD:{p}\n" for p in asked).encode()
    )
    ids: dict[str, str] = {}
    for path, answer in zip(asked, listed.stdout.decode("utf-8", "replace").splitlines(), strict=False):
        fields = answer.split(" ")
        if len(fields) == 3 and fields[1] == "blob" and OBJECT_ID.fullmatch(fields[0]):
            ids[path] = fields[0]
    return ids


def committed_texts(root: Path, paths: list[str], timeout: float) -> tuple[dict[str, str], dict[str, str]]:
    """Each path's text as committed at HEAD (left out when HEAD lacks it, or it is binary or too large),
    and path → object id for those HEAD has but git cannot read (missing or corrupt)."""
    listed = run_full(root, ["ls-tree", "-r", "-z", "--full-tree", "HEAD"], timeout)
    problem = listed.stderr.decode("utf-8", "replace")
    if UNREADABLE.search(problem):  # part of HEAD's tree cannot be read: a path may be in it, assume so
        tree = next(iter(OBJECT_ID.findall(problem)), "HEAD^{tree}")
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
            answers, done = _read_batch(run(root, ["cat-file", "--batch"], timeout, request)), True
        except GitFailed as exc:  # died at an object it cannot read: ask again for the ones after it
            answers, done = _read_batch(exc.stdout), False
            answers.update({oid: None for oid in pending[len(answers) : len(answers) + 1]})
        for oid, data in answers.items():
            for path in blobs[oid]:
                if data is None:
                    unreadable[path] = oid
                elif (text := text_of(data)) is not None:
                    texts[path] = text
        pending = [] if done else pending[len(answers) :]
    return texts, unreadable


class BlobReader:
    """Blobs one at a time from one `git cat-file --batch`, for a scan that learns which it needs as it
    goes: one process however many blobs. A missing or corrupt blob reads as None and is listed in
    `unreadable`; from `deadline` (monotonic) on every read is None and `truncated` is True. Use with `with`.
    """

    def __init__(self, root: Path, deadline: float) -> None:
        self.root = root
        self.deadline = deadline
        self.unreadable: list[str] = []
        self.truncated = False
        self._proc: subprocess.Popen | None = None
        self._watchdog: threading.Timer | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._close()

    def read(self, oid: str) -> bytes | None:
        if self.truncated or time.monotonic() > self.deadline:
            self.truncated = True
            return None
        proc = self._process()
        try:
            proc.stdin.write(oid.encode() + b"\n")  # type: ignore[union-attr]
            proc.stdin.flush()  # type: ignore[union-attr]
            header = proc.stdout.readline().split()  # type: ignore[union-attr]
            if len(header) == 3 and header[2].isdigit():
                size = int(header[2]) + 1  # the content and its newline
                data = proc.stdout.read(size)  # type: ignore[union-attr]
                if len(data) == size:
                    if header[1] == b"blob":
                        return data[:-1]
                    header = [b"not a blob"]
                else:
                    header = []
        except OSError:  # git is gone: killed at the deadline, or it stopped at an object it cannot read
            header = []
        if not header:  # no whole answer: the process is of no more use, the next read starts another
            self._close()
            self.truncated = time.monotonic() > self.deadline
        if not self.truncated:
            self.unreadable.append(oid)
        return None

    def _process(self) -> subprocess.Popen:
        if self._proc is None:
            self._proc = subprocess.Popen(command(self.root, ["cat-file", "--batch"]), stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                          env=environment())  # fmt: skip
            self._watchdog = threading.Timer(max(self.deadline - time.monotonic(), 0.0), self._proc.kill)
            self._watchdog.daemon = True
            self._watchdog.start()
        return self._proc

    def _close(self) -> None:
        proc, self._proc = self._proc, None
        if self._watchdog is not None:
            self._watchdog.cancel()
        if proc is not None:
            proc.kill()
            proc.wait()
            proc.stdin.close()  # type: ignore[union-attr]
            proc.stdout.close()  # type: ignore[union-attr]


# --- plumbing ------------------------------------------------------------------------------------------


class GitFailed(Exception):
    def __init__(self, stderr: str, stdout: bytes = b"") -> None:
        super().__init__(stderr)
        self.stderr = stderr
        self.stdout = stdout

    @property
    def first_line(self) -> str:
        lines = [line for line in self.stderr.strip().splitlines() if line.strip()]
        return lines[0] if lines else "unknown error"


def command(root: Path, args: list[str]) -> list[str]:
    config = [item for pair in _SAFE_CONFIG for item in ("-c", pair)]
    return ["git", "--no-pager", "-C", str(root), *config, *args]


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
    env.update(GIT_OPTIONAL_LOCKS="0", GIT_TERMINAL_PROMPT="0", LC_ALL="C")
    return env


def run(root: Path, args: list[str], timeout: float, data: bytes | None = None) -> bytes:
    result = run_full(root, args, timeout, data)
    if result.returncode:
        raise GitFailed(result.stderr.decode("utf-8", "replace"), result.stdout)
    return result.stdout


def run_full(
    root: Path, args: list[str], timeout: float, data: bytes | None = None
) -> subprocess.CompletedProcess:
    """Run git to the end, or kill it at `timeout` (Unreachable). A watchdog kills it rather than
    `subprocess.run(timeout=…)`, whose wait polls with sleeps: milliseconds on every call of a scan
    that must take fifty in all."""
    stdin = subprocess.DEVNULL if data is None else subprocess.PIPE
    try:
        proc = subprocess.Popen(
            command(root, args),
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environment(),
        )
    except FileNotFoundError:
        raise ConnectorError("git is not installed (or not on PATH)") from None
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        proc.kill()

    watchdog = threading.Timer(timeout, expire)
    watchdog.daemon = True
    watchdog.start()
    try:
        stdout, stderr = proc.communicate(data)
    finally:
        watchdog.cancel()
    if expired.is_set():
        raise Unreachable(f"git {args[0]} did not finish within {whole_seconds(timeout)} in {root}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def _split(output: bytes) -> list[str]:
    return [name.decode("utf-8", "replace") for name in output.split(b"\x00") if name]


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
