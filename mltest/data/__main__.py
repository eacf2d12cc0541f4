"""``python -m mltest.data``: validate data files against their expectation suites.

Used by the ``mltest-data`` pre-commit hook, which passes the changed files:

* a changed suite (``*.expectations.yaml|yml|json``) is validated against its data;
* a changed data file (CSV, TSV, Parquet, JSONL) is validated against every
  suite under ``--root`` that names it;
* with no files, every suite under ``--root`` is validated.

Suites whose data comes from a pytest fixture are skipped (run them with
``pytest --ml``). Exit status: 0 all expectations held, 1 some failed, 2 bad
input (a bad suite, an unreadable data file), with one line per problem.

Example:
    >>> # python -m mltest.data data/train.csv tests/data/train.expectations.yaml
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from mltest.data.suites import DATA_SUFFIXES, SuiteDefinition, load_suite, read_data
from mltest.errors import MLTestError, MLUsageError

SUITE_SUFFIXES = (".expectations.yaml", ".expectations.yml", ".expectations.json")
_SKIP_DIRS = {".git", ".venv", "venv", "node_modules", ".nox", ".tox", "__pycache__", ".dvc"}

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _is_suite(path: Path) -> bool:
    return path.name.endswith(SUITE_SUFFIXES)


def find_suites(root: Path) -> Iterator[Path]:
    """Yield every suite file under ``root``, skipping virtualenvs and VCS folders.

    Example:
        >>> sorted(find_suites(Path("tests")))  # doctest: +SKIP
        [PosixPath('tests/data/train.expectations.yaml')]
    """
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
        for name in sorted(files):
            if name.endswith(SUITE_SUFFIXES):
                yield Path(folder) / name


def _display(path: Path) -> str:
    try:
        return path.resolve().relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(path)


def _validate(suite: SuiteDefinition, max_examples: int) -> tuple[int, list[str]]:
    """Return (exit code, lines to print) for one suite."""
    from mltest.data._gx import format_outcome, run_expectations

    where = _display(suite.path)
    if suite.data is None:
        return EXIT_OK, [f"SKIP {where}: data comes from fixture {suite.fixture!r} (pytest --ml)"]
    if not suite.data.is_file():
        raise MLUsageError(f"{where}: data file {_display(suite.data)!r} not found")
    frame = read_data(suite.data, where, suite.read_options)
    outcomes = run_expectations(frame, suite.specs, max_examples=max_examples, name=suite.name)
    errors = [o for o in outcomes if o.error is not None]
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise MLUsageError(
            f"{where}: expectation #{first.spec.position} {first.spec.type}: {first.error}{more}"
        )
    failed = [o for o in outcomes if not o.success]
    data = _display(suite.data)
    if not failed:
        return EXIT_OK, [
            f"PASS {where}: {len(outcomes)} expectations held on {data} ({len(frame):,} rows)"
        ]
    lines = [
        f"FAIL {where}: {len(failed)} of {len(outcomes)} expectations failed on {data} "
        f"({len(frame):,} rows)"
    ]
    for outcome in failed:
        lines.extend("  " + line for line in format_outcome(outcome, max_examples=max_examples))
    return EXIT_FAILED, lines


def _count(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"{number} is negative: give 0 or more")
    return number


def _bad_path(path: Path) -> str | None:
    """Why a path given on the command line cannot be checked, or None."""
    if _is_suite(path):
        if path.is_dir():
            return f"{_display(path)}: is a folder, not a suite file"
        return None if path.is_file() else f"{_display(path)}: no such suite file"
    if path.suffix.lower() in DATA_SUFFIXES:
        return None if path.is_file() else f"{_display(path)}: no such data file"
    return (
        f"{_display(path)}: not a suite (*{', *'.join(SUITE_SUFFIXES)}) or a data file "
        f"({', '.join(DATA_SUFFIXES)})"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status.

    Example:
        >>> main(["--root", "tests", "data/train.csv"])  # doctest: +SKIP
        0
    """
    parser = argparse.ArgumentParser(
        prog="python -m mltest.data",
        description="Validate data files against their expectation suites.",
    )
    parser.add_argument("files", nargs="*", type=Path, help="changed data files or suites")
    parser.add_argument(
        "--root", type=Path, default=Path("."), help="where to look for suites (default: .)"
    )
    parser.add_argument(
        "--max-examples", type=_count, default=5, help="unexpected values shown per expectation"
    )
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        what = "not a folder" if args.root.exists() else "no such folder"
        print(f"mltest-data: --root {args.root}: {what}", file=sys.stderr)
        return EXIT_USAGE
    problems = [p for p in map(_bad_path, args.files) if p is not None]
    for problem in problems:
        print(f"mltest-data: {problem}", file=sys.stderr)
    if problems:
        return EXIT_USAGE

    suites: list[Path] = []
    data_files: list[Path] = []
    for path in args.files:
        if _is_suite(path):
            suites.append(path)
        elif path.suffix.lower() in DATA_SUFFIXES:
            data_files.append(path.resolve())
    if not args.files:
        suites = list(find_suites(args.root))
        if not suites:
            print(f"mltest-data: no expectation suites under {_display(args.root)}")
    code = EXIT_OK
    loaded: list[SuiteDefinition] = []
    for path in suites:
        try:
            loaded.append(load_suite(path, _display(path)))
        except MLTestError as exc:
            print(f"mltest-data: {exc}", file=sys.stderr)
            code = EXIT_USAGE
    if data_files:
        wanted = set(data_files)
        for path in find_suites(args.root):
            if any(s.path.resolve() == path.resolve() for s in loaded):
                continue
            try:
                suite = load_suite(path, _display(path))
            except MLTestError:
                continue  # a broken suite that does not name a changed file is not ours
            if suite.data is not None and suite.data in wanted:
                loaded.append(suite)
        named = {s.data for s in loaded if s.data is not None}
        for data in data_files:
            if data not in named:
                print(f"SKIP {_display(data)}: no suite under {_display(args.root)} names it")
    for suite in loaded:
        try:
            status, lines = _validate(suite, args.max_examples)
        except MLTestError as exc:
            print(f"mltest-data: {exc}", file=sys.stderr)
            code = EXIT_USAGE
            continue
        print("\n".join(lines))
        if status == EXIT_FAILED and code == EXIT_OK:
            code = EXIT_FAILED
    return code


if __name__ == "__main__":
    sys.exit(main())
