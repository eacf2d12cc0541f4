"""Metric baselines: a metric may improve, it may not drop by more than its tolerance.

Each test keeps its baselines in one small JSON file under the baseline
directory (ini ``ml_baseline_dir``, default ``tests/baselines``), named after
the test's node id, so xdist workers never write the same file. Run with
``--ml-update-baselines`` to store the current values.

Example:
    >>> def test_f1_holds(metric_baseline):  # doctest: +SKIP
    ...     metric_baseline.check("macro_f1", evaluate(model), tolerance=0.01)
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from mltest.errors import MLCheckFailure, MLUsageError
from mltest.report import record_check, write_json_atomic

__all__ = ["MetricBaseline", "baseline_path"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]+")


def baseline_path(directory: Path, nodeid: str) -> Path:
    """The baseline file of a test: its node id made into a safe relative path.

    Example:
        >>> baseline_path(Path("b"), "tests/test_m.py::test_f1[cpu]").as_posix()
        'b/tests/test_m.py/test_f1_cpu_.json'
    """
    parts = [_UNSAFE.sub("_", p) for p in nodeid.replace("::", "/").split("/") if p]
    return directory.joinpath(*parts).with_suffix(".json")


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
        self._updated: dict[str, Any] = {}
        try:
            self.shown = path.relative_to(Path.cwd()).as_posix()
        except ValueError:
            self.shown = str(path)

    def check(
        self,
        name: str,
        value: float,
        *,
        tolerance: float = 0.0,
        higher_is_better: bool = True,
    ) -> None:
        """Compare ``value`` with the stored baseline of ``name``.

        Args:
            name: The metric's name.
            value: Its value in this run.
            tolerance: How far it may move the wrong way (absolute).
            higher_is_better: Direction of improvement (False for losses, latency).

        Raises:
            MLCheckFailure: When the metric regressed past the tolerance, or no
                baseline is stored yet.
            MLUsageError: On a non-finite value or a negative tolerance.

        Example:
            >>> metric_baseline.check("loss", 0.31, tolerance=0.02,
            ...                       higher_is_better=False)  # doctest: +SKIP
        """
        __tracebackhide__ = True
        value = float(value)
        if not math.isfinite(value):
            raise MLUsageError(f"metric {name!r} is {value}: a baseline needs a finite number")
        if tolerance < 0:
            raise MLUsageError(f"tolerance for {name!r} must be >= 0, got {tolerance}")
        if self.update:
            self._updated[name] = {
                "value": value,
                "tolerance": tolerance,
                "higher_is_better": higher_is_better,
            }
            record_check("eval", f"baseline:{name}", True, headline=f"stored {value:.6g}")
            return
        stored = self._stored.get(name)
        if stored is None:
            record_check("eval", f"baseline:{name}", False, headline="no baseline stored")
            raise MLCheckFailure(
                f"no baseline stored for metric {name!r} in {self.shown}\n"
                f"run `pytest --ml --ml-update-baselines` once to store the current value "
                f"({value:.6g})"
            )
        base = float(stored["value"])
        delta = value - base if higher_is_better else base - value
        passed = delta >= -tolerance
        direction = "higher" if higher_is_better else "lower"
        headline = (
            f"{value:.6g} vs baseline {base:.6g} ({direction} is better, tolerance {tolerance:g})"
        )
        record_check(
            "eval",
            f"baseline:{name}",
            passed,
            headline=headline,
            metrics={"value": value, "baseline": base, "tolerance": tolerance},
        )
        if not passed:
            raise MLCheckFailure(
                f"metric {name!r} regressed: {value:.6g} vs baseline {base:.6g} "
                f"({direction} is better), past the tolerance of {tolerance:g} "
                f"by {-delta - tolerance:.6g}\n"
                f"if the change is intended, run `pytest --ml --ml-update-baselines` "
                f"and commit {self.shown}"
            )

    def save(self) -> None:
        """Write updated baselines atomically (only in update mode)."""
        if not self._updated:
            return
        write_json_atomic(self.path, dict(sorted({**self._stored, **self._updated}.items())))
