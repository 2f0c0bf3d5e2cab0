"""One secret scan of a repository, for `repo.secrets`: the working tree, then the history, reading again
only what no earlier scan found clean.

Why incremental: on a 5,000-commit history every doctor spent 0.8 s in this check (1 s of CPU: `git log
-p` of every commit, then every added line scanned), however little had changed (`bench/repo_scan.py`).
Now a blob found clean is remembered by its git object id (`pipectl.connectors.scan_cache`) and never
scanned again; when the refs are those of the last whole scan the history is not even listed (0.08 s of
`git log --raw`), only the changes that added a credential are read again; and a working-tree file whose
stamp has not changed is not even read. A second doctor on that repository: about 22 ms.

The history is read change by change, oldest first; a change is a commit bringing in a new blob of a
file. Only the lines a change added are scanned and reported, blamed on its commit. A blob is clean —
holds no credential — when a scan remembered it so, or its file's previous blob is clean and the lines
the change added are; failing both (the first change of a file in the scanned commits, or one after a
credential came in), the blob is read whole to learn it, so each file's chain of versions goes on clean.
A blob with a credential is never remembered: its changes are scanned again by every run.
"""

from __future__ import annotations

import functools
import hashlib
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipectl.errors import ConnectorError
from pipectl.redact import redactor

_SETTLED_NS = 3_000_000_000

if TYPE_CHECKING:
    from pipectl.connectors.git import BlobReader
    from pipectl.connectors.git_history import Change
    from pipectl.connectors.scan_cache import ScanCache, Walk
    from pipectl.secret_scan import Hit


@functools.cache
def scanner_version() -> str:
    """What a remembered "clean" depends on: the rules (`secret_scan.rules_version`), and how files, blobs
    and changes are read and judged (this module and the git connectors). Any change to them starts over."""
    from pipectl.connectors import git, git_history, git_worktree
    from pipectl.secret_scan import rules_version

    digest = hashlib.sha256(rules_version().encode())
    for module in (sys.modules[__name__], git, git_history, git_worktree):
        digest.update(Path(module.__file__ or "").read_bytes())
    return digest.hexdigest()[:32]


@dataclass
class _Tally:
    """What a history walk learnt: changes now known clean, (commit, path) of those that added a
    credential, commits with a change it could not judge."""

    clean: int = 0
    hits: list[tuple[str, str]] = field(default_factory=list)
    undecided: set[str] = field(default_factory=set)


@dataclass
class FileHits:
    tree: list[Hit] = field(default_factory=list)
    history: list[Hit] = field(default_factory=list)


