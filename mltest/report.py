"""What ML tests record, and the one place that turns it into reports.

Capability modules (model, data, behavioural checks, evaluation) call
:func:`record_check` and :func:`record_metric` while a test runs; the plugin
keeps one :class:`TestRecord` per test, ships it to the controller under
pytest-xdist as a plain dict on the test report, and at the end of the session
this module builds:

* the "mltest" terminal summary section (only when there is something to say),
* the JSON report for ``--ml-report PATH``,
* the Markdown appended to ``$GITHUB_STEP_SUMMARY`` when that is set.

Outside a pytest run (a check called from a notebook) recording is a no-op.

Example:
    >>> from mltest.report import record_check, record_metric
    >>> record_metric("val_f1", 0.97)  # attached to the running test, if any
    >>> record_check("model", "overfit_batch", passed=True, metrics={"final_loss": 0.01})
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "REPORT_SCHEMA",
    "SessionReport",
    "TestRecord",
    "current_record",
    "format_table",
    "html_mention",
    "jsonable",
    "output_path_problem",
    "record_artifact",
    "record_check",
    "record_figure",
    "record_metric",
    "write_json_atomic",
    "write_problem",
    "write_text_atomic",
]

REPORT_SCHEMA = "mltest-report/1"

#: How many failing examples a check keeps per record (the JSON report and the
#: summary show no more than this; the assertion message shows its own subset).
MAX_EXAMPLES = 20

_MAX_SEQ = 50
_MAX_STR = 500


def jsonable(value: Any, *, _depth: int = 0) -> Any:
    """Turn numbers, arrays, tensors and containers into plain JSON values.

    numpy and torch scalars become Python numbers, small arrays and tensors
    become lists (long ones are cut to their first 50 items), NaN and infinity
    become the strings ``"nan"``, ``"inf"`` and ``"-inf"`` (JSON has none), and
    anything else becomes its ``repr`` cut to 500 characters.

    Example:
        >>> jsonable({"f1": 0.5, "bad": float("nan"), "ids": (1, 2)})
        {'f1': 0.5, 'bad': 'nan', 'ids': [1, 2]}
    """
    if _depth > 6:
        return _short(repr(value))
    if value is None or isinstance(value, bool | int | str):
        return _short(value) if isinstance(value, str) else value
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, _depth=_depth + 1) for k, v in value.items()}
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, list | tuple | set | frozenset):
        items = list(value)[:_MAX_SEQ]
        return [jsonable(v, _depth=_depth + 1) for v in items]
    # numpy / torch scalars and arrays, without importing either library.
    item = getattr(value, "item", None)
    size = getattr(value, "numel", None) or getattr(value, "size", None)
    if callable(size):
        size = size()
    if callable(item) and size == 1:
        try:
            return jsonable(item(), _depth=_depth + 1)
        except (TypeError, ValueError, RuntimeError):
            pass
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        detach = getattr(value, "detach", None)
        if callable(detach):
            value = detach().cpu()
        flat = getattr(value, "flatten", None)
        if isinstance(size, int) and size > _MAX_SEQ and callable(flat):
            value = flat()[:_MAX_SEQ]
        return jsonable(value.tolist(), _depth=_depth + 1)
    return _short(repr(value))


def _short(text: str) -> str:
    return text if len(text) <= _MAX_STR else text[: _MAX_STR - 3] + "..."


@dataclass
class CheckRecord:
    """The outcome of one ML check inside a test.

    Attributes:
        kind: The capability: ``"model"``, ``"data"``, ``"behavioral"``, ``"eval"``...
        name: The check's name (``"overfit_batch"``, an expectation id, a test name).
        passed: Whether the check passed.
        headline: One line that says what was found.
        metrics: Numbers that back the verdict (pass rate, loss, p-value...).
        examples: Failing examples, each a small dict (input, expected, got...).
        group: Keys that place the check in a summary table, e.g.
            ``{"capability": "Robustness", "test_type": "INV"}``. Checks with a
            group are aggregated per kind into a table whose columns are the
            group keys plus the summed ``cases`` and ``failed`` metrics.
    """

    kind: str
    name: str
    passed: bool
    headline: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    examples: list[Any] = field(default_factory=list)
    group: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form of this record."""
        return {
            "kind": self.kind,
            "name": self.name,
            "passed": self.passed,
            "headline": self.headline,
            "metrics": self.metrics,
            "examples": self.examples,
            "group": self.group,
        }


