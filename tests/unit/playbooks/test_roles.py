"""Every role documents its variables: defaults prefixed with the role's name, each under its own comment,
and every one listed in meta/argument_specs.yml with a type, a description and the same default.

The checker is a pure function over a role directory; the first tests run it on the project's roles, the
rest feed it small broken roles to show that each rule can fail.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from recovery.paths import PLAYBOOKS_DIR

ROLES_DIR = PLAYBOOKS_DIR / "roles"
ROLES = sorted(path.name for path in ROLES_DIR.iterdir() if (path / "tasks").is_dir())

# A top-level key of a YAML mapping, as written at column 0 of defaults/main.yml.
TOP_KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*:")

# Python types a literal default may have, per argument spec type.
SPEC_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "path": (str,),
    "int": (int,),
    "float": (float, int),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
}


def _is_template(value: Any) -> bool:
    return isinstance(value, str) and "{{" in value


def _type_matches(spec_type: str, value: Any) -> bool:
    allowed = SPEC_TYPES.get(spec_type)
    if allowed is None:
        return True  # a type this checker does not know (raw, bits, ...): nothing to compare
    if isinstance(value, bool) and bool not in allowed:
        return False  # bool is an int subclass; a bool default is not an int default
    return isinstance(value, allowed)


def comment_problems(text: str) -> list[str]:
    """Top-level keys of a defaults file that are not directly under a comment line."""
    problems = []
    previous = ""
    for line in text.splitlines():
        match = TOP_KEY.match(line)
        if match and not previous.lstrip().startswith("#"):
            problems.append(f"{match.group(1)} has no comment directly above it")
        previous = line
    return problems


def role_problems(role_dir: Path) -> list[str]:
    """Every way the role's defaults and argument spec break the rules; empty when they keep them."""
    role = role_dir.name
    defaults_file = role_dir / "defaults" / "main.yml"
    specs_file = role_dir / "meta" / "argument_specs.yml"
    if not specs_file.is_file():
        return [f"{role}: no meta/argument_specs.yml"]
    text = defaults_file.read_text() if defaults_file.is_file() else "---\n"
    defaults: dict[str, Any] = yaml.safe_load(text) or {}
    specs = yaml.safe_load(specs_file.read_text()) or {}
    options: dict[str, dict[str, Any]] = (specs.get("argument_specs") or {}).get("main", {}).get(
        "options"
    ) or {}
    problems = [f"{role}: {problem}" for problem in comment_problems(text)]
    for name, value in defaults.items():
        if not name.startswith(f"{role}_"):
            problems.append(f"{role}: default {name} is not prefixed with {role}_")
        spec = options.get(name)
        if spec is None:
            problems.append(f"{role}: default {name} is missing from the argument spec")
            continue
        if spec.get("required"):
            problems.append(f"{role}: {name} is required in the spec but has a default")
            continue
        if _is_template(value):
            # The real default is computed; a literal in the spec would document a value that is not it.
            if "default" in spec:
                problems.append(f"{role}: {name} is computed in defaults, the spec must not name a default")
        elif spec.get("default") != value:
            problems.append(f"{role}: {name} defaults to {value!r} but the spec says {spec.get('default')!r}")
        elif not _type_matches(str(spec.get("type", "str")), value):
            problems.append(f"{role}: {name} defaults to {value!r}, not of spec type {spec.get('type')}")
    for name, spec in options.items():
        if not name.startswith(f"{role}_"):
            problems.append(f"{role}: option {name} is not prefixed with {role}_")
        if not spec.get("type") or not str(spec.get("description", "")).strip():
            problems.append(f"{role}: option {name} needs a type and a description")
        if name not in defaults and not spec.get("required"):
            problems.append(f"{role}: option {name} has no default in defaults/main.yml and is not required")
    return problems


def test_the_project_has_its_roles() -> None:
    assert {"order_service", "order_restore_service", "order_backup_logs", "order_wal_archive"} <= set(ROLES)


@pytest.mark.parametrize("role", ROLES)
def test_role_defaults_are_prefixed_commented_and_specified(role: str) -> None:
    assert role_problems(ROLES_DIR / role) == []


