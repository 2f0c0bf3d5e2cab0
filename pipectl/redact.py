"""The one place secret values are scrubbed from text before anything is shown, logged or stored.

Exact, not approximate: a registered secret is masked where it occurs — as itself or in a common encoding
(JSON-escaped, URL-encoded, base64, quoted) — and so is any fragment of 8 or more characters of a
credential-like secret, so a secret cut in half or embedded in a URL never leaks either. Text that merely
shares a few letters with a secret is left alone. A secret that is an everyday word (`postgres`, `2026`)
is masked only as a word of its own — not inside a compound such as `2026-12-01`, `modal-token-secret`,
`prefect.api`, `secret:BLOCK` or a path — and never inside pipectl's own structure (check ids, run ids, fix commands,
config paths), which is registered with `protect`. A password in a URL's user info is masked in any text,
registered or not. The mask keeps a credential's public prefix (`as-****`, `sk_live_****`).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "****"
MIN_LEN = 4
"""Shorter values are too short to mask without masking ordinary text (URL passwords are masked anyway)."""
FRAGMENT = 8
"""Any run of this many characters of a credential-like secret is masked."""
URL_PASSWORD = r"(?<=://)[^\s/:@'\"`<>]*:(?P<value>[^\s/@'\"`<>]+)(?=@)"
"""The password in a URL's user info (`scheme://user:PASSWORD@host`): masked in any text, registered or not."""
DSN_PASSWORD = r"(?i:password|passwd|pwd|pass)\s*=\s*(?P<value>'[^']*'|[^\s;&'\"`,]+)"
"""A `password=` field of a key=value connection string (libpq, JDBC, ODBC)."""
_URL_PASSWORD = re.compile(URL_PASSWORD)


def _word_like(value: str) -> bool:
    """An everyday word or number: only ever masked whole, and never inside pipectl's own structure."""
    return len(value) < FRAGMENT or (len(value) <= 12 and (value.isalpha() or value.isdigit()))


_ARMOR = re.compile(r"-----(BEGIN|END)[A-Z0-9 +%]*-----")


def _secret_runs(form: str) -> list[tuple[int, int]]:
    """The stretches of a form whose fragments are secret: not its public prefix (`sb_secret_` would
    otherwise mask `client_secret_rotation`), not PEM armour lines, which every private key shares."""
    from pipectl.secrets import public_prefix

    runs, start = [], len(public_prefix(form))
    if start:
        start = max(0, start - FRAGMENT + 3)  # a fragment in the prefix counts with 3 secret characters
    for armor in _ARMOR.finditer(form):
        if armor.start() > start:
            runs.append((start, armor.start()))
        start = max(start, armor.end())
    runs.append((start, len(form)))
    return [(a, b) for a, b in runs if b - a >= FRAGMENT]


def encodings(value: str) -> set[str]:
    """The forms a value takes in text: as is, stripped, JSON-escaped, URL-encoded and inside base64."""
    forms = {value, value.strip(), json.dumps(value)[1:-1], quote(value, safe=""), quote_plus(value)}
    raw = value.encode("utf-8", "surrogatepass")
    if len(raw) >= 6:
        for shift in range(3):  # whatever the alignment inside a base64 blob, its stable middle shows
            for encode in (base64.b64encode, base64.urlsafe_b64encode):
                encoded = encode(b"\0" * shift + raw).decode().rstrip("=")
                if (shift + len(raw)) % 3:
                    encoded = encoded[:-1]  # the last character also depends on whatever follows
                middle = encoded[(0, 2, 3)[shift]:]  # the first ones also depend on what precedes
                if len(middle) >= FRAGMENT:
                    forms.add(middle)
    return {f for f in forms if len(f) >= MIN_LEN}


