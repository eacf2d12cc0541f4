"""The terminal summary: what needs attention by default, the same under xdist."""

from __future__ import annotations

from typing import Any

import pytest

SUITE = """
import pytest
from mltest.report import record_check

@pytest.mark.data
def test_drift_first():
    record_check("data", "drift", True, metrics={"cases": 3, "failed": 0},
                 group={"check": "drift"})

@pytest.mark.data
@pytest.mark.parametrize("suite", ["a.expectations.yaml", "b.expectations.yaml"])
@pytest.mark.parametrize("column", ["title", "tag", "id"])
def test_suite_rows(suite, column):
    bad = suite.startswith("b") and column == "id"
    record_check("data", f"not_null[{column}]", not bad, metrics={"cases": 1, "failed": int(bad)},
                 headline="2 nulls in id" if bad else "", group={"check": "suite", "suite": suite})
    assert not bad, "nulls"

@pytest.mark.model
@pytest.mark.parametrize("lr", [0.0, 1.0])
def test_trap_catches_a_frozen_model(lr):
    # expects the check to fail: a trap, not a problem
    record_check("model", "overfit_batch", lr > 0, headline=f"loss flat at lr={lr}")

@pytest.mark.model
@pytest.mark.xfail(reason="known", strict=True)
def test_known_gap():
    record_check("model", "parity", False, headline="cpu/cuda differ")
    assert False
"""

DEFAULT_VIEW = [
    "checks  data: 6 passed, 1 failed; model: 1 passed, 2 failed",
    "data:",
    "  check  suite                cases  failed  fail rate",
    "  drift  -                    3      0       0.0%",
    "  suite  a.expectations.yaml  3      0       0.0%",
    "  suite  b.expectations.yaml  3      1       33.3%",
    "failed checks:",
    "  data/not_null[id] in test_s.py::test_suite_rows[id-b.expectations.yaml]: 2 nulls in id",
    "expected failures: 2 failed checks inside tests that passed or xfailed "
    "(-v lists them; so does the JSON report)",
]


def _section(lines: list[str]) -> list[str]:
    start = next(i for i, line in enumerate(lines) if "= mltest =" in line)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("="))
    return lines[start + 1 : end]


def test_default_view_lists_only_what_needs_attention(
    pytester: pytest.Pytester, run_pytest: Any
) -> None:
    pytester.makepyfile(test_s=SUITE)
    result = run_pytest("--ml", "-p", "no:randomly")
    result.assert_outcomes(passed=8, failed=1, xfailed=1)
    assert _section(result.stdout.lines) == DEFAULT_VIEW


def test_verbose_view_lists_expected_failures(pytester: pytest.Pytester, run_pytest: Any) -> None:
    pytester.makepyfile(test_s=SUITE)
    result = run_pytest("--ml", "-p", "no:randomly", "-v")
    section = _section(result.stdout.lines)
    assert section[: len(DEFAULT_VIEW) - 1] == DEFAULT_VIEW[:-1]
    assert section[len(DEFAULT_VIEW) - 1 :] == [
        "expected failures: 2 failed checks inside tests that passed or xfailed:",
        "  model/parity in test_s.py::test_known_gap: cpu/cuda differ (test xfailed)",
        "  model/overfit_batch in test_s.py::test_trap_catches_a_frozen_model[0.0]: "
        "loss flat at lr=0.0 (test passed)",
    ]


def test_xdist_summary_is_identical_to_the_serial_one(
    pytester: pytest.Pytester, run_pytest: Any
) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(test_s=SUITE)
    serial = run_pytest("--ml", "-p", "no:randomly", "--ml-report", "s.json")
    parallel = run_pytest(
        "--ml", "-p", "no:randomly", "-p", "xdist", "-n", "2", "--ml-report", "s.json"
    )
    parallel.assert_outcomes(passed=8, failed=1, xfailed=1)
    assert _section(parallel.stdout.lines) == _section(serial.stdout.lines)
    assert _section(serial.stdout.lines)[:-1] == DEFAULT_VIEW


def test_step_summary_is_the_short_summary_and_names_the_html_report(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, run_pytest: Any
) -> None:
    summary = pytester.path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.com")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/models")
    monkeypatch.setenv("GITHUB_RUN_ID", "42")
    pytester.makepyfile(test_s=SUITE)
    run_pytest("--ml", "--ml-seed", "3", "--ml-report-html", "out/mltest.html")
    text = summary.read_text()
    assert text.splitlines()[:5] == [
        "## mltest",
        "",
        "Seed `3` (replay with `--ml-seed 3`), devices: auto.",
        "",
        "HTML report (figures, failing examples): `mltest.html`, in "
        "[this run's artifacts](https://github.com/acme/models/actions/runs/42#artifacts).",
    ]
    assert "| suite | b.expectations.yaml | 3 | 1 | 33.3% |" in text
    assert (
        "| `test_s.py::test_suite_rows[id-b.expectations.yaml]` | data/not_null[id] "
        "| 2 nulls in id |" in text
    )
    assert "expected failures: 2 failed checks inside tests that passed or xfailed" in text
    assert "overfit_batch" not in text


def test_a_check_named_like_its_test_is_named_once() -> None:
    from mltest.report import SessionReport

    report = SessionReport(seed=1, devices=["cpu"], ml_enabled=True)
    name = "expect_column_values_to_be_unique[id]"
    report.add(
        {
            "nodeid": f"data/train.expectations.yaml::{name}",
            "outcome": "failed",
            "metrics": {},
            "checks": [
                {
                    "kind": "data",
                    "name": name,
                    "passed": False,
                    "headline": f"{name} failed on data/train.csv (7 rows)",
                    "metrics": {},
                    "group": None,
                }
            ],
        }
    )
    assert report.summary_lines()[-2:] == [
        "failed checks:",
        f"  data: data/train.expectations.yaml::{name}: failed on data/train.csv (7 rows)",
    ]
