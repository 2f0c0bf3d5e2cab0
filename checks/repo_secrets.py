"""repo.secrets — credentials committed to the repository: in the working tree or in its history."""

from __future__ import annotations

import os
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipectl.errors import ConnectorError, NotFound
from pipectl.interface import Check, Context
from pipectl.model import Finding, Severity, Status
from pipectl.redact import MASK, redactor

if TYPE_CHECKING:
    from pipectl.config import PipelineConfig
    from pipectl.secret_scan import Hit

_BUDGET = 0.8
"""Share of the run's timeout the scan may use, so partial results are reported instead of a timeout."""
_MAX_LISTED = 20
_CREDENTIAL_FILES = (
    ".env", ".pem", ".key", ".p12", ".pfx", ".jks", ".keystore", ".netrc", ".pgpass", ".npmrc", ".pypirc",
    "credentials", "secrets", "id_rsa", "id_ed25519", "id_ecdsa", "id_dsa", ".tfvars",
)  # fmt: skip
"""Names of files that hold nothing but credentials: they leave git entirely instead of being edited."""


class RepoSecrets(Check):
    """Detects: credentials written into the repository — AWS, Stripe, GitHub, GitLab, Slack and other
    tokens, private keys (also one-line service-account JSON), Prefect API keys, Modal tokens, passwords in
    URLs, DSNs and JDBC strings, bearer tokens, and values assigned to names like *_SECRET, *_KEY, *_TOKEN
    or PASSWORD — in the working tree (tracked files and untracked files that .gitignore does not exclude)
    and in the lines added by the last `repo.max_commits` commits of every branch and tag, including files
    deleted since. A working-tree hit that HEAD holds too is committed, however old its commit. Placeholders
    (`env:NAME`, `${VAR}`, `<REDACTED>`, documented example keys) are ignored; unreadable git objects are
    reported and skipped. Findings name the rule, file, line and commit; never the value.

    Why it matters: the second incident leaked AWS, Supabase, Prefect and Stripe keys through a committed
    file. Deleting the file does not help: every clone still has it in history, so the keys must be
    treated as public until they are rotated.

    Fix: rotate the credential first (revoking it is what actually stops the leak), then remove it from
    history with `git filter-repo --invert-paths --path FILE` (or `--replace-text` for a file you keep),
    force-push, and move the value to the environment (`env:NAME`).
    """

    id = "repo.secrets"
    component = "repo"
    severity = Severity.P1

    def run(self, ctx: Context) -> list[Finding]:
        from pipectl.connectors import git

        deadline = time.monotonic() + ctx.timeout * _BUDGET
        folder = repo_path(ctx.config)
        try:
            root = git.toplevel(folder, ctx.timeout)
        except NotFound as exc:
            return [self.skipped(f"no git repository to scan: {exc}")]
        scan = _Scan(root)
        scan.tree(git, deadline, ctx.timeout)
        if ctx.config.repo.history and not scan.truncated:
            scan.history(git, ctx.config.repo.max_commits, deadline)
        scan.committed(git, max(deadline - time.monotonic(), ctx.timeout * (1 - _BUDGET) / 2))
        return scan.findings(self, ctx.config.repo.history)


def repo_path(config: PipelineConfig) -> Path:
    """`[repo] path` (relative to the config file), else the config file's folder, else the current one."""
    source = config.source.path
    base = Path(source).expanduser().parent if source and not source.startswith("<") else Path.cwd()
    if config.repo.path:
        path = Path(config.repo.path).expanduser()
        return path if path.is_absolute() else base / path
    return base


@dataclass
class _FileHits:
    tree: list[Hit] = field(default_factory=list)
    history: list[Hit] = field(default_factory=list)