@dataclass
class RepoScan:
    """One scan: what it found where, what it could not read, how much it read and how much it skipped."""

    root: Path
    cache: ScanCache
    refs: str | None = None
    """Digest of the refs at the start (`git.Repository.refs`)."""
    by_file: dict[str, FileHits] = field(default_factory=dict)
    tracked: dict[str, bool] = field(default_factory=dict)
    tree_blobs: dict[str, str] = field(default_factory=dict)
    """Blob id of each working-tree file with a hit: HEAD holding the same blob holds the same hits."""
    in_head: set[str] = field(default_factory=set)
    """Files whose working-tree hits are in HEAD's version too: committed, however long ago."""
    unreadable: list[str] = field(default_factory=list)
    """Git objects that could not be read (missing or corrupt): skipped, the rest was scanned."""
    files_scanned: int = 0
    commits_scanned: int = 0
    blobs_scanned: int = 0
    blobs_skipped: int = 0
    """Working-tree files and history changes whose blob an earlier scan found clean."""
    truncated: str = ""
    whole_history: bool = False
    """The history was listed and read whole: what the cache keeps is bounded by what this scan met."""
    settled_ns: int = _SETTLED_NS
    """A file's stamp is remembered only once the file is this old: a change within the same tick of a
    coarse clock (FAT's two seconds) could leave its stamp as it was."""

    @property
    def counts(self) -> dict[str, int]:
        return {"files_scanned": self.files_scanned, "commits_scanned": self.commits_scanned,
                "blobs_scanned": self.blobs_scanned, "blobs_skipped_clean": self.blobs_skipped}  # fmt: skip

    def tree(self, deadline: float, timeout: float) -> None:
        """Every file of the working tree. One whose stamp is unchanged since it was read holds the same
        blob, known clean: not even read (as git's index saves git rereading files)."""
        from pipectl.connectors import git_worktree
        from pipectl.secret_scan import scannable, variant

        settled = time.time_ns() - self.settled_ns
        entries = git_worktree.tree_files(self.root, timeout)
        self.tracked = {entry.path: entry.tracked for entry in entries}
        for entry in entries:
            if time.monotonic() > deadline:
                self.truncated = f"working tree: {self.files_scanned} of {len(entries)} files scanned"
                return
            if not scannable(entry.path):
                continue
            kind, stamp = variant(entry.path), git_worktree.stamp(self.root, entry.path)
            blob = self.cache.file_blob(entry.path, stamp) if stamp else None
            if blob == "" or (blob and self.cache.is_clean(blob, kind)):
                self.cache.remember_file(entry.path, stamp, blob)  # type: ignore[arg-type]
                self.files_scanned += bool(blob)
                self.blobs_skipped += bool(blob)
                continue
            self._tree_file(entry.path, kind, settled)

    def _tree_file(self, path: str, kind: str, settled: int) -> None:
        from pipectl.connectors import git, git_worktree
        from pipectl.secret_scan import scan_text

        read = git_worktree.read_file(self.root, path)
        if read is None:
            return
        data, stamp = read
        # a file changed just now keeps its stamp through a change within the same clock tick: not remembered
        remember = max(stamp[1], stamp[2]) < settled
        if not git.is_text(data):
            if remember:
                self.cache.remember_file(path, stamp, "")
            return
        self.files_scanned += 1
        blob = git.blob_id(data)
        if self.cache.is_clean(blob, kind):  # the same bytes as a blob found clean before, here or in history
            self.blobs_skipped += 1
        else:
            self.blobs_scanned += 1
            hits = scan_text(path, git.text_of(data) or "")
            if hits:
                self._add(hits, history=False)
                self.tree_blobs[path] = blob
                return
            self.cache.add_clean(blob, kind)
        if remember:
            self.cache.remember_file(path, stamp, blob)

    def history(self, max_commits: int, deadline: float) -> None:
        """The lines added by the newest `max_commits` commits; not even listed when the refs are those
        of the last whole scan, whose changes with credentials are then all that is read."""
        refs = f"{self.refs} {max_commits}" if self.refs else None
        walk = self.cache.walk
        if refs is not None and walk is not None and walk.refs == refs:
            self._history_again(walk, deadline)
        else:
            self._history_walk(refs, max_commits, deadline)

    def _history_again(self, walk: Walk, deadline: float) -> None:
        from pipectl.connectors import git_history
        from pipectl.secret_scan import scan_lines

        wanted = set(walk.hits)
        commits = list(dict.fromkeys(commit for commit, _ in walk.hits))
        stream = git_history.patches(self.root, commits, deadline)
        for patch in stream:
            if (patch.commit, patch.path) in wanted:
                self._add(scan_lines(patch.path, patch.lines, patch.commit), history=True)
        self.commits_scanned = walk.commits
        self.blobs_scanned += len(wanted)
        self.blobs_skipped += walk.clean
        self._note_unreadable(stream.unreadable)
        if stream.truncated:
            self.truncated = f"history: {len(stream.complete)} of {len(stream.wanted)} commits read again"
        if stream.truncated or stream.unreadable:
            self.cache.walk = None

    def _history_walk(self, refs: str | None, max_commits: int, deadline: float) -> None:
        """List the changes, then read the lines of the commits bringing in a blob not known clean, judging
        each commit as soon as git has gone past it, so the scanning overlaps git's diffing."""
        from pipectl.connectors import git, git_history
        from pipectl.connectors.scan_cache import Walk
        from pipectl.secret_scan import scannable, variant

        listing = git_history.changes(self.root, max_commits, deadline)
        listed = list(listing)
        self.commits_scanned = listing.commits
        kinds = {path: variant(path) for path in {change.path for change in listed} if scannable(path)}
        by_commit: dict[str, list[Change]] = {}
        for change in reversed(listed):  # oldest first: a file's earlier blob is judged before its next one
            if change.path in kinds:
                by_commit.setdefault(change.commit, []).append(change)
        known = self.cache.is_clean
        todo = [
            commit
            for commit, group in by_commit.items()
            if not all(known(c.new, kinds[c.path]) for c in group)
        ]
        tally = _Tally()
        stream = git_history.patches(self.root, todo, deadline)
        with git.BlobReader(self.root, deadline) as blobs:
            for commit in by_commit.keys() - set(todo):  # every blob known clean: only counted
                self._judge(by_commit[commit], kinds, {}, True, blobs, tally)
            waiting, added = deque(todo), dict[str, dict[str, list]]()
            for patch in stream:
                while waiting and waiting[0] != patch.commit:  # git is past these: whole, or broken
                    done = waiting.popleft()
                    self._judge(by_commit[done], kinds, added.pop(done, {}), stream.whole(done), blobs, tally)
                added.setdefault(patch.commit, {})[patch.path] = patch.lines
            for done in waiting:
                self._judge(by_commit[done], kinds, added.pop(done, {}), stream.whole(done), blobs, tally)
        for source in (listing, stream, blobs):
            self._note_unreadable(source.unreadable)
        self.cache.walk = None
        if listing.truncated or stream.truncated or blobs.truncated:
            scanned = listing.commits - len(tally.undecided)
            self.truncated = f"history: {scanned} of up to {max_commits} commits scanned"
        elif refs is not None and not (listing.unreadable or stream.unreadable or blobs.unreadable):
            self.cache.walk = Walk(refs, listing.commits, tally.clean, tally.hits)
            self.whole_history = True

    def _judge(self, group: list[Change], kinds: dict[str, str], added: dict[str, list], whole: bool,
               blobs: BlobReader, tally: _Tally) -> None:  # fmt: skip
        """One commit's changes, given the lines it added by path and whether git's output for it is whole."""
        for change in group:
            learnt = self._learn(change, kinds[change.path], added.get(change.path), whole, blobs)
            tally.clean += learnt == "clean"
            if learnt == "hit":
                tally.hits.append((change.commit, change.path))
            elif learnt == "undecided":
                tally.undecided.add(change.commit)

    def _learn(self, change: Change, kind: str, lines: list | None, whole: bool, blobs: BlobReader) -> str:
        """What one change tells: "clean" (its blob is, as now known), "hit" (it added a credential),
        "dirty" (its blob holds one an earlier change added) or "undecided" (what it needs was unread)."""
        from pipectl.secret_scan import scan_lines

        if self.cache.is_clean(change.new, kind):
            self.blobs_skipped += 1
            return "clean"
        if lines is None and not whole:
            return "undecided"
        self.blobs_scanned += 1
        hits = scan_lines(change.path, lines, change.commit) if lines else []
        if hits:
            self._add(hits, history=True)
            return "hit"
        if not whole:  # its lines may have been cut short: nothing is learnt
            return "undecided"
        if change.old is None or self.cache.is_clean(change.old, kind) or self._whole(blobs, change):
            self.cache.add_clean(change.new, kind)
            return "clean"
        return "undecided" if blobs.truncated else "dirty"

    def _whole(self, blobs: BlobReader, change: Change) -> bool:
        """Whether the blob a change brought in is clean as a whole, its earlier version not known to be.
        What it finds is not reported — that is blamed on the change that added it — but it is masked."""
        from pipectl.connectors import git
        from pipectl.secret_scan import scan_text

        data = blobs.read(change.new)
        if data is None:
            return False
        text = git.text_of(data)
        hits = scan_text(change.path, text) if text is not None else []
        for hit in hits:
            redactor.add(hit.value)
        return not hits

    def committed(self, timeout: float) -> None:
        """Which working-tree hits HEAD holds too: those were committed, even before the scanned commits."""
        from pipectl.connectors import git
        from pipectl.secret_scan import scan_text

        paths = [path for path, hits in self.by_file.items() if hits.tree and self.tracked.get(path)]
        if not paths:
            return
        try:
            at_head = git.head_blob_ids(self.root, paths, timeout)
            same = {path for path in paths if path in at_head and at_head[path] == self.tree_blobs.get(path)}
            self.in_head.update(same)  # the very bytes scanned in the working tree
            paths = [path for path in paths if path not in same]
            texts, unreadable = git.committed_texts(self.root, paths, timeout) if paths else ({}, {})
        except ConnectorError:  # git did not answer in time: count them as committed rather than pending
            self.in_head.update(paths)
            return
        self._note_unreadable(list(unreadable.values()))
        self.in_head.update(unreadable)  # tracked, but its committed text is unreadable: assume the worst
        for path, text in texts.items():
            committed = {hit.value or hit.rule for hit in scan_text(path, text)}
            if any((hit.value or hit.rule) in committed for hit in self.by_file[path].tree):
                self.in_head.add(path)

    def _add(self, hits: list[Hit], history: bool) -> None:
        for hit in hits:
            redactor.add(hit.value)  # before anything could turn it into text
            bucket = self.by_file.setdefault(hit.file, FileHits())
            (bucket.history if history else bucket.tree).append(hit)

    def _note_unreadable(self, names: list[Any]) -> None:
        self.unreadable += [name for name in dict.fromkeys(names) if name not in self.unreadable]
