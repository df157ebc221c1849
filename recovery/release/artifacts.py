"""Release artifacts: one deterministic tarball per release, named by a digest of its content.

The tarball holds `release.json` (the resolved definition the service reads its version from) and the
`orderservice` package with the release's overlays applied. Same content, same bytes, same file name:
a build whose file already exists returns it without writing.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

from recovery.release.catalog import Release, get_release, source_files

ARTIFACT_PREFIX = "orderservice"


def release_document(release: Release) -> dict[str, object]:
    """What goes into the artifact's release.json."""
    return {
        "version": release.name,
        "base": release.base,
        "schema_version": release.schema_version,
        "migrations": list(release.migrations),
        "description": release.description,
        "requires": release.requires.model_dump(mode="json"),
        "failure": release.failure.model_dump(mode="json") if release.failure else None,
    }


def artifact_members(version: str) -> list[tuple[str, bytes]]:
    """(path inside the tarball, content) of every file, sorted by path."""
    release = get_release(version)
    members = {path: source.read_bytes() for path, source in source_files(version).items()}
    document = json.dumps(release_document(release), indent=2, sort_keys=True) + "\n"
    members["release.json"] = document.encode()
    return sorted(members.items())


def content_digest(members: list[tuple[str, bytes]]) -> str:
    digest = hashlib.sha256()
    for path, data in members:
        digest.update(path.encode() + b"\0" + str(len(data)).encode() + b"\0" + data)
    return digest.hexdigest()


def _tar_info(name: str, *, size: int = 0, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o755 if directory else 0o644
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    return info


def _tarball_bytes(members: list[tuple[str, bytes]]) -> bytes:
    directories = sorted({str(parent) for path, _ in members for parent in Path(path).parents} - {"."})
    raw = io.BytesIO()
    # Fixed gzip header (no name, mtime 0) so identical content gives identical bytes.
    with (
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as tar,
    ):
        for directory in directories:
            tar.addfile(_tar_info(directory, directory=True))
        for path, data in members:
            tar.addfile(_tar_info(path, size=len(data)), io.BytesIO(data))
    return raw.getvalue()


def artifact_name(version: str, digest: str) -> str:
    return f"{ARTIFACT_PREFIX}-{version}-{digest[:12]}.tar.gz"


def build_release_artifact(version: str, out_dir: Path) -> Path:
    """Build (or reuse) the tarball of `version` in out_dir and return its path."""
    members = artifact_members(version)
    path = Path(out_dir) / artifact_name(version, content_digest(members))
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(_tarball_bytes(members))
    tmp.replace(path)
    return path
