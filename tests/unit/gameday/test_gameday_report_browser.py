"""The HTML report in a real browser (headless Chromium): it renders without console errors and the
screenshot shows the timeline's marks in their colours."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from gameday_runs import game_day
from PIL import Image

from recovery.gameday.report import COLOURS, html_report


def rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def test_the_report_renders_in_chromium_and_shows_the_timeline(tmp_path: Path) -> None:
    browser = shutil.which("chromium")
    assert browser, "chromium is missing: scripts/bootstrap.sh installs it"
    page = tmp_path / "report.html"
    page.write_text(html_report(game_day()))
    shot = tmp_path / "shot.png"
    done = subprocess.run(
        [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
            f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1000,1400",
            page.as_uri(),
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []
    image = Image.open(shot).convert("RGB")
    colours = {colour for _, colour in image.getcolors(maxcolors=1_000_000) or []}
    # Only the timeline draws these: the fault's red mark and the detection's orange one.
    assert rgb(COLOURS["fault"]) in colours
    assert rgb(COLOURS["detected"]) in colours
