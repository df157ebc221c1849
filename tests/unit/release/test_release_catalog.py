"""The release catalog: every definition loads, good releases come first, failures are described."""

from __future__ import annotations

import pytest

from recovery.errors import ExitCode, UsageError
from recovery.release.catalog import get_release, list_releases, source_files

FAULTY = {
    "v2-bad-migration",
    "v2-crash",
    "v2-unhealthy",
    "v2-needs-newer-postgres",
    "v2-corrupts-totals",
    "v2-slow",
}


def test_catalog_lists_good_releases_first_then_every_faulty_variant() -> None:
    names = [r.name for r in list_releases()]
    assert names[:2] == ["v1", "v2"]
    assert set(names[2:]) == FAULTY


def test_faulty_releases_say_how_they_fail_and_good_ones_do_not() -> None:
    for release in list_releases():
        assert release.is_faulty == (release.name in FAULTY)
        if release.failure is not None:
            assert release.failure.how and release.failure.leaves and release.failure.detected_by


def test_schema_versions_follow_the_migrations() -> None:
    assert get_release("v1").schema_version == 1
    assert get_release("v2").schema_version == 4
    assert get_release("v2-needs-newer-postgres").schema_version == 5
    assert get_release("v2").migrations[0] == "0001_initial_schema.sql"


def test_needs_newer_postgres_requires_a_major_no_lab_server_has() -> None:
    release = get_release("v2-needs-newer-postgres")
    assert release.requires.postgres_min_major == 19
    assert release.failure is not None and release.failure.stage == "preflight"
    assert get_release("v2").requires.postgres_min_major < 15


def test_overlays_replace_base_files() -> None:
    v1, v2, crash = source_files("v1"), source_files("v2"), source_files("v2-crash")
    assert v1["orderservice/rows.py"].parts[-3:] == ("service", "orderservice", "rows.py")
    assert "releases" in v2["orderservice/rows.py"].parts
    assert crash["orderservice/rows.py"] == v2["orderservice/rows.py"]
    assert "v2-crash" in crash["orderservice/pricing.py"].parts
    assert "orderservice/migrations/0002_users_full_name_order_currency_line_totals.sql" not in v1


def test_unknown_release_is_a_usage_error_listing_the_known_ones() -> None:
    with pytest.raises(UsageError) as caught:
        get_release("v3")
    assert caught.value.exit_code == ExitCode.USAGE
    assert "unknown release 'v3'" in caught.value.message
    assert "v1, v2, v2-bad-migration" in caught.value.message
    with pytest.raises(UsageError):
        source_files("v3")
