"""Expectation-suite files run as pytest items, as users meet them (pytester)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

RunPytest = Callable[..., pytest.RunResult]

pytest.importorskip("great_expectations")

TRAIN_CSV = "title,tag,score\nhello,sport,0.5\nworld,tech,0.7\nfoo,sprot,1.4\nbar,tech,0.2\n"

TRAIN_SUITE = """\
data: data/train.csv
expectations:
  - expect_column_values_to_not_be_null: {column: title}
  - expect_column_values_to_be_in_set: {column: tag, value_set: [sport, tech]}
  - expect_column_values_to_be_between: {column: score, min_value: 0, max_value: 1}
    id: score-range
  - expect_table_row_count_to_be_between: {min_value: 1, max_value: 100}
"""

# GX's own suite JSON, as `suite.to_json_dict()` writes it, plus where the data comes from.
LIVE_SUITE = {
    "name": "live",
    "id": "6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b",
    "expectations": [
        {
            "id": "0b9d2a4e-5f3c-4d8e-9a1b-2c3d4e5f6a7b",
            "type": "expect_column_values_to_be_unique",
            "kwargs": {"column": "title"},
            "meta": {},
            "severity": "critical",
        },
        {
            "type": "expect_column_mean_to_be_between",
            "kwargs": {"column": "score", "min_value": 0.0, "max_value": 0.5},
            "meta": {"owner": "data-team"},
            "severity": "critical",
        },
    ],
    "meta": {"great_expectations_version": "1.24.1", "mltest": {"fixture": "live_frame"}},
    "notes": None,
}

CONFTEST = """\
import pandas as pd
import pytest

CALLS = []

@pytest.fixture
def live_frame():
    CALLS.append(1)
    return pd.DataFrame({"title": ["a", "b", "a"], "score": [0.9, 0.8, 0.7]})
"""

CHECK_CALLS = """\
import conftest

def test_fixture_built_once():
    assert len(conftest.CALLS) == 1
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    (pytester.path / "data").mkdir()
    (pytester.path / "data" / "train.csv").write_text(TRAIN_CSV)
    pytester.makefile(".expectations.yaml", train=TRAIN_SUITE)
    pytester.makefile(".expectations.json", live=json.dumps(LIVE_SUITE, indent=2))
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_zz_calls=CHECK_CALLS)
    return pytester


def test_collection_ids_skip_and_select(project: pytest.Pytester, run_pytest: RunPytest) -> None:
    listed = run_pytest("--collect-only", "-q")
    listed.stdout.fnmatch_lines(
        [
            "live.expectations.json::expect_column_values_to_be_unique[title]",
            "live.expectations.json::expect_column_mean_to_be_between[score]",
            "test_zz_calls.py::test_fixture_built_once",
            "train.expectations.yaml::expect_column_values_to_not_be_null[title]",
            "train.expectations.yaml::expect_column_values_to_be_in_set[tag]",
            "train.expectations.yaml::expect_column_values_to_be_between[score-range]",
            "train.expectations.yaml::expect_table_row_count_to_be_between[4]",
        ]
    )
    skipped = run_pytest("-rs", "-k", "not calls")
    skipped.assert_outcomes(skipped=6)
    skipped.stdout.fnmatch_lines(
        [
            "SKIPPED [[]2[]] live.expectations.json*: needs --ml",
            "SKIPPED [[]4[]] train.expectations.yaml*: needs --ml",
        ]
    )
    selected = run_pytest("--ml", "-k", "in_set or row_count")
    selected.assert_outcomes(passed=1, failed=1, deselected=5)
    marked = run_pytest("--ml", "-m", "data and not unit", "--co", "-q")
    marked.stdout.fnmatch_lines(["6/7 tests collected (1 deselected)*"])


