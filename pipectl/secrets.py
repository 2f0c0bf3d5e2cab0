"""What is a secret: the one place that decides, by a key's name and by a value's shape.

Every part asks here — doctor's checks, `patch`, `secret set`, `trigger`, the journal, reports and the
redactor — so a key `doctor` calls a credential is one `patch` refuses to print, and a value shaped like a
token is masked wherever it turns up. Value shapes come from the same token rules `repo.secrets` scans
repositories with (`pipectl.secret_scan`), plus passwords inside URLs and key=value DSNs.

A secret that must be shown at all is shown as a placeholder: `‹secret sha256:1a2b3c4d›`, a fingerprint
that tells two values apart without revealing either.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pipectl.redact import DSN_PASSWORD, only_numbers, redactor

_STRONG_WORDS = {
    "secret", "secrets", "password", "passwd", "pwd", "passphrase", "credential", "credentials", "apikey",
    "secretkey", "authtoken", "accesstoken", "privatekey", "dsn",
}  # fmt: skip
"""A name holding one of these words names a credential (`MODAL_TOKEN_SECRET`, `DB_PASSWORD`, `dsn`)."""
_STRONG_SUFFIXES = ("password", "passwd", "secret", "apikey", "secretkey", "authtoken", "accesstoken", "privatekey")
"""Run together (`PGPASSWORD`, `clientsecret`): still a credential's name."""
_QUALIFIED_WORDS = {"key", "token", "pass", "pat", "auth"}
"""Too common alone (`key = "name"`): a credential only after a qualifier (`API_KEY`, `MODAL_TOKEN_ID`)."""
NOT_SECRET_QUALIFIERS = frozenset({
    "public", "publishable", "pub", "anon", "primary", "foreign", "sort", "partition", "cache",
    "idempotency", "lookup", "dict", "map", "next", "page", "continuation", "pagination", "sync", "row",
    "range", "hash", "s3", "object", "bucket", "file", "path", "env", "config", "setting", "field",
    "column", "header", "param", "query", "search", "group", "message", "dedup", "dedupe", "deduplication",
    "routing", "shard", "i18n", "translation", "label", "flag", "feature", "max", "min", "num", "count",
    "total", "input", "output", "prompt", "completion", "stop", "unique", "composite", "csrf", "xsrf",
    "registry", "redis", "storage", "state", "lock", "id", "name", "type",
})  # fmt: skip
"""Words that make the next `key`/`token` ordinary: `sort_key`, `page_token`, `csrf_token`."""
_NOT_SECRET_LAST = {"name", "names", "block", "blocks", "file", "path", "url", "type", "length", "len", "ttl",
                    "expiry", "expires", "expiration", "header", "field", "hint", "prompt", "policy", "rotation",
                    "version", "count", "limit", "env", "var", "variable", "ref", "arn", "sock", "socket", "dir"}  # fmt: skip
"""Words that make the whole name about a secret rather than the secret itself: `SECRET_NAME`, `TOKEN_URL`."""

_NOT_SECRET_NAMES = {"PWD", "OLDPWD"}
"""The shell's working directories, whatever their names look like."""
_PATH = re.compile(r"^(/|~/|\./|\.\./)[\w./@+-]*$")
_PLACEHOLDER = re.compile(r"^‹secret[^›]*›$")
_TEMPLATE = re.compile(r"^\s*\{\{.*\}\}\s*$", re.DOTALL)
_REFERENCE = re.compile(r"^(env|secret):[A-Za-z0-9_.-]+$")
_DSN_PASSWORD = re.compile(r"(?:^|(?<=[\s;&?]))" + DSN_PASSWORD)
_SECRET_QUERY = re.compile(r"(token|secret|password|passwd|pwd|signature|sig|key|auth|credential|code)", re.IGNORECASE)
PUBLIC_PREFIXES = (
    "sk_live_", "sk_test_", "rk_live_", "rk_test_", "whsec_", "sb_secret_", "pnu_", "pnb_", "ak-", "as-",
    "AKIA", "ASIA", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-", "xoxb-", "xoxp-", "xoxa-",
    "sk-proj-", "sk-ant-", "SG.", "pypi-", "npm_", "eyJ",
)  # fmt: skip
"""Prefixes that say which kind of credential a value is and are no secret themselves: kept when masking."""