def test_only_the_order_service_role_starts_or_stops_the_service() -> None:
    """Other roles include order_service's start/stop task files instead of keeping a copy of them."""
    copies = [
        str(path.relative_to(ROLES_DIR))
        for role in ROLES
        if role not in ("order_service", "order_watch")  # order_watch runs its own unit, not the service
        for path in sorted((ROLES_DIR / role).rglob("*.yml"))
        if "start_stop_daemon" in path.read_text() or "systemd_service" in path.read_text()
    ]
    assert copies == []
    restore_tasks = yaml.safe_load((ROLES_DIR / "order_restore_service" / "tasks" / "main.yml").read_text())
    included = [
        task["ansible.builtin.include_role"]
        for task in restore_tasks
        if "ansible.builtin.include_role" in task
    ]
    assert [(item["name"], item["tasks_from"]) for item in included] == [
        ("order_service", "{{ order_restore_service_phase }}_{{ order_restore_service_supervisor }}.yml")
    ]
    for phase in ("start", "stop"):
        for supervisor in ("pidfile", "systemd"):
            assert (ROLES_DIR / "order_service" / "tasks" / f"{phase}_{supervisor}.yml").is_file()


# The checker itself: each rule fails on a role that breaks it ----------------------------------------


def _role(tmp_path: Path, defaults: str, options: dict[str, Any] | None) -> Path:
    role_dir = tmp_path / "demo"
    (role_dir / "defaults").mkdir(parents=True)
    (role_dir / "meta").mkdir()
    (role_dir / "defaults" / "main.yml").write_text(defaults)
    if options is not None:
        spec = {"argument_specs": {"main": {"short_description": "demo", "options": options}}}
        (role_dir / "meta" / "argument_specs.yml").write_text(yaml.safe_dump(spec))
    return role_dir


GOOD_DEFAULTS = """---
# How many, and why that many.
demo_count: 3

# Computed from the count.
demo_twice: "{{ demo_count * 2 }}"
"""
GOOD_OPTIONS: dict[str, Any] = {
    "demo_count": {"type": "int", "default": 3, "description": "How many."},
    "demo_twice": {"type": "int", "description": "Twice the count."},
    "demo_target": {"type": "path", "required": True, "description": "Where to."},
}


def test_a_role_that_keeps_the_rules_has_no_problems(tmp_path: Path) -> None:
    assert role_problems(_role(tmp_path, GOOD_DEFAULTS, GOOD_OPTIONS)) == []


def test_a_role_without_an_argument_spec_is_a_problem(tmp_path: Path) -> None:
    assert role_problems(_role(tmp_path, GOOD_DEFAULTS, None)) == ["demo: no meta/argument_specs.yml"]


@pytest.mark.parametrize(
    ("defaults", "options", "expected"),
    [
        (
            GOOD_DEFAULTS + "# Undocumented.\ndemo_extra: 1\n",
            GOOD_OPTIONS,
            "demo: default demo_extra is missing from the argument spec",
        ),
        (
            GOOD_DEFAULTS + "# Unprefixed.\nextra: 1\n",
            {**GOOD_OPTIONS, "extra": {"type": "int", "default": 1, "description": "x"}},
            "demo: default extra is not prefixed with demo_",
        ),
        (
            GOOD_DEFAULTS + "\ndemo_bare: 1\n",
            {**GOOD_OPTIONS, "demo_bare": {"type": "int", "default": 1, "description": "x"}},
            "demo: demo_bare has no comment directly above it",
        ),
        (
            GOOD_DEFAULTS,
            {**GOOD_OPTIONS, "demo_count": {"type": "int", "default": 4, "description": "How many."}},
            "demo: demo_count defaults to 3 but the spec says 4",
        ),
        (
            GOOD_DEFAULTS,
            {**GOOD_OPTIONS, "demo_count": {"type": "str", "default": 3, "description": "How many."}},
            "demo: demo_count defaults to 3, not of spec type str",
        ),
        (
            GOOD_DEFAULTS,
            {**GOOD_OPTIONS, "demo_twice": {"type": "int", "default": 6, "description": "Twice."}},
            "demo: demo_twice is computed in defaults, the spec must not name a default",
        ),
        (
            GOOD_DEFAULTS,
            {**GOOD_OPTIONS, "demo_count": {"type": "int", "required": True, "description": "How many."}},
            "demo: demo_count is required in the spec but has a default",
        ),
        (
            GOOD_DEFAULTS,
            {**GOOD_OPTIONS, "demo_other": {"type": "str", "description": "Never set."}},
            "demo: option demo_other has no default in defaults/main.yml and is not required",
        ),
        (
            GOOD_DEFAULTS,
            {**GOOD_OPTIONS, "demo_count": {"default": 3, "description": "How many."}},
            "demo: option demo_count needs a type and a description",
        ),
    ],
)
def test_each_broken_rule_is_reported(
    tmp_path: Path, defaults: str, options: dict[str, Any], expected: str
) -> None:
    assert expected in role_problems(_role(tmp_path, defaults, options))
