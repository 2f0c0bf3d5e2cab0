"""Every file pipectl writes is private to the user (0600, folders 0700) and never written through a symlink.

Reports, CI artefacts and the journal describe a pipeline's failures; other local users must not read
them, and a symlink planted where a report goes must not turn `--output` into a write to another file.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pipectl.errors import UsageError

FILE_MODE = 0o600
DIR_MODE = 0o700
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def write_private(path: Path | str, text: str) -> None:
    """Replace `path` atomically with `text`, mode 0600, so a reader never sees half a report or a wider mode.

    A temp file beside the target is created exclusively (never through a symlink), synced, then renamed
    over the target; rename replaces a symlink instead of following it, and a symlink target is refused.
    """
    path = Path(path)
    refuse_symlink(path)
    if path.is_dir():
        raise UsageError(f"{path} is a directory; cannot write a file there")
    if not path.parent.exists():
        private_dir(path.parent)
    temp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, FILE_MODE)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    try:
        try:
            os.fchmod(fd, FILE_MODE)  # whatever the umask
            data = text.encode("utf-8")
            while data:
                data = data[os.write(fd, data):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException as exc:
        temp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise UsageError(f"cannot write {path}: {exc.strerror}") from None
        raise


def private_dir(path: Path | str, tighten: bool = True) -> Path:
    """Create `path` (and any missing parent) as 0700; with `tighten`, narrow an existing one the user owns.

    pipectl's own folders (the journal's state dir) hold run history that is nobody else's business.
    """
    path = Path(path)
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:
            pass
        except OSError as exc:
            raise UsageError(f"cannot create {folder}: {exc.strerror}") from None
    info = path.stat()
    if tighten and info.st_uid == os.geteuid() and info.st_mode & 0o077:
        os.chmod(path, DIR_MODE)
    return path


def private_file(path: Path | str, siblings: tuple[str, ...] = ()) -> Path:
    """Make sure `path` exists as a 0600 regular file before another library (SQLite) opens it.

    Created 0600 if missing; an existing one the user owns is narrowed to 0600, as are the named
    siblings (`path` + suffix) that exist. A symlink is refused.
    """
    path = Path(path)
    refuse_symlink(path)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC, FILE_MODE)
    except OSError as exc:
        raise UsageError(f"cannot open {path}: {exc.strerror}") from None
    try:
        _narrow(fd)
    finally:
        os.close(fd)
    for suffix in siblings:
        sibling = path.with_name(path.name + suffix)
        try:
            fd = os.open(sibling, os.O_RDONLY | _NOFOLLOW | _CLOEXEC)
        except OSError:
            continue  # absent (the usual case), or a symlink we will not touch
        try:
            _narrow(fd)
        finally:
            os.close(fd)
    return path


def refuse_symlink(path: Path) -> None:
    """A symlink where pipectl writes could point anywhere: refuse it, as one line naming the path."""
    if path.is_symlink():
        raise UsageError(f"{path} is a symbolic link; refusing to write through it")


def _narrow(fd: int) -> None:
    info = os.fstat(fd)
    if info.st_uid == os.geteuid() and info.st_mode & 0o777 != FILE_MODE:
        os.fchmod(fd, FILE_MODE)