@dataclass
class _Scan:
    root: Path
    by_file: dict[str, _FileHits] = field(default_factory=dict)
    tracked: dict[str, bool] = field(default_factory=dict)
    in_head: set[str] = field(default_factory=set)
    """Files whose working-tree hits are in HEAD's version too: committed, however long ago."""
    unreadable: list[str] = field(default_factory=list)
    """Git objects that could not be read (missing or corrupt): skipped, the rest was scanned."""
    files_scanned: int = 0
    commits_scanned: int = 0
    truncated: str = ""

    def tree(self, git, deadline: float, timeout: float) -> None:
        from pipectl.secret_scan import scan_text, scannable

        entries = git.tree_files(self.root, timeout)
        self.tracked = {entry.path: entry.tracked for entry in entries}
        for entry in entries:
            if time.monotonic() > deadline:
                self.truncated = f"working tree: {self.files_scanned} of {len(entries)} files scanned"
                return
            if not scannable(entry.path):
                continue
            text = git.read_text(self.root, entry.path)
            if text is None:
                continue
            self.files_scanned += 1
            self._add(scan_text(entry.path, text), history=False)

    def history(self, git, max_commits: int, deadline: float) -> None:
        from pipectl.secret_scan import scan_lines, scannable

        stream = git.history(self.root, max_commits, deadline)
        for patch in stream:
            if not scannable(patch.path):
                continue
            self._add(scan_lines(patch.path, patch.lines, patch.commit), history=True)
        self.commits_scanned = stream.commits
        self.unreadable += stream.unreadable
        if stream.truncated:
            self.truncated = f"history: {stream.commits} of up to {max_commits} commits scanned"

    def committed(self, git, timeout: float) -> None:
        """Which working-tree hits HEAD holds too: those were committed, even before the scanned commits."""
        from pipectl.secret_scan import scan_text

        paths = [path for path, hits in self.by_file.items() if hits.tree and self.tracked.get(path)]
        if not paths:
            return
        try:
            texts, unreadable = git.committed_texts(self.root, paths, timeout)
        except ConnectorError:  # git did not answer in time: count them as committed rather than pending
            self.in_head.update(paths)
            return
        self.unreadable += [name for name in unreadable.values() if name not in self.unreadable]
        self.in_head.update(unreadable)  # tracked, but its committed text is unreadable: assume the worst
        for path, text in texts.items():
            at_head = {hit.value or hit.rule for hit in scan_text(path, text)}
            if any((hit.value or hit.rule) in at_head for hit in self.by_file[path].tree):
                self.in_head.add(path)

    def _add(self, hits: list[Hit], history: bool) -> None:
        for hit in hits:
            redactor.add(hit.value)  # before anything could turn it into text
            bucket = self.by_file.setdefault(hit.file, _FileHits())
            (bucket.history if history else bucket.tree).append(hit)

    def findings(self, check: Check, history_enabled: bool) -> list[Finding]:
        findings = [
            self._finding(check, path, hits, history_enabled) for path, hits in sorted(self.by_file.items())
        ]
        if self.truncated:
            findings.append(
                check.warn(
                    f"secret scan stopped at the time limit ({self.truncated}); what was found is reported",
                    subject="(incomplete scan)",
                    impact="Files or commits after the cut were not looked at.",
                    evidence={"files_scanned": self.files_scanned, "commits_scanned": self.commits_scanned},
                    fix=f"pipectl doctor --only {check.id} --timeout 60",
                )
            )
        if self.unreadable:
            findings.append(
                check.warn(
                    f"{len(self.unreadable)} git object(s) could not be read (missing or corrupt) and were "
                    "skipped; the rest of the repository was scanned",
                    subject="(unreadable git objects)",
                    impact="Lines stored only in those objects were not looked at.",
                    evidence={
                        "unreadable_objects": len(self.unreadable),
                        "objects": self.unreadable[:_MAX_LISTED],
                        "files_scanned": self.files_scanned,
                        "commits_scanned": self.commits_scanned,
                    },
                    advice="Run `git fsck --full`, then fetch the objects again from another clone, or re-clone.",
                )
            )
        if not self.by_file and not self.truncated and not self.unreadable:
            scope = f"{self.files_scanned} files"
            scope += f" and {self.commits_scanned} commits" if history_enabled else " (history not scanned)"
            findings.append(check.ok(f"no credentials found in {scope}",
                                     evidence={"files_scanned": self.files_scanned,
                                               "commits_scanned": self.commits_scanned}))  # fmt: skip
        return findings

    def _finding(self, check: Check, path: str, hits: _FileHits, history_enabled: bool) -> Finding:
        every = hits.tree + hits.history
        rules = sorted({h.rule for h in every})
        in_tree = bool(hits.tree)
        tracked = self.tracked.get(path)
        exists = tracked is not None
        at_head = path in self.in_head  # committed, even if before the newest `max_commits` commits
        if history_enabled:
            in_history: bool | None = bool(hits.history) or at_head
        else:
            in_history = True if at_head else None
        commits = list(dict.fromkeys(h.where for h in hits.history))
        listed = [f"line {h.line} ({h.where}): {h.rule} = {MASK}" for h in every[:_MAX_LISTED]]
        if len(every) > _MAX_LISTED:
            listed.append(f"… and {len(every) - _MAX_LISTED} more")
        evidence = {
            "rules": rules,
            "lines": sorted({h.line for h in every}),
            "commits": commits,
            "in_working_tree": in_tree,
            "still_in_history": in_history,
            "committed_at_head": at_head,
            "hits": listed,
        }
        distinct = {h.value if h.value else (h.rule, h.line, h.commit) for h in every}
        count = f"{len(distinct)} credential(s) ({', '.join(rules)})"
        if in_history:
            where = (
                "in the working tree and in git history" if in_tree else "deleted, but still in git history"
            )
            return check.fail(
                f"{path}: {count} committed — {where}",
                subject=path,
                impact="Anyone with a clone of the repository holds these credentials, even after the file "
                "is deleted, until they are rotated.",
                evidence=evidence,
                **_fix(self.root, path, exists=exists, committed=True),
            )
        return check.finding(
            Status.WARN,
            f"{path}: {count} in the working tree, not committed yet"
            + ("" if tracked else " (untracked, not in .gitignore)"),
            severity=Severity.P2,
            subject=path,
            impact="One `git add -A && git commit` away from leaking these credentials.",
            evidence=evidence,
            **_fix(self.root, path, exists=exists, committed=False, tracked=bool(tracked)),
        )


