"""The upgrade's restore point: one consistent snapshot of the database, dumped to encrypted files.

Local files under the target's state directory rather than the two-copy backup stores: the point is
taken on the upgrade's path before anything changes, and the rollback reads it back at disk speed
(docs/upgrade-rollback.md says why). Each file streams through the backup codec.
"""

from __future__ import annotations

import base64
import json
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from recovery.backup.codec import decode, encode
from recovery.backup.keys import DataKey, KeyProvider, backup_context
from recovery.backup.naming import DOMAINS
from recovery.backup.pgdump import dump_args, pg_dump_argv
from recovery.drivers import db as db_driver
from recovery.drivers.db import first_error_line, tool_env
from recovery.errors import ExternalFailure
from recovery.targets.model import Database, Target
from recovery.verify.domains import tables_for

# Restore point -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RestorePoint:
    """Files of one consistent snapshot of the database: `schema.dump` and `<domain>.dump` each.

    Every file is encrypted with the backup codec (zstd + AES-256-GCM chunks) under one fresh data key
    from the target's key source; only the wrapped key is kept here. Each file's backup id names the
    point and the file, so files swapped between points or names are refused when read back.
    """

    directory: Path
    taken_at: str  # the server's clock at the snapshot (ISO 8601)
    position: str  # WAL LSN at the snapshot
    schema_version: int | None
    release: str  # the release that ran when the point was taken
    size_bytes: int
    key_id: str
    wrapped_key: str  # base64 of the data key as wrapped by KMS or the keyring; never the key itself

    def schema_file(self) -> Path:
        return self.directory / "schema.dump"

    def domain_file(self, domain: str) -> Path:
        return self.directory / f"{domain}.dump"

    def file_id(self, path: Path) -> str:
        return restore_point_file_id(self.directory, path.stem)

    def data_key(self, keys: KeyProvider) -> DataKey:
        return keys.unwrap(
            self.key_id, base64.b64decode(self.wrapped_key), context=point_key_context(self.directory)
        )

    def write_plain(self, path: Path, keys: KeyProvider) -> Callable[[Any], object]:
        """A writer for restore_beside's FromWriter: decrypts `path` into the given sink."""
        data_key = self.data_key(keys)

        def write_to(sink: Any) -> object:
            with path.open("rb") as stored:
                return decode(stored, sink, data_key, self.file_id(path))

        return write_to

    def to_json(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "taken_at": self.taken_at,
            "position": self.position,
            "schema_version": self.schema_version,
            "release": self.release,
            "size_bytes": self.size_bytes,
            "key_id": self.key_id,
            "wrapped_key": self.wrapped_key,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RestorePoint:
        return cls(
            Path(str(data["directory"])),
            str(data["taken_at"]),
            str(data["position"]),
            None if data.get("schema_version") is None else int(data["schema_version"]),
            str(data["release"]),
            int(data["size_bytes"]),
            str(data["key_id"]),
            str(data["wrapped_key"]),
        )


_SNAPSHOT = (
    "SELECT pg_export_snapshot(), pg_current_wal_lsn()::text, clock_timestamp(),"
    " (SELECT max(version) FROM schema_migrations)"
)


def restore_point_file_id(directory: Path, name: str) -> str:
    return f"restore-point/{directory.name}/{name}"


def point_key_context(directory: Path) -> dict[str, str]:
    """The data key of an upgrade's restore point opens that point's files only."""
    return backup_context(directory.name, "all", "upgrade-point")


def take_restore_point(db: Database, directory: Path, release: str, keys: KeyProvider) -> RestorePoint:
    """Dump the schema and every domain from one exported snapshot, side by side, into `directory`.

    One snapshot for all files: a payment in the transactions dump always has its order in the orders
    dump. Each dump streams through the backup codec, so no byte reaches the disk unencrypted. Files
    are written under a temporary name and renamed, so a directory with point.json is whole.
    """
    done = directory / "point.json"
    if done.is_file():  # a rerun after an interruption: the point already exists
        return RestorePoint.from_json(json.loads(done.read_text()))
    directory.mkdir(parents=True, exist_ok=True)
    data_key = keys.new_data_key(context=point_key_context(directory))
    pg_dump = db_driver.pg_tool(db, "pg_dump")
    conninfo = db_driver.conninfo(db)
    with db_driver.connect(db, autocommit=False) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        row = conn.execute(_SNAPSHOT).fetchone()
        assert row is not None
        snapshot, position, taken_at, schema_version = row
        jobs: dict[str, list[str]] = {"schema": dump_args("schema", ())}
        for domain in DOMAINS:
            jobs[domain] = dump_args("domains", tables_for([domain]))

        def dump(name: str) -> None:
            out = directory / f"{name}.dump"
            tmp = out.with_suffix(".part")
            argv = pg_dump_argv(pg_dump, conninfo, str(snapshot), jobs[name])
            with tempfile.TemporaryFile() as stderr, tmp.open("wb") as sink:
                proc = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, env=tool_env()
                )
                assert proc.stdout is not None
                try:
                    encode(proc.stdout, sink, data_key, restore_point_file_id(directory, name))
                finally:
                    proc.stdout.close()
                    code = proc.wait()
                if code != 0:
                    line = first_error_line(stderr, fallback=f"pg_dump exited {code}")
                    raise ExternalFailure(
                        f"restore point: the dump of {name} failed: {line}", code="upgrade.restore_point"
                    )
            tmp.replace(out)

        with ThreadPoolExecutor(max_workers=3) as pool:
            list(pool.map(dump, jobs))
        conn.rollback()
    size = sum((directory / f"{name}.dump").stat().st_size for name in jobs)
    assert isinstance(taken_at, datetime)
    version = None if schema_version is None else int(str(schema_version))
    point = RestorePoint(
        directory,
        taken_at.isoformat(),
        str(position),
        version,
        release,
        size,
        data_key.key_id,
        base64.b64encode(data_key.wrapped).decode("ascii"),
    )
    tmp_done = done.with_suffix(".tmp")
    tmp_done.write_text(json.dumps(point.to_json()))
    tmp_done.replace(done)
    return point


def restore_points_dir(target: Target) -> Path:
    return target.state_dir / "restore-points"
