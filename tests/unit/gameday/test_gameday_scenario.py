"""Scenario files: the library loads and is valid for chaostoolkit-lib; a malformed one is refused with
the file, the line and the field."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from chaoslib.experiment import ensure_experiment_is_valid

from recovery.errors import UsageError
from recovery.gameday.scenario import load_scenario

LIBRARY = Path(__file__).resolve().parents[3] / "gamedays"
BASE = """title: t
description: d
method:
  - type: action
    name: break it
    provider: {type: python, module: time, func: sleep, arguments: {secs: 0}}
extensions:
  - name: recovery
    fault: break it
"""


def test_every_scenario_in_the_library_loads_and_is_a_valid_experiment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The process activities call `recovery`: chaostoolkit-lib checks it is on PATH.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    files = sorted(LIBRARY.glob("*.yaml"))
    assert len(files) >= 2
    for path in files:
        scenario = load_scenario(path)
        assert scenario.name == path.stem and scenario.recovery.objectives.orders_lost == 0
        ensure_experiment_is_valid(scenario.experiment)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            BASE + "    objectives: {rto_s: -3}\n",
            ":10: extensions[recovery].objectives.rto_s: Input should be greater than 0",
        ),
        (BASE + "    objectivs: {}\n", ":10: extensions[recovery].objectivs: Extra inputs are not permitted"),
        (
            BASE.replace("fault: break it", "fault: nothing"),
            ":9: extensions[recovery].fault: no method activity is named 'nothing'",
        ),
        (
            BASE.replace("  - name: recovery\n    fault: break it\n", "  - name: other\n"),
            ":8: no `extensions` entry named recovery",
        ),
        ("title: t\nmethod: []\n", ":1: field description is missing"),
        ("title: [unclosed\n", ":2: not YAML"),
        (
            BASE + "    detected_when: {runbook: upgrade, event: step.done}\n",
            ":10: extensions[recovery].detected_when.event: Input should be 'run.started', "
            "'step.finished', 'step.failed' or 'run.finished'",
        ),
        (
            BASE + "    detected_when: {activity: the watch alarms}\n",
            ":10: extensions[recovery].detected_when.activity: no method activity is named "
            "'the watch alarms'",
        ),
        (
            BASE + "    recovered_when: {activity: break it, runbook: upgrade}\n",
            ":10: extensions[recovery].recovered_when: Value error, an activity marker takes no runbook",
        ),
        (
            BASE + "    detected_when: {runbook: upgrade}\n",
            ":10: extensions[recovery].detected_when: Value error, give runbook and event",
        ),
        (
            BASE + "    responses:\n      - {activity: break it, exit_code: 0}\n"
            "      - {activity: fix it, exit_code: 4, error: lock.held}\n",
            ":12: extensions[recovery].responses.1.activity: no method activity is named 'fix it'",
        ),
        (
            BASE + "    responses:\n      - {activity: break it, exit_code: 4, error: Lock Held}\n",
            ":11: extensions[recovery].responses.0.error: String should match pattern",
        ),
    ],
)
def test_a_malformed_scenario_is_one_line_with_file_line_and_field(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(UsageError) as raised:
        load_scenario(path)
    assert raised.value.message.startswith(f"{path}{message}")
    assert "\n" not in raised.value.message and raised.value.code == "gameday.scenario_invalid"
