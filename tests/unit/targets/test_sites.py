"""The site record: which site takes writes is read from the target's state, never from target.yaml, and
the commands that act on "the primary" follow it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from test_targets import valid_target

from recovery.backup.realtime import database_host
from recovery.errors import ConfigError
from recovery.targets import load_target
from recovery.targets.load import write_target
from recovery.targets.sites import SiteRecord, read_site_record, record_path, write_site_record


def _target_file(tmp_path: Path, **changes: Any) -> Path:
    doc = valid_target() | {"state_dir": str(tmp_path / "state")} | changes
    path = tmp_path / "target.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_without_a_record_the_built_primary_takes_writes(tmp_path: Path) -> None:
    target = load_target(_target_file(tmp_path))
    assert read_site_record(target.state_dir) == SiteRecord(writer="primary", epoch=1)
    assert target.writer == "primary"
    assert target.writable.database.address == "10.0.0.11"
    assert target.replica.database.address == "10.1.0.12"


def test_after_a_promotion_the_standby_site_is_the_primary_for_every_command(tmp_path: Path) -> None:
    path = _target_file(tmp_path)
    write_site_record(tmp_path / "state", SiteRecord(writer="standby", epoch=2, run_id="r"))
    target = load_target(path)
    assert target.writer == "standby"
    assert target.writable.name == "standby" and target.writable.database.address == "10.1.0.12"
    assert target.replica.name == "primary"
    # e.g. WAL archiving and realtime backups act on the writer's database host
    assert database_host(target).address == "10.1.0.12"
    # the description itself is unchanged: the sites keep the names they were built with
    assert target.primary.database.address == "10.0.0.11"


def test_writing_the_target_never_writes_the_writer(tmp_path: Path) -> None:
    write_site_record(tmp_path / "state", SiteRecord(writer="standby", epoch=2))
    target = load_target(_target_file(tmp_path))
    out = tmp_path / "out" / "target.yaml"
    write_target(target, out)
    assert "writer" not in yaml.safe_load(out.read_text())


def test_a_writer_in_target_yaml_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="field writer is not set by hand"):
        load_target(_target_file(tmp_path, writer="standby"))


def test_a_damaged_record_is_one_line_naming_the_way_out(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    record_path(state).write_text("{not json")
    with pytest.raises(ConfigError) as caught:
        load_target(_target_file(tmp_path))
    assert "\n" not in caught.value.message
    assert "is not a valid site record" in caught.value.message


def test_the_record_is_replaced_whole(tmp_path: Path) -> None:
    write_site_record(tmp_path, SiteRecord(writer="standby", epoch=2, run_id="a"))
    write_site_record(tmp_path, SiteRecord(writer="primary", epoch=3, run_id="b", split_lsn="0/3000000"))
    assert read_site_record(tmp_path) == SiteRecord(
        writer="primary", epoch=3, run_id="b", split_lsn="0/3000000"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["sites.json"]
