"""The migration dry run with only the controller's own credentials (on RDS: the master user's, read from
its secret), as a real PostgreSQL sees it: the release's migrations still run as the database's owner."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from target_files import unit_target_doc

from recovery.release.catalog import get_release
from recovery.release.preflight_checks.dry_run import dry_run_migrations, role_option
from recovery.targets.model import Target

if TYPE_CHECKING:  # the fixture's type; conftest is not importable as a module of a package here
    from conftest import Postgres


def test_a_passfile_without_the_owners_password_still_runs_the_migrations_as_the_owner(
    postgres: Postgres, tmp_path: Path
) -> None:
    # The controller's passfile holds the superuser's password only, as a run-time passfile on RDS does.
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"127.0.0.1:{postgres.port}:*:postgres:{postgres.password}\n")
    passfile.chmod(0o600)
    with postgres.seeded_database("dryrun", orders=20) as name:
        doc = unit_target_doc(tmp_path, "shop")
        doc["primary"]["database"] = {
            "address": "127.0.0.1",
            "port": postgres.port,
            "name": name,
            "passfile": str(passfile),
            "bin_dir": str(postgres.bin_dir),
        }
        facts = dry_run_migrations(Target.model_validate(doc), get_release("v2"))
    assert facts.problem is None and facts.ran and facts.ok, facts
    assert facts.schema_version == 4 and len(facts.applied) == 3


def test_the_owner_role_is_passed_to_libpq_with_its_spaces_escaped() -> None:
    assert role_option("orders") == "-c role=orders"
    assert role_option("order owner") == "-c role=order\\ owner"
