"""Expectation-suite files collected as pytest items, one item per expectation.

A suite file sits beside the tests and is named ``*.expectations.yaml``
(``.yml``) or ``*.expectations.json``. Our YAML form::

    data: ../data/train.csv        # CSV/TSV/Parquet/JSONL, relative to this file
    # fixture: train_frame         # ...or a fixture that returns a DataFrame
    expectations:
      - expect_column_values_to_not_be_null: {column: title}
      - expect_column_values_to_be_in_set: {column: tag, value_set: [sport, tech]}
        id: known-tags             # optional: the test id in brackets

GX's own suite JSON (``{"name", "expectations": [{"type", "kwargs", "meta"}],
"meta"}``) is read as-is; it names its data in ``meta.mltest.data`` (or
``meta.mltest.fixture``), or in a top-level ``data``/``fixture`` key.

Each expectation becomes an item ``<file>::<expectation>[<column or id>]``
carrying the ``data`` marker, so ``-k``, ``--lf`` and ``-m`` work. The suite is
validated once per session (the first of its items to run validates all of
them); every item then reports its own expectation's result.

Example:
    >>> # pytest --ml tests/data/train.expectations.yaml -k in_set
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mltest.data._spec import ExpectationSpec, parse_expectations
from mltest.errors import MLCheckFailure, MLUsageError

__all__ = [
    "DataSuiteFile",
    "ExpectationItem",
    "SuiteDefinition",
    "SuiteNamedFolder",
    "collect_directory",
    "collect_file",
    "key_line",
    "load_suite",
    "near_names",
    "paused_gc",
]

#: Data files a suite may name, by suffix.
DATA_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq", ".jsonl")
_TOP_KEYS = {"data", "fixture", "name", "expectations", "meta", "max_examples", "read_options"}
_GX_KEYS = {"id", "notes", "data_asset_type", "ge_cloud_id", "expectation_suite_name"}


@dataclass
class SuiteDefinition:
    """A parsed suite file.

    Attributes:
        path: The suite file.
        name: The suite's name (from the file, else its stem).
        specs: The expectations, in file order.
        data: The data file, resolved against the suite's folder, if it names one.
        fixture: The fixture that returns the DataFrame, if it names one.
        max_examples: Unexpected values shown per failure.
        read_options: Extra keyword arguments for the pandas reader.

    Example:
        >>> load_suite(Path("tests/data/train.expectations.yaml")).fixture  # doctest: +SKIP
    """

    path: Path
    name: str
    specs: list[ExpectationSpec]
    data: Path | None = None
    fixture: str | None = None
    max_examples: int = 10
    read_options: dict[str, Any] = field(default_factory=dict)


def _read_text(path: Path, where: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MLUsageError(f"{where}: cannot read the suite: {exc}") from None
    if path.suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise MLUsageError(f"{where}: not valid JSON: {exc}") from None
    import yaml

    try:
        # libyaml's parser when PyYAML has it: 4-5x faster on large suites (benchmarks).
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        # an error at the end of the file is put on the line after the last one
        last = max(len(text.splitlines()), 1)
        at = f" at line {min(mark.line + 1, last)}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise MLUsageError(f"{where}: not valid YAML{at}: {problem}") from None


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while a large file becomes many small objects.

    Loading a suite allocates objects by the million and makes no garbage
    cycles; the collector's passes over the growing heap were half the load
    time of a 4 MB suite. Nothing is lost: collection resumes afterwards.

    Example:
        >>> with paused_gc():
        ...     data = [{"n": i} for i in range(1000)]
    """
    import gc

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load_suite(path: Path, where: str | None = None) -> SuiteDefinition:
    """Parse a suite file (our YAML form or GX's JSON) without importing GX.

    Args:
        path: The suite file.
        where: How to name it in messages (default: the path as given).

    Returns:
        The suite.

    Raises:
        MLUsageError: One line naming the file and the problem.

    Example:
        >>> suite = load_suite(Path("tests/data/train.expectations.yaml"))  # doctest: +SKIP
        >>> [s.label for s in suite.specs]  # doctest: +SKIP
        ['title', 'tag']
    """
    where = where or str(path)
    with paused_gc():
        return _load_suite(path, where)


