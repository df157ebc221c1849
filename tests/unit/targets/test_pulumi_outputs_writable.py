"""Which site `recovery target from-pulumi` takes as writable (the target built from it is tested on the
mocked stacks' outputs in tests/infra/test_stack_regressions.py)."""

from __future__ import annotations

import pytest

from recovery.errors import ConfigError
from recovery.targets.pulumi_outputs import writable_site


def _outputs(role: str | None) -> dict[str, str]:
    return {} if role is None else {"dbRole": role}


@pytest.mark.parametrize(
    ("primary_role", "standby_role", "expected"),
    [
        ("primary", "replica", "primary"),
        ("primary", "primary", "standby"),  # failed over, old primary not rebuilt yet: the promotion wins
        ("replica", "primary", "standby"),  # failed back: the old primary is a replica of the standby
        (None, None, "primary"),  # outputs of a program from before dbRole existed
    ],
)
def test_the_writable_site_is_the_promoted_one(
    primary_role: str | None, standby_role: str | None, expected: str
) -> None:
    assert writable_site(_outputs(primary_role), _outputs(standby_role)) == expected


@pytest.mark.parametrize(
    ("label", "outputs"), [("primary", ({"dbRole": "x"}, {})), ("standby", ({}, {"dbRole": ""}))]
)
def test_an_unknown_database_role_is_named_in_one_line(
    label: str, outputs: tuple[dict[str, str], dict[str, str]]
) -> None:
    with pytest.raises(ConfigError) as caught:
        writable_site(*outputs)
    message = str(caught.value)
    assert f"the {label} stack's dbRole output is" in message and "\n" not in message
