"""`pipectl --help` and friends must not pay for the heavy clients."""

import json
import subprocess
import sys

import pytest

HEAVY = ("prefect", "modal", "boto3", "botocore", "psycopg", "grpclib")
PROBE = """
import json, sys
from pipectl.cli import main
try:
    main({args!r})
except SystemExit:
    pass
sys.stdout = sys.__stdout__
print("\\n" + json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))
"""


@pytest.mark.parametrize("args", [["--help"], ["checks", "list"], ["doctor", "--help"], ["playbooks", "list"]])
def test_light_commands_do_not_import_heavy_clients(args):
    proc = subprocess.run([sys.executable, "-c", PROBE.format(args=args)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    loaded = set(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))
    assert "pipectl" in loaded