def words(name: str) -> list[str]:
    """`modalTokenSecret`, `MODAL_TOKEN_SECRET`, `modal-token.secret` → ['modal', 'token', 'secret']."""
    snake = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()
    return [w for w in re.split(r"[^a-z0-9]+", snake) if w]


def is_secret_key(name: str) -> bool:
    """MODAL_TOKEN_SECRET, AWS_SECRET_ACCESS_KEY, STRIPE_KEY, stripe_webhook.signing_secret, api_token…
    but not LOG_LEVEL, SORT_KEY, SECRET_NAME, SUPABASE_ANON_KEY or csrf_token."""
    parts = words(str(name).rsplit(".", 1)[-1]) if "." in str(name) else words(str(name))
    if str(name).upper() in _NOT_SECRET_NAMES or not parts or parts[-1] in _NOT_SECRET_LAST and len(parts) > 1:
        return False
    for index, word in enumerate(parts):
        before = parts[index - 1] if index else ""
        if before in NOT_SECRET_QUALIFIERS:
            continue
        if word in _STRONG_WORDS or word.endswith(_STRONG_SUFFIXES):
            return True
        if word in _QUALIFIED_WORDS and index > 0:
            return True
    return False


def is_reference(value: object) -> bool:
    """`{{ prefect.blocks.secret.X }}`, `env:NAME`, `secret:BLOCK`, or our own `‹secret sha256:…›`: names
    where a secret lives, or stands for one, not a secret itself."""
    return isinstance(value, str) and bool(
        _TEMPLATE.match(value) or _REFERENCE.match(value.strip()) or _PLACEHOLDER.match(value)
    )


def url_password(url: str) -> str | None:
    """The password in a URL's user info, or None (also for text that is not a URL). Found with the
    redactor's own pattern, not `urlsplit`: a `#` or `?` in an unencoded password ends urlsplit's netloc
    there, and the rest of the password would be taken for a path and shown."""
    from pipectl.redact import URL_PASSWORD

    match = re.search(URL_PASSWORD, url) if "://" in url else None
    return match.group("value") if match else None


def embedded_secrets(text: str) -> list[str]:
    """The credential parts inside a URL or DSN: its password, and query values named like credentials."""
    found: list[str] = []
    if "://" not in text and "=" not in text:
        return found
    password = url_password(text)
    if password:
        found.append(password)
    if "://" in text:
        try:
            query = urlsplit(text.strip()).query
        except ValueError:
            query = ""
        found += [v for k, v in parse_qsl(query) if _SECRET_QUERY.search(k) and v and not is_reference(v)]
    for match in _DSN_PASSWORD.finditer(text):
        found.append(match["value"].strip("'"))
    return [f for f in found if f]


def secret_kind(value: object) -> str | None:
    """What kind of credential a value is by its shape alone (`Stripe Access Key`, `URL with a password`,
    `Modal Token Secret`…), or None for ordinary text."""
    if not isinstance(value, str) or len(value.strip()) < 8 or is_reference(value):
        return None
    if embedded_secrets(value):
        return "URL or DSN with a password"
    from pipectl.secret_scan import might_contain_secret, scan_lines

    text = value.strip()
    if not might_contain_secret(text):
        return None
    hits = scan_lines("value", [(1, text)])  # a token's shape, or `--api-key=<random>` inside a string
    return hits[0].rule if hits else None


def is_secret(key: object, value: object) -> bool:
    """A value that must never be shown: under a credential's name, or shaped like one itself."""
    if not isinstance(value, str) or not value.strip() or is_reference(value):
        return False
    named = key is not None and is_secret_key(str(key)) and not _PATH.match(value)  # a key file's path
    return named or secret_kind(value) is not None


