"""`recovery backup ship` refuses bad input in one line before it touches anything."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from recovery.cli.wal_ship import ship
from recovery.errors import UsageError


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("ship")(ship)
    app.command("help")(lambda: None)  # a second command keeps `ship` a subcommand
    return app


def test_a_non_positive_interval_is_refused() -> None:
    result = CliRunner().invoke(_app(), ["ship", "--follow", "--interval", "0"])
    assert isinstance(result.exception, UsageError)
    assert str(result.exception) == "--interval 0.0 must be above 0 seconds"


def test_an_unknown_target_is_refused() -> None:
    result = CliRunner().invoke(_app(), ["ship", "--target", "/nonexistent/target.yaml"])
    assert isinstance(result.exception, UsageError)
    assert "\n" not in str(result.exception)