def _load_suite(path: Path, where: str) -> SuiteDefinition:
    raw = _read_text(path, where)
    if not isinstance(raw, Mapping):
        raise MLUsageError(
            f"{where}: a suite is a mapping with 'data' (or 'fixture') and 'expectations'"
        )
    unknown = set(raw) - _TOP_KEYS - _GX_KEYS
    if unknown:
        raise MLUsageError(
            f"{where}: unknown keys {sorted(unknown)}: use data or fixture, expectations, "
            "name, max_examples, read_options, meta"
        )
    if "expectations" not in raw:
        raise MLUsageError(f"{where}: no 'expectations' list")
    specs = parse_expectations(raw["expectations"], where)
    if not specs:
        raise MLUsageError(
            f"{where}: 'expectations' is empty, so the suite has nothing to test: list at "
            "least one, e.g. '- expect_column_values_to_not_be_null: {column: id}'"
        )
    meta = raw.get("meta") or {}
    ours = meta.get("mltest") if isinstance(meta, Mapping) else None
    ours = ours if isinstance(ours, Mapping) else {}
    data = raw.get("data", ours.get("data"))
    fixture = raw.get("fixture", ours.get("fixture"))
    if (data is None) == (fixture is None):
        raise MLUsageError(
            f"{where}: name the data with exactly one of 'data: <csv/parquet path>' or "
            "'fixture: <fixture name>'"
            + (" (in meta.mltest for GX JSON)" if path.suffix == ".json" else "")
        )
    data_path: Path | None = None
    if data is not None:
        if not isinstance(data, str) or not data:
            raise MLUsageError(f"{where}: 'data' must be a file path, got {data!r}")
        data_path = (path.parent / data).resolve()
        if data_path.suffix.lower() not in DATA_SUFFIXES:
            raise MLUsageError(
                f"{where}: data file {data!r} has an unsupported type: use "
                + ", ".join(DATA_SUFFIXES)
            )
    if fixture is not None and (not isinstance(fixture, str) or not fixture.isidentifier()):
        raise MLUsageError(f"{where}: 'fixture' must be a fixture name, got {fixture!r}")
    max_examples = raw.get("max_examples", 10)
    if not isinstance(max_examples, int) or isinstance(max_examples, bool) or max_examples < 0:
        raise MLUsageError(f"{where}: 'max_examples' must be a whole number >= 0")
    read_options = raw.get("read_options") or {}
    if not isinstance(read_options, Mapping):
        raise MLUsageError(f"{where}: 'read_options' must be a mapping of reader arguments")
    name = raw.get("name") or raw.get("expectation_suite_name") or path.name.split(".")[0]
    return SuiteDefinition(
        path, str(name), specs, data_path, fixture, max_examples, dict(read_options)
    )


def read_data(path: Path, where: str, read_options: Mapping[str, Any] | None = None) -> Any:
    """Read a data file into a DataFrame, or fail with one line naming it.

    Example:
        >>> frame = read_data(Path("data/train.csv"), "train.expectations.yaml")  # doctest: +SKIP
    """
    import pandas as pd

    options = dict(read_options or {})
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path, **options)
        if suffix == ".jsonl":
            return pd.read_json(path, lines=True, **options)
        if suffix == ".tsv":
            options.setdefault("sep", "\t")
        return pd.read_csv(path, **options)
    except FileNotFoundError:
        raise MLUsageError(f"{where}: data file {str(path)!r} not found") from None
    except Exception as exc:  # pandas/pyarrow raise many types for a bad file
        problem = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MLUsageError(f"{where}: cannot read data file {path.name!r}: {problem}") from None


_results_key = pytest.StashKey[dict[tuple[str, str], Any]]()


def _display(path: Path, config: pytest.Config) -> str:
    try:
        return path.relative_to(config.rootpath).as_posix()
    except ValueError:
        return str(path)