def secret_parts(key: object, value: object) -> list[str]:
    """The parts of a value that are secret: the password inside a URL or DSN (the rest of it is a
    location worth showing), else the whole value when its name or shape says credential."""
    if not isinstance(value, str) or is_reference(value):
        return []
    inner = embedded_secrets(value)
    if inner:
        return inner
    if _locator(value.strip()):  # a URL or DSN without a password: a place (`host=/tmp/…/pg`), shown
        return [value] if secret_kind(value) else []  # unless a token sits in it (a webhook's path)
    return [value] if is_secret(key, value) else []


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://\S*$")
_DSN_PAIR = re.compile(r"(\w+)\s*=\s*(?:'(?:[^'\\]|\\.)*'|\S+)")
_DSN_KEYS = frozenset({
    "host", "hostaddr", "port", "dbname", "user", "password", "passfile", "connect_timeout", "options",
    "sslmode", "sslcert", "sslkey", "sslrootcert", "sslcrl", "application_name", "target_session_attrs",
    "service", "channel_binding", "gssencmode", "keepalives", "client_encoding", "require_auth",
})
"""libpq's connection keywords: `a=b` made of other words is no DSN (a password may hold `=`)."""


def _locator(value: str) -> bool:
    """A URL, or a key=value connection string whose every key is a libpq keyword."""
    if _URL.match(value):
        return True
    pairs = _DSN_PAIR.findall(value)
    return bool(pairs) and all(k.lower() in _DSN_KEYS for k in pairs) and not _DSN_PAIR.sub("", value).strip()


def register(key: object, value: object) -> None:
    """Hand the secret parts of a value to the redactor before anything can print them."""
    for part in secret_parts(key, value):
        redactor.add(part)


def register_environment(environ: Mapping[str, str]) -> None:
    """Every credential in the environment pipectl runs in (and the `.env` it reads) is masked wherever
    a library or server might echo it."""
    for name, value in environ.items():
        register(name, value)


def register_arguments(argv: list[str]) -> None:
    """Whatever the operator typed that looks like a credential (`sk_live_…` where a block name belongs,
    `KEY:value` for `KEY=value`) is masked in every message, even one a library writes about bad usage.
    Only the value part of `KEY=value` / `KEY:value` is taken: the name stays readable."""
    for arg in argv:
        for piece in _typed_values(arg):
            if len(piece) < 8 or is_reference(piece):
                continue
            if "://" in piece or "password" in piece.lower():
                register("argument", piece)
            elif (public_prefix(piece) or (re.search(r"[A-Za-z]", piece) and re.search(r"\d", piece))) \
                    and secret_kind(piece):  # a known prefix needs no digit: sk_live_ + letters only is a key
                register("argument", piece)


def _typed_values(arg: str) -> list[str]:
    name, sep, value = arg.partition("=")
    if sep and "://" not in name:
        arg = value
    if "://" in arg:
        return [arg]
    parts = arg.split(":")
    return parts[1:] if len(parts) > 1 else parts


def fingerprint(value: str) -> str:
    """`sha256:1a2b3c4d`: enough to tell whether two values are the same, nothing to recover either."""
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def placeholder(value: str) -> str:
    """What is shown and journaled instead of a secret value."""
    return f"‹secret {fingerprint(value)}›"


def public_prefix(text: str) -> str:
    """The known, non-secret prefix a credential starts with (`as-`, `sk_live_`, `AKIA`), or ''."""
    return next((p for p in PUBLIC_PREFIXES if text.startswith(p)), "")


def scrub(data: Any, key: str | None = None) -> Any:
    """The same structure with every secret value (by key or by shape) replaced by its placeholder, and
    every secret part registered with the redactor (a URL with a password is replaced whole, so what is
    journaled is never a half-masked value someone could write back)."""
    if isinstance(data, Mapping):
        return {k: scrub(v, str(k)) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        if only_numbers(data) or _row_ids(key, data):  # a batch's 20,000 row ids
            return list(data)
        return [scrub(v, key) for v in data]
    if not isinstance(data, str) or is_reference(data):
        return data
    parts = secret_parts(key, data)
    for part in parts:
        redactor.add(part)
    return placeholder(data) if parts else data


def _row_ids(key: str | None, data: list | tuple) -> bool:
    """Values of a table's id column (`ids`, `row_ids`): identifiers the database chose, not credentials."""
    return bool(key) and words(key)[-1:] == ["ids"] and set(map(type, data)) <= {str, int} \
        and max(map(len, map(str, data)), default=0) <= 64
