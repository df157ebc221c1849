"""The Fabric driver's failure path (the success path runs over real SSH in tests/lab)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from recovery.drivers.remote import run
from recovery.errors import ExternalFailure
from recovery.targets.model import Host


def test_a_host_whose_sshd_is_down_is_an_external_failure(
    tmp_path: Path, free_port: Callable[[], int]
) -> None:
    port = free_port()
    # A closed port on 127.0.0.1 is a dead host (foreign addresses may appear to answer here).
    host = Host(
        name="gone-app",
        address="127.0.0.1",
        ssh_port=port,
        ssh_user="nobody",
        base_dir=tmp_path,
        service_port=free_port(),
        known_hosts=tmp_path / "known_hosts",
    )
    (tmp_path / "known_hosts").write_text("")
    with pytest.raises(ExternalFailure, match=rf"cannot reach host gone-app at 127\.0\.0\.1:{port}"):
        run(host, "true", timeout=5)
