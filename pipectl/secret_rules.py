"""The rules `pipectl.secret_scan` applies to a line, and the tests that tell a real value from a stand-in.

Token rules are detect-secrets' regex plugins (used in-process through `analyze_string`, never their
`verify`, which would send the candidate to the vendor) plus our own where detect-secrets lacks a shape or
yields only part of the token: Stripe live and test keys, GitHub and GitLab tokens, Prefect API keys, Modal
token ids/secrets, Supabase secret keys, passwords in URLs and key=value DSNs, and bearer tokens.

A value is a stand-in, not a secret, when it is a placeholder (`<REDACTED>`, `${VAR}`, `env:NAME`,
`changeme`), a documented example (AWS's `…EXAMPLE` keys) or made up by hand: after its prefix, one
character repeated or runs of neighbouring characters (`pnu_1234567890abcdef…`, `ak-000000…`).
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from urllib.parse import unquote

from pipectl.deferred import defer

defer("requests")  # detect-secrets imports it only to verify tokens online, which pipectl never does

from detect_secrets.filters import heuristic
from detect_secrets.plugins.azure_storage_key import AzureStorageKeyDetector
from detect_secrets.plugins.jwt import JwtTokenDetector
from detect_secrets.plugins.npm import NpmDetector
from detect_secrets.plugins.openai import OpenAIDetector
from detect_secrets.plugins.private_key import PrivateKeyDetector
from detect_secrets.plugins.pypi_token import PypiTokenDetector
from detect_secrets.plugins.sendgrid import SendGridDetector
from detect_secrets.plugins.slack import SlackDetector

from pipectl.redact import DSN_PASSWORD, URL_PASSWORD

MIN_VALUE_LEN = 8
MIN_PASSWORD_LEN = 4
"""A password inside a URL or DSN is a password whatever its length (`app:s3cr3t@db`)."""
MIN_BEARER_LEN = 16
MIN_ENTROPY = 2.0

# --- stand-ins -----------------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(
    r"""(?<![a-z0-9])x{4,}|x{4,}(?![a-z0-9])|\*\*\*\*|…|\.\.\.|redacted|example|\{\{|\}\}|\$\{|%\(|
        ^<.*>$|^\[.*\]$|^\{.*\}$|^%[A-Za-z_]+%$|^[$!@]|
        ^(env|secret|vault|ssm|op|keyring|file|arn):|
        your[-_ ]?(api[-_ ]?)?(key|token|secret|password|pass)|[-_ ]here$|^replace[-_]?me|^change[-_]?me|
        ^(todo|fixme|tbd|none|null|nil|undefined|true|false)$""",
    re.IGNORECASE | re.VERBOSE,
)
_DUMMY = {
    "password", "password1", "password123", "changeme", "changeit", "secret", "secretkey", "postgres",
    "example", "placeholder", "notasecret", "not-a-secret", "dummy", "test", "testing", "admin", "root",
    "letmein", "default", "foobar", "sandbox", "localhost", "minioadmin", "guest", "hunter2", "pass",
    "passwd", "pwd", "user", "username", "mysql", "redis", "rabbitmq",
}  # fmt: skip
_PREFIX = re.compile(r"^(?:[a-z]{2,6}[_-]){1,2}|^(?:AKIA|ASIA|ABIA|ACCA)")
_MIN_RUN = 4


def is_placeholder(value: str) -> bool:
    """True for values that stand in for a secret instead of being one."""
    stripped = value.strip().strip("\"'`")
    return (
        not stripped
        or bool(_PLACEHOLDER.search(stripped))
        or stripped.lower() in _DUMMY
        or heuristic.is_templated_secret(stripped)
        or len(set(stripped.lower()) - set("-_. ")) <= 2
        or _made_up(stripped)
    )


def _made_up(value: str) -> bool:
    """After a known prefix: one character repeated, or half of it in runs of neighbouring characters
    (`1234`, `abcd`, `aaaa`, `9876`), which random generators practically never produce."""
    body = _PREFIX.sub("", value, count=1).lower()
    if len(body) < MIN_VALUE_LEN:
        return False
    if len(set(body)) <= 3:
        return True
    covered, run = 0, 1
    for before, after in pairwise(body):
        if abs(ord(after) - ord(before)) <= 1:
            run += 1
            continue
        covered += run if run >= _MIN_RUN else 0
        run = 1
    covered += run if run >= _MIN_RUN else 0
    return covered * 2 >= len(body)


# --- what a value must look like -----------------------------------------------------------------------

_IDENTIFIER = re.compile(
    r"[a-z_][a-z0-9_]*|[A-Z_][A-Z0-9_]*|[a-z]+(?:[A-Z][a-z]+)*[0-9]*|(?:[A-Z][a-z]+)+[0-9]*"
)
"""One part of `settings.SECRET_KEY`, `config.apiKey`: a name in one naming style, unlike `hayTzne8`."""
_ENV_NAME = re.compile(r"(?=.*_)[A-Z][A-Z0-9]*(_[A-Z][A-Z0-9]*)*(_[0-9]+)?")
_WORDS = re.compile(r"[a-z]+([-_.][a-z]+)+")
_NAME_VALUE = re.compile(r"[A-Z]*[a-z]*(?:[A-Z][a-z]+)*[A-Z]*")
"""`MaxResults`, `dataSources`, `SSECustomerKey`, `memberships`: letters only, read as words — a field name,
as `result_key`/`limit_key` mappings hold, not a generated key (random letters put capitals side by side)."""
_SEGMENT = r"(?:[A-Z]?[a-z0-9_.-]+|[A-Z0-9_.-]+)"
_PATH_LIKE = re.compile(
    rf"^(?:\.{{0,2}}/|~/)(?:{_SEGMENT}(?:/{_SEGMENT})*/?)?$"  # ./x, ../x, ~/x, /x
    rf"|^(?=.*\.[A-Za-z0-9]{{1,5}}$){_SEGMENT}(?:/{_SEGMENT})+$"  # dir/file.ext
)
"""`/run/secrets/db`, `./keys/deploy.pem`, `certs/Server.key`: segments that read as names, unlike base64."""


def assigned_value_is_secret(value: str, min_len: int = MIN_VALUE_LEN, words_allowed: bool = False) -> bool:
    """A value assigned to a credential's name that looks like one: long enough, random enough, and not a
    reference, path, URL, template or placeholder; nor words in camel case unless `words_allowed` (a
    password may be words, a generated key or token is not)."""
    if len(value) < min_len or len(value) > 500 or any(c in value for c in "()[]<>{} "):
        return False
    if not words_allowed and _NAME_VALUE.fullmatch(value):
        return False
    if is_placeholder(value) or _PATH_LIKE.search(value) or value.lower().startswith(("http://", "https://")):
        return False
    if heuristic.is_prefixed_with_dollar_sign(value) or heuristic.is_not_alphanumeric_string(value):
        return False
    if heuristic.is_sequential_string(value) or heuristic.is_potential_uuid(value):
        return False
    if _is_reference(value) or _ENV_NAME.fullmatch(value):
        return False  # settings.SECRET_KEY, PREFECT_API_KEY: a reference to the value, not the value
    if _WORDS.fullmatch(value):
        return False  # "modal-token-secret", "pw-from-dotenv": a description standing in for a secret
    return entropy(value) > MIN_ENTROPY


def _password_is_secret(value: str) -> bool:
    """Inside a URL or DSN a value is literal text, never a reference to one. Out are placeholders and the
    words documentation uses (`scott:tiger`, `user:TOKEN`, `my-token`, `a%20secret`)."""
    value = value.strip("'\"")
    if len(value) < MIN_PASSWORD_LEN or len(value) > 200 or any(c in value for c in "()[]<>{}"):
        return False
    plain_word = value.isalpha() and (value.islower() or value.isupper())
    if plain_word or _WORDS.fullmatch(value) or " " in unquote(value):
        return False
    return not (is_placeholder(value) or _ENV_NAME.fullmatch(value))


def _is_reference(value: str) -> bool:
    parts = value.split(".")
    return len(parts) > 1 and all(_IDENTIFIER.fullmatch(part) for part in parts)


def _bearer_is_secret(value: str) -> bool:
    return assigned_value_is_secret(value, MIN_BEARER_LEN) and entropy(value) > 3.0


def _not_placeholder(value: str) -> bool:
    return not is_placeholder(value)


def _jwt_is_secret(token: str) -> bool:
    """Supabase's anon key is a JWT meant to ship in front-end code: role `anon` is not a leak."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return True
    return not (isinstance(claims, dict) and claims.get("role") == "anon")


def entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


# --- the token rules -----------------------------------------------------------------------------------


class _Own:
    """A rule of ours: each match of a pattern is the credential, or its group `value` when it has one."""

    def __init__(self, secret_type: str, *patterns: str) -> None:
        self.secret_type = secret_type
        self.patterns = tuple(re.compile(p) for p in patterns)

    def analyze_string(self, line: str) -> Iterator[str]:
        for pattern in self.patterns:
            for match in pattern.finditer(line):
                if self.in_context(line, match):
                    yield match["value"] if "value" in pattern.groupindex else match[0]

    def in_context(self, line: str, match: re.Match) -> bool:
        return True


class _DsnPassword(_Own):
    """`password=` as one field of a connection string: after `?`, `&` or `;` (JDBC, ODBC, URL query), or
    after another `key=value` field (libpq's `host=db user=app password=…`)."""

    _FIELD_BEFORE = re.compile(r"[A-Za-z_]\w*\s*=\s*[^\s=,]+\s+$")

    def in_context(self, line: str, match: re.Match) -> bool:
        before = line[: match.start()]
        return before[-1:] in ("?", "&", ";") or bool(self._FIELD_BEFORE.search(before[-200:]))


@dataclass(frozen=True)
class TokenRule:
    """A rule whose match says "credential" by its shape, once `accept` agrees with the value."""

    plugin: object
    """Anything with `secret_type` and `analyze_string(line)`: a detect-secrets plugin or one of ours."""
    triggers: frozenset[str]
    """Lower-case substrings one of which must be in the line before the plugin's regexes run."""
    extend: bool = False
    """The plugin's regex stops short of the whole token (JWT): widen the value to it."""
    accept: Callable[[str], bool] = _not_placeholder

    def __post_init__(self) -> None:
        object.__setattr__(self, "triggers", frozenset(self.triggers))

    @property
    def name(self) -> str:
        return self.plugin.secret_type  # type: ignore[attr-defined]


_B = r"(?<![A-Za-z0-9_-])"
_AWS_KEY_ID = r"(?<![A-Za-z0-9])(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)[0-9A-Z]{16}(?![A-Za-z0-9])"
_AWS_SECRET = (
    r"(?i:aws.{0,20}?(?:key|pwd|pw|password|pass|token).{0,20}?['\"])(?P<value>[0-9a-zA-Z/+]{40})['\"]"
)
_E = r"(?![A-Za-z0-9])"
_GITLAB = ("glpat", "gldt", "glft", "glsoat", "glrt", "glcbt", "glimt", "glptt", "glagent", "gloas")
_URL_PASSWORD = URL_PASSWORD  # one pattern for a URL's password: the redactor masks what this finds
_DSN_FIELD = DSN_PASSWORD
_BEARER = r"(?i:\bbearer)\s+(?P<value>[A-Za-z0-9._~+/-]{16,}=*)"
TOKEN_RULES: tuple[TokenRule, ...] = (
    TokenRule(_Own("AWS Access Key", _AWS_KEY_ID, _AWS_SECRET),
              ("akia", "asia", "abia", "acca", "a3t", "aws")),
    TokenRule(_Own("Stripe Access Key", _B + r"[rs]k_(?:live|test)_[0-9a-zA-Z]{24,}"),
              ("k_live_", "k_test_")),
    TokenRule(JwtTokenDetector(), ("eyj",), extend=True, accept=_jwt_is_secret),
    TokenRule(_Own("GitHub Token", _B + r"(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9_]{36,}",
                   _B + r"github_pat_\w{40,}"),
              ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_")),
    TokenRule(_Own("GitLab Token", _B + rf"(?:{'|'.join(_GITLAB)})-[\w-]{{20,}}",
                   _B + r"GR1348941[\w-]{20,}"),
              (*(p + "-" for p in _GITLAB), "gr1348941")),
    TokenRule(SlackDetector(), ("xox", "hooks.slack.com")),
    TokenRule(OpenAIDetector(), ("t3blbkfj",)),
    TokenRule(SendGridDetector(), ("sg.",)),
    TokenRule(PypiTokenDetector(), ("pypi-",)),
    TokenRule(NpmDetector(), ("_authtoken",)),
    TokenRule(AzureStorageKeyDetector(), ("accountkey=",)),
    TokenRule(_Own("Basic Auth Credentials", _URL_PASSWORD), ("://",), accept=_password_is_secret),
    TokenRule(_DsnPassword("Password in connection string", _DSN_FIELD), ("pass", "pwd"),
              accept=_password_is_secret),
    TokenRule(_Own("Bearer Token", _BEARER), ("bearer",), accept=_bearer_is_secret),
    TokenRule(_Own("Prefect API Key", r"(?<![A-Za-z0-9_])pn[ub]_[A-Za-z0-9]{36}" + _E), ("pnu_", "pnb_")),
    TokenRule(_Own("Modal Token ID", _B + r"ak-[A-Za-z0-9]{20,}" + _E), ("ak-",)),
    TokenRule(_Own("Modal Token Secret", _B + r"as-[A-Za-z0-9]{20,}" + _E), ("as-",)),
    TokenRule(_Own("Supabase Secret Key", r"(?<![A-Za-z0-9_])sb_secret_[\w-]{20,}"), ("sb_secret_",)),
)  # fmt: skip

# --- private keys --------------------------------------------------------------------------------------

PRIVATE_KEY = PrivateKeyDetector()
PRIVATE_KEY_TRIGGERS = frozenset({"private key", "putty-user-key-file"})
_PEM_END = re.compile(r"-{5}END [A-Z0-9 ]*-{5}")
_PEM_BODY = re.compile(
    r"^\s*[A-Za-z0-9+/=]{16,}\s*$|^(Proc-Type|DEK-Info|Comment|Encryption|Public-Lines|Private-Lines):"
)
_PEM_INLINE_HEADER = re.compile(r"BEGIN [A-Z0-9 ]*PRIVATE KEY[A-Z ]*-{5}")
_PEM_INLINE_BODY = re.compile(r"(?:[A-Za-z0-9+/=\s]|\\[rn])+")
"""A whole key on one line, its line breaks written `\\n` (a service-account JSON's `private_key`)."""


def private_key_body(lines: Sequence[tuple[int, str]], header: int) -> str | None:
    """The key material after a `BEGIN … PRIVATE KEY` line; None for a mere mention of the header."""
    line = lines[header][1]
    start = _PEM_INLINE_HEADER.search(line)
    end = line.find("-----END", start.end()) if start else -1
    if start and end > 0:
        first, last = start.end(), end
        while first < last and (line[first].isspace() or line.startswith(("\\n", "\\r"), first)):
            first += 1 if line[first].isspace() else 2
        while first < last and (line[last - 1].isspace() or line[last - 2 : last] in ("\\n", "\\r")):
            last -= 1 if line[last - 1].isspace() else 2
        material = line[first:last]
        if not _PEM_INLINE_BODY.fullmatch(material) or len(re.sub(r"\\[rn]|\s", "", material)) < 16:
            return None
        return material
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
