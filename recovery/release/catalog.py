"""The release catalog: every release definition under service/releases/, as frozen models.

A definition directory holds `release.json` (version, base, description, requirements, how it fails) and
an optional `overlay/` of files that replace or add files of its base. v1 is the service's own code; a
release with `base` is its base's tree plus its own overlay.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recovery.errors import ConfigError, UsageError
from recovery.paths import SERVICE_DIR

PACKAGE_DIR = SERVICE_DIR / "orderservice"
RELEASES_DIR = SERVICE_DIR / "releases"
PortName = Literal["service", "database"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Requirements(_Frozen):
    """What a host and its database must offer before this release may be deployed."""

    postgres_min_major: int = Field(ge=9)
    python_min: str = Field(pattern=r"^3\.\d+$")
    disk_free_mb: int = Field(ge=0)
    memory_mb: int = Field(ge=0)
    ports: tuple[PortName, ...] = Field(
        description="service: the host's service_port must be free or ours; database: the db port must answer"
    )

    def python_min_tuple(self) -> tuple[int, int]:
        major, minor = self.python_min.split(".")
        return int(major), int(minor)


class Failure(_Frozen):
    """How a faulty release fails, where it is caught, and what it leaves behind."""

    stage: Literal["preflight", "migrate", "start", "health", "business", "latency"]
    how: str
    leaves: str
    detected_by: str


class Release(_Frozen):
    name: str = Field(pattern=r"^v\d+(-[a-z0-9-]+)?$")
    base: str | None = None
    description: str
    requires: Requirements
    failure: Failure | None = None
    schema_version: int = Field(ge=1, description="the highest migration number this release ships")
    migrations: tuple[str, ...] = Field(description="migration file names, in order")
    definition_dir: Path

    @property
    def is_faulty(self) -> bool:
        return self.failure is not None


def _read_definition(directory: Path) -> dict[str, object]:
    path = directory / "release.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"{path}: cannot read the release definition ({type(exc).__name__}); fix it"
        ) from None
    if not isinstance(data, dict) or data.get("version") != directory.name:
        raise ConfigError(f"{path}: 'version' must equal the directory name {directory.name!r}")
    return data


def _lineage(name: str, definitions: dict[str, dict[str, object]]) -> list[str]:
    """The chain of releases from the oldest base to `name`."""
    chain: list[str] = []
    current: str | None = name
    while current is not None:
        if current in chain or current not in definitions:
            raise ConfigError(
                f"release {name}: base {current!r} is unknown or circular; fix its release.json"
            )
        chain.append(current)
        base = definitions[current].get("base")
        current = str(base) if base is not None else None
    return list(reversed(chain))


def source_files(name: str) -> dict[str, Path]:
    """Every file of the release's tree: relative path in the artifact -> source file (overlays win)."""
    definitions = _all_definitions()
    if name not in definitions:
        raise _unknown(name, definitions)
    files: dict[str, Path] = {}
    for path in sorted(PACKAGE_DIR.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", ".sql"):
            files[str(Path("orderservice") / path.relative_to(PACKAGE_DIR))] = path
    for release in _lineage(name, definitions):
        overlay = RELEASES_DIR / release / "overlay"
        for path in sorted(overlay.rglob("*")) if overlay.is_dir() else []:
            if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", ".sql"):
                files[str(path.relative_to(overlay))] = path
    return files


def _all_definitions() -> dict[str, dict[str, object]]:
    if not RELEASES_DIR.is_dir():
        raise ConfigError(f"no release definitions at {RELEASES_DIR}; the checkout is incomplete")
    return {
        d.name: _read_definition(d) for d in sorted(RELEASES_DIR.iterdir()) if (d / "release.json").is_file()
    }


def _unknown(name: str, definitions: dict[str, dict[str, object]]) -> UsageError:
    return UsageError(f"unknown release {name!r}; known releases: {', '.join(_sorted_names(definitions))}")


def _sorted_names(definitions: dict[str, dict[str, object]]) -> list[str]:
    # Good releases first in version order, then each base's faulty variants alphabetically.
    return sorted(definitions, key=lambda n: (int(n[1:].split("-", 1)[0]), "-" in n, n))


def _build(name: str, definitions: dict[str, dict[str, object]]) -> Release:
    data = dict(definitions[name])
    files = source_files(name)
    migrations = tuple(sorted(Path(p).name for p in files if p.startswith("orderservice/migrations/")))
    schema_version = max((int(m.split("_", 1)[0]) for m in migrations), default=0)
    try:
        return Release(
            name=name,
            base=data.get("base"),  # type: ignore[arg-type]
            description=data.get("description"),  # type: ignore[arg-type]
            requires=data.get("requires"),  # type: ignore[arg-type]
            failure=data.get("failure"),  # type: ignore[arg-type]
            schema_version=schema_version,
            migrations=migrations,
            definition_dir=RELEASES_DIR / name,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"release {name}: field {field}: {first['msg']}; fix its release.json") from None


def list_releases() -> list[Release]:
    definitions = _all_definitions()
    return [_build(name, definitions) for name in _sorted_names(definitions)]


def get_release(name: str) -> Release:
    definitions = _all_definitions()
    if name not in definitions:
        raise _unknown(name, definitions)
    return _build(name, definitions)