def _fix(root: Path, path: str, exists: bool, committed: bool, tracked: bool = True) -> dict[str, Any]:
    """`fix` and `advice` for a file with credentials in repository `root` (named in every command)."""
    repo, quoted = shlex.quote(str(root)), shlex.quote(path)
    ignore = f"echo {shlex.quote('/' + path)} >> {shlex.quote(str(root / '.gitignore'))}"
    if not committed:
        if tracked:
            return {"advice": f"Before committing, move the values out of {path} (in {root}) into the "
                              "environment (env:NAME)."}
        return {"fix": [ignore], "advice": "Keep the values in the environment, not in the repository."}
    rotate = "Rotate the credentials first: removing them from history does not make them secret again."
    purge = [f"git -C {repo} filter-repo --force --invert-paths --path {quoted}",
             f"git -C {repo} push --force --all", f"git -C {repo} push --force --tags"]
    if not exists:
        return {"fix": purge, "advice": rotate}
    if _is_credentials_file(path):
        stop = f"git -C {repo} commit -m {shlex.quote('Stop tracking ' + path)}"
        return {"fix": [f"git -C {repo} rm --cached {quoted}", ignore, f"git -C {repo} add .gitignore", stop,
                        *purge], "advice": rotate}
    return {"advice": f"{rotate} Then replace them with env:NAME in {path} and commit, list the old values in "
                      f"leaked.txt (one per line) and run `git -C {repo} filter-repo --replace-text leaked.txt` "
                      "and `git push --force --all`."}


def _is_credentials_file(path: str) -> bool:
    name = os.path.basename(path).lower()
    return any(
        name == marker or name.startswith(marker) or name.endswith(marker) for marker in _CREDENTIAL_FILES
    )
