"""Metric baselines: a metric may improve, it may not drop by more than its tolerance.

Each test keeps its baselines in one small JSON file stored beside it,
pytest-regressions style: ``tests/test_model.py::test_f1`` keeps them in
``tests/test_model/test_f1.json``. With the ini key ``ml_baseline_dir`` the
same layout goes under that folder instead (``<dir>/tests/test_model/test_f1.json``).
One file per test, so xdist workers never write the same file. Run
``pytest --ml --ml-update-baselines`` to store the current values, and commit
the files.

Every metric has a direction (``higher_is_better``) and a tolerance, absolute
(``tolerance=0.01``) or relative to the baseline (``rel_tolerance=0.02`` = 2%);
with both, the larger allowance wins. A metric that gets better always passes
(the report says by how much, and that ``--ml-update-baselines`` keeps the
gain); one that gets worse by more than its allowance fails with a table:
metric, baseline, got, delta, tolerance.

Example:
    >>> def test_f1_holds(metric_baseline):  # doctest: +SKIP
    ...     metric_baseline.check("macro_f1", evaluate(model), tolerance=0.01)
    ...     metric_baseline.check_all({"ece": 0.03, "latency_ms": 12.0},
    ...                               rel_tolerance=0.1, higher_is_better=False)
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from mltest.errors import MLCheckFailure, MLUsageError
from mltest.report import format_table, record_check, write_json_atomic

__all__ = ["MetricBaseline", "baseline_file", "resolve_baseline_dir"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]+")
UPDATE_HINT = "pytest --ml --ml-update-baselines"

T = TypeVar("T")


def _safe(text: str) -> str:
    return _UNSAFE.sub("_", text).strip(".") or "_"


def baseline_file(
    test_path: Path, nodeid: str, *, rootpath: Path, directory: Path | None = None
) -> Path:
    """The baseline file of a test: beside its module, in a folder named after it.

    Args:
        test_path: The test's module file.
        nodeid: The test's node id (its part after the first ``::`` names the file).
        rootpath: pytest's rootdir (the layout under ``directory`` starts there).
        directory: ``ml_baseline_dir``, or None for beside the test.

    Example:
        >>> baseline_file(Path("/r/tests/test_m.py"), "tests/test_m.py::test_f1[cpu]",
        ...               rootpath=Path("/r")).as_posix()
        '/r/tests/test_m/test_f1_cpu_.json'
        >>> baseline_file(Path("/r/tests/test_m.py"), "tests/test_m.py::TestA::test_b",
        ...               rootpath=Path("/r"), directory=Path("/r/q")).as_posix()
        '/r/q/tests/test_m/TestA.test_b.json'
    """
    _, _, test = nodeid.partition("::")
    name = _safe(test.replace("::", ".") or test_path.stem) + ".json"
    folder = test_path.parent / test_path.stem
    if directory is not None:
        try:
            relative = test_path.parent.relative_to(rootpath)
        except ValueError:
            relative = Path()
        folder = directory / relative / test_path.stem
    return folder / name


def resolve_baseline_dir(rootpath: Path, value: str) -> Path | None:
    """The ``ml_baseline_dir`` folder, checked; None (beside the tests) when unset.

    Raises:
        ValueError: The path, or a folder above it, is a regular file.

    Example:
        >>> resolve_baseline_dir(Path("/r"), "") is None
        True
    """
    text = value.strip()
    if not text:
        return None
    path = rootpath / text
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                shown = text if p == path else f"{text} (its part {p})"
                raise ValueError(
                    f"{shown} is a regular file, not a folder: point it at a folder, or remove "
                    "the key to keep baselines beside the tests"
                )
            break
    return path


@dataclass
class _Row:
    name: str
    value: float
    base: float | None
    allowed: float
    tolerance_text: str
    higher_is_better: bool

    @property
    def delta(self) -> float:
        assert self.base is not None
        return self.value - self.base

    @property
    def worse_by(self) -> float:
        return -self.delta if self.higher_is_better else self.delta

    @property
    def status(self) -> str:
        if self.base is None:
            return "no baseline"
        slack = 1e-12 * max(1.0, abs(self.base))  # float noise at the edge is no regression
        if self.worse_by > self.allowed + slack:
            return "regressed"
        if self.worse_by < -slack:
            return "improved"
        return "ok" if self.worse_by <= slack else "within tolerance"

    def cells(self) -> list[str]:
        if self.base is None:
            return [self.name, "-", f"{self.value:.6g}", "-", self.tolerance_text, "no baseline"]
        direction = "higher" if self.higher_is_better else "lower"
        return [
            self.name,
            f"{self.base:.6g}",
            f"{self.value:.6g}",
            f"{self.delta:+.6g}",
            self.tolerance_text,
            f"{self.status} ({direction} is better)",
        ]


_HEADER = ["metric", "baseline", "got", "delta", "tolerance", "status"]


def _pick(option: T | Mapping[str, T], name: str, default: T) -> T:
    if isinstance(option, Mapping):
        return option.get(name, default)
    return option


class MetricBaseline:
    """One-sided comparison of a test's metrics against stored values.

    Args:
        path: The JSON file that holds this test's baselines.
        update: Store the values instead of comparing (``--ml-update-baselines``).
    """

    def __init__(self, path: Path, *, update: bool) -> None:
        self.path = path
        self.update = update
        self._stored: dict[str, Any] = {}
        if path.is_file():
            try:
                self._stored = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise MLUsageError(f"baseline file {path} is unreadable: {exc}") from exc
            if not isinstance(self._stored, dict):
                raise MLUsageError(f"baseline file {path} is not a JSON object of metrics")
        self._updated: dict[str, Any] = {}
        try:
            self.shown = path.relative_to(Path.cwd()).as_posix()
        except ValueError:
            self.shown = str(path)

    def _row(
        self,
        name: str,
        value: float,
        tolerance: float,
        rel_tolerance: float | None,
        higher_is_better: bool,
    ) -> _Row:
        value = float(value)
        if not math.isfinite(value):
            raise MLUsageError(f"metric {name!r} is {value}: a baseline needs a finite number")
        if tolerance < 0:
            raise MLUsageError(f"tolerance for {name!r} must be >= 0, got {tolerance}")
        if rel_tolerance is not None and rel_tolerance < 0:
            raise MLUsageError(f"rel_tolerance for {name!r} must be >= 0, got {rel_tolerance}")
        stored = self._stored.get(name)
        base = None
        if stored is not None:
            try:
                base = float(stored["value"] if isinstance(stored, Mapping) else stored)
            except (KeyError, TypeError, ValueError):
                raise MLUsageError(
                    f"baseline file {self.shown}: entry {name!r} has no numeric 'value'"
                ) from None
        allowed = tolerance
        text = f"{tolerance:g}"
        if rel_tolerance is not None:
            rel_allowed = rel_tolerance * abs(base) if base is not None else 0.0
            if rel_allowed >= tolerance:
                allowed = rel_allowed
                text = f"{rel_tolerance:.2%} ({rel_allowed:.3g})" if base is not None else ""
                text = text or f"{rel_tolerance:.2%}"
        return _Row(name, value, base, allowed, text, higher_is_better)

    def _store(self, row: _Row, tolerance: float, rel_tolerance: float | None) -> None:
        entry: dict[str, Any] = {
            "value": row.value,
            "tolerance": tolerance,
            "higher_is_better": row.higher_is_better,
        }
        if rel_tolerance is not None:
            entry["rel_tolerance"] = rel_tolerance
        self._updated[row.name] = entry
        record_check(
            "eval", f"baseline:{row.name}", True, headline=f"stored {row.value:.6g} in {self.shown}"
        )

    def _record(self, row: _Row) -> None:
        status = row.status
        if row.base is None:
            headline = f"no baseline stored in {self.shown}: run `{UPDATE_HINT}`"
        elif status == "improved":
            headline = (
                f"improved: {row.value:.6g} vs baseline {row.base:.6g} ({row.delta:+.6g}); "
                f"`{UPDATE_HINT}` keeps the gain"
            )
        else:
            headline = (
                f"{status}: {row.value:.6g} vs baseline {row.base:.6g} ({row.delta:+.6g}, "
                f"tolerance {row.tolerance_text}, "
                f"{'higher' if row.higher_is_better else 'lower'} is better)"
            )
        record_check(
            "eval",
            f"baseline:{row.name}",
            status not in ("regressed", "no baseline"),
            headline=headline,
            metrics={
                "value": row.value,
                "baseline": row.base,
                "delta": None if row.base is None else row.delta,
                "tolerance": row.allowed,
                "status": status,
            },
        )

    def _fail(self, rows: list[_Row]) -> None:
        __tracebackhide__ = True
        missing = [r for r in rows if r.base is None]
        regressed = [r for r in rows if r.status == "regressed"]
        if not missing and not regressed:
            return
        if regressed:
            names = ", ".join(repr(r.name) for r in regressed)
            head = (
                f"metric {names} regressed past its tolerance"
                if len(regressed) == 1
                else f"metrics {names} regressed past their tolerances"
            )
            lines = [f"{head} (baseline {self.shown})"]
        else:
            names = ", ".join(repr(r.name) for r in missing)
            lines = [
                f"no baseline stored for metric {names} in {self.shown}",
                f"run `{UPDATE_HINT}` once to store the current value"
                f"{'s' if len(missing) > 1 else ''} "
                f"({', '.join(f'{r.value:.6g}' for r in missing)}), then commit that file",
            ]
            raise MLCheckFailure("\n".join(lines))
        order = {"regressed": 0, "no baseline": 1}
        shown = sorted(rows, key=lambda r: order.get(r.status, 2))
        lines.extend(format_table(_HEADER, [r.cells() for r in shown], indent="  "))
        lines.append(f"if the change is intended, run `{UPDATE_HINT}` and commit {self.shown}")
        raise MLCheckFailure("\n".join(lines))

    def check(
        self,
        name: str,
        value: float,
        *,
        tolerance: float = 0.0,
        higher_is_better: bool = True,
        rel_tolerance: float | None = None,
    ) -> None:
        """Compare ``value`` with the stored baseline of ``name``.

        Args:
            name: The metric's name.
            value: Its value in this run.
            tolerance: How far it may move the wrong way (absolute).
            higher_is_better: Direction of improvement (False for losses, latency).
            rel_tolerance: Or how far relative to the baseline (0.02 = 2%);
                with both, the larger allowance wins.

        Raises:
            MLCheckFailure: When the metric regressed past the tolerance (with
                the table metric, baseline, got, delta, tolerance), or no
                baseline is stored yet.
            MLUsageError: On a non-finite value or a negative tolerance.

        Example:
            >>> metric_baseline.check("loss", 0.31, tolerance=0.02,
            ...                       higher_is_better=False)  # doctest: +SKIP
        """
        __tracebackhide__ = True
        row = self._row(name, value, tolerance, rel_tolerance, higher_is_better)
        if self.update:
            self._store(row, tolerance, rel_tolerance)
            return
        self._record(row)
        self._fail([row])

    def check_all(
        self,
        values: Mapping[str, float],
        *,
        tolerance: float | Mapping[str, float] = 0.0,
        higher_is_better: bool | Mapping[str, bool] = True,
        rel_tolerance: float | Mapping[str, float] | None = None,
    ) -> None:
        """Compare several metrics at once; one failure lists every regression.

        Args:
            values: ``{metric: value}``.
            tolerance: One absolute tolerance, or ``{metric: tolerance}`` (default 0).
            higher_is_better: One direction, or ``{metric: bool}`` (default True).
            rel_tolerance: One relative tolerance, or ``{metric: rel_tolerance}``.

        Raises:
            MLCheckFailure: With the table of all the metrics, regressions first.
            MLUsageError: On a non-finite value or a negative tolerance.

        Example:
            >>> metric_baseline.check_all({"macro_f1": 0.97, "ece": 0.02},
            ...     tolerance={"macro_f1": 0.01, "ece": 0.01},
            ...     higher_is_better={"ece": False})  # doctest: +SKIP
        """
        __tracebackhide__ = True
        rows = []
        for name, value in values.items():
            tol = float(_pick(tolerance, name, 0.0))
            rel = _pick(rel_tolerance, name, None)
            rows.append(
                (
                    self._row(name, value, tol, rel, bool(_pick(higher_is_better, name, True))),
                    tol,
                    rel,
                )
            )
        if self.update:
            for row, tol, rel in rows:
                self._store(row, tol, rel)
            return
        for row, _, _ in rows:
            self._record(row)
        self._fail([row for row, _, _ in rows])

    def save(self) -> None:
        """Write updated baselines atomically (only in update mode).

        Raises:
            MLUsageError: The file cannot be written (one line, nothing half-written).
        """
        if not self._updated:
            return
        for parent in self.path.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise MLUsageError(
                        f"cannot write baseline file {self.shown}: {parent} is a regular file, "
                        "not a folder (rename it, or set ini ml_baseline_dir)"
                    )
                break
        try:
            write_json_atomic(self.path, dict(sorted({**self._stored, **self._updated}.items())))
        except OSError as exc:
            raise MLUsageError(
                f"cannot write baseline file {self.shown}: {exc.strerror or exc}"
            ) from None
