"""Fixtures of the infra tests: both stacks run once per session under Pulumi's mocks (see stack_harness)."""

from __future__ import annotations

import pytest
from stack_harness import PROJECT, StackRun, changed_config, run_stack, stack_config


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


@pytest.fixture(scope="session")
def promoted_standby(primary: StackRun) -> StackRun:
    """The standby stack after a failover: `database.promoted: true`, the rest of its file unchanged."""
    config = changed_config(stack_config("standby"), "database", promoted=True)
    return run_stack("standby", config, {config[f"{PROJECT}:primaryStack"]: primary.outputs})


@pytest.fixture(scope="session")
def primary_elsewhere() -> StackRun:
    """A primary outside us-east-1 in a fresh account: it creates the Auto Scaling service-linked role and
    its health check alarm needs a topic of its own in us-east-1."""
    config = changed_config(stack_config("primary"), "app", createServiceLinkedRole=True)
    config = changed_config(
        config,
        "network",
        availabilityZones=["us-east-2a", "us-east-2b"],
    )
    config[f"{PROJECT}:region"] = "us-east-2"
    return run_stack("primary", config, {})
