"""The logs domain in the database: one event row per business fact, written in the same transaction."""

from __future__ import annotations

import json
from typing import Any


def record(cur: Any, kind: str, subject: str, payload: dict[str, Any]) -> None:
    cur.execute(
        "INSERT INTO events (kind, subject, payload) VALUES (%s, %s, %s::jsonb)",
        (kind, subject, json.dumps(payload, sort_keys=True)),
    )
