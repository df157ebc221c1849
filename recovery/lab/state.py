"""lab.json: what the lab started (pids with their start times), ports and versions.

It is the source of truth for `lab down`: it is rewritten after every process the lab starts, so even a
half-started lab can be stopped exactly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recovery.errors import ConfigError

ProcessKind = Literal["moto", "postgres", "sshd", "service", "frontdoor", "watch"]
STATE_VERSION = 1


class ProcessRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    kind: ProcessKind
    pid: int = Field(gt=0)
    start_ticks: int | None = None
    pidfile: Path | None = None
    data_dir: Path | None = Field(default=None, description="PostgreSQL: stopped with pg_ctl -m fast")


class LabState(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = STATE_VERSION
    lab_dir: Path
    base_port: int
    run_as: str
    pg_bin: Path | None = None
    pg_version: str | None = None
    release: str | None = None
    seeded_orders: int | None = None
    aws: dict[str, str] = Field(default_factory=dict)
    processes: tuple[ProcessRecord, ...] = ()

    def with_process(self, record: ProcessRecord) -> LabState:
        kept = tuple(p for p in self.processes if p.name != record.name)
        return self.model_copy(update={"processes": (*kept, record)})

    def without_process(self, name: str) -> LabState:
        return self.model_copy(update={"processes": tuple(p for p in self.processes if p.name != name)})

    def process(self, name: str) -> ProcessRecord | None:
        return next((p for p in self.processes if p.name == name), None)


def read_state(path: Path) -> LabState | None:
    """The recorded lab, or None when there is none."""
    if not path.is_file():
        return None
    try:
        return LabState.model_validate(json.loads(path.read_text()))
    except (ValueError, ValidationError):
        raise ConfigError(
            f"{path} is not a valid lab state file; stop leftover processes by hand, then `lab down --purge`"
        ) from None


def write_state(state: LabState, path: Path) -> None:
    """Replace lab.json atomically (a crash never leaves a half-written file behind)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(state.model_dump_json(indent=2) + "\n")
    tmp.replace(path)
