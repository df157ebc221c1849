"""Entry point: wires the command groups and turns every error into one line and an exit code."""

from __future__ import annotations

import importlib
import json
import sys
import traceback
from types import TracebackType
from typing import Any

import typer

from recovery import __version__
from recovery.cli.common import envelope, forget_invoked_target
from recovery.errors import ExitCode, RecoveryError
from recovery.memory import return_large_buffers_to_the_os

# Every command by the module that defines it. A run imports only the module of the command it names:
# importing every group's module (each with the libraries it uses: boto3, psycopg, paramiko, Chaos
# Toolkit, prometheus_client ...) was 89 MiB resident before a byte moved, and a backup's own memory
# comes on top of that. `recovery --help` (or a word that names no command) imports them all.
GROUPS = {  # command groups: module with a Typer `app`
    "backup": "recovery.cli.backup",
    "gameday": "recovery.cli.gameday",
    "intake": "recovery.cli.intake",
    "lab": "recovery.cli.lab",
    "release": "recovery.cli.release",
    "restore": "recovery.cli.restore",
    "runs": "recovery.cli.runs",
    "target": "recovery.cli.target",
}
COMMANDS = {  # single commands: module and function
    "load": ("recovery.cli.load", "load_command"),
    "preflight": ("recovery.cli.preflight", "preflight_command"),
    "verify": ("recovery.cli.verify", "verify_command"),
    "upgrade": ("recovery.cli.upgrade", "upgrade_command"),
    "rollback": ("recovery.cli.upgrade", "rollback_command"),
    "watch": ("recovery.cli.watch", "watch_command"),
    "switchover": ("recovery.cli.failover", "switchover_command"),
    "failover": ("recovery.cli.failover", "failover_command"),
    "failback": ("recovery.cli.failover", "failback_command"),
}


def redact_text(text: str) -> str:
    # Imported when an error is printed: the engine package it lives in loads boto3 (its lock), which
    # a command that needs no AWS should not pay for.
    from recovery.engine.redact import redact_text as redact

    return redact(text)


def root() -> None:
    """Keep the order system alive through failed upgrades and site loss."""


def version() -> None:
    """Print the toolkit's version."""
    typer.echo(__version__)


def build_app(command: str | None = None) -> typer.Typer:
    """The CLI with `command`'s module only, or with every command when None or unknown."""
    wanted = command if command in GROUPS or command in COMMANDS else None
    app = typer.Typer(
        name="recovery",
        help="Keep the order system alive through failed upgrades and site loss.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    app.callback()(root)
    app.command("version")(version)
    for name, module in GROUPS.items():
        if wanted in (None, name):
            app.add_typer(importlib.import_module(module).app, name=name)
    for name, (module, function) in COMMANDS.items():
        if wanted in (None, name):
            app.command(name)(getattr(importlib.import_module(module), function))
    return app


def named_command(argv: list[str]) -> str | None:
    """The first command word of argv (options come after it in every documented use)."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


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
    group: Any = typer.main.get_command(build_app(named_command(argv)))
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
        app = build_app(named_command(args))
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
