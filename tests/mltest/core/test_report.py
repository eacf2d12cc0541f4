"""The terminal section, the JSON report, the step summary, and xdist aggregation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mltest.report import REPORT_SCHEMA, SessionReport, jsonable

SUITE = """
import pytest
from mltest.report import record_check, record_metric

@pytest.mark.model
def test_shape(ml_record):
    ml_record.metric("loss", 0.25)
    record_check("model", "output_shape", True, metrics={"rows": 4})

@pytest.mark.model
def test_overfit():
    record_check("model", "overfit_batch", False, headline="loss stayed at 1.6",
                 metrics={"final_loss": 1.6}, examples=[{"step": 50, "loss": 1.6}])
    assert False, "did not overfit"

@pytest.mark.behavioral
@pytest.mark.parametrize("case", range(3))
def test_inv(case):
    record_check("behavioral", f"typos_{case}", case != 1,
                 metrics={"cases": 10, "failed": case},
                 group={"capability": "Robustness", "test_type": "INV"})

@pytest.mark.data
def test_skipped_data():
    pytest.skip("no data today")

def test_plain_untracked():
    pass
"""


def _report(pytester: pytest.Pytester, *args: str) -> dict[str, Any]:
    result = pytester.runpytest("--ml", "--ml-seed", "5", "--ml-report", "out/r.json", *args)
    result.assert_outcomes(passed=5, failed=1, skipped=1)
    data: dict[str, Any] = json.loads((pytester.path / "out" / "r.json").read_text())
    return data


def test_json_report_schema_and_content(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    data = _report(pytester)
    assert data["schema"] == REPORT_SCHEMA
    assert data["session"] == {
        "seed": 5,
        "replay": "--ml-seed 5",
        "devices": ["auto"],
        "ml_enabled": True,
    }
    env = data["environment"]
    assert env["packages"]["pytest"]
    assert {"python", "platform", "git", "dvc", "devices", "packages"} <= set(env)
    assert data["summary"]["outcomes"] == {"passed": 4, "failed": 1, "skipped": 1}
    assert data["summary"]["checks"] == {
        "behavioral": {"passed": 2, "failed": 1},
        "model": {"passed": 1, "failed": 1},
    }
    by_id = {t["nodeid"]: t for t in data["tests"]}
    # ML tests are all there; the plain test recorded nothing and is left out.
    assert "test_suite.py::test_plain_untracked" not in by_id
    overfit = by_id["test_suite.py::test_overfit"]
    assert overfit["outcome"] == "failed"
    assert overfit["markers"] == ["model"]
    assert overfit["checks"] == [
        {
            "kind": "model",
            "name": "overfit_batch",
            "passed": False,
            "headline": "loss stayed at 1.6",
            "metrics": {"final_loss": 1.6},
            "examples": [{"step": 50, "loss": 1.6}],
            "group": None,
        }
    ]
    assert by_id["test_suite.py::test_shape"]["metrics"] == {"loss": 0.25}
    skipped = by_id["test_suite.py::test_skipped_data"]
    assert (skipped["outcome"], skipped["skip_reason"]) == ("skipped", "no data today")


def test_terminal_section(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("--ml", "--ml-report", "r.json")
    result.stdout.fnmatch_lines(
        [
            "*= mltest =*",
            "checks  behavioral: 2 passed, 1 failed; model: 1 passed, 1 failed",
            "behavioral:",
            "  capability  test_type  cases  failed  fail rate",
            "  Robustness  INV        30     3       10.0%",
            "failed checks:",
            "  model/overfit_batch in test_suite.py::test_overfit: loss stayed at 1.6",
            "expected failures: 1 failed check inside tests that passed "
            "(-v lists them; so does the JSON report)",
            "metrics:",
            "  test_suite.py::test_shape: loss=0.25",
            f"JSON report written to {pytester.path / 'r.json'}",
        ]
    )
    result.stdout.no_fnmatch_line("*behavioral/typos_1*")


def test_no_section_when_nothing_to_say(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_a(): pass")
    result = pytester.runpytest("--ml")
    result.stdout.no_fnmatch_line("*= mltest =*")


def test_header_has_environment_line_for_ml_runs(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_a(): pass")
    pytester.runpytest("--ml").stdout.fnmatch_lines(["mltest env: python *"])
    pytester.runpytest().stdout.no_fnmatch_line("mltest env: *")


def test_github_step_summary(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    summary = pytester.path / "summary.md"
    summary.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    pytester.makepyfile(test_suite=SUITE)
    pytester.runpytest("--ml", "--ml-seed", "9")
    text = summary.read_text()
    assert text.startswith("# earlier step\n## mltest\n")
    assert "Seed `9` (replay with `--ml-seed 9`)" in text
    assert "| `test_suite.py::test_overfit` | model/overfit_batch | loss stayed at 1.6 |" in text
    assert "| Robustness | INV | 30 | 3 | 10.0% |" in text
    assert "expected failures: 1 failed check inside tests that passed" in text
    assert "typos_1" not in text
    assert "| `test_suite.py::test_shape` | loss=0.25 |" in text


def test_xdist_run_matches_serial_run(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(test_suite=SUITE)
    serial = _report(pytester)
    parallel = _report(pytester, "-n", "2", "-p", "xdist")

    def comparable(data: dict[str, Any]) -> dict[str, Any]:
        return {
            t["nodeid"]: {k: v for k, v in t.items() if k != "duration_s"} for t in data["tests"]
        }

    assert comparable(parallel) == comparable(serial)
    assert parallel["summary"] == serial["summary"]


def test_xdist_random_session_seed_is_shared_with_workers(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.ml
        @pytest.mark.parametrize("i", range(4))
        def test_a(i, ml_seed, ml_record):
            ml_record["seed"] = ml_seed
        """
    )
    result = pytester.runpytest("--ml", "-n", "2", "--ml-report", "r.json")
    result.assert_outcomes(passed=4)
    data = json.loads((pytester.path / "r.json").read_text())
    from mltest.repro import derive_seed

    session_seed = data["session"]["seed"]
    for test in data["tests"]:
        assert test["data"]["seed"] == derive_seed(session_seed, test["nodeid"])


