"""`recovery release`: the catalog of releases (and what a target's hosts run), and artifact builds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from recovery.cli.common import OutputFormat, OutputOpt, emit
from recovery.errors import RecoveryError
from recovery.release.artifacts import build_release_artifact
from recovery.release.catalog import Release, get_release, list_releases
from recovery.release.installed import HostRelease, read_target_releases
from recovery.targets import load_target

app = typer.Typer(help="List releases of the order service and build their artifacts.", no_args_is_help=True)

DEFAULT_ARTIFACTS = Path("build/artifacts")


def _release_row(release: Release, hosts: list[HostRelease]) -> dict[str, Any]:
    return {
        "name": release.name,
        "base": release.base,
        "schema_version": release.schema_version,
        "description": release.description,
        "requires": release.requires.model_dump(mode="json"),
        "fails": release.failure.model_dump(mode="json") if release.failure else None,
        "running_on": [h.host for h in hosts if h.release == release.name],
    }


def releases_report(target_name: str | None) -> dict[str, Any]:
    """Every release, and when a target is given, what each of its hosts runs (or why that is unknown)."""
    releases = list_releases()
    hosts: list[HostRelease] = []
    target_problem = None
    if target_name is not None:
        try:
            target = load_target(target_name)
        except RecoveryError as exc:
            target_problem = exc.message
        else:
            hosts = read_target_releases(target)
    return {
        "target": target_name,
        "target_problem": target_problem,
        "releases": [_release_row(r, hosts) for r in releases],
        "hosts": [h.model_dump(mode="json") for h in hosts],
    }


def _render(report: dict[str, Any]) -> None:
    for row in report["releases"]:
        requires = row["requires"]
        running = f"  running on: {', '.join(row['running_on'])}" if row["running_on"] else ""
        typer.echo(
            f"{row['name']:<26} schema {row['schema_version']}  "
            f"postgres>={requires['postgres_min_major']} python>={requires['python_min']} "
            f"disk {requires['disk_free_mb']} MB mem {requires['memory_mb']} MB{running}"
        )
        typer.echo(f"    {row['description']}")
        if row["fails"]:
            typer.echo(f"    fails at {row['fails']['stage']}: {row['fails']['how']}")
    if report["target"] is None:
        return
    typer.echo(f"\ntarget {report['target']}:")
    if report["target_problem"]:
        typer.echo(f"  every host's release is unknown: {report['target_problem']}")
    for host in report["hosts"]:
        if host["release"] is None:
            typer.echo(f"  {host['site']:<8} {host['host']:<14} unknown: {host['reason']}")
        else:
            typer.echo(
                f"  {host['site']:<8} {host['host']:<14} {host['release']} (schema "
                f"{host['schema_version']}) at {host['path']}"
            )


@app.command("list")
def list_command(
    output: OutputOpt = OutputFormat.text,
    target: Annotated[
        str | None, typer.Option("--target", "-t", help="also show what each host runs")
    ] = None,
) -> None:
    """List every release: what it requires, how it fails, and which one each host of --target runs."""
    emit(output, "release list", releases_report(target), _render)


@app.command("build")
def build_command(
    version: Annotated[str, typer.Argument(help="the release to build, e.g. v2")],
    out_dir: Annotated[Path, typer.Option("--out-dir", help="where the tarball goes")] = DEFAULT_ARTIFACTS,
    output: OutputOpt = OutputFormat.text,
) -> None:
    """Build the release's tarball (deterministic; an existing identical one is reused) and print its path."""
    get_release(version)
    path = build_release_artifact(version, out_dir)
    emit(
        output,
        "release build",
        {"release": version, "artifact": str(path.resolve())},
        lambda r: typer.echo(r["artifact"]),
    )
