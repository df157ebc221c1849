"""How the lab finds the deployed release, the service's pidfile, and reads /health."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from recovery.lab import service
from recovery.lab.plan import plan_lab


def test_deployed_release_follows_the_current_link(tmp_path: Path) -> None:
    site = plan_lab(tmp_path, 45000).primary
    assert service.deployed_release(site) is None
    (site.app_dir / "releases" / "v2").mkdir(parents=True)
    (site.app_dir / "current").symlink_to(site.app_dir / "releases" / "v2")
    assert service.deployed_release(site) == "v2"


def test_service_record_needs_a_live_pid(tmp_path: Path) -> None:
    site = plan_lab(tmp_path, 45000).standby
    assert service.service_record(site) is None
    run = site.app_dir / "shared" / "run"
    run.mkdir(parents=True)
    (run / "orderservice.pid").write_text("999999999\n")
    assert service.service_record(site) is None  # a stale pidfile names nobody
    (run / "orderservice.pid").write_text(f"{os.getpid()}\n")
    record = service.service_record(site)
    assert record is not None and record.pid == os.getpid() and record.kind == "service"
    assert record.pidfile == run / "orderservice.pid"


def test_health_reads_version_and_status_also_from_an_error_answer(free_port: Callable[[], int]) -> None:
    HEALTH_PORT = free_port()
    answers = {"/health": (200, {"status": "ok", "version": "v1"})}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code, body = answers["/health"]
            raw = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", HEALTH_PORT), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert service.health("127.0.0.1", HEALTH_PORT) == service.Health(
            True, True, "v1", {"status": "ok", "version": "v1"}
        )
        answers["/health"] = (503, {"status": "unhealthy", "version": "v2"})
        unhealthy = service.health("127.0.0.1", HEALTH_PORT)
        assert (unhealthy.reachable, unhealthy.healthy, unhealthy.version) == (True, False, "v2")
    finally:
        server.shutdown()
        server.server_close()
    assert service.health("127.0.0.1", HEALTH_PORT, timeout=1).reachable is False
