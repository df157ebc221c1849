"""A target for the notification tests: the shared unit target, with the topics a test gives it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from target_files import unit_target_doc

from recovery.targets import Target


@pytest.fixture
def make_target(tmp_path: Path) -> Callable[..., Target]:
    def make(**fields: object) -> Target:
        # kind aws: a lab target on a loopback endpoint would also take the lab's DynamoDB lock.
        return Target.model_validate({**unit_target_doc(tmp_path, "shop"), "kind": "aws", **fields})

    return make