def test_report_write_is_atomic_and_keeps_previous_on_failure(tmp_path: Path) -> None:
    report = SessionReport(seed=1, devices=["cpu"], ml_enabled=True)
    target = tmp_path / "r.json"
    report.write_json(target)
    before = target.read_text()
    report.environment = {"bad": object()}  # not JSON-serialisable
    with pytest.raises(TypeError):
        report.write_json(target)
    assert target.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_jsonable_handles_numpy_torch_and_odd_values() -> None:
    np = pytest.importorskip("numpy")
    torch = pytest.importorskip("torch")
    value = {
        "np_scalar": np.float32(0.5),
        "np_array": np.arange(3),
        "long": np.arange(100),
        "tensor": torch.tensor([[1.0, 2.0]]),
        "scalar_tensor": torch.tensor(3),
        "nan": float("nan"),
        "inf": -float("inf"),
        "path": Path("a/b"),
        "set": {1},
        "obj": object,
        "text": "x" * 600,
    }
    out = jsonable(value)
    assert out["np_scalar"] == 0.5
    assert out["np_array"] == [0, 1, 2]
    assert len(out["long"]) == 50
    assert out["tensor"] == [[1.0, 2.0]]
    assert out["scalar_tensor"] == 3
    assert (out["nan"], out["inf"]) == ("nan", "-inf")
    assert out["path"] == "a/b"
    assert out["set"] == [1]
    assert out["obj"] == "<class 'object'>"
    assert len(out["text"]) == 500
    json.dumps(out)


def test_record_calls_outside_pytest_are_noops() -> None:
    import subprocess
    import sys

    code = (
        "from mltest.report import record_check, record_metric, record_artifact, current_record\n"
        "record_check('model', 'x', False); record_metric('m', 1); record_artifact('a', 'p')\n"
        "print(current_record())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "None"


def test_checks_recorded_in_fixture_teardown_are_kept(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from mltest.report import record_check

        @pytest.fixture
        def late():
            yield
            record_check("data", "late_check", True)

        def test_a(late):
            pass
        """
    )
    pytester.runpytest("--ml-report", "r.json").assert_outcomes(passed=1)
    data = json.loads((pytester.path / "r.json").read_text())
    assert [c["name"] for c in data["tests"][0]["checks"]] == ["late_check"]


def test_failing_teardown_is_an_error_in_the_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def broken():
            yield
            raise RuntimeError("teardown broke")

        @pytest.mark.ml
        def test_a(broken):
            pass
        """
    )
    pytester.runpytest("--ml", "--ml-report", "r.json").assert_outcomes(passed=1, errors=1)
    data = json.loads((pytester.path / "r.json").read_text())
    assert data["tests"][0]["outcome"] == "error"


def test_xfail_outcomes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.ml
        @pytest.mark.xfail(reason="known")
        def test_x():
            assert False
        """
    )
    pytester.runpytest("--ml", "--ml-report", "r.json").assert_outcomes(xfailed=1)
    data = json.loads((pytester.path / "r.json").read_text())
    assert data["tests"][0]["outcome"] == "xfailed"


def test_record_opened_late_keeps_the_earlier_failure(pytester: pytest.Pytester) -> None:
    """A test that records only in teardown still reports its failed call."""
    pytester.makepyfile(
        """
        import pytest
        from mltest.report import record_metric

        @pytest.fixture
        def late():
            yield
            record_metric("late", 1)

        def test_fails(late):
            assert False
        """
    )
    pytester.runpytest("--ml-report", "r.json").assert_outcomes(failed=1)
    data = json.loads((pytester.path / "r.json").read_text())
    (test,) = data["tests"]
    assert (test["outcome"], test["metrics"]) == ("failed", {"late": 1})
    assert test["seed"] is not None


def test_terminal_section_without_a_report_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("--ml")
    result.stdout.fnmatch_lines(
        [
            "*= mltest =*",
            "checks  behavioral: 2 passed, 1 failed; model: 1 passed, 1 failed",
            "failed checks:",
            "  model/overfit_batch in test_suite.py::test_overfit: loss stayed at 1.6",
        ]
    )
    result.stdout.no_fnmatch_line("*report written to*")


def test_record_figure_keeps_long_series_thinned_and_rejects_unknown_kinds():
    from mltest import report

    record = report.TestRecord(nodeid="t")
    report._push(record)
    try:
        report.record_figure("loss", "line", {"series": {"loss": list(range(2000))}}, check="c")
        with pytest.raises(ValueError, match="figure kind 'pie' is not one of"):
            report.record_figure("x", "pie", {})
    finally:
        report._pop()
    (figure,) = record.figures
    points = figure["data"]["series"]["loss"]
    assert len(points) == report.MAX_FIGURE_POINTS
    assert points[0] == 0
    assert points[-1] == 1999
    assert figure["check"] == "c"
    assert record.to_dict()["figures"] == [figure]


def test_atomic_writes_get_the_mode_a_plain_open_gives(tmp_path):
    import os

    from mltest.report import write_json_atomic

    old = os.umask(0o022)
    try:
        path = write_json_atomic(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
    assert json.loads(path.read_text()) == {"a": 1}
