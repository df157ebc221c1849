"""Orders handed over to a person: the file a rollback's carry-over writes for the orders it would not
carry (a wrong total, no lines), and the reading of every such file written since a moment.

One home for the path, so the writer (the rollback) and the readers (`verify --ledger`, game days) can
never disagree on where a person's list is.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recovery.engine.journal import RUN_ID_PATTERN

FILE_NAME = "needs-a-person.json"


def handover_path(state_dir: Path, run_id: str) -> Path:
    return state_dir / "rollbacks" / run_id / FILE_NAME


def write_handover(state_dir: Path, run_id: str, orders: list[dict[str, Any]]) -> Path:
    path = handover_path(state_dir, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(orders, indent=2, default=str) + "\n")
    return path


def _run_started(run_id: str) -> datetime:
    return datetime.strptime(run_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def handed_over_since(state_dir: Path, since: datetime) -> dict[str, Path]:
    """Order id -> the file that lists it, for every run that started at or after `since` (to the
    second, as run ids are)."""
    found: dict[str, Path] = {}
    floor = since.replace(microsecond=0)
    for path in sorted((state_dir / "rollbacks").glob(f"*/{FILE_NAME}")):
        run_id = path.parent.name
        if not RUN_ID_PATTERN.match(run_id) or _run_started(run_id) < floor:
            continue
        for order in json.loads(path.read_text(encoding="utf-8")):
            found.setdefault(str(order["order_id"]), path)
    return found
