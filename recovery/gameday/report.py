"""A game day's reports: a self-contained HTML page with charts, Markdown for a pull request, JUnit XML.

The HTML page has no script and loads nothing: its charts are inline SVG (a timeline of the fault,
the detection, each runbook step and the recovery; latency and error rate per second), so it opens from a
file, an artifact store or a mail attachment alike. Every text taken from a run is escaped.
"""

from __future__ import annotations

import html
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from recovery.gameday.model import Bucket, GameDayRun, TimelineEvent

WIDTH, LANE, MARGIN = 900, 22, 150
SVG_NS = "http://www.w3.org/2000/svg"
ERROR_LINE = "#c2185b"  # not a timeline colour: the screenshot test tells the charts apart by colour
COLOURS = {
    "load": "#7f8c8d",
    "fault": "#c0392b",
    "detected": "#d35400",
    "decision": "#8e44ad",
    "step": "#2980b9",
    "recovered": "#27ae60",
    "verified": "#16a085",
    "note": "#95a5a6",
}


def _fmt(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:.1f}{unit}"


def _x(at_s: float, span: float) -> float:
    return MARGIN + (WIDTH - MARGIN - 20) * (at_s / span if span else 0)


def timeline_svg(events: Sequence[TimelineEvent], span: float) -> str:
    rows = []
    for lane, event in enumerate(events):
        y = 10 + lane * LANE
        x = _x(event.at_s, span)
        colour = COLOURS.get(event.kind, "#333")
        label = html.escape(event.label)
        title = f"<title>{label} at {event.at_s:.1f} s</title>"
        if event.duration_s:
            width = max(2.0, _x(event.at_s + event.duration_s, span) - x)
            mark = f'<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="14" fill="{colour}">{title}</rect>'
        else:
            mark = f'<circle cx="{x:.1f}" cy="{y + 7}" r="6" fill="{colour}">{title}</circle>'
        # Labels of marks in the right half go to their left, so none runs off the chart.
        right = x > MARGIN + (WIDTH - MARGIN) / 2
        anchor, label_x = ("end", x - 10) if right else ("start", x + 10)
        rows.append(
            f'<text x="4" y="{y + 11}" font-size="11">{html.escape(event.kind)}</text>{mark}'
            f'<text x="{label_x:.1f}" y="{y + 11}" font-size="11" text-anchor="{anchor}">'
            f"{label} ({event.at_s:.1f} s)</text>"
        )
    height = 20 + LANE * len(events)
    return (
        f'<svg id="timeline" class="chart" xmlns="{SVG_NS}" width="{WIDTH}" height="{height}" '
        f'role="img" aria-label="timeline">{"".join(rows)}</svg>'
    )


def _polyline(points: Sequence[tuple[float, float]], colour: str) -> str:
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    return f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>'


def load_svg(buckets: Sequence[Bucket], span: float) -> str:
    """Latency p95 (ms, left) and error rate (%, right) per second."""
    height, top, bottom = 220, 10, 190
    highest = max((b.p95_ms or 0 for b in buckets), default=0) or 1.0

    def y(fraction: float) -> float:
        return bottom - (bottom - top) * fraction

    latency = [(_x(b.at_s, span), y((b.p95_ms or 0) / highest)) for b in buckets if b.p95_ms is not None]
    errors = [(_x(b.at_s, span), y(b.error_rate)) for b in buckets]
    axes = (
        f'<line x1="{MARGIN}" y1="{bottom}" x2="{WIDTH - 20}" y2="{bottom}" stroke="#333"/>'
        f'<text x="4" y="{top + 10}" font-size="11">p95 {highest:.0f} ms</text>'
        f'<text x="4" y="{bottom}" font-size="11">0</text>'
        f'<text x="{WIDTH - 140}" y="{top + 10}" font-size="11" fill="{ERROR_LINE}">errors 100%</text>'
        f'<text x="{MARGIN}" y="{height - 5}" font-size="11">0 s</text>'
        f'<text x="{WIDTH - 60}" y="{height - 5}" font-size="11">{span:.0f} s</text>'
    )
    return (
        f'<svg id="load" class="chart" xmlns="{SVG_NS}" width="{WIDTH}" height="{height}" '
        f'role="img" aria-label="latency and error rate">{axes}{_polyline(latency, "#2980b9")}'
        f"{_polyline(errors, ERROR_LINE)}</svg>"
    )


