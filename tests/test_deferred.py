"""Loading a config does not pay for `requests`, yet code that uses `requests` still gets the real module."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import python_env

_SCRIPT = """
import sys
from pipectl.secrets import secret_kind
kind = secret_kind("sk_live_" + "a1B2c3D4e5F6g7H8i9J0k1L2")
print(kind, "urllib3" in sys.modules)
import requests
print(requests.Session.__module__, "urllib3" in sys.modules)
"""


def test_requests_is_imported_only_when_something_uses_it():
    done = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, check=False,
                          env=python_env(), timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    classified, used = done.stdout.splitlines()
    assert classified == "Stripe Access Key False"  # detect-secrets' rules ran; requests was never loaded
    assert used == "requests.sessions True"  # the first use loads the real module
