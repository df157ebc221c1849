"""A run imports only the module of the command it names; help still lists every command. Checked in a
fresh interpreter, since the test process has imported everything already."""

from __future__ import annotations

import json
import subprocess
import sys

# Runs main(argv) and prints its exit code and which command modules and libraries it imported.
_PROBE = """
import contextlib, io, json, sys
from recovery.cli.main import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = main(sys.argv[1:])
loaded = sorted(n for n in sys.modules if n.startswith("recovery.cli.") or n in ("boto3", "psycopg"))
print(json.dumps({"code": code, "loaded": loaded, "out": out.getvalue()}))
"""


def _run(*argv: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, check=True)
    found: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def test_a_command_imports_its_own_module_only() -> None:
    found = _run("target", "--help")
    loaded = set(found["loaded"])  # type: ignore[arg-type]
    assert found["code"] == 0
    assert "recovery.cli.target" in loaded
    assert not loaded & {"recovery.cli.backup", "recovery.cli.watch", "recovery.cli.gameday", "boto3"}, loaded


def test_the_help_still_lists_every_command() -> None:
    found = _run("--help")
    assert found["code"] == 0
    for command in ("backup", "restore", "watch", "failover", "target", "upgrade", "version"):
        assert command in str(found["out"]), command


def test_a_command_names_its_own_subcommands() -> None:
    found = _run("backup", "--help")
    assert found["code"] == 0
    assert "realtime" in str(found["out"]) and "ship" in str(found["out"])
