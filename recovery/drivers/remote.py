"""Fabric driver: run one command on a target host over SSH (`run`), or one fed a stream (`pipe_into`);
an SFTP session of the caller's own (`sftp`).

Host keys are checked against the host's known_hosts file (never auto-added); no PTY is ever requested
(non-root lab sshds cannot allocate one, and output stays clean). Connections are cached per
(address, port, user, key, known_hosts) because the first command costs a handshake (~0.2 s) and later
ones ~45 ms.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import paramiko
from fabric import Connection
from invoke.exceptions import CommandTimedOut

from recovery.errors import ExternalFailure
from recovery.targets.model import Host


@dataclass(frozen=True)
class CommandResult:
    rc: int
    stdout: str
    stderr: str
    duration: float

    @property
    def ok(self) -> bool:
        return self.rc == 0


_CacheKey = tuple[str, int, str, str, str]
_connections: dict[_CacheKey, Connection] = {}
_idle_sftp: dict[_CacheKey, list[paramiko.SFTPClient]] = {}
_lock = threading.Lock()


def _key(host: Host) -> _CacheKey:
    return (host.address, host.ssh_port, host.ssh_user, str(host.ssh_key or ""), str(host.known_hosts or ""))


def _open(host: Host, timeout: float) -> Connection:
    connect_kwargs: dict[str, object] = {"allow_agent": False, "look_for_keys": host.ssh_key is None}
    if host.ssh_key is not None:
        connect_kwargs["key_filename"] = str(host.ssh_key)
    conn = Connection(
        host=host.address,
        port=host.ssh_port,
        user=host.ssh_user,
        connect_timeout=timeout,
        connect_kwargs=connect_kwargs,
    )
    conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    if host.known_hosts is not None:
        conn.client.load_host_keys(str(host.known_hosts))
    return conn


def connection(host: Host, *, timeout: float = 10) -> Connection:
    """The cached, open connection to `host`."""
    with _lock:
        conn = _connections.get(_key(host))
        if conn is None or not conn.is_connected:
            if conn is not None:
                conn.close()
            conn = _open(host, timeout)
            _connections[_key(host)] = conn
    try:
        conn.open()
    except paramiko.SSHException as exc:
        _drop(host)
        raise ExternalFailure(
            f"host {host.name} ({host.address}:{host.ssh_port}) refused SSH: {exc}; "
            "check its host key in known_hosts and the user's authorized key"
        ) from None
    except OSError as exc:
        _drop(host)
        raise ExternalFailure(
            f"cannot reach host {host.name} at {host.address}:{host.ssh_port} over SSH: "
            f"{exc.strerror or exc}; check that its sshd runs"
        ) from None
    return conn


def _session_failed(host: Host, exc: BaseException) -> ExternalFailure:
    return ExternalFailure(f"SSH session to host {host.name} failed: {exc}; retry or check its sshd")


def run(host: Host, command: str, *, timeout: float = 30) -> CommandResult:
    """Run `command` on `host`; a non-zero exit is a result (rc), an unreachable host is ExternalFailure."""
    conn = connection(host, timeout=min(timeout, 10))
    started = time.monotonic()
    try:
        result = conn.run(command, hide=True, warn=True, pty=False, in_stream=False, timeout=timeout)
    except CommandTimedOut:
        _drop(host)
        raise ExternalFailure(f"command on host {host.name} did not finish within {timeout:.0f} s") from None
    except (paramiko.SSHException, OSError, EOFError) as exc:
        _drop(host)
        raise _session_failed(host, exc) from None
    return CommandResult(
        rc=int(result.exited),
        stdout=str(result.stdout),
        stderr=str(result.stderr),
        duration=time.monotonic() - started,
    )


class _ChannelInput:
    """The command's standard input as a sink: each write is sent whole."""

    def __init__(self, channel: paramiko.Channel) -> None:
        self._channel = channel

    def write(self, data: bytes) -> int:
        self._channel.sendall(data)
        return len(data)


# How long a command whose input was cut short (its producer failed) is waited for before the error is
# raised: it may still be writing what it got, and the caller's cleanup must not race it.
EXIT_WAIT = 30.0


def _end_and_wait(channel: paramiko.Channel, seconds: float) -> None:
    """End the command's input and wait (at most `seconds`) for it to exit. Best effort: the session
    may already be gone."""
    with contextlib.suppress(paramiko.SSHException, OSError, EOFError):
        channel.shutdown_write()
    deadline = time.monotonic() + seconds
    while not channel.exit_status_ready() and not channel.closed and time.monotonic() < deadline:
        time.sleep(0.05)


