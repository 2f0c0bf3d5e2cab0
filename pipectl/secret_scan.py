"""Finds committed credentials in lines of text. Pure logic: the `repo.secrets` check feeds it lines.

Two kinds of rules:

* token rules, whose shape alone says "credential" (`pipectl.secret_rules`): AWS, Stripe, JWT, GitHub,
  GitLab, Slack and other vendor tokens, Prefect, Modal and Supabase keys, passwords in URLs and
  key=value DSNs, `Authorization: Bearer …` tokens, and private keys (PEM blocks, or one-line `\\n`-escaped
  keys in service-account JSON);
* one assignment rule: a value assigned to a credential's name (`pipectl.secrets.is_secret_key`:
  `SECRET_KEY = "…"`, `api_key: …`, `"clientSecret": "…"`, `PGPASSWORD=…`), with detect-secrets'
  heuristic filters and a minimum length and entropy, so ordinary code stays quiet.

Placeholders (`<REDACTED>`, `xxxx`, `${VAR}`, `env:NAME`, `{{ … }}`), documented examples and made-up
values (`pnu_1234567890abcdef…`) are not secrets, and detect-secrets' inline allowlist is honoured: a line
with `pragma: allowlist secret`, or after a line with `pragma: allowlist nextline secret`, is a fixture.

A `Hit` carries the value only so the caller can register it with the redactor; its repr hides
it, and nothing here turns it into text.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import sys
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipectl.deferred import defer

defer("requests")  # detect-secrets imports it only to verify tokens online, which pipectl never does

from detect_secrets.__version__ import VERSION as DETECT_SECRETS_VERSION
from detect_secrets.filters import heuristic

from pipectl.secret_rules import (
    PRIVATE_KEY,
    PRIVATE_KEY_TRIGGERS,
    TOKEN_RULES,
    assigned_value_is_secret,
    is_placeholder,  # noqa: F401  (part of this module's interface)
    private_key_body,
)
from pipectl.secrets import is_secret_key

WORKING_TREE = "working tree"
MAX_LINE = 20_000
"""Longer lines (minified bundles, data blobs) are cut to this before the token rules run."""
MAX_ASSIGNMENT_LINE = 1_000
"""The assignment rule only looks at lines up to this long: beyond it, it is data, not configuration."""


@dataclass(frozen=True)
class Hit:
    """One credential-shaped value: where it is and which rule saw it. Never render `value`."""

    rule: str
    file: str
    line: int
    commit: str | None = None
    """Full commit id that added the line, or None for the working tree."""
    value: str | None = field(default=None, repr=False, compare=False)
    """Only for `redactor.add`; None when there is nothing worth registering."""

    @property
    def where(self) -> str:
        return self.commit[:12] if self.commit else WORKING_TREE


_ALLOW = "pragma: allowlist secret"
_ALLOW_NEXT = "pragma: allowlist nextline secret"
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_\-+/=.]*")

# --- the assignment rule -------------------------------------------------------------------------------

_PASSWORD = re.compile(r"pass|pwd", re.IGNORECASE)
_KEYWORD_TRIGGERS = frozenset({"key", "token", "secret", "pass", "pwd", "credential", "auth", "dsn"})
_ASSIGNMENT = re.compile(
    r"""(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)["']?\]?          # the name, maybe quoted or subscripted
        (?:\s*:\s*[A-Za-z_][\w\[\]|., ]*?(?=\s*=[^=]))?     # a type annotation: `api_key: str = "…"`
        \s*(?P<op>==|!=|:=|=>|=|:)\s*
        (?:(?P<q>["'`])(?P<quoted>[^"'`\n]*)(?P=q)|(?P<bare>[^\s"'`,;#]+))
    """,
    re.VERBOSE,
)
_QUOTES_REQUIRED = {
    ".py", ".pyi", ".js", ".jsx", ".mjs", ".cjs", ".ts", ".tsx", ".go", ".java", ".kt", ".kts", ".scala",
    ".rb", ".php", ".cs", ".swift", ".rs", ".c", ".h", ".cc", ".cpp", ".hpp", ".m", ".dart", ".lua", ".tf",
    ".ipynb", ".vue", ".svelte",
}  # fmt: skip


def scannable(path: str) -> bool:
    """False for files whose content is never a place for credentials we can read (images, lock files)."""
    return not (heuristic.is_non_text_file(path) or heuristic.is_lock_file(path))


def variant(path: str) -> str:
    """All a file's path changes in what `scan_text` reports in its content: "quoted" where an assignment
    counts only with its value in quotes (source code), "" elsewhere. Same bytes, same variant, same hits."""
    return "quoted" if os.path.splitext(path)[1].lower() in _QUOTES_REQUIRED else ""


@functools.cache
def rules_version() -> str:
    """A digest of everything that decides what the scanner reports — this module, the rules, the
    credential names (`pipectl.secrets`), the URL and DSN password patterns (`pipectl.redact`) and
    detect-secrets' version — so results remembered by an older scanner are never taken for this one's."""
    from pipectl import redact, secret_rules, secrets

    digest = hashlib.sha256(f"detect-secrets {DETECT_SECRETS_VERSION}".encode())
    for module in (sys.modules[__name__], secret_rules, secrets, redact):
        digest.update(Path(module.__file__ or "").read_bytes())
    return digest.hexdigest()[:32]


def scan_text(path: str, text: str, commit: str | None = None) -> list[Hit]:
    """Every hit in a whole file (the working tree copy); line numbers start at 1."""
    if not might_contain_secret(text):
        return []
    return scan_lines(path, [(n, line.rstrip("\r")) for n, line in enumerate(text.split("\n"), 1)], commit)


def might_contain_secret(text: str) -> bool:
    """A cheap pre-filter over a whole file or hunk: False means no rule could match anywhere in it."""
    low = text.lower()
    return any(t in low for t in _ALL_TRIGGERS)


def scan_lines(path: str, lines: Iterable[tuple[int, str]], commit: str | None = None) -> list[Hit]:
    """Every hit in these numbered lines of one file (all of it, or the lines one commit added)."""
    numbered: Sequence[tuple[int, str]] = lines if isinstance(lines, Sequence) else list(lines)
    hits: list[Hit] = []
    quotes_required = variant(path) == "quoted"
    for index, found in sorted(_triggered_lines(numbered).items()):
        number, line = numbered[index]
        line = line[:MAX_LINE]
        if _allowlisted(numbered, index, line.lower()):
            continue
        seen: set[str] = set()
        for rule in TOKEN_RULES:
            if found.isdisjoint(rule.triggers):
                continue
            for value in rule.plugin.analyze_string(line):
                value = _widen(line, value) if rule.extend else value
                if value in seen:
                    continue
                seen.add(value)  # a token a rule rejected (anon JWT, example key) is no assignment hit either
                if rule.accept(value):
                    hits.append(Hit(rule.name, path, number, commit, value))
        if not found.isdisjoint(PRIVATE_KEY_TRIGGERS) and next(PRIVATE_KEY.analyze_string(line), None):
            body = private_key_body(numbered, index)
            if body is not None:
                hits.append(Hit(PRIVATE_KEY.secret_type, path, number, commit, body or None))
        if len(line) <= MAX_ASSIGNMENT_LINE and not found.isdisjoint(_KEYWORD_TRIGGERS):
            for name, value in _assignments(line, quotes_required):
                if value not in seen:
                    seen.add(value)
                    hits.append(Hit(f"Secret assigned to {name}", path, number, commit, value))
    return hits


def _triggered_lines(numbered: Sequence[tuple[int, str]]) -> dict[int, set[str]]:
    """Index of each line holding a trigger → the triggers in it. `str.find` over the whole chunk does the
    searching in C, so the cost follows the number of trigger occurrences, not lines × triggers."""
    texts = [line[:MAX_LINE] for _, line in numbered]
    joined = "\n".join(texts)
    low = joined.lower()
    found: dict[int, set[str]] = {}
    if len(low) != len(joined):  # a few characters change length when lower-cased: go line by line
        for index, text in enumerate(texts):
            line_low = text.lower()
            triggers = {t for t in _ALL_TRIGGERS if t in line_low}
            if triggers:
                found[index] = triggers
        return found
    starts = [0]
    for text in texts:
        starts.append(starts[-1] + len(text) + 1)
    for trigger in _ALL_TRIGGERS:
        position = low.find(trigger)
        while position != -1:
            index = bisect_right(starts, position) - 1
            found.setdefault(index, set()).add(trigger)
            position = low.find(trigger, starts[index + 1])
    return found


# --- helpers -------------------------------------------------------------------------------------------


def _allowlisted(lines: Sequence[tuple[int, str]], index: int, low: str) -> bool:
    if _ALLOW in low:
        return True
    if index == 0 or lines[index - 1][0] != lines[index][0] - 1:
        return False
    return _ALLOW_NEXT in lines[index - 1][1].lower()


def _widen(line: str, value: str) -> str:
    start = line.find(value)
    if start < 0:
        return value
    match = _TOKEN_CHARS.match(line, start + len(value))
    return line[start : match.end()] if match else value


def _assignments(line: str, quotes_required: bool) -> Iterable[tuple[str, str]]:
    for match in _ASSIGNMENT.finditer(line):
        if match["op"] in ("==", "!="):
            continue
        name = match["name"][:60]
        value = match["quoted"] if match["q"] else match["bare"]
        if value is None or (quotes_required and not match["q"]):
            continue
        words_allowed = bool(_PASSWORD.search(name))  # a password may be words; a generated key is not
        if is_secret_key(match["name"]) and assigned_value_is_secret(value, words_allowed=words_allowed):
            yield name, value


_ALL_TRIGGERS = tuple(
    sorted(
        {t for rule in TOKEN_RULES for t in rule.triggers}
        | set(PRIVATE_KEY_TRIGGERS)
        | set(_KEYWORD_TRIGGERS)
    )
)
