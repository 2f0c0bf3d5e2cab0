"""The files of a git working tree, for the secret scan: which there are, their bytes or just their stamp.

A file's stamp (size, mtime, ctime, inode) changes whenever its bytes do, so a file whose stamp is as it
was when it was found clean need not be read again — how git's index avoids rereading files too.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from pipectl.connectors.git import MAX_FILE_BYTES, run

Stamp = tuple[int, int, int, int]
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


@dataclass(frozen=True)
class TreeFile:
    """A file of the working tree, relative to the repository root."""

    path: str
    tracked: bool
    """False for untracked files that .gitignore does not exclude (one `git add -A` from a commit)."""


def tree_files(root: Path, timeout: float) -> list[TreeFile]:
    """Tracked files, then untracked files not excluded by .gitignore; sorted, relative to `root`. One
    `ls-files` for both, its tag telling them apart (`?` untracked): a process less on every doctor."""
    listed = _names(run(root, ["ls-files", "-z", "-t", "--cached", "--others", "--exclude-standard",
                               "--full-name"], timeout))  # fmt: skip
    files: dict[str, bool] = {}
    for entry in listed:
        files[entry[2:]] = files.get(entry[2:], False) or entry[:1] != "?"
    return [TreeFile(name, tracked) for name, tracked in sorted(files.items())]


def stamp(root: Path, path: str) -> Stamp | None:
    """A working-tree file's size, mtime and ctime (ns) and inode — what changes when its bytes do — or
    None when it is gone, a symlink or not a regular file. Cheaper than reading it by far."""
    try:
        info = os.lstat(os.path.join(root, path))  # no Path per file: a scan stats hundreds
    except OSError:
        return None
    return _stamp(info) if stat.S_ISREG(info.st_mode) else None


def read_file(root: Path, path: str, max_bytes: int = MAX_FILE_BYTES) -> tuple[bytes, Stamp] | None:
    """A working-tree file's bytes, and its stamp taken before reading them (a change during the read
    shows as a newer stamp next time, never as an old one); None when it is gone, not a regular file or
    too large."""
    try:
        fd = os.open(os.path.join(root, path), os.O_RDONLY | _NOFOLLOW | _NONBLOCK)  # a FIFO must not hang
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
            return None
        with os.fdopen(fd, "rb", closefd=False) as stream:
            return stream.read(max_bytes + 1), _stamp(info)
    except OSError:
        return None
    finally:
        os.close(fd)


def _stamp(info: os.stat_result) -> Stamp:
    return info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino


def _names(output: bytes) -> list[str]:
    return [name.decode("utf-8", "replace") for name in output.split(b"\x00") if name]
