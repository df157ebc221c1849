"""Database-host operations of the self-managed failover platform, run on the host itself.

Shipped over SSH and started with the host's python3 as the user that owns the data directory (it uses
only the standard library). Usage: `hostops.py ACTION BASE64_JSON_ARGS`; prints one JSON line.

- fence: write the fence into the data directory, so the server refuses the service's writes even if
  it starts again by itself (a `reject` line for the service's role first in pg_hba.conf and
  `default_transaction_read_only` in postgresql.auto.conf), then stop a running server.
- rebuild: stop the server, keep its own configuration files, pg_rewind from the new writer (or, when
  rewinding is impossible, move the data directory aside and take a fresh pg_basebackup), put the
  configuration back without the fence, point it at the writer with a replication slot, start it as a
  standby.

Both hold an exclusive lock next to the data directory for as long as they run: a runbook killed while
one runs leaves it running on the host (its SSH session outlives the runbook's process), and the resumed
run's attempt must wait for it instead of rewinding the same directory at the same time.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

MARK = "# recovery-fence"
DROPPED_AUTO_SETTINGS = ("primary_conninfo", "primary_slot_name", "default_transaction_read_only")


def run(argv: list[str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LC_MESSAGES="C", PGCONNECT_TIMEOUT="10")
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, check=False)


def last_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    return lines[-1].strip() if lines else f"exit {done.returncode}"


def postmaster_alive(data: Path) -> bool:
    """Whether the pid in postmaster.pid runs: a killed postmaster nobody has reaped yet is a zombie,
    whose pid still answers kill(pid, 0), which is all `pg_ctl status` asks."""
    try:
        pid = int((data / "postmaster.pid").read_text().split()[0])
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError, IndexError):
        # No pid file, or no such process; without /proc at all (not Linux) the pid file is all we have.
        return (data / "postmaster.pid").is_file() and not Path("/proc/self").exists()
    return stat[stat.rindex(")") + 2 :].split()[0] not in ("Z", "X")


def server_running(bin_dir: Path, data: Path) -> bool:
    ok = run([str(bin_dir / "pg_ctl"), "-D", str(data), "status"]).returncode == 0
    return ok and postmaster_alive(data)


def stop(bin_dir: Path, data: Path) -> None:
    if server_running(bin_dir, data):
        done = run([str(bin_dir / "pg_ctl"), "-D", str(data), "stop", "-m", "fast", "-w", "-t", "60"])
        if done.returncode != 0:
            raise SystemExit(f"pg_ctl stop failed: {last_line(done)}")


def fence_lines(role: str) -> list[str]:
    return [f"host all {role} all reject {MARK}", f"local all {role} reject {MARK}"]


def without_fence(text: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True) if MARK not in line)


def fence(args: dict[str, str]) -> dict[str, object]:
    data, bin_dir = Path(args["data_dir"]), Path(args["bin_dir"])
    hba = data / "pg_hba.conf"
    text = hba.read_text()
    if MARK not in text:
        hba.write_text("\n".join(fence_lines(args["role"])) + "\n" + text)
    auto = data / "postgresql.auto.conf"
    current = auto.read_text() if auto.is_file() else ""
    if MARK not in current:
        with auto.open("a") as out:
            out.write(f"default_transaction_read_only = 'on' {MARK}\n")
    was_running = server_running(bin_dir, data)
    stop(bin_dir, data)
    what = "stopped the server; " if was_running else ""
    return {"detail": f"{what}pg_hba.conf rejects role {args['role']}, read-only by default on restart"}


def quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def standby_auto_conf(text: str, source: str, slot: str) -> str:
    """The site's own postgresql.auto.conf, without the fence or an earlier upstream, following `source`
    through `slot`."""
    lines = [
        line
        for line in text.splitlines()
        if MARK not in line and line.split("=")[0].strip() not in DROPPED_AUTO_SETTINGS
    ]
    lines += [f"primary_conninfo = {quote(source)}", f"primary_slot_name = {quote(slot)}"]
    return "\n".join(lines) + "\n"


def rebuild(args: dict[str, str]) -> dict[str, object]:
    data, bin_dir = Path(args["data_dir"]), Path(args["bin_dir"])
    source = args["source"]
    stop(bin_dir, data)
    kept = {p.name: p.read_text() for p in data.glob("*.conf")}
    result: dict[str, object]
    done = run([str(bin_dir / "pg_rewind"), "-D", str(data), f"--source-server={source}"], timeout=1800)
    if done.returncode == 0:
        result = {"method": "rewind", "detail": last_line(done)}
    else:
        why = last_line(done)
        aside = data.with_name(f"{data.name}.replaced-{args['run_id']}")
        if data.exists() and not aside.exists():
            data.rename(aside)
        elif data.exists():  # a rerun: the first attempt already set the old directory aside
            subprocess.run(["rm", "-rf", str(data)], check=True)
        copy = run(
            [str(bin_dir / "pg_basebackup"), "-D", str(data), "-d", source, "-X", "stream", "-c", "fast"],
            timeout=3600,
        )
        if copy.returncode != 0:
            raise SystemExit(f"pg_rewind failed ({why}) and so did pg_basebackup: {last_line(copy)}")
        data.chmod(0o700)
        result = {"method": "base-backup", "detail": f"pg_rewind: {why}", "set_aside": str(aside)}
    for name, text in kept.items():
        if name == "postgresql.auto.conf":
            text = standby_auto_conf(text, source, args["slot"])
        (data / name).write_text(without_fence(text))
    (data / "recovery.signal").unlink(missing_ok=True)
    (data / "standby.signal").touch()
    log = data.parent / "postgresql.log"
    started = run([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "120", "start"])
    if started.returncode != 0:
        raise SystemExit(f"the rebuilt standby did not start: {last_line(started)}; see {log}")
    return result


def data_dir_lock(data: Path) -> Path:
    return data.with_name(f".{data.name}.hostops.lock")


def main(argv: list[str]) -> int:
    action, encoded = argv[1], argv[2]
    args = json.loads(base64.b64decode(encoded))
    actions = {"fence": fence, "rebuild": rebuild}
    if action not in actions:
        print(f"unknown action {action}", file=sys.stderr)
        return 2
    with data_dir_lock(Path(args["data_dir"])).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when this process ends, however it ends
        print(json.dumps(actions[action](args)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
