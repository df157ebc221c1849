"""`recovery gameday run` in text: a scenario that measures no detection or recovery shows `-`, never
`None s`."""

from __future__ import annotations

import pytest

from recovery.cli.gameday import _render


def test_an_unmeasured_time_is_a_dash(capsys: pytest.CaptureFixture[str]) -> None:
    run = {
        "scenario": "operator-errors",
        "passed": True,
        "experiment_status": "completed",
        "time_to_detect_s": None,
        "rto_s": 12.5,
        "orders_acknowledged": 24,
        "orders_lost": 0,
        "error_rate": 0.0,
        "objectives": [{"name": "orders lost", "passed": True, "reason": "0 within the goal of 0"}],
        "report": "/reports/r/report.html",
    }
    _render({"runs": [run]})
    out = capsys.readouterr().out
    assert "time to detect -, RTO 12.5 s, orders acknowledged 24, lost 0" in out
    assert "None" not in out
