"""What release this code is: read from the release.json shipped beside the package."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
RELEASE_FILE = PACKAGE_DIR.parent / "release.json"


@dataclass(frozen=True)
class ReleaseInfo:
    version: str
    schema_version: int


def load_release_info(path: Path = RELEASE_FILE) -> ReleaseInfo:
    """The running code's release; a source checkout without release.json is version `dev`."""
    if not path.is_file():
        return ReleaseInfo(version="dev", schema_version=highest_migration())
    data = json.loads(path.read_text(encoding="utf-8"))
    return ReleaseInfo(version=str(data["version"]), schema_version=int(data["schema_version"]))


def highest_migration() -> int:
    names = [p.name for p in (PACKAGE_DIR / "migrations").iterdir()]
    numbers = [int(name.split("_", 1)[0]) for name in names if name[:4].isdigit()]
    return max(numbers, default=0)