def _results_rows(run: GameDayRun) -> str:
    rows = []
    for result in run.results:
        verdict = "pass" if result.passed else "MISS"
        rows.append(
            f'<tr class="{verdict.lower()}"><td>{html.escape(result.name)}</td>'
            f"<td>{html.escape(result.goal)}</td><td>{html.escape(result.measured)}</td>"
            f"<td>{verdict}</td><td>{html.escape(result.reason)}</td></tr>"
        )
    return "".join(rows)


def html_report(run: GameDayRun) -> str:
    m = run.measured
    span = max(run.duration_s, max((e.at_s + (e.duration_s or 0) for e in run.timeline), default=0), 1.0)
    verdict = "PASSED" if run.passed else "FAILED"
    facts = [
        ("scenario", run.scenario),
        ("target", run.target),
        ("started", run.started_at),
        ("experiment", run.experiment_status),
        ("time to detect", _fmt(m.time_to_detect_s, " s")),
        ("time to recover (RTO)", _fmt(m.rto_s, " s")),
        (
            "orders acknowledged / lost / set aside",
            f"{m.orders_acknowledged} / {m.orders_lost} / {m.orders_set_aside}",
        ),
        ("orders queued / replayed", f"{m.orders_queued} / {m.orders_replayed}"),
        ("error rate during the incident", f"{m.error_rate:.1%}"),
        ("seconds of writes lost", _fmt(m.seconds_of_writes_lost, " s")),
        ("notifications sent", ", ".join(m.notifications) or "none"),
    ]
    fact_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in facts)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Game day {html.escape(run.scenario)}: {verdict}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; }}
tr.miss td {{ background: #fdecea; }} tr.pass td {{ background: #eafaf1; }}
.verdict-PASSED {{ color: #27ae60; }} .verdict-FAILED {{ color: #b03a2e; }}
</style></head>
<body>
<h1>{html.escape(run.title)} <span class="verdict-{verdict}">{verdict}</span></h1>
<table>{fact_rows}</table>
<h2>Objectives</h2>
<table><tr><th>objective</th><th>goal</th><th>measured</th><th>result</th><th>why</th></tr>{_results_rows(run)}</table>
<h2>Timeline</h2>
{timeline_svg(run.timeline, span)}
<h2>Latency and error rate</h2>
{load_svg(run.load, span)}
</body></html>
"""


def markdown_report(run: GameDayRun) -> str:
    m = run.measured
    lines = [
        f"### Game day `{run.scenario}`: {'passed' if run.passed else 'FAILED'}",
        "",
        f"{run.title} on `{run.target}`, {run.started_at}, experiment {run.experiment_status}.",
        "",
        "| objective | goal | measured | result |",
        "|---|---|---|---|",
        *(
            f"| {r.name} | {r.goal} | {r.measured} | {'pass' if r.passed else '**miss**'} |"
            for r in run.results
        ),
        "",
        f"Orders acknowledged {m.orders_acknowledged}, lost {m.orders_lost}, set aside for a person "
        f"{m.orders_set_aside}, queued {m.orders_queued}, replayed {m.orders_replayed}; error rate during "
        f"the incident {m.error_rate:.1%}.",
        "",
        "| at (s) | what | took (s) |",
        "|---|---|---|",
        *(f"| {e.at_s:.1f} | {e.kind}: {e.label} | {_fmt(e.duration_s)} |" for e in run.timeline),
    ]
    return "\n".join(lines) + "\n"


def junit_report(runs: Sequence[GameDayRun]) -> bytes:
    """One testsuite per run, one testcase per objective (a miss is a failure with its reason)."""
    root = ET.Element("testsuites", name="game days")
    for run in runs:
        suite = ET.SubElement(root, "testsuite", name=f"gameday {run.scenario} {run.run_id}")
        failures = 0
        for result in run.results:
            case = ET.SubElement(suite, "testcase", classname=f"gameday.{run.scenario}", name=result.name)
            if not result.passed:
                failures += 1
                ET.SubElement(case, "failure", type="objective", message=result.reason).text = result.reason
        if run.experiment_status != "completed":
            failures += 1
            case = ET.SubElement(suite, "testcase", classname=f"gameday.{run.scenario}", name="experiment")
            message = f"the experiment ended {run.experiment_status}"
            ET.SubElement(case, "failure", type="experiment", message=message).text = message
        suite.set("tests", str(len(suite)))
        suite.set("failures", str(failures))
        suite.set("time", f"{run.duration_s:.3f}")
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document
