"""Bad report paths and ini values: one line, the right exit status, nothing lost."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mltest import report as report_module

PASSING = "def test_ok():\n    pass\n"


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (None for folders)."""
    return {
        str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes())
        for p in sorted(root.rglob("*"))
        if "__pycache__" not in p.parts and ".pytest_cache" not in p.parts
    }


@pytest.mark.parametrize("option", ["--ml-report", "--ml-report-html"])
@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ("notes.txt/r.json", "{root}/notes.txt is a file, not a folder"),
        ("notes.txt/deeper/r.json", "{root}/notes.txt is a file, not a folder"),
        ("reports", "is a folder: give a file path, e.g. {root}/reports/mltest-report.json"),
    ],
)
def test_unwritable_report_path_is_a_usage_error_before_tests_run(
    pytester: pytest.Pytester, option: str, target: str, problem: str
) -> None:
    (pytester.path / "notes.txt").write_text("keep me\n")
    (pytester.path / "reports").mkdir()
    (pytester.path / "reports" / "old.json").write_text("{}\n")
    pytester.makepyfile(test_a="def test_a():\n    open('ran', 'w').close()\n")
    before = _snapshot(pytester.path)
    result = pytester.runpytest(option, target)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    expected = problem.format(root=pytester.path)
    assert result.stderr.lines[0] == f"ERROR: {option} {target}: {expected}"
    assert not (pytester.path / "ran").exists()  # no test ran
    assert _snapshot(pytester.path) == before


def test_ini_report_path_problem_names_the_ini_key(pytester: pytest.Pytester) -> None:
    (pytester.path / "notes.txt").write_text("keep me\n")
    pytester.makeini("[pytest]\nml_report_html = notes.txt/r.html\n")
    pytester.makepyfile(PASSING)
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.lines[0] == (
        f"ERROR: ini ml_report_html notes.txt/r.html: {pytester.path}/notes.txt is a file, "
        "not a folder"
    )


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders"
)
def test_read_only_folder_is_a_usage_error(pytester: pytest.Pytester) -> None:
    folder = pytester.path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        pytester.makepyfile(PASSING)
        result = pytester.runpytest("--ml-report", "locked/r.json")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        assert result.stderr.lines[0] == (
            f"ERROR: --ml-report locked/r.json: folder {folder} is not writable"
        )
    finally:
        folder.chmod(0o755)


def test_read_only_folder_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same check where the suite runs as root: the folder's permission bits are asked."""
    asked: list[tuple[str, int]] = []

    def access(path: os.PathLike[str] | str, mode: int) -> bool:
        asked.append((os.fspath(path), mode))
        return False

    monkeypatch.setattr(report_module.os, "access", access)
    assert report_module.output_path_problem(tmp_path / "new" / "r.json") == (
        f"folder {tmp_path} is not writable"
    )
    assert asked == [(str(tmp_path), os.W_OK | os.X_OK)]


@pytest.mark.parametrize("option", ["--ml-report", "--ml-report-html"])
def test_report_that_cannot_be_written_at_the_end_keeps_the_test_outcome(
    pytester: pytest.Pytester, option: str
) -> None:
    """The folder turns into a file during the run: one line, the "1 passed" line, exit 0."""
    pytester.makepyfile(
        test_a="""
        import shutil
        from pathlib import Path

        def test_replaces_the_report_folder():
            shutil.rmtree("out")
            Path("out").write_text("a file now")
        """
    )
    (pytester.path / "out").mkdir()
    result = pytester.runpytest(option, "out/r.data")
    assert result.ret == pytest.ExitCode.OK
    what = "JSON report" if option == "--ml-report" else "HTML report"
    result.stdout.fnmatch_lines(
        [
            "*= mltest =*",
            f"mltest: could not write the {what} to {pytester.path}/out/r.data: "
            "a folder on that path is a regular file",
            "*= 1 passed in *",
        ]
    )
    assert (pytester.path / "out").read_text() == "a file now"


def test_failed_tests_keep_their_exit_status_when_the_report_fails(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_a="""
        import shutil
        from pathlib import Path

        def test_fails():
            shutil.rmtree("out")
            Path("out").write_text("x")
            assert False
        """
    )
    (pytester.path / "out").mkdir()
    result = pytester.runpytest("--ml-report", "out/r.json")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["mltest: could not write the JSON report to *", "*= 1 failed *"])


def test_existing_report_is_replaced_whole(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(PASSING)
    (pytester.path / "r.html").write_text("old")
    result = pytester.runpytest("--ml-report-html", "r.html")
    assert result.ret == pytest.ExitCode.OK
    assert (pytester.path / "r.html").read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in pytester.path.glob(".r.html*")] == []


@pytest.mark.parametrize("key", ["ml", "ml_update_baselines"])
def test_bad_ini_truth_value_names_the_key(pytester: pytest.Pytester, key: str) -> None:
    pytester.makeini(f"[pytest]\n{key} = maybe\n")
    pytester.makepyfile(PASSING)
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.lines[0] == (
        f"ERROR: ini {key}: invalid truth value 'maybe' (use true/false)"
    )
