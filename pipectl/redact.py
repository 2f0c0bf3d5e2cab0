"""The one place secret values are scrubbed from text before anything is shown, logged or stored."""

from __future__ import annotations

import json
import logging
import threading

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


redactor = Redactor()
"""Process-wide: every secret this process learns is registered here, whoever learned it."""


class RedactingFilter(logging.Filter):
    """Routes every log record through the redactor, so no handler can print a secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redactor(record.getMessage())
        record.args = None
        return True