@dataclass
class TestRecord:
    """Everything mltest knows about one test: its seed and what it recorded."""

    __test__ = False  # not a pytest test class, despite the name

    nodeid: str
    seed: int | None = None
    markers: list[str] = field(default_factory=list)
    is_ml: bool = False  # an ML test: reported even when it recorded nothing
    outcome: str | None = None  # passed, failed, skipped, error, xfailed, xpassed
    duration_s: float = 0.0
    skip_reason: str | None = None
    checks: list[CheckRecord] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    figures: list[dict[str, Any]] = field(default_factory=list)

    def has_content(self) -> bool:
        """Whether the test recorded anything beyond its seed."""
        return bool(self.checks or self.metrics or self.artifacts or self.data or self.figures)

    def add_phase(self, outcome: str | None, duration: float, skip_reason: str | None) -> None:
        """Fold one phase (setup, call, teardown) into the test's outcome.

        The first outcome that is not a pass wins, and a failing teardown
        turns a pass into an error, as pytest counts them.
        """
        self.duration_s += duration
        if outcome is not None and (self.outcome in (None, "passed") or outcome == "error"):
            self.outcome = outcome
            if skip_reason is not None:
                self.skip_reason = skip_reason

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form: what travels from xdist workers and into the report."""
        return {
            "nodeid": self.nodeid,
            "outcome": self.outcome or "passed",
            "duration_s": round(self.duration_s, 6),
            "markers": self.markers,
            "seed": self.seed,
            "skip_reason": self.skip_reason,
            "checks": [c.to_dict() for c in self.checks],
            "metrics": self.metrics,
            "artifacts": self.artifacts,
            "data": self.data,
            "figures": self.figures,
        }


# The running test: its record, or a function that creates the record the first
# time something is recorded (most tests record nothing, and then pay nothing).
_current: TestRecord | None = None
_opener: Callable[[], TestRecord] | None = None
# Enclosing tests: a test that runs pytest in-process (pytester) gets its own
# record back when the inner session's test ends.
_stack: list[tuple[TestRecord | None, Callable[[], TestRecord] | None]] = []


def current_record() -> TestRecord | None:
    """Return the record of the test now running, or None outside a test."""
    global _current
    if _current is None and _opener is not None:
        _current = _opener()
    return _current


def _push(record: TestRecord | None, opener: Callable[[], TestRecord] | None = None) -> None:
    """Make a test current: its record, or how to create it on first use."""
    global _current, _opener
    _stack.append((_current, _opener))
    _current, _opener = record, opener


def _pop() -> None:
    """The current test has ended: the enclosing one (if any) is current again."""
    global _current, _opener
    _current, _opener = _stack.pop() if _stack else (None, None)


def record_check(
    kind: str,
    name: str,
    passed: bool,
    *,
    headline: str = "",
    metrics: Mapping[str, Any] | None = None,
    examples: Iterable[Any] | None = None,
    group: Mapping[str, str] | None = None,
) -> None:
    """Attach the result of an ML check to the running test's report.

    Capability modules call this once per check, passing or failing, so that
    the terminal summary and the JSON report list every check with its numbers.
    Outside a pytest run it does nothing.

    Args:
        kind: The capability (``"model"``, ``"data"``, ``"behavioral"``, ``"eval"``).
        name: The check's name.
        passed: The verdict.
        headline: One line that says what was found.
        metrics: Numbers behind the verdict.
        examples: Failing examples (the first 20 are kept).
        group: Keys for the summary table (see :class:`CheckRecord`).

    Example:
        >>> record_check("data", "no_leakage", passed=False,
        ...              headline="3 rows of test also in train",
        ...              metrics={"leaked": 3}, examples=[{"row": 7, "text": "..."}])
    """
    record = current_record()
    if record is None:
        return
    kept = (
        []
        if examples is None
        else [jsonable(e) for _, e in zip(range(MAX_EXAMPLES), examples, strict=False)]
    )
    record.checks.append(
        CheckRecord(
            kind=kind,
            name=name,
            passed=bool(passed),
            headline=_short(headline),
            metrics=jsonable(dict(metrics or {})),
            examples=kept,
            group=None if group is None else {str(k): str(v) for k, v in group.items()},
        )
    )


def record_metric(name: str, value: Any) -> None:
    """Attach a named metric to the running test's report (no-op outside pytest).

    Example:
        >>> record_metric("macro_f1", 0.973)
    """
    record = current_record()
    if record is not None:
        record.metrics[name] = jsonable(value)


def record_artifact(name: str, path: str | os.PathLike[str]) -> None:
    """Attach the path of a file the test produced (a plot, a model card).

    Example:
        >>> record_artifact("confusion_matrix", "artifacts/confusion.png")
    """
    record = current_record()
    if record is not None:
        record.artifacts[name] = os.fspath(path)


#: Figure kinds :func:`record_figure` accepts, and the ``data`` each one takes.
FIGURE_KINDS = ("line", "bars", "heatmap", "png")

#: Longest series a figure keeps (longer ones are thinned to this many points).
MAX_FIGURE_POINTS = 500


def record_figure(
    name: str,
    kind: str,
    data: Mapping[str, Any],
    *,
    title: str = "",
    check: str | None = None,
    caption: str = "",
) -> None:
    """Attach a figure to the running test's report (no-op outside pytest).

    Figures are data, not pictures, so that recording costs no plotting
    library: the HTML report draws them as inline SVG. The JSON report keeps
    the data. Under xdist they travel with the test's record.

    Args:
        name: Identifies the figure within the test (``"overfit_batch.loss"``).
        kind: One of :data:`FIGURE_KINDS`:

            * ``"line"``: ``{"series": {label: [y, ...]}, "x": [...]?,
              "x_label": str?, "y_label": str?}`` (a loss curve);
            * ``"bars"``: ``{"labels": [...], "series": {label: [v, ...]},
              "x_label"?, "y_label"?}`` (a histogram, a reliability diagram);
            * ``"heatmap"``: ``{"rows": [...], "cols": [...], "values": [[...]],
              "row_label"?, "col_label"?}`` (a confusion matrix);
            * ``"png"``: ``{"base64": str}`` (a picture made elsewhere).
        data: The figure's data, as above.
        title: Shown above the figure.
        check: The name of the check the figure belongs to, if any.
        caption: One line under the figure.

    Raises:
        ValueError: ``kind`` is not one of :data:`FIGURE_KINDS`.

    Example:
        >>> record_figure("overfit_batch.loss", "line",
        ...               {"series": {"loss": [2.3, 1.1, 0.2]}, "x_label": "step"},
        ...               title="overfit one batch", check="overfit_batch")
    """
    if kind not in FIGURE_KINDS:
        raise ValueError(f"figure kind {kind!r} is not one of {', '.join(FIGURE_KINDS)}")
    record = current_record()
    if record is None:
        return
    record.figures.append(
        {
            "name": str(name),
            "kind": kind,
            "title": _short(title),
            "check": check,
            "caption": _short(caption),
            "data": _figure_data(data),
        }
    )


def _figure_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """JSON form of a figure's data: long series are thinned, never cut at 50 like ``jsonable``."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key == "base64":
            out[key] = str(value)
        elif key == "series" and isinstance(value, Mapping):
            out[key] = {str(k): _points(v) for k, v in value.items()}
        elif key == "values":
            out[key] = [_points(row) for row in _as_list(value)]
        elif key in ("x", "labels", "rows", "cols"):
            out[key] = [v if isinstance(v, str) else jsonable(v) for v in _points(value)]
        else:
            out[key] = jsonable(value)
    return out