def pipe_into(
    host: Host, command: str, produce: Callable[[_ChannelInput], object], *, timeout: float = 600
) -> CommandResult:
    """Run `command` on `host` with what `produce(stdin)` writes as its standard input, then end the
    input; the result once the command exits (a non-zero exit is a result). `timeout`: the longest wait
    for the host to take more input or to exit. When `produce` raises, the session is closed (the
    command sees its input cut short) and the error is raised. The command's output is read after it
    exits: it must print little (a few KiB), or it would wait for a reader. After a failed `produce` the
    command has exited (its input ended) before the error is raised, or `EXIT_WAIT` passed."""
    conn = connection(host, timeout=min(timeout, 10))
    started = time.monotonic()
    transport = conn.client.get_transport()
    if transport is None:  # connection() returns an open connection; a race with close_all()
        raise ExternalFailure(f"SSH session to host {host.name} was closed; retry")
    try:
        channel = transport.open_session(timeout=10)
    except (paramiko.SSHException, OSError, EOFError) as exc:
        _drop(host)
        raise _session_failed(host, exc) from None
    with channel:
        channel.settimeout(timeout)
        try:
            channel.exec_command(command)
            try:
                produce(_ChannelInput(channel))
            except BaseException:
                _end_and_wait(channel, EXIT_WAIT)
                raise
            channel.shutdown_write()
            rc = channel.recv_exit_status()
            stdout = channel.makefile("rb").read().decode("utf-8", "replace")
            stderr = channel.makefile_stderr("rb").read().decode("utf-8", "replace")
        except TimeoutError:
            raise ExternalFailure(
                f"command on host {host.name} took no input and did not finish for {timeout:.0f} s"
            ) from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            if channel.exit_status_ready():  # it exited early (it failed): its own words say why
                reason = channel.makefile_stderr("rb").read().decode("utf-8", "replace").strip()
                return CommandResult(
                    channel.recv_exit_status(), "", reason or str(exc), time.monotonic() - started
                )
            raise _session_failed(host, exc) from None
    return CommandResult(rc=rc, stdout=stdout, stderr=stderr, duration=time.monotonic() - started)


# The longest wait for one SFTP answer: a host that stops answering fails the call instead of holding
# its thread for good.
SFTP_TIMEOUT = 60.0
# Idle sessions kept per host: as many as threads use at once (the watch's shipper, a backup, a probe).
SFTP_IDLE_KEPT = 4


@contextlib.contextmanager
def sftp(host: Host, *, timeout: float = SFTP_TIMEOUT) -> Iterator[paramiko.SFTPClient]:
    """An SFTP session on the cached connection to `host`, the caller's alone until the block ends.

    paramiko's SFTPClient must not be shared by threads: each waits for its answer by reading the
    session's packets, so one thread reads (and drops, or half-reads) another's and that one waits
    for good or sees garbage. The watch ships WAL in one thread while a daily backup reads the hosts'
    log files in another; through one shared session that hung the watch. A session is kept for the
    next caller when its block ends cleanly (opening one starts the SFTP server on the host); after an
    error it is closed, since answers may still be on their way. Files opened through it must be closed
    inside the block.
    """
    key = _key(host)
    conn = connection(host)
    transport = conn.client.get_transport()
    usable: list[paramiko.SFTPClient] = []
    stale: list[paramiko.SFTPClient] = []  # sessions of a connection that was replaced
    with _lock:
        for kept in _idle_sftp.pop(key, []):
            (usable if _usable(kept, transport) else stale).append(kept)
        client = usable.pop() if usable else None
        _idle_sftp[key] = usable
    for session in stale:
        session.close()
    if client is None:
        try:
            client = conn.client.open_sftp()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            _drop(host)
            raise _session_failed(host, exc) from None
    channel = client.get_channel()
    if channel is not None:
        channel.settimeout(timeout)
    try:
        yield client
    except BaseException:
        client.close()
        raise
    with _lock:
        idle = _idle_sftp.setdefault(key, [])
        keep = _usable(client, transport) and _connections.get(key) is conn and len(idle) < SFTP_IDLE_KEPT
        if keep:
            idle.append(client)
    if not keep:
        client.close()


def _usable(client: paramiko.SFTPClient, transport: paramiko.Transport | None) -> bool:
    channel = client.get_channel()
    return channel is not None and not channel.closed and channel.get_transport() is transport


def _drop(host: Host) -> None:
    with _lock:
        conn = _connections.pop(_key(host), None)
        idle = _idle_sftp.pop(_key(host), [])
    for client in idle:
        client.close()
    if conn is not None:
        conn.close()


def close_all() -> None:
    """Close every cached connection (before stopping the hosts, and at exit of long-running tools)."""
    with _lock:
        conns = list(_connections.values())
        _connections.clear()
        idle = [client for sessions in _idle_sftp.values() for client in sessions]
        _idle_sftp.clear()
    for client in idle:
        client.close()
    for conn in conns:
        conn.close()
