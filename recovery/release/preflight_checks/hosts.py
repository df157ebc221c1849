"""What one application host offers, observed over SSH with one small script on the host's own Python.

The script reports the Python version, free disk under the service's base directory, available memory,
whether the service port is free, held by the order service or by something else, and which endpoints
(the databases, the other hosts' SSH ports) it can open a TCP connection to.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from recovery.drivers import remote
from recovery.errors import RecoveryError
from recovery.targets.model import Host

PortState = Literal["free", "ours", "other"]

_SCRIPT = r"""
import json, os, socket, sys, urllib.request
p = json.loads(sys.argv[1])
out = {"python": list(sys.version_info[:3])}
d = p["base_dir"]
while not os.path.exists(d):
    d = os.path.dirname(d) or "/"
st = os.statvfs(d)
out["disk_free_mb"] = st.f_bavail * st.f_frsize // 1048576
out["disk_path"] = d
out["memory_mb"] = None
try:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                out["memory_mb"] = int(line.split()[1]) // 1024
except OSError:
    pass
def reach(address, port):
    try:
        socket.create_connection((address, port), timeout=3).close()
        return None
    except OSError as e:
        return e.strerror or type(e).__name__
out["reach"] = {"%s:%d" % (a, n): reach(a, n) for a, n in p["endpoints"]}
a, n = p["service"]
err = reach(a, n)
if err:
    out["service_port"] = ["free", err]
else:
    try:
        with urllib.request.urlopen("http://%s:%d/version" % (a, n), timeout=3) as r:
            doc = json.loads(r.read())
        ours = isinstance(doc, dict) and "version" in doc and "site" in doc
        out["service_port"] = ["ours" if ours else "other", str(doc.get("version") if ours else "")]
    except Exception as e:
        out["service_port"] = ["other", type(e).__name__]
print(json.dumps(out))
"""


@dataclass(frozen=True)
class HostFacts:
    host: str
    reachable: bool
    problem: str | None = None  # why the host could not be observed
    python: tuple[int, int, int] | None = None
    disk_free_mb: int | None = None
    disk_path: str | None = None
    memory_mb: int | None = None
    service_port: int = 0
    port_state: PortState | None = None
    port_detail: str = ""
    unreachable: tuple[tuple[str, str], ...] = ()  # (endpoint name, why) it could not connect to
    reached: tuple[str, ...] = ()


def observe_host(host: Host, endpoints: Sequence[tuple[str, str, int]], *, timeout: float = 30) -> HostFacts:
    """Observe `host`; `endpoints` are (name, address, port) it must be able to reach."""
    params = {
        "base_dir": str(host.base_dir),
        "endpoints": [[address, port] for _, address, port in endpoints],
        "service": [host.address, host.service_port],
    }
    command = f"{shlex.quote(host.python)} -c {shlex.quote(_SCRIPT)} {shlex.quote(json.dumps(params))}"
    try:
        result = remote.run(host, command, timeout=timeout)
    except RecoveryError as exc:
        return HostFacts(host.name, False, exc.message, service_port=host.service_port)
    if result.rc != 0:
        last = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit {result.rc}"
        return HostFacts(
            host.name, False, f"the probe on {host.python} failed: {last}", service_port=host.service_port
        )
    try:
        doc = json.loads(result.stdout)
        reach: dict[str, str | None] = doc["reach"]
        unreachable = tuple(
            (name, str(reach.get(f"{address}:{port}")))
            for name, address, port in endpoints
            if reach.get(f"{address}:{port}") is not None
        )
        reached = tuple(
            name for name, address, port in endpoints if reach.get(f"{address}:{port}", "x") is None
        )
        major, minor, micro = (int(v) for v in doc["python"])
        return HostFacts(
            host=host.name,
            reachable=True,
            python=(major, minor, micro),
            disk_free_mb=int(doc["disk_free_mb"]),
            disk_path=str(doc["disk_path"]),
            memory_mb=None if doc["memory_mb"] is None else int(doc["memory_mb"]),
            service_port=host.service_port,
            port_state=doc["service_port"][0],
            port_detail=str(doc["service_port"][1]),
            unreachable=unreachable,
            reached=reached,
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        return HostFacts(
            host.name,
            False,
            "the probe answered something that is not its report",
            service_port=host.service_port,
        )