class DataSuiteFile(pytest.File):
    """A suite file; its children are one :class:`ExpectationItem` per expectation.

    Example:
        >>> # pytest --ml --collect-only -q tests/data/train.expectations.yaml
    """

    suite: SuiteDefinition

    def collect(self) -> Iterator[ExpectationItem]:
        """Parse the suite and yield its expectations as items."""
        where = _display(self.path, self.config)
        # A missing data file is reported when the items run (with --ml), so
        # that plain `pytest` still works where the data is not pulled yet.
        self.suite = load_suite(self.path, where)
        lines = _type_lines(self.path, [s.type for s in self.suite.specs])
        for index, spec in enumerate(self.suite.specs):
            item = ExpectationItem.from_parent(
                self, name=f"{spec.type}[{spec.label}]", callobj=_make_call(self, index)
            )
            _fix_node_id(item)
            item.suite_line = lines[index]
            item.add_marker("data")
            yield item

    def repr_failure(
        self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None
    ) -> str | Any:
        """Show a bad suite as its one-line message, not a traceback."""
        if isinstance(excinfo.value, MLUsageError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def data_label(self) -> str:
        """How the suite's data is named in messages.

        Example:
            >>> file.data_label()  # doctest: +SKIP
            'data/train.csv'
        """
        if self.suite.data is not None:
            return _display(self.suite.data, self.config)
        return f"fixture {self.suite.fixture!r}"

    def outcomes(self, request: pytest.FixtureRequest) -> tuple[list[Any], int]:
        """Validate the suite once per session; later calls return the cached outcomes.

        Example:
            >>> file.outcomes(request)[0][0].success  # doctest: +SKIP
            True
        """
        from mltest.data._gx import run_expectations

        cache = self.config.stash.setdefault(_results_key, {})
        suite = self.suite
        key = (str(self.path), str(suite.data) if suite.data else f"fixture:{suite.fixture}")
        if key not in cache:
            where = _display(self.path, self.config)
            try:
                if suite.data is not None:
                    if not suite.data.is_file():
                        raise MLUsageError(
                            f"{where}: data file {_display(suite.data, self.config)!r} not found"
                        )
                    frame = read_data(suite.data, where, suite.read_options)
                else:
                    assert suite.fixture is not None
                    frame = _fixture_value(request, suite.fixture, where, self.path)
                    if not hasattr(frame, "columns") or not hasattr(frame, "iloc"):
                        raise MLUsageError(
                            f"{where}: fixture {suite.fixture!r} returned "
                            f"{type(frame).__name__}, not a pandas DataFrame"
                        )
                cache[key] = (
                    run_expectations(
                        frame, suite.specs, max_examples=suite.max_examples, name=suite.name
                    ),
                    len(frame),
                )
            except MLUsageError as exc:
                cache[key] = exc
        found = cache[key]
        if isinstance(found, MLUsageError):
            raise MLUsageError(str(found))
        return list(found[0]), int(found[1])


def _fixture_value(request: pytest.FixtureRequest, name: str, where: str, path: Path) -> Any:
    """The suite's data fixture; a missing one is reported at the suite's ``fixture:`` line."""
    try:
        return request.getfixturevalue(name)
    except pytest.FixtureLookupError as exc:
        if exc.argname != name:
            raise  # the fixture exists; something it needs is missing
        line = key_line(path, "fixture")
        at = f"{where}:{line}" if line else where
        raise MLUsageError(
            f"{at}: fixture {name!r} not found{near_names(request, name)}: define it in a "
            "conftest.py beside the suite, returning a pandas DataFrame"
        ) from None


def key_line(path: Path, key: str) -> int | None:
    """1-based line of the first ``key:`` (YAML) or ``"key":`` (JSON) in a file, if any.

    Example:
        >>> key_line(Path("tests/data/train.expectations.yaml"), "fixture")  # doctest: +SKIP
        2
    """
    import re

    pattern = re.compile(rf"""^\s*(?:-\s*)?["']?{re.escape(key)}["']?\s*:""")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    return next((i for i, text in enumerate(lines, start=1) if pattern.match(text)), None)


def near_names(request: pytest.FixtureRequest, name: str) -> str:
    """`` (did you mean 'x'?)`` for a fixture name close to ``name``, else ``""``.

    Example:
        >>> near_names(request, "train_fram")  # doctest: +SKIP
        " (did you mean 'train_frame'?)"
    """
    import difflib

    try:  # pytest's own listing of the fixtures visible from the node (private API)
        manager = request._fixturemanager
        node = request.node
        known = {d.argname for d in manager._get_all_fixture_defs_for_node(node.parent or node)}
    except AttributeError:  # pragma: no cover - pytest moved it: no suggestion then
        return ""
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _fix_node_id(item: pytest.Item) -> None:
    """Give the item the structured id pytest >= 9.1 derives from its string form.

    pytest 9.1+ keeps ``Node.id`` as ``NodeId(path, names, params)``; a
    non-parametrized node named ``x[y]`` gets ``names=("x[y]",)`` while the id
    parsed back from the cache (``--lf``) is ``names=("x",), params="y"``, so
    the two never compare equal. Parse ours from the string, as the cache does.
    """
    if not hasattr(item, "_id"):  # pytest < 9.1: ids are plain strings
        return
    try:
        from _pytest.nodeid import coerce_node_id
    except ImportError:  # pragma: no cover - layout changed
        return
    item._id = coerce_node_id(str(item.nodeid))


def _type_lines(path: Path, types: list[str]) -> list[int]:
    """0-based line of each expectation's name in the file (0 when not found)."""
    try:
        text = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return [0] * len(types)
    out: list[int] = []
    start: dict[str, int] = {}
    for name in types:
        found = 0
        for number in range(start.get(name, 0), len(text)):
            if name in text[number]:
                found = number
                start[name] = number + 1
                break
        out.append(found)
    return out


def _make_call(parent: DataSuiteFile, index: int) -> Callable[[pytest.FixtureRequest], None]:
    def run_expectation(request: pytest.FixtureRequest) -> None:
        __tracebackhide__ = True
        _check_one(parent, index, request)

    return run_expectation


def _check_one(parent: DataSuiteFile, index: int, request: pytest.FixtureRequest) -> None:
    __tracebackhide__ = True
    from mltest.data._gx import format_outcome
    from mltest.data.expect import fix_hint
    from mltest.report import record_check

    where = _display(parent.path, parent.config)
    outcomes, rows = parent.outcomes(request)
    outcome = outcomes[index]
    spec = outcome.spec
    item_name = f"{spec.type}[{spec.label}]"
    source = parent.data_label()
    headline = (
        f"{item_name} held on {source}"
        if outcome.success
        else f"{item_name} failed on {source} ({rows:,} rows)"
    )
    record_check(
        "data",
        item_name,
        outcome.success,
        headline=headline if outcome.error is None else f"{item_name}: {outcome.error}",
        metrics={"cases": 1, "failed": 0 if outcome.success else 1, **outcome.metrics()},
        examples=[{"row": r, "value": v} for r, v in outcome.examples],
        group={"check": "suite", "suite": where},
    )
    if outcome.error is not None:
        raise MLUsageError(f"{where}: expectation #{spec.position} {spec.type}: {outcome.error}")
    if not outcome.success:
        lines = [f"{headline}, suite {where}", ""]
        lines.extend(format_outcome(outcome, max_examples=parent.suite.max_examples))
        lines.extend(["", fix_hint([outcome]).replace("mostly=0.99", "mostly: 0.99")])
        raise MLCheckFailure("\n".join(lines))


class ExpectationItem(pytest.Function):
    """One expectation of a suite file, run as a test.

    A :class:`pytest.Function` around a small function that asks for
    ``request``, so the suite's data fixture is resolved by pytest's own
    fixture machinery (scopes, conftest overrides, teardown).

    Example:
        >>> # pytest --ml "tests/data/a.expectations.yaml::expect_column_values_to_be_unique[id]"
    """

    def repr_failure(
        self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None
    ) -> str | Any:
        """Show the diagnosis (or the one-line usage error), not a traceback."""
        if isinstance(excinfo.value, MLCheckFailure | MLUsageError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    suite_line: int = 0

    def reportinfo(self) -> tuple[Path, int, str]:
        """Name the item by its suite file, line and expectation."""
        return self.path, self.suite_line, f"{self.path.name}::{self.name}"


class SuiteNamedFolder(pytest.Directory):
    """A folder named like a suite file (``x.expectations.yaml/``): one collection error.

    Without it pytest would walk the folder and say only "no tests ran".

    Example:
        >>> # pytest --ml tests/x.expectations.yaml/   ->  ERROR ... is a folder, not a suite file
    """

    def collect(self) -> list[pytest.Item | pytest.Collector]:
        """Fail: say that the suite must be a file."""
        where = _display(self.path, self.config)
        raise MLUsageError(
            f"{where} is a folder, not a suite file: a suite is a YAML or JSON file with that "
            "name; rename the folder"
        )

    def repr_failure(
        self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None
    ) -> str | Any:
        """The one-line message, no traceback."""
        if isinstance(excinfo.value, MLUsageError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


def collect_directory(parent: pytest.Collector, path: Path) -> pytest.Collector:
    """Collect a folder whose name is a suite file's (called by the plugin).

    Example:
        >>> collect_directory(session, Path("tests/x.expectations.yaml"))  # doctest: +SKIP
    """
    return SuiteNamedFolder.from_parent(parent, path=path)


def collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    """Collect a suite file (called by the plugin for ``*.expectations.*`` files).

    Example:
        >>> collect_file(session, Path("tests/data/train.expectations.yaml"))  # doctest: +SKIP
    """
    return DataSuiteFile.from_parent(parent, path=file_path)
