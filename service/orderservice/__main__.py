"""`python3 -m orderservice serve|migrate|status|smoke|version`."""

from __future__ import annotations

import argparse
import json
import sys

from orderservice.config import ConfigProblem, load_config
from orderservice.release_info import load_release_info


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orderservice", description="The order service.")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("serve", "run the HTTP service"),
        ("migrate", "apply pending schema migrations"),
        ("status", "print the database's schema version and pending migrations"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--config", required=True, help="the JSON config file the deploy role wrote")
    smoke = commands.add_parser("smoke", help="run the business smoke check against a running service")
    smoke.add_argument("--url", required=True)
    smoke.add_argument("--read-only", action="store_true", help="only the checks a standby can answer")
    commands.add_parser("version", help="print this release's version and schema version")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "version":
        info = load_release_info()
        print(json.dumps({"version": info.version, "schema_version": info.schema_version}))
        return 0
    if args.command == "smoke":
        from orderservice.smoke import run_smoke

        report = run_smoke(args.url, read_only=args.read_only)
        print(json.dumps(report, indent=2))
        return 0 if report["ok"] else 1
    try:
        config = load_config(args.config)
    except ConfigProblem as exc:
        print(f"orderservice: {exc}", file=sys.stderr)
        return 2
    # Imported here so `migrate` never loads the request-serving code and vice versa.
    if args.command == "serve":
        from orderservice.server import serve

        return serve(config)
    import psycopg2

    from orderservice import migrate as migrations
    from orderservice.db import connect

    try:
        conn = connect(config.db)
    except psycopg2.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "connection failed"
        print(f"orderservice: cannot reach the database: {first}", file=sys.stderr)
        return 3
    try:
        if args.command == "status":
            print(json.dumps(migrations.status(conn)))
            return 0
        result = migrations.migrate(conn)
        print(json.dumps(result))
        if not result["ok"]:
            failed = result["failed"]
            print(
                f"orderservice: migration {failed['version']} ({failed['name']}) failed: {failed['error']}",
                file=sys.stderr,
            )
            return 1
        return 0
    finally:
        conn.close()


if __name__ == "__main__":
    sys.exit(main())
