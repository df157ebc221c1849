"""Runbooks by name, so an interrupted run can be rebuilt from its journal and resumed.

A module defining a runbook registers a factory at import time:

    register_runbook("upgrade", upgrade_runbook)   # upgrade_runbook(target, params) -> Runbook

The journal records the factory's module too; resume imports it when the name is not yet known.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from recovery.engine.model import NAME_PATTERN, Runbook
from recovery.errors import UsageError
from recovery.targets.model import Target

RunbookFactory = Callable[[Target, Mapping[str, Any]], Runbook]

_FACTORIES: dict[str, RunbookFactory] = {}


def register_runbook(name: str, factory: RunbookFactory) -> None:
    """Make a runbook resumable by name. Registering the same factory again is harmless."""
    if not NAME_PATTERN.match(name):
        raise ValueError(f"runbook name {name!r} must match {NAME_PATTERN.pattern}")
    known = _FACTORIES.get(name)
    if known is not None and known is not factory:
        raise ValueError(f"runbook {name!r} is already registered by {known.__module__}")
    _FACTORIES[name] = factory


def registered_runbooks() -> tuple[str, ...]:
    return tuple(sorted(_FACTORIES))


def factory_module(name: str) -> str:
    """The module of a registered factory (journaled, so resume can import it)."""
    factory = _FACTORIES.get(name)
    return factory.__module__ if factory is not None else ""


def build_runbook(name: str, target: Target, params: Mapping[str, Any], module: str = "") -> Runbook:
    """Rebuild a runbook from its name and parameters; import `module` first if the name is unknown."""
    if name not in _FACTORIES and module.startswith("recovery."):
        importlib.import_module(module)
    factory = _FACTORIES.get(name)
    if factory is None:
        raise UsageError(
            f"runbook {name!r} is not known to this version of recovery; resume it with the version that "
            "started it, or start a new run"
        )
    runbook = factory(target, params)
    if runbook.name != name:
        raise ValueError(f"factory registered as {name!r} built runbook {runbook.name!r}")
    return runbook
