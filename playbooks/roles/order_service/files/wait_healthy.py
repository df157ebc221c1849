"""Wait for the order service on this host to report a release healthy; stop early on a definite failure.

Run on the app host by the role (standard library only, any Python 3.9+). It polls /health and the
service's process together and ends at the first of:
  healthy    /health answers 200, status ok, on the release asked for
  unhealthy  the release asked for answers and names a problem that waiting will not clear
             (its report says `transient: false`, e.g. a query on a table no migration created)
  exited     nothing answers and the service's process is gone (it crashed at start-up)
  timeout    the deadline passed while the service only said "not yet" (no answer from a live process,
             the previous release still answering, or a transient problem such as the database not
             answering yet)
It prints one JSON line {verdict, detail, waited_s} and exits 0; the role turns the verdict into the
deploy's success or failure, so the message it shows is the service's own reason.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

POLL_S = 0.25


def decide(answer: tuple[int, Any] | None, alive: bool, release: str) -> tuple[str, str] | None:
    """(verdict, detail) when the wait is over, None to keep waiting. Pure.

    `answer` is /health's (HTTP status, JSON document), None when nothing answered.
    """
    if answer is None:
        if not alive:
            return "exited", "the service's process exited and nothing answers /health"
        return None
    status, document = answer
    doc = document if isinstance(document, dict) else {}
    if doc.get("version") != release:
        return None  # the previous release still answers: the restart has not taken over yet
    if status == 200 and doc.get("status") == "ok":
        return "healthy", f"release {release} answers /health ok"
    problems = _problems(status, doc)
    # Only a report that says so is definite: an older release's report has no `transient` field.
    if doc.get("transient") is False:
        return "unhealthy", problems
    return None


def _answer(url: str) -> tuple[int, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - the host's own service
            return int(response.status), _json(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return int(error.code), _json(error.read())
    except (urllib.error.URLError, OSError):
        return None


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except ValueError:
        return None


def _pid_alive(pidfile: str) -> bool:
    try:
        with open(pidfile, encoding="ascii") as handle:
            pid = int(handle.read().strip())
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            # The state follows the parenthesised command name; a zombie has exited.
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, ValueError, IndexError):
        return False


def _unit_alive(unit: str) -> bool:
    state = subprocess.run(
        ["systemctl", "is-active", unit], capture_output=True, text=True, check=False
    ).stdout.strip()
    return state in ("active", "activating", "reloading")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--release", required=True)
    parser.add_argument("--timeout", type=float, required=True)
    alive_by = parser.add_mutually_exclusive_group(required=True)
    alive_by.add_argument("--pidfile")
    alive_by.add_argument("--unit")
    args = parser.parse_args(argv)
    started = time.monotonic()
    last: tuple[int, Any] | None = None
    while True:
        last = _answer(args.url)
        alive = _pid_alive(args.pidfile) if args.pidfile else _unit_alive(args.unit)
        waited = round(time.monotonic() - started, 2)
        verdict = decide(last, alive, args.release)
        if verdict is None and waited >= args.timeout:
            verdict = ("timeout", _still_waiting(last, args.release))
        if verdict is not None:
            print(json.dumps({"verdict": verdict[0], "detail": verdict[1], "waited_s": waited}))
            return 0
        time.sleep(POLL_S)


def _still_waiting(last: tuple[int, Any] | None, release: str) -> str:
    if last is None:
        return "no answer from /health"
    status, document = last
    doc = document if isinstance(document, dict) else {}
    if doc.get("version") != release:
        return f"/health still reports release {doc.get('version')}"
    return _problems(status, doc)


def _problems(status: int, doc: dict) -> str:
    return "; ".join(str(p) for p in doc.get("problems") or []) or f"/health answered {status}"


if __name__ == "__main__":
    sys.exit(main())
