"""The one place secret values are scrubbed from text before anything is shown, logged or stored."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

MASK = "****"
MIN_LEN = 4


class Redactor:
    """Masks every run of 4+ characters that also occurs inside a registered secret.

    Masking any shared 4-character window (not just the whole value) means a secret cut in half, a prefix
    shown as a hint, or a value embedded in a URL never leaks either.
    """

    def __init__(self) -> None:
        self._grams: set[str] = set()
        self._lock = threading.Lock()

    def add(self, value: str | None) -> None:
        """Register a secret; values shorter than 4 characters are too short to mask meaningfully."""
        if not value or len(value) < MIN_LEN:
            return
        forms = {value, json.dumps(value)[1:-1]}
        with self._lock:
            for form in forms:
                self._grams.update(form[i : i + MIN_LEN] for i in range(len(form) - MIN_LEN + 1))

    @property
    def active(self) -> bool:
        """Whether any secret is registered (nothing to mask otherwise)."""
        return bool(self._grams)

    def clear(self) -> None:
        with self._lock:
            self._grams.clear()

    def __call__(self, text: str) -> str:
        if not self._grams or len(text) < MIN_LEN:
            return text
        grams = self._grams
        hidden = bytearray(len(text))
        found = False
        for i in range(len(text) - MIN_LEN + 1):
            if text[i : i + MIN_LEN] in grams:
                hidden[i : i + MIN_LEN] = b"\x01" * MIN_LEN
                found = True
        if not found:
            return text
        out: list[str] = []
        i = 0
        while i < len(text):
            if hidden[i]:
                while i < len(text) and hidden[i]:
                    i += 1
                out.append(MASK)
            else:
                out.append(text[i])
                i += 1
        return "".join(out)


    def data(self, value: Any) -> Any:
        """The same structure with every string (and key) redacted; numbers and booleans are left alone.

        Redacting serialized JSON as text could mask digits inside a number and break the document.
        """
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {self(str(k)): self.data(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
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


redactor = Redactor()
"""Process-wide: every secret this process learns is registered here, whoever learned it."""


class RedactingFilter(logging.Filter):
    """Routes every log record through the redactor, so no handler can print a secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redactor(record.getMessage())
        record.args = None
        return True
