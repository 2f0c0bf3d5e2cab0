"""What earlier secret scans of a repository learnt, so the next one reads only what is new.

It holds no secret and nothing one could be recovered from: the ids of blobs found *clean* (a blob with a
credential is never listed, so it is scanned again every time and its values are registered with the
redactor again); for each working-tree file whose blob is clean, that id and the file's stamp (size,
times, inode); and, for the history as last scanned whole, a digest of the refs it started from, counts,
and the commit and path of each change that added a credential — what the findings print anyway. No line,
no value, no hash of either.

Everything is keyed by the scanner's version (a digest of its rules and of the settings that change what
it reports): another version finds the cache empty. A cache that cannot be read, is not ours, or does not
parse is ignored (the scan reads everything, as the first time), and one that cannot be written is left
as it was: the scan's result never depends on it. One file per repository under the state folder
(`$PIPECTL_STATE_DIR/repo-scan/`), 0600 in a 0700 folder, replaced atomically, so concurrent doctors
never leave half a file; the last to finish wins. Bounded: `MAX_BLOBS` ids per repository (after a whole
history scan, only those it met), `MAX_REPOSITORIES` files (the least recently written go).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipectl.connectors.git_worktree import Stamp
from pipectl.errors import UsageError
from pipectl.files import private_dir, write_private
from pipectl.journal import default_path

FORMAT = 1
MAX_BLOBS = 200_000
"""About 8 MB: the blobs of a window of tens of thousands of commits."""
MAX_REPOSITORIES = 32
_FOLDER = "repo-scan"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Walk:
    """The history as last scanned whole: `refs` says from where, and the rest what a rescan must redo."""

    refs: str
    """Digest of the ref tips and the shallow boundary (`git.Repository.refs`), and the commit limit."""
    commits: int
    clean: int
    """Changes whose blob was known clean: skipped by a scan of the same refs."""
    hits: list[tuple[str, str]] = field(default_factory=list)
    """(commit, path) of each change that added a credential: read again to report it and register it."""


class ScanCache:
    """Blob ids known clean for one repository and scanner version; the blob each working-tree file held
    when it was last read (by its stamp, as git's index does); and the last whole history walk."""

    def __init__(
        self,
        path: Path | None,
        version: str,
        clean: set[str] | None = None,
        walk: Walk | None = None,
        files: dict[str, tuple[str, Stamp]] | None = None,
    ) -> None:
        self.path = path
        self.version = version
        self.walk = walk
        self._loaded = clean or set()
        self._loaded_walk = walk
        self._loaded_files = files or {}
        self._added: dict[str, None] = {}
        self._met: set[str] = set()
        self._files: dict[str, tuple[str, Stamp]] = {}

    @staticmethod
    def key(blob: str, variant: str) -> str:
        return f"{blob}/{variant}" if variant else blob

    def is_clean(self, blob: str | None, variant: str = "") -> bool:
        """Whether `blob`, read as a file of this variant (`secret_scan.variant`), is known to hold nothing.
        A blob clean when read leniently is clean in every variant: variants only report less."""
        if blob is None:
            return False
        for key in (self.key(blob, variant), blob) if variant else (blob,):
            if key in self._loaded or key in self._added:
                self._met.add(key)
                return True
        return False

    def add_clean(self, blob: str, variant: str = "") -> None:
        self._added[self.key(blob, variant)] = None

    def file_blob(self, path: str, stamp: Stamp) -> str | None:
        """The blob `path` held when it was last read, if its stamp has not changed since ("" for a file the
        scanner does not read: binary, too large); None when it must be read."""
        known = self._loaded_files.get(path)
        return known[0] if known is not None and known[1] == stamp else None

    def remember_file(self, path: str, stamp: Stamp, blob: str) -> None:
        """Only for a clean blob (or "" for one not read): a blob with a credential is never remembered."""
        self._files[path] = (blob, stamp)

    def save(self, whole_history: bool) -> None:
        """Write what is known now. After a whole history scan (`whole_history`) keep only the blobs this
        scan met, which bounds the file by the repository's window instead of all it ever held; files
        are those of the working tree now."""
        files_changed = self._files != self._loaded_files
        if self.path is None or not (
            self._added or whole_history or files_changed or self.walk != self._loaded_walk
        ):
            return  # nothing new: a repeated scan costs no write
        kept = self._met if whole_history else self._loaded
        clean = [key for key in kept if key not in self._added] + list(self._added)
        clean = clean[-MAX_BLOBS:]
        if set(clean) == self._loaded and self.walk == self._loaded_walk and not files_changed:
            return
        record = {"format": FORMAT, "version": self.version, "clean": " ".join(clean),
                  "walk": asdict(self.walk) if self.walk else None,
                  "files": {path: [blob, *stamp] for path, (blob, stamp) in self._files.items()}}  # fmt: skip
        try:
            private_dir(self.path.parent)
            write_private(self.path, json.dumps(record, separators=(",", ":")))
        except (UsageError, OSError) as exc:  # a read-only or full state folder: the scan stands without it
            log.debug("scan cache not written: %s", exc)
            return
        _forget_oldest(self.path.parent, keep=self.path)


def load(root: Path, version: str) -> ScanCache:
    """The cache of repository `root` for scanner `version`; empty when there is none or it is unusable."""
    path = _folder() / f"{hashlib.sha256(str(root).encode()).hexdigest()[:32]}.json"
    try:
        record = json.loads(_read_own(path))
        if record.get("format") != FORMAT or record.get("version") != version:
            return ScanCache(path, version)
        clean = record["clean"].split(" ")
        walk = Walk(**record["walk"]) if record.get("walk") else None
        if walk is not None:
            hits = [(str(commit), str(path)) for commit, path in walk.hits]
            walk = Walk(str(walk.refs), int(walk.commits), int(walk.clean), hits)
        files = {str(name): (str(blob), (int(a), int(b), int(c), int(d)))
                 for name, (blob, a, b, c, d) in record["files"].items()}  # fmt: skip
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        if not isinstance(exc, FileNotFoundError):
            log.debug("scan cache %s ignored: %s", path, exc)
        return ScanCache(path, version)
    return ScanCache(path, version, set(clean), walk, files)


def _folder() -> Path:
    """Beside the journal: `$PIPECTL_STATE_DIR`, else the XDG state folder (`journal.default_path`)."""
    return default_path().with_name(_FOLDER)


def _read_own(path: Path) -> bytes:
    """The file's bytes, if it is a regular file of ours (not a symlink, not another user's)."""
    fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    try:
        info = os.fstat(fd)
        if info.st_uid != os.geteuid() or not stat.S_ISREG(info.st_mode):
            raise ValueError("not a regular file of this user")
        with os.fdopen(fd, "rb", closefd=False) as stream:
            return stream.read()
    finally:
        os.close(fd)


def _forget_oldest(folder: Path, keep: Path) -> None:
    try:
        files = sorted(folder.glob("*.json"), key=lambda file: file.stat().st_mtime)
        for stale in [file for file in files if file != keep][: max(len(files) - MAX_REPOSITORIES, 0)]:
            stale.unlink(missing_ok=True)
    except OSError:
        pass  # another doctor removed one meanwhile