def _as_list(value: Any) -> list[Any]:
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        detach = getattr(value, "detach", None)
        return list((detach().cpu() if callable(detach) else value).tolist())
    return list(value)


def _points(value: Any) -> list[Any]:
    items = _as_list(value)
    if len(items) > MAX_FIGURE_POINTS:
        step = len(items) / MAX_FIGURE_POINTS
        items = [items[int(i * step)] for i in range(MAX_FIGURE_POINTS - 1)] + [items[-1]]
    return [v if isinstance(v, str) else jsonable(v) for v in items]


# --------------------------------------------------------------------------
# Session aggregation and rendering
# --------------------------------------------------------------------------


@dataclass
class SessionReport:
    """The controller's collection of test records for the whole run."""

    seed: int
    devices: list[str]
    ml_enabled: bool
    environment: dict[str, Any] = field(default_factory=dict)
    tests: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, test: dict[str, Any]) -> None:
        """Add one finished test, in the form of :meth:`TestRecord.to_dict`."""
        self.tests[test["nodeid"]] = test

    # -- queries ---------------------------------------------------------

    def checks(self) -> list[tuple[str, dict[str, Any]]]:
        """Every recorded check as (nodeid, check dict), in test order."""
        return [(nodeid, check) for nodeid, t in self.tests.items() for check in t["checks"]]

    def counts(self) -> dict[str, int]:
        """Outcome counts over the tests this report covers."""
        counts: dict[str, int] = {}
        for t in self.tests.values():
            counts[t["outcome"]] = counts.get(t["outcome"], 0) + 1
        return counts

    # -- JSON --------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """Return the whole report as a JSON-ready dict (schema ``mltest-report/1``)."""
        tests = list(self.tests.values())
        return {
            "schema": REPORT_SCHEMA,
            "session": {
                "seed": self.seed,
                "replay": f"--ml-seed {self.seed}",
                "devices": self.devices,
                "ml_enabled": self.ml_enabled,
            },
            "environment": self.environment,
            "summary": {
                "tests": len(tests),
                "outcomes": self.counts(),
                "checks": _check_counts(self.checks()),
            },
            "tests": tests,
        }

    def write_json(self, path: str | os.PathLike[str]) -> Path:
        """Write the JSON report atomically; a crash leaves any previous report intact."""
        return write_json_atomic(path, self.to_json())

    def write_html(self, path: str | os.PathLike[str]) -> Path:
        """Write the self-contained HTML report atomically (see :mod:`mltest.html_report`).

        Example:
            >>> SessionReport(seed=1, devices=["cpu"], ml_enabled=True).write_html(
            ...     "report.html")  # doctest: +SKIP
        """
        from mltest.html_report import render_html

        return write_text_atomic(path, render_html(self.to_json()))

    # -- terminal --------------------------------------------------------

    def ordered_tests(self) -> list[dict[str, Any]]:
        """The tests in a fixed order (natural sort of node ids).

        Under pytest-xdist tests finish in any order; every view built from
        this order is the same for a serial and a parallel run.
        """
        return [self.tests[n] for n in sorted(self.tests, key=_natural_key)]

    def _ordered_checks(self) -> list[tuple[str, dict[str, Any]]]:
        return [(t["nodeid"], c) for t in self.ordered_tests() for c in t["checks"]]

    def attention(
        self,
    ) -> tuple[list[tuple[str, dict[str, Any]]], list[tuple[str, dict[str, Any]]]]:
        """Failed checks split in two: those of failing tests, those of tests that did not fail.

        A check that failed inside a test that passed (or xfailed) is one the
        test expected to fail, e.g. a trap proving that a check catches a bug;
        it needs no attention.

        Example:
            >>> needs, expected = SessionReport(seed=1, devices=[], ml_enabled=True).attention()
            >>> (needs, expected)
            ([], [])
        """
        needs: list[tuple[str, dict[str, Any]]] = []
        expected: list[tuple[str, dict[str, Any]]] = []
        for nodeid, check in self._ordered_checks():
            if not check["passed"]:
                failing = self.tests[nodeid]["outcome"] in _ATTENTION
                (needs if failing else expected).append((nodeid, check))
        return needs, expected

    def summary_lines(self, *, verbose: bool = False) -> list[str]:
        """Lines of the "mltest" terminal section; empty when nothing to say.

        Passing checks are counted; grouped checks (suites, behavioural tests)
        become a table per kind; the failed checks of failing tests are
        listed with their headline. Failed checks inside tests that passed
        (expected failures) are counted in one line and listed only when
        ``verbose``. The order does not depend on the order tests finished in.

        Example:
            >>> SessionReport(seed=1, devices=["cpu"], ml_enabled=True).summary_lines()
            []
        """
        checks = self._ordered_checks()
        metrics = [(t["nodeid"], t["metrics"]) for t in self.ordered_tests() if t["metrics"]]
        if not checks and not metrics:
            return []
        lines: list[str] = []
        counts = _check_counts(checks)
        if counts:
            parts = [
                f"{kind}: {c['passed']} passed, {c['failed']} failed"
                for kind, c in sorted(counts.items())
            ]
            lines.append("checks  " + "; ".join(parts))
        lines.extend(_group_tables(checks))
        needs, expected = self.attention()
        if needs:
            lines.append("failed checks:")
            shown = needs if verbose else needs[:_SHOWN]
            lines.extend(f"  {_check_line(n, c)}" for n, c in shown)
            if len(shown) < len(needs):
                lines.append(f"  ... {len(needs) - len(shown)} more in the JSON report")
        if expected:
            lines.append(self._expected_line(expected, verbose=verbose))
            if verbose:
                for nodeid, check in expected:
                    note = f" (test {self.tests[nodeid]['outcome']})"
                    lines.append(f"  {_check_line(nodeid, check)}{note}")
        if metrics:
            lines.append("metrics:")
            shown_metrics = metrics if verbose else metrics[:_SHOWN]
            for nodeid, values in shown_metrics:
                text = ", ".join(f"{k}={_fmt(v)}" for k, v in values.items())
                lines.append(f"  {nodeid}: {text}")
            if len(shown_metrics) < len(metrics):
                lines.append(f"  ... {len(metrics) - len(shown_metrics)} more in the JSON report")
        return lines

    def _expected_line(
        self, expected: Sequence[tuple[str, dict[str, Any]]], *, verbose: bool
    ) -> str:
        outcomes = sorted({self.tests[n]["outcome"] for n, _ in expected})
        n = len(expected)
        where = " or ".join(outcomes)
        tail = ":" if verbose else " (-v lists them; so does the JSON report)"
        return (
            f"expected failures: {n} failed check{'s' if n != 1 else ''} inside tests that "
            f"{where}{tail}"
        )

    # -- Markdown ----------------------------------------------------------

    def markdown(self, *, html_report: str | None = None) -> str:
        """The short summary as GitHub-flavoured Markdown for ``$GITHUB_STEP_SUMMARY``.

        The same content as the terminal section: outcome counts, check
        counts, the group tables, the failed checks that need attention and
        the count of expected failures and the metrics; plus where the HTML
        report is.

        Args:
            html_report: The HTML report's path (or link), mentioned when given.

        Example:
            >>> print(SessionReport(seed=3, devices=["cpu"], ml_enabled=True).markdown())
            ## mltest
            <BLANKLINE>
            Seed `3` (replay with `--ml-seed 3`), devices: cpu.
            <BLANKLINE>
        """
        out = ["## mltest", ""]
        out.append(
            f"Seed `{self.seed}` (replay with `--ml-seed {self.seed}`), "
            f"devices: {', '.join(self.devices) or 'none'}."
        )
        if html_report:
            out += ["", html_report]
        counts = self.counts()
        if counts:
            out += ["", "| outcome | tests |", "| --- | ---: |"]
            out += [f"| {name} | {n} |" for name, n in sorted(counts.items())]
        checks = self._ordered_checks()
        check_counts = _check_counts(checks)
        if check_counts:
            out += ["", "| kind | checks passed | checks failed |", "| --- | ---: | ---: |"]
            out += [
                f"| {kind} | {c['passed']} | {c['failed']} |"
                for kind, c in sorted(check_counts.items())
            ]
        for kind, header, body in _group_rows(checks):
            out += ["", f"**{_md_escape(kind)}**", ""]
            out.append("| " + " | ".join(_md_escape(h) for h in header) + " |")
            out.append("| " + " | ".join("---" for _ in header) + " |")
            out += ["| " + " | ".join(_md_escape(c) for c in row) + " |" for row in body]
        needs, expected = self.attention()
        if needs:
            out += ["", "**Failed checks**", "", "| test | check | detail |", "| --- | --- | --- |"]
            for nodeid, c in needs[:_SHOWN]:
                out.append(
                    f"| `{_md_escape(nodeid)}` | {c['kind']}/{_md_escape(c['name'])} "
                    f"| {_md_escape(c['headline'])} |"
                )
            if len(needs) > _SHOWN:
                out.append(f"\n{len(needs) - _SHOWN} more in the JSON report.")
        if expected:
            out += ["", self._expected_line(expected, verbose=False)]
        metrics = [(t["nodeid"], t["metrics"]) for t in self.ordered_tests() if t["metrics"]]
        if metrics:
            out += ["", "**Metrics**", "", "| test | metrics |", "| --- | --- |"]
            for nodeid, values in metrics[:_SHOWN]:
                text = ", ".join(f"{k}={_fmt(v)}" for k, v in values.items())
                out.append(f"| `{_md_escape(nodeid)}` | {_md_escape(text)} |")
            if len(metrics) > _SHOWN:
                out.append(f"\n{len(metrics) - _SHOWN} more in the JSON report.")
        return "\n".join(out) + "\n"


