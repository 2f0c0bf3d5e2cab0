"""Finds committed credentials in lines of text. Pure logic: the `repo.secrets` check feeds it lines.

Two kinds of rules:

* token rules, whose shape alone says "credential": detect-secrets' regex plugins (AWS, private keys,
  JWT, Stripe, GitHub, GitLab, Slack, OpenAI, SendGrid, PyPI, npm, Azure storage, basic-auth URLs) used
  in-process through `analyze_string` — no baseline file, no settings, and never their `verify` (which
  would send the candidate to the vendor) — plus our own for what detect-secrets lacks: Prefect API keys,
  Modal token ids/secrets and Supabase secret keys;
* one assignment rule: a value assigned to a name that ends like *_SECRET, *_KEY, *_TOKEN, *PASSWORD
  (`SECRET_KEY = "…"`, `api_key: …`, `"clientSecret": "…"`), with detect-secrets' heuristic filters and
  a minimum length and entropy, so ordinary code stays quiet.

Obvious placeholders (`<REDACTED>`, `xxxx`, `your-key-here`, `${VAR}`, `env:NAME`, `{{ … }}`) are not
secrets, and detect-secrets' inline allowlist is honoured: a line with `pragma: allowlist secret`, or after
a line with `pragma: allowlist nextline secret`, is a known fixture.

A `Hit` carries the value only so the caller can register it with the redactor; its repr hides
it, and nothing here turns it into text.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from detect_secrets.filters import heuristic
from detect_secrets.plugins.aws import AWSKeyDetector
from detect_secrets.plugins.azure_storage_key import AzureStorageKeyDetector
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.plugins.basic_auth import BasicAuthDetector
from detect_secrets.plugins.github_token import GitHubTokenDetector
from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
from detect_secrets.plugins.jwt import JwtTokenDetector
from detect_secrets.plugins.npm import NpmDetector
from detect_secrets.plugins.openai import OpenAIDetector
from detect_secrets.plugins.private_key import PrivateKeyDetector
from detect_secrets.plugins.pypi_token import PypiTokenDetector
from detect_secrets.plugins.sendgrid import SendGridDetector
from detect_secrets.plugins.slack import SlackDetector
from detect_secrets.plugins.stripe import StripeDetector

WORKING_TREE = "working tree"
MAX_LINE = 20_000
"""Longer lines (minified bundles, data blobs) are cut to this before the token rules run."""
MAX_ASSIGNMENT_LINE = 1_000
"""The assignment rule only looks at lines up to this long: beyond it, it is data, not configuration."""
MIN_VALUE_LEN = 8
MIN_ENTROPY = 2.0


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


# --- our own token rules -------------------------------------------------------------------------------


class _OwnRule(RegexBasedDetector):
    secret_type = ""
    denylist: tuple = ()

    def __init__(self, secret_type: str, *patterns: str) -> None:
        self.secret_type = secret_type
        self.denylist = tuple(re.compile(p) for p in patterns)


_PREFECT = _OwnRule("Prefect API Key", r"(?<![A-Za-z0-9_])pn[ub]_[A-Za-z0-9]{36}(?![A-Za-z0-9])")
_MODAL_ID = _OwnRule("Modal Token ID", r"(?<![A-Za-z0-9_-])ak-[A-Za-z0-9]{20,}(?![A-Za-z0-9])")
_MODAL_SECRET = _OwnRule("Modal Token Secret", r"(?<![A-Za-z0-9_-])as-[A-Za-z0-9]{20,}(?![A-Za-z0-9])")
_SUPABASE = _OwnRule("Supabase Secret Key", r"(?<![A-Za-z0-9_])sb_secret_[A-Za-z0-9_-]{20,}")


@dataclass(frozen=True)
class _TokenRule:
    plugin: RegexBasedDetector
    triggers: frozenset[str]
    """Lower-case substrings one of which must be in the line before the plugin's regexes run."""
    extend: bool = False
    """The plugin's regex stops short of the whole token (JWT, Stripe): widen the value to it."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "triggers", frozenset(self.triggers))

    @property
    def name(self) -> str:
        return self.plugin.secret_type


_GITLAB_PREFIXES = ("glpat-", "gldt-", "glft-", "glsoat-", "glrt-", "glcbt-", "glimt-", "glptt-", "glagent-",
                    "gloas-", "gr1348941")  # fmt: skip
_TOKEN_RULES: tuple[_TokenRule, ...] = (
    _TokenRule(AWSKeyDetector(), ("akia", "asia", "abia", "acca", "a3t", "aws")),
    _TokenRule(StripeDetector(), ("k_live_",), extend=True),
    _TokenRule(JwtTokenDetector(), ("eyj",), extend=True),
    _TokenRule(GitHubTokenDetector(), ("ghp_", "gho_", "ghu_", "ghs_", "ghr_")),
    _TokenRule(GitLabTokenDetector(), _GITLAB_PREFIXES),
    _TokenRule(SlackDetector(), ("xox", "hooks.slack.com")),
    _TokenRule(OpenAIDetector(), ("t3blbkfj",)),
    _TokenRule(SendGridDetector(), ("sg.",)),
    _TokenRule(PypiTokenDetector(), ("pypi-",)),
    _TokenRule(NpmDetector(), ("_authtoken",)),
    _TokenRule(AzureStorageKeyDetector(), ("accountkey=",)),
    _TokenRule(BasicAuthDetector(), ("://",)),
    _TokenRule(_PREFECT, ("pnu_", "pnb_")),
    _TokenRule(_MODAL_ID, ("ak-",)),
    _TokenRule(_MODAL_SECRET, ("as-",)),
    _TokenRule(_SUPABASE, ("sb_secret_",)),
)
_PRIVATE_KEY = PrivateKeyDetector()
_PRIVATE_KEY_TRIGGERS = frozenset({"private key", "putty-user-key-file"})
_PEM_END = re.compile(r"-{5}END [A-Z0-9 ]*-{5}")
_PEM_BODY = re.compile(
    r"^\s*[A-Za-z0-9+/=]{16,}\s*$|^(Proc-Type|DEK-Info|Comment|Encryption|Public-Lines|Private-Lines):"
)
_ALLOW = "pragma: allowlist secret"
_ALLOW_NEXT = "pragma: allowlist nextline secret"
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_\-+/=.]*")

# --- the assignment rule -------------------------------------------------------------------------------

_KEYWORD_TRIGGERS = frozenset({"key", "token", "secret", "pass", "pwd"})
_SECRET_WORDS = {"secret", "password", "passwd", "pwd", "pass", "passphrase", "apikey", "secretkey",
                 "authtoken", "accesstoken", "privatekey"}  # fmt: skip
_QUALIFIED_WORDS = {"key", "token"}
"""Too common alone (`key = "name"`): only secret with a qualifier in front (`api_key`, `AUTH_TOKEN`)."""
_NOT_SECRET_QUALIFIERS = {
    "public", "publishable", "pub", "anon", "primary", "foreign", "sort", "partition", "cache",
    "idempotency", "lookup", "dict", "map", "next", "page", "continuation", "pagination", "sync", "row",
    "range", "hash", "s3", "object", "bucket", "file", "path", "env", "config", "setting", "field",
    "column", "header", "param", "query", "search", "group", "message", "dedup", "dedupe", "deduplication",
    "routing", "shard", "i18n", "translation", "label", "flag", "feature", "max", "min", "num", "count",
    "total", "input", "output", "prompt", "completion", "stop", "unique", "composite",
    "registry", "redis", "storage", "state", "lock", "id", "name", "type",
}  # fmt: skip
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
_REFERENCE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")
_ENV_NAME = re.compile(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)+")
_WORDS = re.compile(r"[a-z]+([-_.][a-z]+)+")
_PATH_LIKE = re.compile(r"^(\.{0,2}/|~/)|^[\w.-]+(/[\w.-]+)+\.\w{1,5}$")

# --- placeholders -------------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(
    r"""xxxx|\*\*\*\*|…|\.\.\.|redacted|\{\{|\}\}|\$\{|%\(|
        ^<.*>$|^\[.*\]$|^\{.*\}$|^%[A-Za-z_]+%$|^[$!@]|
        ^(env|secret|vault|ssm|op|keyring|file|arn):|
        your[-_ ]?(api[-_ ]?)?(key|token|secret|password|pass)|[-_ ]here$|^replace[-_]?me|^change[-_]?me|
        ^(todo|fixme|tbd|none|null|nil|undefined|true|false)$""",
    re.IGNORECASE | re.VERBOSE,
)
_DUMMY = {
    "password", "password1", "password123", "changeme", "changeit", "secret", "secretkey", "postgres",
    "example", "placeholder", "notasecret", "not-a-secret", "dummy", "test", "testing", "admin", "root",
    "letmein", "default", "foobar", "sandbox", "localhost", "minioadmin", "guest", "hunter2",
}  # fmt: skip


def is_placeholder(value: str) -> bool:
    """True for values that stand in for a secret instead of being one."""
    stripped = value.strip().strip("\"'`")
    return (
        not stripped
        or bool(_PLACEHOLDER.search(stripped))
        or stripped.lower() in _DUMMY
        or heuristic.is_templated_secret(stripped)
        or len(set(stripped.lower()) - set("-_. ")) <= 2
    )


def scannable(path: str) -> bool:
    """False for files whose content is never a place for credentials we can read (images, lock files)."""
    return not (heuristic.is_non_text_file(path) or heuristic.is_lock_file(path))


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
    quotes_required = os.path.splitext(path)[1].lower() in _QUOTES_REQUIRED
    for index, found in sorted(_triggered_lines(numbered).items()):
        number, line = numbered[index]
        line = line[:MAX_LINE]
        if _allowlisted(numbered, index, line.lower()):
            continue
        seen: set[str] = set()
        for rule in _TOKEN_RULES:
            if found.isdisjoint(rule.triggers):
                continue
            for value in rule.plugin.analyze_string(line):
                value = _widen(line, value) if rule.extend else value
                if value in seen or not _token_is_secret(rule, value):
                    continue
                seen.add(value)
                hits.append(Hit(rule.name, path, number, commit, value))
        if not found.isdisjoint(_PRIVATE_KEY_TRIGGERS) and next(_PRIVATE_KEY.analyze_string(line), None):
            body = _private_key_body(numbered, index)
            if body is not None:
                hits.append(Hit(_PRIVATE_KEY.secret_type, path, number, commit, body or None))
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


def _token_is_secret(rule: _TokenRule, value: str) -> bool:
    if isinstance(rule.plugin, JwtTokenDetector):
        return not _is_public_jwt(value)
    if isinstance(rule.plugin, BasicAuthDetector):
        return "/" not in value and _assigned_value_is_secret(value)
    return not is_placeholder(value)


def _is_public_jwt(token: str) -> bool:
    """Supabase's anon key is a JWT meant to ship in front-end code: role `anon` is not a leak."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return False
    return isinstance(claims, dict) and claims.get("role") == "anon"


def _private_key_body(lines: Sequence[tuple[int, str]], header: int) -> str | None:
    """The key material after a `BEGIN … PRIVATE KEY` line; None for a mere mention of the header."""
    body: list[str] = []
    for _, line in lines[header + 1 : header + 200]:
        if _PEM_END.search(line):
            break
        if not _PEM_BODY.search(line):
            if not body:
                return None
            break
        body.append(line.strip())
    if not any(len(line) >= 16 and ":" not in line for line in body):
        return None
    return "\n".join(line for line in body if ":" not in line)


def _assignments(line: str, quotes_required: bool) -> Iterable[tuple[str, str]]:
    for match in _ASSIGNMENT.finditer(line):
        if match["op"] in ("==", "!="):
            continue
        name = match["name"][:60]
        value = match["quoted"] if match["q"] else match["bare"]
        if value is None or (quotes_required and not match["q"]):
            continue
        if _secret_name(match["name"]) and _assigned_value_is_secret(value):
            yield name, value


@lru_cache(maxsize=4096)
def _secret_name(name: str) -> bool:
    snake = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()
    words = [w for w in re.split(r"[_.\-]+", snake) if w]
    if not words:
        return False
    last = words[-1]
    if last in _SECRET_WORDS:
        return len(words) < 2 or words[-2] not in _NOT_SECRET_QUALIFIERS
    if last in _QUALIFIED_WORDS:
        return len(words) >= 2 and words[-2] not in _NOT_SECRET_QUALIFIERS
    return False


def _assigned_value_is_secret(value: str) -> bool:
    if len(value) < MIN_VALUE_LEN or len(value) > 500 or any(c in value for c in "()[]<>{} "):
        return False
    if is_placeholder(value) or _PATH_LIKE.search(value) or value.lower().startswith(("http://", "https://")):
        return False
    if heuristic.is_prefixed_with_dollar_sign(value) or heuristic.is_not_alphanumeric_string(value):
        return False
    if heuristic.is_sequential_string(value) or heuristic.is_potential_uuid(value):
        return False
    if _REFERENCE.fullmatch(value) or _ENV_NAME.fullmatch(value):
        return False  # settings.SECRET_KEY, PREFECT_API_KEY: a reference to the value, not the value
    if _WORDS.fullmatch(value):
        return False  # "modal-token-secret", "pw-from-dotenv": a description standing in for a secret
    return _entropy(value) > MIN_ENTROPY


def _entropy(value: str) -> float:
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


_ALL_TRIGGERS = tuple(
    sorted(
        {t for rule in _TOKEN_RULES for t in rule.triggers}
        | set(_PRIVATE_KEY_TRIGGERS)
        | set(_KEYWORD_TRIGGERS)
    )
)


def token_kind(value: str) -> str | None:
    """The token rule a single value matches as a whole credential (`Stripe Access Key`…), or None.

    `pipectl.secrets` asks this for values it meets outside a repository (job variables, parameters)."""
    text = value.strip()
    if not might_contain_secret(text):
        return None
    for hit in scan_lines("value", [(1, text)]):
        if not hit.rule.startswith("Secret assigned to"):
            return hit.rule
    return None