def test_each_expectation_reports_its_own_result(
    project: pytest.Pytester, run_pytest: RunPytest
) -> None:
    result = run_pytest("--ml", "--ml-report", "report.json")
    result.assert_outcomes(passed=3, failed=4)
    result.stdout.fnmatch_lines(
        [
            "*_ live.expectations.json::expect_column_values_to_be_unique[[]title[]] _*",
            "expect_column_values_to_be_unique[[]title[]] failed on fixture 'live_frame' "
            "(3 rows), suite live.expectations.json",
            "",
            "expect_column_values_to_be_unique(column='title')",
            "  unexpected: 2 of 3 rows (66.67%)",
            "  row  value",
            "    0  'a'",
            "    2  'a'",
            "",
            "Fix the rows shown, or relax the expectation (mostly: 0.99 tolerates 1% "
            "unexpected rows).",
            "*_ live.expectations.json::expect_column_mean_to_be_between[[]score[]] _*",
            "expect_column_mean_to_be_between[[]score[]] failed on fixture 'live_frame' "
            "(3 rows), suite live.expectations.json",
            "",
            "expect_column_mean_to_be_between(column='score', min_value=0.0, max_value=0.5)",
            "  observed: 0.8",
            "",
            "Fix the data, or update the expectation if the change is intended.",
            "*_ train.expectations.yaml::expect_column_values_to_be_in_set[[]tag[]] _*",
            "expect_column_values_to_be_in_set[[]tag[]] failed on data/train.csv (4 rows), "
            "suite train.expectations.yaml",
            "",
            "expect_column_values_to_be_in_set(column='tag', value_set=['sport', 'tech'])",
            "  unexpected: 1 of 4 rows (25.00%)",
            "  row  value",
            "    2  'sprot'",
        ]
    )
    assert "Traceback" not in result.stdout.str()
    report = json.loads((project.path / "report.json").read_text())
    checks = [c for t in report["tests"] for c in t.get("checks", [])]
    by_name = {c["name"]: c for c in checks}
    assert by_name["expect_column_values_to_be_in_set[tag]"]["passed"] is False
    assert by_name["expect_column_values_to_be_in_set[tag]"]["metrics"]["unexpected_count"] == 1
    assert by_name["expect_column_values_to_be_in_set[tag]"]["examples"] == [
        {"row": 2, "value": "sprot"}
    ]
    assert by_name["expect_column_values_to_not_be_null[title]"]["passed"] is True
    # --lf reruns exactly the four failed expectations
    again = run_pytest("--ml", "--lf")
    again.assert_outcomes(failed=4)
    again.stdout.fnmatch_lines(["run-last-failure: rerun previous 4 failures*"])


BAD_SUITES = {
    "unknown": "data: ok.csv\nexpectations:\n  - expect_column_values_to_be_inn_set: {column: a}\n",
    "wrongargs": "data: ok.csv\nexpectations:\n"
    "  - expect_column_values_to_be_in_set: {column: a}\n"
    "  - expect_column_values_to_not_be_null: {column: a, colour: red}\n",
    "nocolumn": "data: ok.csv\nexpectations:\n"
    "  - expect_column_values_to_not_be_null: {column: b}\n",
    "missingdata": "data: nowhere.csv\nexpectations:\n"
    "  - expect_column_values_to_not_be_null: {column: a}\n",
    "badcsv": "data: bad.parquet\nexpectations:\n"
    "  - expect_column_values_to_not_be_null: {column: a}\n",
    "badyaml": "data: ok.csv\nexpectations: [\n",
    "nodata": "expectations:\n  - expect_column_values_to_not_be_null: {column: a}\n",
    "notalist": "data: ok.csv\nexpectations:\n  - 42\n",
}


def test_bad_suites_get_one_clear_line_each(
    pytester: pytest.Pytester, run_pytest: RunPytest
) -> None:
    pytester.path.joinpath("ok.csv").write_text("a\n1\n2\n")
    pytester.path.joinpath("bad.parquet").write_text("this is not parquet")
    pytester.makefile(".expectations.yaml", **BAD_SUITES)
    result = run_pytest("--ml", "--continue-on-collection-errors")
    result.assert_outcomes(failed=6, errors=3)
    plain = run_pytest("--continue-on-collection-errors")  # no --ml: data is not read
    plain.assert_outcomes(skipped=6, errors=3)
    result.stdout.fnmatch_lines_random(
        [
            "unknown.expectations.yaml: expectation #1 expect_column_values_to_be_inn_set: "
            "unknown expectation 'expect_column_values_to_be_inn_set': "
            "did you mean expect_column_values_to_be_in_set?",
            "wrongargs.expectations.yaml: expectation #1 expect_column_values_to_be_in_set: "
            "bad arguments: value_set: field required",
            "wrongargs.expectations.yaml: expectation #2 expect_column_values_to_not_be_null: "
            "bad arguments: colour: extra fields not permitted",
            "nocolumn.expectations.yaml: expectation #1 expect_column_values_to_not_be_null: "
            "column 'b' is not in the data (columns: a)",
            "missingdata.expectations.yaml: data file 'nowhere.csv' not found",
            "badcsv.expectations.yaml: cannot read data file 'bad.parquet': *",
            "badyaml.expectations.yaml: not valid YAML at line 2: *",
            "nodata.expectations.yaml: name the data with exactly one of "
            "'data: <csv/parquet path>' or 'fixture: <fixture name>'",
            "notalist.expectations.yaml: expectation #1 is int, not a mapping: *",
        ]
    )
    out = result.stdout.str()
    assert "Traceback" not in out
    assert "great_expectations/" not in out
    assert "pydantic" not in out
