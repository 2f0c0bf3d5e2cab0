"""repo.secrets — credentials committed to the repository: in the working tree or in its history."""

from __future__ import annotations

import os
import shlex
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipectl.errors import NotFound
from pipectl.interface import Check, Context
from pipectl.model import Finding, Severity, Status
from pipectl.redact import MASK

if TYPE_CHECKING:
    from pipectl.config import PipelineConfig
    from pipectl.repo_scan import FileHits, RepoScan

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
    reported and skipped. Findings name the rule, file, line and commit; never the value. Incremental: a
    blob found clean is remembered by its git id in the state folder (never a value) and not read again,
    so a second run on an unchanged repository reads only what holds credentials.

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
        from pipectl.connectors import git, scan_cache
        from pipectl.repo_scan import RepoScan, scanner_version

        deadline = time.monotonic() + ctx.timeout * _BUDGET
        folder = repo_path(ctx.config)
        try:
            repository = git.repository(folder, ctx.timeout)
        except NotFound as exc:
            return [self.skipped(f"no git repository to scan: {exc}")]
        scan = RepoScan(repository.root, scan_cache.load(repository.root, scanner_version()), repository.refs)
        scan.tree(deadline, ctx.timeout)
        if ctx.config.repo.history and not scan.truncated:
            scan.history(ctx.config.repo.max_commits, deadline)
        scan.committed(max(deadline - time.monotonic(), ctx.timeout * (1 - _BUDGET) / 2))
        scan.cache.save(whole_history=scan.whole_history)
        return _findings(self, scan, ctx.config.repo.history)


def repo_path(config: PipelineConfig) -> Path:
    """`[repo] path` (relative to the config file), else the config file's folder, else the current one."""
    source = config.source.path
    base = Path(source).expanduser().parent if source and not source.startswith("<") else Path.cwd()
    if config.repo.path:
        path = Path(config.repo.path).expanduser()
        return path if path.is_absolute() else base / path
    return base


def _findings(check: Check, scan: RepoScan, history_enabled: bool) -> list[Finding]:
    findings = [
        _finding(check, scan, path, hits, history_enabled) for path, hits in sorted(scan.by_file.items())
    ]
    if scan.truncated:
        findings.append(
            check.warn(
                f"secret scan stopped at the time limit ({scan.truncated}); what was found is reported",
                subject="(incomplete scan)",
                impact="Files or commits after the cut were not looked at (what was scanned clean is "
                "remembered: the next run goes on from there).",
                evidence=scan.counts,
                fix=f"pipectl doctor --only {check.id} --timeout 60",
            )
        )
    if scan.unreadable:
        findings.append(
            check.warn(
                f"{len(scan.unreadable)} git object(s) could not be read (missing or corrupt) and were "
                "skipped; the rest of the repository was scanned",
                subject="(unreadable git objects)",
                impact="Lines stored only in those objects were not looked at.",
                evidence={
                    "unreadable_objects": len(scan.unreadable),
                    "objects": scan.unreadable[:_MAX_LISTED],
                    **scan.counts,
                },
                advice="Run `git fsck --full`, then fetch the objects again from another clone, or re-clone.",
            )
        )
    if not scan.by_file and not scan.truncated and not scan.unreadable:
        scope = f"{scan.files_scanned} files"
        scope += f" and {scan.commits_scanned} commits" if history_enabled else " (history not scanned)"
        skipped = f"; {scan.blobs_skipped} blobs already known clean" if scan.blobs_skipped else ""
        findings.append(check.ok(f"no credentials found in {scope}{skipped}", evidence=scan.counts))
    return findings


def _finding(check: Check, scan: RepoScan, path: str, hits: FileHits, history_enabled: bool) -> Finding:
    every = hits.tree + hits.history
    rules = sorted({h.rule for h in every})
    in_tree = bool(hits.tree)
    tracked = scan.tracked.get(path)
    exists = tracked is not None
    at_head = path in scan.in_head  # committed, even if before the newest `max_commits` commits
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
        **scan.counts,
    }
    distinct = {h.value if h.value else (h.rule, h.line, h.commit) for h in every}
    count = f"{len(distinct)} credential(s) ({', '.join(rules)})"
    if in_history:
        where = "in the working tree and in git history" if in_tree else "deleted, but still in git history"
        return check.fail(
            f"{path}: {count} committed — {where}",
            subject=path,
            impact="Anyone with a clone of the repository holds these credentials, even after the file "
            "is deleted, until they are rotated.",
            evidence=evidence,
            **_fix(scan.root, path, exists=exists, committed=True),
        )
    return check.finding(
        Status.WARN,
        f"{path}: {count} in the working tree, not committed yet"
        + ("" if tracked else " (untracked, not in .gitignore)"),
        severity=Severity.P2,
        subject=path,
        impact="One `git add -A && git commit` away from leaking these credentials.",
        evidence=evidence,
        **_fix(scan.root, path, exists=exists, committed=False, tracked=bool(tracked)),
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
