"""The lab's front door: clients connect to 127.0.0.1:B and are forwarded to `<address>:<service port>`,
where the address is the value of the shop's PRIMARY failover record in moto's Route53, refreshed about
every 0.5 s. An UPSERT of that record therefore switches where new client connections go.

Run as a daemon: `python -m recovery.lab.frontdoor --listen-port B --endpoint URL --zone-id Z
--record NAME --service-port P --state-file F`. It writes its current backend to the state file (JSON)
whenever it changes, so `lab status` reports what the front door really uses.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

from recovery.lab.aws import client, current_records
from recovery.lab.tcpproxy import Backend, serve

REFRESH_SECONDS = 0.5


class RecordFollower:
    """Keeps the latest backend resolved from the failover record; keeps the last good one on errors."""

    def __init__(self, endpoint: str, zone_id: str, record: str, service_port: int, state_file: Path) -> None:
        self.endpoint, self.zone_id, self.record = endpoint, zone_id, record
        self.service_port = service_port
        self.state_file = state_file
        self.backend: Backend | None = None
        self.last_error: str | None = None
        # One client for the process: building a boto3 client costs far more than the lookup itself.
        self.route53 = client("route53", endpoint)

    def current(self) -> Backend | None:
        return self.backend

    def refresh(self) -> None:
        try:
            address = current_records(self.endpoint, self.zone_id, self.record, self.route53).get("PRIMARY")
            self.last_error = None if address else "no PRIMARY failover record"
        except Exception as exc:  # any failure to reach moto: keep routing to the last known backend
            self.last_error = type(exc).__name__
            address = None
        if address is not None and (address, self.service_port) != self.backend:
            self.backend = (address, self.service_port)
            self._write_state()

    def _write_state(self) -> None:
        doc = {
            "backend": f"{self.backend[0]}:{self.backend[1]}" if self.backend else None,
            "since": time.time(),
            "pid": os.getpid(),
        }
        tmp = self.state_file.with_name(self.state_file.name + ".tmp")
        tmp.write_text(json.dumps(doc) + "\n")
        tmp.replace(self.state_file)

    async def follow(self) -> None:
        while True:
            await asyncio.to_thread(self.refresh)
            await asyncio.sleep(REFRESH_SECONDS)


async def run(args: argparse.Namespace) -> None:
    follower = RecordFollower(
        args.endpoint, args.zone_id, args.record, args.service_port, Path(args.state_file)
    )
    follower.refresh()
    server = await serve(args.listen_address, args.listen_port, follower.current)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(follower.follow())
    async with server:
        await stop.wait()
    task.cancel()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="frontdoor")
    parser.add_argument("--listen-address", default="127.0.0.1")
    parser.add_argument("--listen-port", type=int, required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--zone-id", required=True)
    parser.add_argument("--record", required=True)
    parser.add_argument("--service-port", type=int, required=True)
    parser.add_argument("--state-file", required=True)
    asyncio.run(run(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
