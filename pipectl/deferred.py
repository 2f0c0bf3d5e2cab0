"""Deferring a library another library imports but pipectl never calls, so start-up does not pay for it.

detect-secrets imports `requests` at import time only to verify tokens online, which pipectl never asks
it to do; `requests` (with urllib3, idna and charset_normalizer) is ~0.11 s of CPU, two thirds of
detect-secrets' import, and every command that loads a config classifies values with detect-secrets' rules.
`defer("requests")` puts a stand-in in `sys.modules` that imports the real module the first time anything
is read from it, so a library that does use it still gets the real thing.
"""

from __future__ import annotations

import importlib
import sys
import types


class _ImportedOnUse(types.ModuleType):
    """Stands in for a module until an attribute is read from it, then becomes a view of the real one."""

    def __getattr__(self, name: str):
        real = sys.modules.get(self.__name__)
        if real is None or real is self:
            sys.modules.pop(self.__name__, None)
            real = importlib.import_module(self.__name__)
        return getattr(real, name)


def defer(name: str) -> None:
    """Import `name` only when something first uses it; nothing happens if it is already imported."""
    if name not in sys.modules:
        sys.modules[name] = _ImportedOnUse(name)