class Redactor:
    """Masks registered secrets in text; thread-safe, process-wide (see `redactor`)."""

    def __init__(self) -> None:
        self._grams: set[str] = set()  # every 8-character fragment of a credential-like secret
        self._words: set[str] = set()  # word-like secrets and short forms, matched whole
        self._word_re: re.Pattern[str] | None = None
        self._protected: set[str] = set()
        self._protect_re: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def add(self, value: str | None) -> None:
        """Register a secret (and its encodings); values shorter than 4 characters are ignored."""
        if not isinstance(value, str) or len(value.strip()) < MIN_LEN:
            return
        with self._lock:
            for form in encodings(value):
                if _word_like(form):
                    self._words.add(form)
                    self._word_re = None
                    continue
                for start, end in _secret_runs(form):
                    for i in range(start, end - FRAGMENT + 1):
                        self._grams.add(form[i : i + FRAGMENT])

    def protect(self, *texts: str | None) -> None:
        """pipectl's own structure (check ids, run ids, fix commands, config paths): a word-like secret is
        never masked inside it, so ids stay usable whatever the passwords are."""
        with self._lock:
            for text in texts:
                if text and len(text) >= MIN_LEN and text not in self._protected:
                    self._protected.add(text)
                    self._protect_re = None

    def export(self) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
        """What this redactor masks and protects, for `merge` in another process of the same run."""
        with self._lock:
            return frozenset(self._grams), frozenset(self._words), frozenset(self._protected)

    def merge(self, state: tuple[frozenset[str], frozenset[str], frozenset[str]]) -> None:
        """Mask and protect, in addition, what another redactor of this run did (see `export`)."""
        grams, words, protected = state
        with self._lock:
            self._grams |= grams
            if not words <= self._words:
                self._words |= words
                self._word_re = None
            if not protected <= self._protected:
                self._protected |= protected
                self._protect_re = None

    @property
    def active(self) -> bool:
        """Whether any secret is registered (URL passwords are masked all the same)."""
        return bool(self._grams or self._words)

    def clear(self) -> None:
        with self._lock:
            self._grams.clear()
            self._words.clear()
            self._protected.clear()
            self._word_re = self._protect_re = None

    def __call__(self, text: str) -> str:
        if not isinstance(text, str) or len(text) < MIN_LEN:
            return text
        spans = self._spans(text)
        if not spans:
            return text
        out, last = [], 0
        for start, end in _merge(spans):
            out.append(text[last:start])
            out.append(_masked(text[start:end]))
            last = end
        out.append(text[last:])
        return "".join(out)

    def _spans(self, text: str) -> list[tuple[int, int]]:
        found = [(m.start("value"), m.end("value")) for m in _URL_PASSWORD.finditer(text)]
        grams = self._grams
        if grams and len(text) >= FRAGMENT:
            found += [(i, i + FRAGMENT) for i in range(len(text) - FRAGMENT + 1) if text[i : i + FRAGMENT] in grams]
        words = self._word_pattern()
        if words is not None:
            whole = [(m.start(), m.end()) for m in words.finditer(text)]
            if whole:
                shielded = self._protected_spans(text)
                found += [(s, e) for s, e in whole if not any(a <= s and e <= b for a, b in shielded)]
        return found

    def _word_pattern(self) -> re.Pattern[str] | None:
        if not self._words:
            return None
        if self._word_re is None:
            with self._lock:
                alternatives = "|".join(re.escape(w) for w in sorted(self._words, key=len, reverse=True))
                self._word_re = re.compile(rf"(?<![A-Za-z0-9_./-])(?:{alternatives})(?![A-Za-z0-9_/:-])(?!\.\w)")
        return self._word_re

    def _protected_spans(self, text: str) -> list[tuple[int, int]]:
        if not self._protected:
            return []
        if self._protect_re is None:
            with self._lock:
                alternatives = "|".join(re.escape(p) for p in sorted(self._protected, key=len, reverse=True))
                self._protect_re = re.compile(alternatives)
        return [(m.start(), m.end()) for m in self._protect_re.finditer(text)]

    def data(self, value: Any) -> Any:
        """The same structure with every string value redacted; keys, numbers and booleans keep their form.

        Redacting serialized JSON as text could break the document; keys are structure, not data."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {k: self.data(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            if only_numbers(value):
                return list(value)  # nothing to redact
            return [self.data(v) for v in value]
        return value

    def json_text(self, text: str) -> str | None:
        """Redact a JSON document structurally; None when `text` is not JSON."""
        stripped = text.lstrip()
        if not stripped.startswith(("{", "[")):
            return None
        try:
            document = json.loads(text)
        except ValueError:
            return None
        return json.dumps(self.data(document), indent=2) + "\n"


_NUMBER_TYPES = frozenset({int, float, bool, type(None)})


def only_numbers(values: list | tuple) -> bool:
    """True for a list holding no text at all (a batch's row ids): checked at C speed, without a loop."""
    return set(map(type, values)) <= _NUMBER_TYPES


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _masked(secret: str) -> str:
    from pipectl.secrets import public_prefix

    prefix = public_prefix(secret)
    return prefix + MASK if prefix and len(secret) > len(prefix) + 3 else MASK


redactor = Redactor()
"""Process-wide: every secret this process learns is registered here, whoever learned it."""


class RedactingFilter(logging.Filter):
    """Routes every log record through the redactor, so no handler can print a secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redactor(record.getMessage())
        record.args = None
        return True
