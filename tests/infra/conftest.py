"""Fixtures of the infra tests: both stacks run once per session under Pulumi's mocks (see stack_harness)."""

from __future__ import annotations

import pytest
from stack_harness import PROJECT, StackRun, run_stack, stack_config


def pytest_configure(config: pytest.Config) -> None:
    # pulumi_aws warns about its own deprecated aliases at import time; those are not ours to fix.
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:pulumi_aws.*")


@pytest.fixture(scope="session")
def stacks() -> dict[str, StackRun]:
    primary = run_stack("primary", stack_config("primary"), {})
    standby_config = stack_config("standby")
    reference = standby_config[f"{PROJECT}:primaryStack"]
    standby = run_stack("standby", standby_config, {reference: primary.outputs})
    return {"primary": primary, "standby": standby}


@pytest.fixture(scope="session")
def primary(stacks: dict[str, StackRun]) -> StackRun:
    return stacks["primary"]


@pytest.fixture(scope="session")
def standby(stacks: dict[str, StackRun]) -> StackRun:
    return stacks["standby"]
