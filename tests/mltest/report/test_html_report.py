"""--ml-report-html: one self-contained page with the session, failures, tests and figures."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest

from mltest.html_report import render_html, svg_figure
from mltest.report import SessionReport


class _Page(HTMLParser):
    """Collects ids, tags and the resources a page would fetch."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.tags: dict[str, int] = {}
        self.fetches: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(str(values["id"]))
        for key in ("src", "href"):
            url = values.get(key)
            if url and not url.startswith(("data:", "#")):
                self.fetches.append(url)


def _parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    return page


def _run(pytester: pytest.Pytester, run_pytest: Any, *args: str) -> str:
    result = run_pytest("--ml", "--ml-seed", "17", "--ml-report-html", "r.html", *args)
    result.assert_outcomes(passed=3, failed=1, skipped=1)
    result.stdout.fnmatch_lines([f"HTML report written to {pytester.path / 'r.html'}"])
    return (pytester.path / "r.html").read_text(encoding="utf-8")


def test_page_has_every_section_and_fetches_nothing(
    figures_suite: pytest.Pytester, run_pytest: Any
) -> None:
    html = _run(figures_suite, run_pytest)
    page = _parse(html)
    assert {"session", "attention", "tests", "figures", "f-kind", "f-outcome"} <= page.ids
    assert page.fetches == []  # no CDN, no fonts, no network
    assert page.tags["style"] == 1
    assert page.tags["script"] == 1
    assert "<link" not in html
    assert "@import" not in html
    # the session header: seed, replay command, environment
    assert "pytest --ml --ml-seed 17" in html
    assert "<th>python</th>" in html
    assert "<li><span>pytest</span> <code>" in html
    # the failure's diagnosis and example table, escaped
    assert "loss stayed at 0.95 after 60 steps &lt;b&gt;not bold&lt;/b&gt;" in html
    assert "<b>not bold</b>" not in html
    assert "<th>step</th><th>loss</th>" in html
    assert "pytest --ml --ml-seed 17 test_figs.py::test_overfit_fails" in html
    # expected failures are counted, not listed as needing attention
    attention = html[html.index('id="attention"') : html.index('id="tests"')]
    assert "typos_1" not in attention
    assert "1 failed check inside tests that did not fail" in attention
    # one table row per ML test, with data for the filters
    rows = re.findall(r'<tr class="test" data-outcome="(\w+)" data-kinds="([\w ]+)"', html)
    assert sorted(rows) == [
        ("failed", "model"),
        ("passed", "behavioral"),
        ("passed", "behavioral"),
        ("passed", "eval model"),
        ("skipped", "data"),
    ]


def test_every_figure_kind_is_drawn(figures_suite: pytest.Pytester, run_pytest: Any) -> None:
    html = _run(figures_suite, run_pytest)
    figures = html[html.index('id="figures"') :]
    assert "Figures (4)" in figures
    for kind in ("line", "bars", "heatmap", "png"):
        assert f'data-kind="{kind}"' in figures
    assert figures.count("<svg") == 3  # line, bars, heatmap; the png is an <img>
    assert "<polyline" in figures  # the loss curve
    assert figures.count("<rect") >= 20 + 9  # 2x10 bars, 3x3 cells
    assert '<img alt="made elsewhere" src="data:image/png;base64,iVBORw0KGgo' in figures
    # the loss curve is also shown beside its failed check
    attention = html[html.index('id="attention"') : html.index('id="tests"')]
    assert "<polyline" in attention
    assert "loss per optimizer step" in attention


def test_ini_key_and_xdist_merge_give_the_same_page(
    figures_suite: pytest.Pytester, run_pytest: Any
) -> None:
    pytest.importorskip("xdist")
    serial = _run(figures_suite, run_pytest)
    figures_suite.makeini("[pytest]\nml_report_html = r.html\n")
    result = run_pytest("--ml", "--ml-seed", "17", "-p", "xdist", "-n", "2")
    result.assert_outcomes(passed=3, failed=1, skipped=1)
    parallel = (figures_suite.path / "r.html").read_text(encoding="utf-8")

    def stable(text: str) -> str:
        return re.sub(r"[\d.]+s</td>", "s</td>", text)  # durations differ

    assert stable(parallel) == stable(serial)


def test_svg_figures_survive_bad_data() -> None:
    """Non-finite points are left out, unknown kinds and bad PNG data say so."""
    line = svg_figure(
        {"kind": "line", "data": {"series": {"loss": [1.0, "nan", "inf", 0.5]}}, "name": "l"}
    )
    assert line.startswith("<svg")
    assert line.count(",") == 2
    assert "no finite points" in svg_figure({"kind": "line", "data": {"series": {"a": ["nan"]}}})
    assert "not a base64 PNG" in svg_figure(
        {"kind": "png", "data": {"base64": '"><script>x</script>'}}
    )
    assert "unknown figure kind pie" in svg_figure({"kind": "pie", "data": {}})
    big = svg_figure(
        {"kind": "heatmap", "data": {"values": [[i * j for j in range(30)] for i in range(30)]}}
    )
    assert big.count("<rect") == 900
    assert big.count("<text") == 60


def test_cells_are_compact() -> None:
    from mltest.html_report import _fmt

    shifted = [{"quantile": 0.95, "reference": 44.717479, "current": 60.3277}, {"value": "a"}]
    assert _fmt(shifted) == "{quantile: 0.95, reference: 44.72, current: 60.33}; {value: a}"
    assert _fmt({"ids": [1, 2.123456], "tag": "x"}) == "ids: [1, 2.123], tag: x"
    assert _fmt("x" * 300).endswith("...")
    assert len(_fmt("x" * 300)) == 200


def test_empty_report_renders() -> None:
    page = render_html(SessionReport(seed=1, devices=["cpu"], ml_enabled=False).to_json())
    assert "No ML tests in this run." in page
    assert "No figures were recorded." in page
    assert "No failed checks in failing tests." in page


def test_session_and_test_details_show_everything_recorded() -> None:
    report = SessionReport(seed=5, devices=["cpu", "cuda"], ml_enabled=True)
    report.environment = {
        "python": "3.11.7",
        "implementation": "CPython",
        "git": {"sha": "0123456789abcdef", "dirty": True, "modified": False, "untracked": 3},
        "dvc": {"data/prepared": "abc.dir"},
        "devices": {"torch_loaded": True, "cuda_available": False},
        "packages": {"torch": "2.13.0", "absent": None},
    }
    report.add(
        {
            "nodeid": "t.py::test_eval",
            "outcome": "skipped",
            "duration_s": 0.5,
            "markers": ["model"],
            "skip_reason": "needs cuda",
            "checks": [],
            "metrics": {"macro_f1": 0.97},
            "artifacts": {"confusion": "artifacts/confusion.png"},
            "data": {"n_train": 1780},
            "figures": [],
        }
    )
    page = render_html(report.to_json())
    assert "<th>git</th><td>0123456789ab (3 untracked)</td>" in page
    assert "<th>data/prepared</th><td>abc.dir</td>" in page
    assert "<th>torch devices</th><td>cuda_available: False</td>" in page
    assert "<li><span>torch</span> <code>2.13.0</code></li>" in page
    assert "absent" not in page
    assert "<th>macro_f1</th><td>0.97</td>" in page
    assert "<th>confusion</th><td>artifacts/confusion.png</td>" in page
    assert "<th>n_train</th><td>1780</td>" in page
    assert "skipped: needs cuda" in page
    assert "<th>devices</th><td>cpu, cuda</td>" in page
