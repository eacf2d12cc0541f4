"""python -m mltest.data, the entry point of the mltest-data pre-commit hook."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("great_expectations")

from mltest.data.__main__ import main

SUITE = """\
data: ../data/train.csv
expectations:
  - expect_column_values_to_be_in_set: {column: tag, value_set: [sport, tech]}
  - expect_column_values_to_not_be_null: {column: title}
"""


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "data" / "train.csv").write_text("title,tag\na,sport\nb,tech\n")
    (tmp_path / "data" / "other.csv").write_text("x\n1\n")
    (tmp_path / "tests" / "train.expectations.yaml").write_text(SUITE)
    (tmp_path / "tests" / "live.expectations.yaml").write_text(
        "fixture: live_frame\nexpectations:\n  - expect_column_values_to_not_be_null: {column: a}\n"
    )
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "broken.expectations.yaml").write_text("not: [a suite")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_changed_data_file_is_checked_against_its_suite(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["data/train.csv"]) == 0
    assert capsys.readouterr().out == (
        "PASS tests/train.expectations.yaml: 2 expectations held on data/train.csv (2 rows)\n"
    )
    assert main(["data/other.csv"]) == 0  # no suite names it
    assert capsys.readouterr().out == "SKIP data/other.csv: no suite under . names it\n"

    (repo / "data" / "train.csv").write_text("title,tag\na,sport\n,sprot\n")
    assert main(["data/train.csv"]) == 1
    assert capsys.readouterr().out == (
        "FAIL tests/train.expectations.yaml: 2 of 2 expectations failed on data/train.csv "
        "(2 rows)\n"
        "  expect_column_values_to_be_in_set(column='tag', value_set=['sport', 'tech'])\n"
        "    unexpected: 1 of 2 rows (50.00%)\n"
        "    row  value\n"
        "      1  'sprot'\n"
        "  expect_column_values_to_not_be_null(column='title')\n"
        "    unexpected: 1 of 2 rows (50.00%)\n"
        "    row  value\n"
        "      1  nan\n"
    )


def test_no_files_checks_every_suite_and_skips_fixture_suites(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "SKIP tests/live.expectations.yaml: data comes from fixture 'live_frame' (pytest --ml)",
        "PASS tests/train.expectations.yaml: 2 expectations held on data/train.csv (2 rows)",
    ]


def test_bad_input_exits_2_with_one_line(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "tests" / "train.expectations.yaml").write_text(
        SUITE.replace("column: title", "column: headline")
    )
    assert main(["tests/train.expectations.yaml"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "mltest-data: tests/train.expectations.yaml: expectation #2 "
        "expect_column_values_to_not_be_null: column 'headline' is not in the data "
        "(columns: tag, title)\n"
    )
    (repo / "tests" / "train.expectations.yaml").write_text(SUITE)
    (repo / "data" / "train.csv").rename(repo / "data" / "moved.csv")
    assert main(["tests/train.expectations.yaml"]) == 2
    assert capsys.readouterr().err == (
        "mltest-data: tests/train.expectations.yaml: data file 'data/train.csv' not found\n"
    )
    (repo / "data" / "train.csv").write_bytes(b"\xff\xfe\x00garbage")
    assert main(["data/train.csv"]) == 2
    assert capsys.readouterr().err.startswith(
        "mltest-data: tests/train.expectations.yaml: cannot read data file 'train.csv': "
    )


def test_module_entry_point_runs(repo: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mltest.data", "--help"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("usage: python -m mltest.data [-h]")


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--root", "/nonexistent"], "mltest-data: --root /nonexistent: no such folder"),
        (["--root", "data/train.csv"], "mltest-data: --root data/train.csv: not a folder"),
        (["data/missing.csv"], "mltest-data: data/missing.csv: no such data file"),
        (
            ["tests/gone.expectations.yaml"],
            "mltest-data: tests/gone.expectations.yaml: no such suite file",
        ),
        (
            ["notes.txt"],
            "mltest-data: notes.txt: not a suite (*.expectations.yaml, *.expectations.yml, "
            "*.expectations.json) or a data file (.csv, .tsv, .parquet, .pq, .jsonl)",
        ),
        (
            ["x.expectations.yaml"],
            "mltest-data: x.expectations.yaml: is a folder, not a suite file",
        ),
    ],
)
def test_bad_paths_exit_2_with_one_line(
    repo: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    (repo / "notes.txt").write_text("hello\n")
    (repo / "x.expectations.yaml").mkdir()
    before = _tree(repo)
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert (captured.err, captured.out) == (message + "\n", "")
    assert _tree(repo) == before


def test_negative_max_examples_is_rejected(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--max-examples", "-1"])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "python -m mltest.data: error: argument --max-examples: -1 is negative: give 0 or more"
    )


def test_empty_root_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--root", str(tmp_path)]) == 0
    assert capsys.readouterr().out == f"mltest-data: no expectation suites under {tmp_path}\n"
