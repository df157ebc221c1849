"""`recovery target from-pulumi` fills each RDS database's `fence_admit` from its own stack's `adminCidrs`
output (the mocked stacks' outputs are checked end to end in tests/infra/test_stack_target_check.py)."""

from __future__ import annotations

from typing import Any

import pytest
from test_targets import operator, stack_outputs

from recovery.errors import ConfigError
from recovery.targets.pulumi_outputs import target_from_pulumi_outputs


def _with_admin(site: str, cidrs: Any) -> dict[str, Any]:
    return {**stack_outputs(site), "adminCidrs": cidrs}


def test_each_site_admits_its_own_stacks_admin_cidrs() -> None:
    target = target_from_pulumi_outputs(
        _with_admin("primary", ["10.8.0.0/24", "10.9.1.0/24"]),
        _with_admin("standby", ["10.18.0.0/24"]),
        operator(),
    )
    assert target.primary.database.fence_admit == ("10.8.0.0/24", "10.9.1.0/24")
    assert target.standby.database.fence_admit == ("10.18.0.0/24",)


def test_outputs_of_a_stack_without_admin_cidrs_admit_nobody() -> None:
    target = target_from_pulumi_outputs(stack_outputs("primary"), stack_outputs("standby"), operator())
    assert target.primary.database.fence_admit == ()


@pytest.mark.parametrize("bad", ["10.8.0.0/24", ["10.8.0.0/33"], [7], ["not-a-cidr"], 5])
def test_admin_cidrs_that_are_not_a_list_of_cidrs_are_one_line(bad: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        target_from_pulumi_outputs(_with_admin("primary", bad), stack_outputs("standby"), operator())
    message = str(caught.value)
    assert message.startswith("the primary stack's adminCidrs output is not a list of CIDRs")
    assert "\n" not in message
