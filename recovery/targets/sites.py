"""The site record: which site holds the writable database, and its generation (epoch).

Sites are named where they were built (`primary`, `standby`); after a failover the standby site is the
writer until a failback and a switchover return it. The record lives in the target's state_dir beside
the journals, is rewritten atomically by every promotion, and is what `load_target` uses to say which
site is "the primary" to every other command. Without a record the built primary is the writer, at
generation 1. Every promotion bumps the epoch; the database of the new writer carries the same number
(recovery/failover/generation.py), so an old primary that returns carries an older one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recovery.errors import ConfigError
from recovery.targets.model import SiteName

RECORD_NAME = "sites.json"


class SiteRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    writer: SiteName = "primary"
    epoch: int = Field(default=1, ge=1)
    run_id: str | None = None  # the run that made this record (a resumed run finds its own write)
    changed_at: str | None = None  # when the writer was promoted: the split a failback looks after
    split_lsn: str | None = None  # the writer's WAL position at promotion (the start of its timeline)


def record_path(state_dir: Path) -> Path:
    return state_dir / RECORD_NAME


def read_site_record(state_dir: Path) -> SiteRecord:
    path = record_path(state_dir)
    if not path.is_file():
        return SiteRecord()
    try:
        return SiteRecord.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, ValidationError):
        raise ConfigError(
            f"{path} is not a valid site record; restore it from the last failover run's journal "
            "(its record-generation step) or delete it if the built primary takes writes"
        ) from None


def write_site_record(state_dir: Path, record: SiteRecord) -> None:
    """Replace the record atomically and durably (a crash leaves the old or the new one, whole)."""
    path = record_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as out:
        out.write(record.model_dump_json(indent=2) + "\n")
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)
