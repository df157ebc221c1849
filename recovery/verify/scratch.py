"""Deep verification: a backup's contents restored into a throw-away database and fingerprinted.

`Catalog.verify(deep=True)` takes a ContentChecker; `deep_checker(target)` is that checker. No live data
is read or written: the scratch database is made from the backup's own schema section.
"""

from __future__ import annotations

import secrets
import subprocess
import tempfile
from collections.abc import Sequence

from psycopg import sql

from recovery.backup.codec import Sink
from recovery.backup.manifest import Manifest, TableSummary
from recovery.backup.sections import DUMP, FILE_PREFIX, SCHEMA, Collect, Hash, SectionSplitter
from recovery.drivers.db import connect, first_error_line, pg_bin, tool_env
from recovery.drivers.db import conninfo as db_conninfo
from recovery.errors import IntegrityError
from recovery.targets.model import Database, Target
from recovery.verify.domains import tables_for
from recovery.verify.fingerprint import DEFAULT_ALGORITHM, fingerprint_tables


class ScratchCheck:
    """A catalog ContentCheck: the `dump` section is loaded by pg_restore into an empty throw-away
    database made from the backup's own schema section, then fingerprinted like live tables; host file
    sections are hashed. No live data is read or written. `close()` drops the database whatever happened.
    """

    def __init__(self, db: Database, manifest: Manifest) -> None:
        self._db = db
        self._manifest = manifest
        self._bin = pg_bin(db)
        self.scratch = f"{db.name}_verify_{secrets.token_hex(4)}"
        self._schema = Collect()
        self._files: dict[str, Hash] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        self._splitter = SectionSplitter(self._route)

    def _route(self, name: str, size: int | None) -> Sink | None:
        if name == SCHEMA:
            return self._schema
        if name.startswith(FILE_PREFIX):
            return self._files.setdefault(name, Hash())
        if name == DUMP:
            return self._start_load()
        return None

    def _admin(self) -> str:
        return db_conninfo(self._db, dbname="postgres")

    def _start_load(self) -> Sink:
        with connect(self._admin(), autocommit=True, what="the server for deep verification") as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(self.scratch))
            )
        target = db_conninfo(self._db, dbname=self.scratch)
        with tempfile.NamedTemporaryFile(prefix="verify-schema-") as schema:
            schema.write(self._schema.data)
            schema.flush()
            subprocess.run(
                [
                    str(self._bin / "pg_restore"),
                    f"--dbname={target}",
                    "--section=pre-data",
                    "--exit-on-error",
                    "--no-owner",
                    schema.name,
                ],
                check=True,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                env=tool_env(),
            )
        self._process = subprocess.Popen(
            [str(self._bin / "pg_restore"), f"--dbname={target}", "--data-only", "--exit-on-error"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            env=tool_env(),
        )
        assert self._process.stdin is not None
        return self._process.stdin

    def write(self, data: bytes, /) -> int:
        self._splitter.write(data)
        return len(data)

    def finish(self) -> Sequence[TableSummary]:
        self._splitter.finish()
        if self._process is None:
            raise IntegrityError(f"{self._manifest.backup_id} holds no dump section")
        assert self._process.stdin is not None
        self._process.stdin.close()
        if self._process.wait() != 0:
            reason = first_error_line(self._stderr, fallback="pg_restore failed")
            return [TableSummary(name=f"(pg_restore failed: {reason})", rows=0, content_hash="-")]
        with connect(
            db_conninfo(self._db, dbname=self.scratch), autocommit=True, what="the scratch copy"
        ) as conn:
            # Hash each table the way the manifest says it was hashed when backed up.
            recorded = {table.name: table.algorithm for table in self._manifest.tables}
            found = {}
            for table in tables_for([self._manifest.domain]):
                algorithm = recorded.get(table, DEFAULT_ALGORITHM)
                chosen = algorithm if algorithm != "sha256" else DEFAULT_ALGORITHM
                found.update(fingerprint_tables(conn, "public", [table], algorithm=chosen))
        summaries = [
            TableSummary(
                name=name, rows=print_.rows, content_hash=print_.content_hash, algorithm=print_.algorithm
            )
            for name, print_ in found.items()
        ]
        summaries += [
            TableSummary(
                name=name, rows=hashed.count, content_hash=hashed.digest.hexdigest(), algorithm="sha256"
            )
            for name, hashed in self._files.items()
        ]
        return summaries

    def close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._stderr.close()
        with connect(self._admin(), autocommit=True, what="the server for deep verification") as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.scratch))
            )


class DeepChecker:
    """The ContentChecker `Catalog.verify(deep=True)` takes; `close()` drops every scratch database."""

    def __init__(self, target: Target) -> None:
        self._db = target.writable.database
        self._checks: list[ScratchCheck] = []

    def __call__(self, manifest: Manifest) -> ScratchCheck:
        check = ScratchCheck(self._db, manifest)
        self._checks.append(check)
        return check

    def close(self) -> None:
        for check in self._checks:
            check.close()
        self._checks.clear()


def deep_checker(target: Target) -> DeepChecker:
    return DeepChecker(target)
