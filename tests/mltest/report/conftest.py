"""A small run whose report has every section: failures, expected failures, all figure kinds."""

from __future__ import annotations

import base64
import struct
import zlib
from typing import Any

import pytest


def tiny_png() -> str:
    """A real 4x4 RGB PNG, base64, made without any imaging library."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = [bytes(c for x in range(4) for c in (60 * x, 60 * y, 200)) for y in range(4)]
    raw = b"".join(b"\x00" + row for row in rows)  # filter byte 0, then RGB pixels
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    return base64.b64encode(png).decode()


FIGURES_SUITE = """
from typing import Any

import pytest
from mltest.report import record_check, record_figure

PNG = "{png}"

@pytest.mark.model
def test_overfit_fails():
    losses = [2.3 * 0.97 ** i + 0.9 for i in range(60)]
    record_check("model", "overfit_batch", False,
                 headline="loss stayed at 0.95 after 60 steps <b>not bold</b>",
                 metrics={{"final_loss": losses[-1], "steps": 60}},
                 examples=[{{"step": 0, "loss": losses[0]}}, {{"step": 59, "loss": losses[-1]}}])
    record_figure("overfit_batch.loss", "line",
                  {{"series": {{"loss": losses, "target": [0.05] * 60}}, "x_label": "step",
                   "y_label": "loss"}}, title="overfit one batch", check="overfit_batch",
                  caption="loss per optimizer step")
    assert False, "did not overfit"

@pytest.mark.model
def test_evaluation_figures():
    record_check("eval", "calibration", True, headline="ECE 0.031", metrics={{"ece": 0.031}})
    record_figure("reliability", "bars",
                  {{"labels": [f"{{i / 10:.1f}}" for i in range(10)],
                   "series": {{"accuracy": [i / 10 + 0.02 for i in range(10)],
                              "confidence": [i / 10 + 0.05 for i in range(10)]}},
                   "x_label": "confidence bin", "y_label": "share"}},
                  title="reliability diagram", check="calibration")
    names = ["business", "sport", "tech"]
    record_figure("confusion", "heatmap",
                  {{"rows": names, "cols": names, "values": [[50, 2, 1], [0, 60, 3], [4, 0, 40]],
                   "row_label": "true", "col_label": "predicted"}}, title="confusion matrix")
    record_figure("picture", "png", {{"base64": PNG}}, title="made elsewhere")

@pytest.mark.behavioral
@pytest.mark.parametrize("case", range(2))
def test_trap(case):
    record_check("behavioral", f"typos_{{case}}", case == 0, metrics={{"cases": 5, "failed": case}},
                 group={{"capability": "Robustness", "test_type": "INV"}},
                 examples=[{{"input": "Arsnal won", "expected": "sport", "got": "tech"}}])

@pytest.mark.data
def test_skipped():
    pytest.skip("no data")
"""


@pytest.fixture
def figures_suite(pytester: pytest.Pytester) -> pytest.Pytester:
    """pytester with the suite above as ``test_figs.py``."""
    pytester.makepyfile(test_figs=FIGURES_SUITE.format(png=tiny_png()))
    return pytester


@pytest.fixture
def run_pytest(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``pytester.runpytest`` with only mltest loaded (``-p xdist`` where a test needs it).

    Scanning every installed plugin costs about 2 s per in-process run here.
    """
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")

    def run(*args: str) -> pytest.RunResult:
        return pytester.runpytest("-p", "mltest.plugin", *args)

    return run
