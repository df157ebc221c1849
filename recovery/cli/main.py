"""Entry point: wires the command groups and turns every error into one line and an exit code."""

from __future__ import annotations

import json
import sys
import traceback
from types import TracebackType
from typing import Any

import typer

from recovery import __version__
from recovery.cli import (
    backup,
    failover,
    gameday,
    intake,
    lab,
    load,
    preflight,
    release,
    restore,
    runs,
    target,
    upgrade,
    verify,
    watch,
)
from recovery.cli.common import envelope, forget_invoked_target
from recovery.engine.redact import redact_text
from recovery.errors import ExitCode, RecoveryError
from recovery.memory import return_large_buffers_to_the_os

app = typer.Typer(
    name="recovery",
    help="Keep the order system alive through failed upgrades and site loss.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# One line per command group; each module owns its own commands.
app.add_typer(backup.app, name="backup")
app.add_typer(gameday.app, name="gameday")
app.add_typer(intake.app, name="intake")
app.add_typer(lab.app, name="lab")
app.add_typer(release.app, name="release")
app.add_typer(restore.app, name="restore")
app.add_typer(runs.app, name="runs")
app.add_typer(target.app, name="target")
app.command("load")(load.load_command)
app.command("preflight")(preflight.preflight_command)
app.command("verify")(verify.verify_command)
app.command("upgrade")(upgrade.upgrade_command)
app.command("rollback")(upgrade.rollback_command)
app.command("watch")(watch.watch_command)
app.command("switchover")(failover.switchover_command)
app.command("failover")(failover.failover_command)
app.command("failback")(failover.failback_command)


@app.callback()
def root() -> None:
    """Keep the order system alive through failed upgrades and site loss."""


@app.command("version")
def version() -> None:
    """Print the toolkit's version."""
    typer.echo(__version__)


def _wants_json(argv: list[str]) -> bool:
    for i, arg in enumerate(argv):
        if arg in ("--output", "-o") and i + 1 < len(argv) and argv[i + 1] == "json":
            return True
        if arg == "--output=json":
            return True
    return False


def command_name(argv: list[str]) -> str:
    """The command argv names ("backup run"): its command words only, never an option or its value
    (values can be paths or secrets)."""
    group: Any = typer.main.get_command(app)
    words: list[str] = []
    for arg in argv:
        if arg.startswith("-"):
            continue
        commands = getattr(group, "commands", None)
        if not commands or arg not in commands:
            break
        words.append(arg)
        group = commands[arg]
    return " ".join(words) or "recovery"


def _fail(argv: list[str], code: str, message: str, exit_code: int) -> int:
    message = redact_text(message)  # an error may quote a conninfo, a command line or a file's line
    if _wants_json(argv):
        doc = envelope(
            command_name(argv), "error", {"code": code, "message": message, "exit_code": exit_code}
        )
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    sys.stderr.write(f"error[{code}]: {message}\n")
    return exit_code


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    forget_invoked_target()  # each invocation notes its own --target (recovery.cli.common)
    try:
        return _invoke(args)
    finally:
        forget_invoked_target()


def _invoke(args: list[str]) -> int:
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    return_large_buffers_to_the_os()  # streams of MiB buffers: memory flat however long they run
    try:
        result = app(args=args, prog_name="recovery", standalone_mode=False)
    except RecoveryError as exc:
        if debug:
            sys.stderr.write(redact_text(traceback.format_exc()))
        return _fail(args, exc.code, exc.message, int(exc.exit_code))
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        return _fail(args, "aborted", "interrupted; nothing further was done", int(ExitCode.FAILED))
    except typer.TyperException as exc:
        # Parsing errors (unknown option or command, bad value): typer's own message, on one line.
        format_message = getattr(exc, "format_message", None)
        text = format_message() if callable(format_message) else str(exc)
        return _fail(args, "usage", f"{text} (see `recovery --help`)", int(ExitCode.USAGE))
    except KeyboardInterrupt:
        return _fail(args, "interrupted", "interrupted by the operator", 130)
    return int(result) if isinstance(result, int) else 0


def _redacted_excepthook(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
    """An unexpected error's traceback, with the secrets its messages or locals may quote cut out."""
    sys.stderr.write(redact_text("".join(traceback.format_exception(kind, error, tb))))


def run() -> None:
    sys.excepthook = _redacted_excepthook
    sys.exit(main())


if __name__ == "__main__":
    run()
