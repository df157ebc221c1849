"""JUnit XML of an upgrade/rollback report: one testsuite per run, one testcase per step or gate.

CI systems (GitHub Actions test reporters, GitLab's `artifacts:reports:junit`) show a failed step as a
failed test with the step's error code and message; steps that did not run are skipped tests.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from recovery.errors import UsageError


def _suite(name: str, run: Mapping[str, Any]) -> ET.Element:
    suite = ET.Element("testsuite", name=f"{name} {run['run_id']}")
    failures = skipped = 0
    total = 0.0
    for step in run["steps"]:
        seconds = float(step["duration_s"] or 0.0)
        total += seconds
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"recovery.{run['runbook']}",
            name=step["name"],
            time=f"{seconds:.3f}",
        )
        if step["status"] == "failed":
            failures += 1
            failure = ET.SubElement(
                case, "failure", type=str(step["code"] or "failed"), message=str(step["message"] or "")
            )
            failure.text = str(step["message"] or "")
        elif step["status"] != "ok":
            skipped += 1
            ET.SubElement(case, "skipped", message=f"step {step['status'].replace('_', ' ')}")
    suite.set("tests", str(len(run["steps"])))
    suite.set("failures", str(failures))
    suite.set("errors", "0")
    suite.set("skipped", str(skipped))
    suite.set("time", f"{total:.3f}")
    return suite


def junit_document(report: Mapping[str, Any]) -> ET.ElementTree[ET.Element]:
    root = ET.Element("testsuites", name="recovery upgrade")
    for name in ("upgrade", "rollback"):
        run = report.get(name)
        if run:
            root.append(_suite(name, run))
    if report.get("failed_gate") and report.get("upgrade"):
        # The failed gate as its own case, so a pipeline's test view names it even when the step did not.
        suite = root.find("testsuite")
        assert suite is not None
        gate = f"gate {report['failed_gate']}"
        case = ET.SubElement(suite, "testcase", classname="recovery.gates", name=gate, time="0")
        ET.SubElement(
            case, "failure", type=f"gate.{report['failed_gate']}", message=str(report.get("reason") or "")
        ).text = str(report.get("reason") or "")
        suite.set("tests", str(int(suite.get("tests", "0")) + 1))
        suite.set("failures", str(int(suite.get("failures", "0")) + 1))
    return ET.ElementTree(root)


def check_junit_path(path: Path) -> None:
    """Refuse an unusable --junit path before anything runs."""
    if path.is_dir():
        raise UsageError(f"--junit {path} is a directory; give a file path such as report.xml")
    if not path.parent.is_dir():
        raise UsageError(f"--junit {path}: directory {path.parent} does not exist; create it first")


def write_junit(path: Path, report: Mapping[str, Any]) -> Path:
    """Write the JUnit XML of `report` to `path` atomically."""
    check_junit_path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    junit_document(report).write(tmp, encoding="utf-8", xml_declaration=True)
    tmp.replace(path)
    return path
