"""The ansible-runner adapter's result parsing and its failure helper."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from recovery.drivers.ansible import (
    FailedTask,
    HostStats,
    PlaybookResult,
    ansible_env,
    first_failure,
    one_line,
    parse_stats,
    require_success,
    run_playbook,
)
from recovery.errors import ExternalFailure, UsageError


def test_stats_are_regrouped_per_host() -> None:
    stats = {
        "ok": {"a": 5, "b": 4},
        "changed": {"a": 2},
        "failures": {"b": 1},
        "dark": {"c": 1},
        "processed": {"a": 1, "b": 1, "c": 1},
        "skipped": {},
    }
    hosts = parse_stats(stats)
    assert hosts == {
        "a": HostStats(ok=5, changed=2),
        "b": HostStats(ok=4, failures=1),
        "c": HostStats(unreachable=1),
    }
    assert parse_stats(None) == {}


def test_first_failure_skips_ignored_errors_and_takes_the_message() -> None:
    events = [
        {"event": "runner_on_ok", "event_data": {"task": "t0", "host": "a"}},
        {
            "event": "runner_on_failed",
            "event_data": {"task": "t1", "host": "a", "ignore_errors": True, "res": {"msg": "ignored"}},
        },
        {
            "event": "runner_on_failed",
            "event_data": {
                "task": "migrate",
                "host": "primary-app",
                "res": {"msg": "non-zero return code", "stderr": "x\nrelation missing\n"},
            },
        },
        {"event": "runner_on_unreachable", "event_data": {"task": "t3", "host": "b", "res": {"msg": "no"}}},
    ]
    assert first_failure(iter(events)) == FailedTask("migrate", "primary-app", "non-zero return code")
    assert first_failure(iter(events[:2])) is None


def test_one_line_prefers_msg_then_last_stderr_line_and_hides_no_log() -> None:
    assert one_line({"stderr": "first\nlast line\n", "rc": 3}) == "last line"
    assert one_line({"rc": 2}) == "exit code 2"
    missing = {"msg": "Error executing command.", "cmd": "start-stop-daemon --version", "rc": 2}
    assert one_line(missing) == "Error executing command. (start-stop-daemon --version: rc 2)"
    assert one_line({"msg": "x", "cmd": ["id", "-un"], "rc": 1}) == "x (id -un: rc 1)"
    assert one_line({"msg": "secret=1", "_ansible_no_log": True}) == "output hidden (no_log)"
    assert one_line({}) == "no message"
    loop = {
        "msg": "One or more items failed",
        "results": [
            {"item": "a", "failed": False, "msg": "fine"},
            {"item": "b", "failed": True, "msg": "Permission denied: b"},
        ],
    }
    assert one_line(loop) == "Permission denied: b"


def test_one_line_keeps_the_reason_a_first_line_only_announces() -> None:
    reason = "missing required arguments: order_backup_run_id"
    spec_failure = {"msg": f"Validation of arguments failed:\n{reason}\n"}
    assert one_line(spec_failure) == (
        "Validation of arguments failed: missing required arguments: order_backup_run_id"
    )
    assert one_line({"msg": "done:\n"}) == "done:"


def test_require_success_raises_with_the_failed_task() -> None:
    ok = PlaybookResult(playbook="deploy.yml", status="successful", rc=0)
    assert require_success(ok) is ok
    failed = PlaybookResult(
        playbook="deploy.yml",
        status="failed",
        rc=2,
        failed_task=FailedTask("switch current", "standby-app", "link busy"),
        artifacts_dir=Path("/x/artifacts"),
    )
    with pytest.raises(ExternalFailure) as info:
        require_success(failed)
    assert str(info.value) == (
        "deploy.yml: task 'switch current' failed on standby-app: link busy; see /x/artifacts"
    )
    timeout = PlaybookResult(playbook="p.yml", status="timeout", rc=254)
    with pytest.raises(ExternalFailure, match="ended timeout"):
        require_success(timeout)


def test_env_uses_this_virtualenv_multiplexing_and_checked_host_keys() -> None:
    env = ansible_env(Path("/tmp/cp"))
    assert env["ANSIBLE_HOST_KEY_CHECKING"] == "True"
    assert env["ANSIBLE_PIPELINING"] == "True"
    assert "ControlPersist" in env["ANSIBLE_SSH_ARGS"]
    first_path = Path(env["PATH"].split(":")[0])
    assert (first_path / "ansible-playbook").is_file()


def test_missing_playbook_or_inventory_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="playbook"):
        run_playbook(tmp_path / "hosts.yml", str(tmp_path / "nope.yml"), extravars={})
    book = tmp_path / "p.yml"
    book.write_text("- hosts: all\n  tasks: []\n")
    with pytest.raises(UsageError, match="inventory"):
        run_playbook(tmp_path / "hosts.yml", str(book), extravars={})


def _local_play(tmp_path: Path) -> tuple[Path, Path]:
    """An inventory of this machine (a local connection) and a playbook that says hello, then fails."""
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n  hosts:\n    here:\n      ansible_connection: local\n"
        "      ansible_python_interpreter: /usr/bin/python3\n"
    )
    book = tmp_path / "p.yml"
    book.write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - name: say hello\n      ansible.builtin.command: echo {{ greeting }}\n"
        "      changed_when: false\n"
        "    - name: refuse\n      ansible.builtin.fail:\n        msg: refused on purpose\n"
    )
    return inventory, book


def test_a_local_playbook_runs_and_reports_its_failed_task(tmp_path: Path) -> None:
    inventory, book = _local_play(tmp_path)
    result = run_playbook(
        inventory, str(book), extravars={"greeting": "hi"}, private_data_dir=tmp_path / "run"
    )
    assert result.status == "failed" and result.rc != 0
    assert result.failed_task == FailedTask("refuse", "here", "refused on purpose")
    assert result.hosts["here"].ok == 1 and result.hosts["here"].failures == 1
    assert result.artifacts_dir is not None and result.artifacts_dir.is_dir()
    assert result.duration > 0


def test_a_run_without_a_directory_of_its_own_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Runs that keep no files (a test's, a benchmark's) must not pile ansible-run-* directories up in /tmp.
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    inventory, book = _local_play(tmp_path)
    result = run_playbook(inventory, str(book), extravars={"greeting": "hi"})
    assert result.failed_task == FailedTask("refuse", "here", "refused on purpose")
    assert result.artifacts_dir is None  # the message points at no directory that is gone
    assert list(scratch.iterdir()) == []
    with pytest.raises(ExternalFailure) as info:
        require_success(result)
    assert str(info.value) == "p.yml: task 'refuse' failed on here: refused on purpose"
