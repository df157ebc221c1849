"""Bad input, command by command: one line on stderr naming what is wrong, the documented exit code,
no traceback, and nothing written (a table over the CLI; every case runs the real entry point)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from target_files import unit_target_doc, write_unit_target

from recovery.cli.main import main
from recovery.errors import ExitCode

USAGE, REFUSED, CONFIRM = ExitCode.USAGE, ExitCode.REFUSED, ExitCode.NEEDS_CONFIRMATION

# (case id, argv with {T} = a valid target path and {D} = the test's own folder, exit code, error code)
CASES = [
    (
        "lab status: a file that is not a lab's target",
        ["lab", "status", "--target", "{D}/other.yaml"],
        USAGE,
        "lab.not_a_lab_target",
    ),
    (
        "lab status: no such target",
        ["lab", "status", "--target", "{D}/gone/target.yaml"],
        USAGE,
        "target.not_found",
    ),
    ("target check: not YAML", ["target", "check", "{D}/broken/target.yaml"], USAGE, "config.invalid"),
    (
        "target check: a field of the wrong type",
        ["target", "check", "{D}/typed/target.yaml"],
        USAGE,
        "config.invalid",
    ),
    ("upgrade: no release", ["upgrade", "--target", "{T}"], USAGE, "usage"),
    (
        "watch: a Prometheus address without a port",
        ["watch", "--prometheus", "127.0.0.1", "--target", "{T}"],
        USAGE,
        None,
    ),
    (
        "watch: no such target",
        ["watch", "--once", "--target", "{D}/gone/target.yaml"],
        USAGE,
        "target.not_found",
    ),
    (
        "backup setup-archiving: no --yes without a TTY",
        ["backup", "setup-archiving", "--target", "{T}"],
        CONFIRM,
        "confirm.required",
    ),
    (
        "upgrade: unknown release",
        ["upgrade", "--release", "v9-nope", "--target", "{T}", "--yes"],
        USAGE,
        None,
    ),
    (
        "upgrade: no --yes without a TTY",
        ["upgrade", "--release", "v2", "--target", "{T}"],
        CONFIRM,
        "confirm.required",
    ),
    (
        "load: negative rate",
        ["load", "--rate", "-5", "--duration", "1", "--ledger", "{D}/l.jsonl", "--target", "{T}"],
        USAGE,
        None,
    ),
    (
        "load: rate not a number",
        ["load", "--rate", "x", "--duration", "1", "--ledger", "{D}/l.jsonl"],
        USAGE,
        "usage",
    ),
    ("verify: no such ledger", ["verify", "--ledger", "{D}/none.jsonl", "--target", "{T}"], USAGE, None),
    (
        "restore: unknown domain",
        ["restore", "--domains", "nope", "--target", "{T}", "--dry-run"],
        USAGE,
        None,
    ),
    (
        "restore: time not ISO",
        ["restore", "--domains", "orders", "--at", "yesterday", "--target", "{T}", "--dry-run"],
        USAGE,
        None,
    ),
    (
        "restore: time and point",
        [
            "restore",
            "--domains",
            "orders",
            "--at",
            "2026-12-01T00:00:00Z",
            "--point",
            "p",
            "--target",
            "{T}",
            "--dry-run",
        ],
        USAGE,
        None,
    ),
    ("runs show: not a run id", ["runs", "show", "not-a-run", "--target", "{T}"], USAGE, None),
    (
        "runs resume: unknown run",
        ["runs", "resume", "20261206T000000Z-upgrade-0000", "--target", "{T}", "--yes"],
        USAGE,
        None,
    ),
    ("backup prune: keep none", ["backup", "prune", "--keep-daily", "0", "--target", "{T}"], USAGE, "usage"),
    ("backup verify: neither id nor --all", ["backup", "verify", "--target", "{T}"], USAGE, None),
    ("backup run: unknown domain", ["backup", "run", "--domain", "nope", "--target", "{T}"], USAGE, None),
    (
        "gameday run: no such scenario",
        ["gameday", "run", "{D}/nope.yaml", "--target", "{T}", "--yes"],
        USAGE,
        "gameday.scenario_invalid",
    ),
    (
        "gameday run: not a scenario",
        ["gameday", "run", "{D}/other.yaml", "--target", "{T}", "--yes"],
        USAGE,
        "gameday.scenario_invalid",
    ),
    ("intake add: no such file", ["intake", "add", "--csv", "{D}/none.csv", "--target", "{T}"], USAGE, None),
    (
        "intake replay: a target without a queue",
        ["intake", "replay", "--target", "{T}"],
        USAGE,
        "intake.no_queue",
    ),
    ("release build: unknown version", ["release", "build", "v9-nope"], USAGE, None),
    ("switchover: unknown site", ["switchover", "--to", "moon", "--target", "{T}", "--yes"], USAGE, "usage"),
    ("switchover: without --yes", ["switchover", "--target", "{T}"], CONFIRM, "confirm.required"),
    (
        "failover: a negative data loss",
        ["failover", "--max-data-loss", "-1", "--target", "{T}", "--yes"],
        USAGE,
        "usage",
    ),
    ("failback: without --yes", ["failback", "--target", "{T}"], CONFIRM, "confirm.required"),
    ("unknown command", ["frobnicate"], USAGE, "usage"),
]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "other.yaml").write_text("name: x\n")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "target.yaml").write_text("name: [unclosed\n")
    (tmp_path / "typed").mkdir()
    doc = unit_target_doc(tmp_path / "typed")
    doc["objectives"] = {"rto_seconds": "soon"}
    (tmp_path / "typed" / "target.yaml").write_text(yaml.safe_dump(doc))
    return tmp_path


@pytest.mark.parametrize(("argv", "code", "error"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_its_exit_code(
    folder: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, error: str | None
) -> None:
    (folder / "valid").mkdir()
    target = write_unit_target(folder / "valid")
    before = sorted(p for p in folder.rglob("*"))
    args = [a.replace("{T}", str(target)).replace("{D}", str(folder)) for a in argv]
    assert main(args) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error["), err
    assert "Traceback" not in err
    if error is not None:
        assert err.startswith(f"error[{error}]: "), err
    assert sorted(p for p in folder.rglob("*")) == before  # nothing written
