"""`recovery release list --target`: what each host runs, read over real SSH from a non-root sshd."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import pytest
from target_files import write_target_file
from worker_ports import port, ports

from recovery.cli.main import main
from recovery.drivers import remote
from recovery.errors import ExitCode
from recovery.release.artifacts import build_release_artifact

SSH_PORTS = ports(26196, 26200)  # per pytest-xdist worker (tests/worker_ports.py)
LAB_USER = "orderlab"


def _free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.fixture
def ssh_host():
    """A non-root sshd on loopback with a deployed v1 under its base dir; stopped by its pid afterwards."""
    if not Path("/usr/sbin/sshd").is_file():
        pytest.fail("sshd is missing; run scripts/bootstrap.sh (apt-get install -y openssh-server)")
    port = next((p for p in SSH_PORTS if _free(p)), None)
    if port is None:
        pytest.fail(f"no free port in {SSH_PORTS.start}-{SSH_PORTS.stop - 1}")
    entry = pwd.getpwnam(LAB_USER) if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
    root = Path(tempfile.mkdtemp(prefix="release-ssh-"))
    controller = Path(tempfile.mkdtemp(prefix="release-ssh-client-"))
    pid = None
    try:
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / "host_key")], check=True
        )
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(controller / "id")], check=True
        )
        shutil.copy(controller / "id.pub", root / "authorized_keys")
        host_pub = (root / "host_key.pub").read_text().split()
        (controller / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
        (root / "sshd_config").write_text(
            f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {root}/host_key\nPidFile {root}/sshd.pid\n"
            f"AuthorizedKeysFile {root}/authorized_keys\nPasswordAuthentication no\n"
            "PubkeyAuthentication yes\nUsePAM no\nStrictModes no\nSubsystem sftp internal-sftp\n"
        )
        base = root / "app"
        (base / "releases" / "v1").mkdir(parents=True)
        with tarfile.open(build_release_artifact("v1", root / "artifacts")) as tar:
            tar.extractall(base / "releases" / "v1", filter="data")
        (base / "current").symlink_to("releases/v1")
        for path in [root, *root.rglob("*")]:
            os.lchown(path, entry.pw_uid, entry.pw_gid)
        Path("/run/sshd").mkdir(exist_ok=True)
        command = ["/usr/sbin/sshd", "-f", str(root / "sshd_config"), "-E", str(root / "sshd.log")]
        if os.geteuid() == 0:
            command = ["runuser", "-u", LAB_USER, "--", *command]
        subprocess.run(command, check=True)
        deadline = time.monotonic() + 10
        while not (root / "sshd.pid").is_file() and time.monotonic() < deadline:
            time.sleep(0.05)
        pid = int((root / "sshd.pid").read_text().split()[0])
        yield {
            "port": port,
            "base": base,
            "key": controller / "id",
            "known_hosts": controller / "known_hosts",
            "user": entry.pw_name,
        }
    finally:
        remote.close_all()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(controller, ignore_errors=True)


def _target(tmp_path: Path, host: dict, standby_base: Path) -> Path:
    def site(name: str, base: Path) -> dict:
        return {
            "name": name,
            "region": "us-east-1" if name == "primary" else "us-west-2",
            "hosts": [
                {
                    "name": f"{name}-app",
                    "address": "127.0.0.1",
                    "ssh_port": host["port"],
                    "ssh_user": host["user"],
                    "ssh_key": str(host["key"]),
                    "known_hosts": str(host["known_hosts"]),
                    "base_dir": str(base),
                    "service_port": port(26150),
                }
            ],
            "database": {"address": "127.0.0.1", "port": port(26151)},
        }

    return write_target_file(tmp_path, "sshlab", site("primary", host["base"]), site("standby", standby_base))


def test_list_reads_each_hosts_current_release_over_ssh(ssh_host, tmp_path, capsys) -> None:
    # Both sites reach the same sshd; the standby's base dir has no deployed release.
    target = _target(tmp_path, ssh_host, tmp_path / "nothing-deployed")
    assert main(["release", "list", "--target", str(target), "--output", "json"]) == ExitCode.OK
    result = json.loads(capsys.readouterr().out)["result"]
    primary, standby = result["hosts"]
    assert primary["release"] == "v1" and primary["schema_version"] == 1 and primary["path"] == "releases/v1"
    assert standby["release"] is None and "no deployed release" in standby["reason"]
    rows = {r["name"]: r for r in result["releases"]}
    assert rows["v1"]["running_on"] == ["primary-app"] and rows["v2"]["running_on"] == []
