"""Find and load a target description, reporting a wrong field with its path and what is expected."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import yaml
from pydantic import ValidationError

from recovery.errors import ConfigError, TargetNotFound
from recovery.paths import INVENTORIES_DIR
from recovery.targets.model import Target
from recovery.targets.sites import read_site_record

INVENTORIES = INVENTORIES_DIR
# Not under the invoking user's home: the lab's unprivileged user must be able to traverse it. A target
# read from here (or anywhere) is checked first: another local user must not be able to write it
# (`check_target_owner`), since its `bin_dir` and paths are executed and read as the invoking user.
DEFAULT_LAB_DIR = Path(os.environ.get("RECOVERY_LAB_DIR", "/var/tmp/order-recovery-lab"))  # noqa: S108


def resolve_target_path(target: str) -> Path:
    """Map a target argument to its description file.

    `lab` is the lab built by `recovery lab up` (its own target.yaml); a bare name is
    `inventories/<name>/target.yaml`; anything containing a slash or ending in .yaml is a path.
    """
    if target.endswith((".yaml", ".yml")) or "/" in target:
        path = Path(target)
    elif target == "lab":
        path = DEFAULT_LAB_DIR / "target.yaml"
    else:
        path = INVENTORIES / target / "target.yaml"
    if not path.is_file():
        hint = (
            "run `recovery lab up` first" if target == "lab" else "give a target name or a target.yaml path"
        )
        raise TargetNotFound(f"target {target!r}: no description at {path}; {hint}")
    return path


def check_target_owner(path: Path, uid: int | None = None) -> None:
    """Refuse a target file, or its directory, that another non-root user owns or can write.

    The file is loaded by whoever runs the toolkit (root in the lab and on controllers): a target
    planted in a shared directory such as /var/tmp would otherwise choose the binaries it runs.
    """
    me = os.geteuid() if uid is None else uid
    for checked in (path, path.parent):
        info = checked.stat()
        mode = stat.S_IMODE(info.st_mode)
        foreign_owner = info.st_uid not in (0, me)
        # A sticky directory (like /tmp itself) lets others add files but not replace ours; the file's
        # own parent must still not be writable by others at all.
        writable_by_others = bool(mode & (stat.S_IWGRP | stat.S_IWOTH))
        if foreign_owner or writable_by_others:
            whose = f"owned by uid {info.st_uid}" if foreign_owner else f"mode {mode:04o}"
            raise ConfigError(
                f"{checked} is {whose}, so another user could change the target; make it owned by "
                f"you or root and not group/other-writable (chmod go-w {checked})"
            )


def load_target(target: str | Path) -> Target:
    path = Path(target) if isinstance(target, Path) else resolve_target_path(target)
    if not path.is_file():
        raise TargetNotFound(
            f"no target description at {path}; give `lab`, a name under inventories/ or a target.yaml path"
        )
    check_target_owner(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{where} is not valid YAML; fix the syntax and retry") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of target fields at the top level")
    try:
        loaded = Target.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{path}: field {field}: {first['msg']}{more}") from None
    if "writer" in data:
        raise ConfigError(f"{path}: field writer is not set by hand; the site record in state_dir holds it")
    # Which site takes writes is a fact of the target's history, not of its description.
    return loaded.model_copy(update={"writer": read_site_record(loaded.state_dir).writer})


def write_target(target: Target, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(target.model_dump(mode="json"), sort_keys=False))
    tmp.replace(path)