#: Outcomes whose failed checks need attention.
_ATTENTION = ("failed", "error")
#: Rows of a list the terminal shows before "... N more".
_SHOWN = 20


def _natural_key(text: str) -> list[Any]:
    """Sort key that orders ``t[2]`` before ``t[10]``."""
    import re

    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", text)]


def _check_line(nodeid: str, check: Mapping[str, Any]) -> str:
    """``kind/name in nodeid: headline``, saying a name only once.

    A suite's item is named after its check (``x.expectations.yaml::expect_...[id]``),
    and its headline often starts with that name too.
    """
    name, text = str(check["name"]), str(check["headline"])
    if nodeid.endswith(f"::{name}"):
        text = text.removeprefix(f"{name} ").removeprefix(f"{name}: ")
        where = f"{check['kind']}: {nodeid}"
    else:
        where = f"{check['kind']}/{name} in {nodeid}"
    return f"{where}: {text}" if text else where


def _check_counts(checks: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for _, check in checks:
        c = counts.setdefault(check["kind"], {"passed": 0, "failed": 0})
        c["passed" if check["passed"] else "failed"] += 1
    return counts


def _group_rows(
    checks: Sequence[tuple[str, dict[str, Any]]],
) -> list[tuple[str, list[str], list[list[str]]]]:
    """(kind, header, rows) for each kind whose checks carry a ``group``.

    Rows are the distinct group values; columns the group keys (every key
    any check of the kind uses, in order of first use, ``-`` where a check
    lacks one), then the summed ``cases`` and ``failed`` metrics and the
    fail rate.
    """
    by_kind: dict[str, list[tuple[dict[str, str], int, int]]] = {}
    keys_of: dict[str, list[str]] = {}
    for _, check in checks:
        group = check.get("group")
        if not group:
            continue
        keys = keys_of.setdefault(check["kind"], [])
        keys.extend(k for k in group if k not in keys)
        cases = check["metrics"].get("cases", 1)
        failed = check["metrics"].get("failed", 0 if check["passed"] else 1)
        by_kind.setdefault(check["kind"], []).append(
            (
                group,
                int(cases) if isinstance(cases, int | float) else 0,
                int(failed) if isinstance(failed, int | float) else 0,
            )
        )
    out: list[tuple[str, list[str], list[list[str]]]] = []
    for kind, entries in sorted(by_kind.items()):
        keys = keys_of[kind]
        rows: dict[tuple[str, ...], list[int]] = {}
        for group, cases, failed in entries:
            cell = rows.setdefault(tuple(group.get(k) or "-" for k in keys), [0, 0])
            cell[0] += cases
            cell[1] += failed
        body = [
            [*row, str(c), str(f), f"{(f / c if c else 0.0):.1%}"]
            for row, (c, f) in sorted(rows.items())
        ]
        out.append((kind, [*keys, "cases", "failed", "fail rate"], body))
    return out


def _group_tables(checks: Sequence[tuple[str, dict[str, Any]]]) -> list[str]:
    """The group tables of :func:`_group_rows` as text, one per kind."""
    lines: list[str] = []
    for kind, header, body in _group_rows(checks):
        lines.append(f"{kind}:")
        lines.extend(format_table(header, body, indent="  "))
    return lines


def format_table(
    header: Sequence[object],
    rows: Sequence[Sequence[object]],
    *,
    limit: int | None = None,
    indent: str = "",
) -> list[str]:
    """Format rows as an aligned text table, the one layout every mltest message uses.

    Args:
        header: Column names.
        rows: Cells, turned into text with ``str``.
        limit: Show at most this many rows, then ``... and N more``.
        indent: Put before every line.

    Example:
        >>> format_table(["parameter", "grad"], [["fc1.weight", None]])
        ['parameter   grad', 'fc1.weight  None']
    """
    shown = [[str(c) for c in row] for row in (rows if limit is None else rows[:limit])]
    head = [str(h) for h in header]
    widths = [max(len(r[i]) for r in [head, *shown]) for i in range(len(head))]
    lines = [
        indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [head, *shown]
    ]
    if limit is not None and len(rows) > limit:
        lines.append(f"{indent}... and {len(rows) - limit} more")
    return lines


def output_path_problem(path: str | os.PathLike[str]) -> str | None:
    """Why a report cannot be written at ``path``, or None when it looks writable.

    Checked when the session starts, so that a bad ``--ml-report`` path is a
    usage error before any test runs rather than a traceback after all of
    them: the path is a folder, a parent is a regular file, or the nearest
    existing folder cannot be written. Missing folders are fine (they are
    created).

    Example:
        >>> output_path_problem("/")
        'is a folder: give a file path, e.g. /mltest-report.json'
    """
    target = Path(path)
    if target.is_dir():
        return f"is a folder: give a file path, e.g. {target / 'mltest-report.json'}"
    parent = target.parent
    while not parent.exists():
        if parent.parent == parent:
            break
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        return f"{parent} is a file, not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"folder {parent} is not writable"
    if target.exists() and not os.access(target, os.W_OK):
        return "the file exists and is not writable"
    return None


def write_problem(what: str, path: str | os.PathLike[str], exc: OSError) -> str:
    """One line saying that a report could not be written, and why.

    Example:
        >>> write_problem("JSON report", "out/r.json", PermissionError(13, "Permission denied"))
        'mltest: could not write the JSON report to out/r.json: Permission denied'
    """
    import errno

    if exc.errno in (errno.EEXIST, errno.ENOTDIR):
        reason = "a folder on that path is a regular file"
    else:
        reason = exc.strerror or str(exc) or type(exc).__name__
    return f"mltest: could not write the {what} to {os.fspath(path)}: {reason}"


def html_mention(path: str | os.PathLike[str]) -> str:
    """The step summary's line about the HTML report: its path, and the run's artifacts.

    On GitHub Actions (``GITHUB_SERVER_URL``, ``GITHUB_REPOSITORY`` and
    ``GITHUB_RUN_ID`` set) it links to the run's artifacts, where an upload
    step puts the file.

    Example:
        >>> html_mention("artifacts/mltest.html")  # doctest: +SKIP
        'HTML report (figures, failing examples): `artifacts/mltest.html` ...'
    """
    text = f"HTML report (figures, failing examples): `{_md_escape(Path(path).name)}`"
    server = os.environ.get("GITHUB_SERVER_URL")
    repo = os.environ.get("GITHUB_REPOSITORY")
    run = os.environ.get("GITHUB_RUN_ID")
    if server and repo and run:
        text += f", in [this run's artifacts]({server}/{repo}/actions/runs/{run}#artifacts)"
    else:
        text += f" at `{_md_escape(os.fspath(path))}`"
    return text + "."


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as indented JSON through a temp file and a rename.

    A crash while writing leaves the previous file, never half a file; the
    parent folder is created.

    Example:
        >>> write_json_atomic("baseline.json", {"f1": 0.9})  # doctest: +SKIP
    """
    import json

    return write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) through a temp file and a rename; the parent is created.

    Example:
        >>> write_text_atomic("report.html", "<!DOCTYPE html>...")  # doctest: +SKIP
    """
    import tempfile

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        # mkstemp makes the file 0600; give it the mode a plain open() would,
        # so a report or baseline can be read by whoever reads the folder.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace("\n", " ")


class Recorder:
    """What the ``ml_record`` fixture gives a test: attach results to the report.

    Example:
        >>> def test_train(ml_record):  # doctest: +SKIP
        ...     ml_record.metric("val_f1", 0.97)
        ...     ml_record.artifact("curve", "artifacts/loss.png")
        ...     ml_record["n_train"] = 1780
    """

    def __init__(self, record: TestRecord) -> None:
        self._record = record

    @property
    def seed(self) -> int | None:
        """The test's seed."""
        return self._record.seed

    def metric(self, name: str, value: Any) -> None:
        """Record a named metric (shown in the summary and the JSON report)."""
        self._record.metrics[name] = jsonable(value)

    def artifact(self, name: str, path: str | os.PathLike[str]) -> None:
        """Record the path of a file the test produced."""
        self._record.artifacts[name] = os.fspath(path)

    def __setitem__(self, key: str, value: Any) -> None:
        """Record any JSON-able value under ``data`` in the JSON report."""
        self._record.data[key] = jsonable(value)

    def __getitem__(self, key: str) -> Any:
        return self._record.data[key]
