"""`sandbox down --purge`: delete the sandbox folder and the pipectl.toml files `up` wrote for it.

Deleting is guarded both ways: the folder must hold nothing but what a sandbox creates (so `--dir .`
cannot wipe a project), and a linked pipectl.toml goes only while it is byte for byte what the
sandbox wrote there (so a user's own or edited config is always kept).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pipectl.errors import PipectlError, UsageError
from pipectl.sandbox import config_file
from pipectl.sandbox.layout import Layout

# everything `up`, `break` and `heal` create at the top of the sandbox folder
CREATED = {"run", "pg", "prefect", "prefect-worker", "modal", "hosted", "repo", "sandbox.env", "sandbox.json",
           "sandbox.tmp", "pipectl.toml", "links.json"}


def check(layout: Layout) -> None:
    """Refuse (before anything is stopped) to purge a folder that holds files the sandbox did not create."""
    root = layout.root
    if not root.exists():
        return
    if not root.is_dir() or root.is_symlink():
        raise UsageError(f"refusing to purge {root}: not a sandbox folder")
    foreign = sorted(p.name for p in root.iterdir() if p.name not in CREATED)
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise UsageError(f"refusing to purge {root}: it holds files a sandbox does not create ({shown})")


def purge(layout: Layout, cwd: Path | None = None) -> tuple[list[Path], list[Path]]:
    """Delete the linked configs still as written, then the folder; returns (deleted, kept) configs.

    Call `check` and stop the sandbox first. `cwd` is also looked at, for a link made before links
    were recorded.
    """
    check(layout)
    candidates = set(config_file.linked_files(layout))
    if cwd is not None and (cwd / "pipectl.toml").exists():
        candidates.add((cwd / "pipectl.toml").resolve())
    deleted, kept = [], []
    for path in sorted(candidates):
        if not path.exists() or path.parent == layout.root:
            continue
        if config_file.written_by_us(path, layout):
            path.unlink()
            deleted.append(path)
        elif path in config_file.linked_files(layout):
            kept.append(path)
    if layout.root.exists():
        try:
            shutil.rmtree(layout.root)
        except OSError as exc:
            raise PipectlError(f"could not delete {layout.root}: {exc.strerror or exc}") from None
    return deleted, kept
