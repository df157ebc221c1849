"""Release artifacts: deterministic bytes, content-addressed names, reuse, and the right files inside."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from recovery.errors import UsageError
from recovery.release.artifacts import build_release_artifact


def test_same_content_gives_the_same_bytes_and_name(tmp_path: Path) -> None:
    first = build_release_artifact("v2", tmp_path / "a")
    second = build_release_artifact("v2", tmp_path / "b")
    assert first.name == second.name
    assert first.read_bytes() == second.read_bytes()
    assert first.name.startswith("orderservice-v2-") and first.name.endswith(".tar.gz")


def test_an_existing_artifact_is_reused(tmp_path: Path) -> None:
    path = build_release_artifact("v1", tmp_path)
    before = path.stat().st_mtime_ns
    assert build_release_artifact("v1", tmp_path) == path
    assert path.stat().st_mtime_ns == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_different_releases_get_different_artifacts(tmp_path: Path) -> None:
    names = {build_release_artifact(v, tmp_path).name for v in ("v1", "v2", "v2-crash", "v2-slow")}
    assert len(names) == 4


def test_artifact_holds_the_package_and_its_release_document(tmp_path: Path) -> None:
    with tarfile.open(build_release_artifact("v2-unhealthy", tmp_path)) as tar:
        names = tar.getnames()
        document = json.loads(tar.extractfile("release.json").read())  # type: ignore[union-attr]
        health = tar.extractfile("orderservice/health.py").read().decode()  # type: ignore[union-attr]
        members = tar.getmembers()
    assert "orderservice/__main__.py" in names
    assert "orderservice/migrations/0004_line_totals_required.sql" in names
    assert document["version"] == "v2-unhealthy" and document["schema_version"] == 4
    assert document["failure"]["stage"] == "health"
    assert "feature_flags" in health
    assert all(m.mtime == 0 and m.uid == 0 and not m.name.startswith("/") for m in members)
    assert not any("__pycache__" in n for n in names)


def test_unknown_release_cannot_be_built(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="known releases"):
        build_release_artifact("v7", tmp_path)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("version", ["v1", "v2", "v2-slow", "v2-unhealthy", "v2-bad-migration"])
def test_shipped_code_imports_only_the_standard_library_and_psycopg2(tmp_path: Path, version: str) -> None:
    """Hosts have no virtualenv: the service may use the stdlib, psycopg2 and itself, nothing else; only
    its degraded-mode module may use the distribution's boto3 (imported when a queue is configured)."""
    import ast
    import sys

    base = set(sys.stdlib_module_names) | {"psycopg2", "orderservice", "__future__"}
    with tarfile.open(build_release_artifact(version, tmp_path)) as tar:
        sources = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.name.endswith(".py")}  # type: ignore[union-attr]
    assert sources
    for name, source in sources.items():
        allowed = base | {"boto3", "botocore"} if name == "orderservice/intake.py" else base
        for node in ast.walk(ast.parse(source, filename=name)):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots = {node.module.split(".")[0]}
            else:
                continue
            assert roots <= allowed, f"{version}:{name} imports {roots - allowed}"
