"""The HTML report in a real browser: headless Chromium renders it without console errors.

Skipped where no Chromium is installed (Debian: ``apt-get install chromium``;
``.ci/run`` installs it when apt is there).
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = next(
    (
        found
        for name in ("chromium", "chromium-browser", "google-chrome", "chrome")
        if (found := shutil.which(name))
    ),
    None,
)

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs headless Chromium")

SECTIONS = ("session", "attention", "tests", "figures")


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    command = [
        CHROMIUM,
        "--headless",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        f"--user-data-dir={tmp / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        *args,
    ]
    # Chromium's sandbox refuses to start as root and in many CI containers; the page is
    # our own local file.
    command.insert(1, "--no-sandbox")
    return subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)


def _console(stderr: str) -> list[str]:
    """The page's console messages and uncaught errors, as Chromium logs them."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def _body_tag(dom: str) -> str:
    """The ``<body ...>`` tag of a dumped DOM: the page's scripts mark it when they run."""
    found = re.search(r"<body[^>]*>", dom)
    assert found is not None
    return found.group(0)


def _page(figures_suite: pytest.Pytester, run_pytest: Any) -> Path:
    result = run_pytest("--ml", "--ml-seed", "17", "--ml-report-html", "r.html")
    result.assert_outcomes(passed=3, failed=1, skipped=1)
    return figures_suite.path / "r.html"


def test_report_renders_without_console_errors(
    figures_suite: pytest.Pytester, run_pytest: Any
) -> None:
    page = _page(figures_suite, run_pytest)
    run = _chromium(figures_suite.path, "--dump-dom", page.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    assert _console(run.stderr) == []
    dom = run.stdout
    body = _body_tag(dom)
    assert 'data-js-ready="1"' in body
    assert "data-js-error" not in body
    for section in SECTIONS:
        assert f'<section id="{section}"' in dom
    assert "5 of 5 tests" in dom  # the filter script ran and counted the rows
    assert dom.count("<svg") >= 3


def test_filters_from_the_link(figures_suite: pytest.Pytester, run_pytest: Any) -> None:
    page = _page(figures_suite, run_pytest)
    run = _chromium(figures_suite.path, "--dump-dom", page.as_uri() + "#outcome=failed")
    assert _console(run.stderr) == []
    assert "1 of 5 tests" in run.stdout
    assert run.stdout.count('class="test hidden"') == 4


def test_screenshot(figures_suite: pytest.Pytester, run_pytest: Any) -> None:
    page = _page(figures_suite, run_pytest)
    shot = figures_suite.path / "report.png"
    run = _chromium(
        figures_suite.path, f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri()
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert _console(run.stderr) == []
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (1280, 2000)
    keep = os.environ.get("MLTEST_SCREENSHOT_DIR")
    if keep:  # look at it: MLTEST_SCREENSHOT_DIR=/tmp pytest ... -k screenshot
        shutil.copy(shot, Path(keep) / "mltest-report.png")


def test_console_errors_are_caught(tmp_path: Path) -> None:
    """The trap: a page whose script throws is seen as failing by these checks."""
    page = tmp_path / "bad.html"
    page.write_text(
        "<!DOCTYPE html><html><body><script>"
        "window.addEventListener('error', function(e){"
        "document.body.setAttribute('data-js-error', e.message);});"
        "noSuchFunction();</script></body></html>"
    )
    run = _chromium(tmp_path, "--dump-dom", page.as_uri())
    assert any("noSuchFunction is not defined" in line for line in _console(run.stderr))
    assert "data-js-error=" in _body_tag(run.stdout)
