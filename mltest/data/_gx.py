"""Run expectations with Great Expectations 1.x and read back what it found.

The one place that talks to GX: an ephemeral context (nothing written to
disk, progress bars and analytics off) with one pandas data source, one
dataframe asset and one whole-dataframe batch definition, created when a
check first runs. Results come back out of order, so each expectation carries
its position in ``meta`` and results are matched on it.
"""

from __future__ import annotations

import difflib
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mltest.data._spec import ExpectationSpec
from mltest.errors import MLUsageError, require

__all__ = ["Outcome", "build_expectation", "format_outcome", "run_expectations"]

_INDEX_KEY = "mltest_index"
_state: dict[str, Any] = {}


def _engine() -> tuple[Any, Any]:
    """Return ``(great_expectations, batch_definition)``, created once per process."""
    if "batch_definition" not in _state:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
        with warnings.catch_warnings():
            # GX imports deprecated stdlib modules; keep `-W error` runs working.
            warnings.simplefilter("ignore", DeprecationWarning)
            gx = require("great_expectations", "data", purpose="data checks")
            from great_expectations.data_context.types.base import (
                DataContextConfig,
                InMemoryStoreBackendDefaults,
                ProgressBarsConfig,
            )

        config = DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        )
        context = gx.get_context(mode="ephemeral", project_config=config)
        source = context.data_sources.add_pandas("mltest")
        asset = source.add_dataframe_asset("frame")
        _state["gx"] = gx
        _state["batch_definition"] = asset.add_batch_definition_whole_dataframe("whole")
    return _state["gx"], _state["batch_definition"]


@dataclass
class Outcome:
    """What one expectation found.

    Attributes:
        spec: The expectation.
        success: Whether it held (False when it could not run: see ``error``).
        element_count: Rows looked at, for per-row expectations.
        unexpected_count: Rows that broke it.
        unexpected_percent: The same as a percentage of non-missing rows.
        examples: Up to N ``(row index, value)`` pairs that broke it.
        observed: The observed value, for aggregate expectations (a mean, a count).
        error: Why it could not run (a missing column, bad arguments), else None.

    Example:
        >>> outcome = run_expectations(df, specs)[0]  # doctest: +SKIP
        >>> outcome.unexpected_count, outcome.examples[:1]  # doctest: +SKIP
        (1, [(2, 'sprot')])
    """

    spec: ExpectationSpec
    success: bool
    element_count: int | None = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    missing_count: int | None = None
    examples: list[tuple[Any, Any]] = field(default_factory=list)
    observed: Any = None
    error: str | None = None

    def metrics(self) -> dict[str, Any]:
        """Return the numbers for the report."""
        out: dict[str, Any] = {}
        if self.element_count is not None:
            out["rows"] = self.element_count
        if self.unexpected_count is not None:
            out["unexpected_count"] = self.unexpected_count
            out["unexpected_percent"] = self.unexpected_percent
        if self.observed is not None:
            out["observed"] = self.observed
        return out


def _validation_problem(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        seen: dict[str, str] = {}
        for err in errors():
            loc = ".".join(str(p) for p in err.get("loc", ())) or "arguments"
            if loc == "__root__":
                loc = "arguments"
            seen.setdefault(loc, str(err.get("msg", "invalid")))
        if seen:
            return "; ".join(f"{k}: {v}" for k, v in seen.items())
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def build_expectation(spec: ExpectationSpec, index: int = 0) -> Any:
    """Turn a spec into a GX expectation object, or explain in one line why not.

    Args:
        spec: The expectation.
        index: Its position in the validation run (stored in ``meta``).

    Returns:
        A ``great_expectations.expectations.Expectation``.

    Raises:
        MLUsageError: For an unknown expectation name or arguments GX rejects.

    Example:
        >>> build_expectation(ExpectationSpec("expect_nope"))  # doctest: +SKIP
        Traceback (most recent call last):
        mltest.errors.MLUsageError: unknown expectation 'expect_nope'
    """
    _engine()
    from great_expectations.exceptions.exceptions import ExpectationNotFoundError
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )
    from great_expectations.expectations.registry import (
        list_registered_expectation_implementations,
    )

    meta = {**spec.meta, _INDEX_KEY: index}
    try:
        config = ExpectationConfiguration(type=spec.type, kwargs=dict(spec.kwargs), meta=meta)
        return config.to_domain_obj()
    except ExpectationNotFoundError:
        known = list_registered_expectation_implementations()
        close = difflib.get_close_matches(spec.type, known, n=1)
        hint = f": did you mean {close[0]}?" if close else ""
        raise MLUsageError(f"unknown expectation {spec.type!r}{hint}") from None
    except Exception as exc:  # pydantic errors, GX configuration errors
        raise MLUsageError(f"bad arguments: {_validation_problem(exc)}") from None


def _short_error(message: str) -> str:
    first = (message or "").strip().splitlines()
    text = first[0] if first else "GX could not evaluate it"
    return text.removeprefix("Error: ")


def run_expectations(
    frame: Any, specs: Sequence[ExpectationSpec], *, max_examples: int = 10, name: str = "mltest"
) -> list[Outcome]:
    """Validate ``frame`` against ``specs`` in one GX run; one outcome per spec, in order.

    Problems with one expectation (unknown name, bad arguments, a column the
    frame lacks) become that outcome's ``error``; the others still run.

    Args:
        frame: A pandas DataFrame.
        specs: The expectations.
        max_examples: How many unexpected values (with row indices) to keep.
        name: The GX suite name.

    Returns:
        The outcomes, in the order of ``specs``.

    Example:
        >>> outcomes = run_expectations(df, [ExpectationSpec(  # doctest: +SKIP
        ...     "expect_column_values_to_not_be_null", {"column": "tag"})])
    """
    gx, batch_definition = _engine()
    outcomes: list[Outcome | None] = [None] * len(specs)
    columns = {str(c) for c in frame.columns}
    suite = gx.ExpectationSuite(name=name)
    pending = 0
    for index, spec in enumerate(specs):
        missing = [c for c in spec.columns() if c not in columns]
        if missing:
            listed = ", ".join(sorted(columns)[:20])
            outcomes[index] = Outcome(
                spec,
                False,
                error=f"column {missing[0]!r} is not in the data (columns: {listed})",
            )
            continue
        try:
            suite.add_expectation(build_expectation(spec, index))
        except MLUsageError as exc:
            outcomes[index] = Outcome(spec, False, error=str(exc))
            continue
        pending += 1
    if pending:
        batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
        result = batch.validate(
            suite,
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": max_examples},
        )
        for res in result.results:
            index = int((res.expectation_config.meta or {})[_INDEX_KEY])
            outcomes[index] = _outcome(specs[index], res)
    return [
        o if o is not None else Outcome(specs[i], False, error="no result")
        for i, o in enumerate(outcomes)
    ]


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", 0) == 0:
        try:
            return item()
        except (TypeError, ValueError):
            return value
    return value


def _outcome(spec: ExpectationSpec, res: Any) -> Outcome:
    info = res.exception_info or {}
    message = None
    if info.get("raised_exception"):
        message = info.get("exception_message")
    else:  # per-metric form: {metric id: {raised_exception, exception_message}}
        for value in info.values():
            if isinstance(value, dict) and value.get("raised_exception"):
                message = value.get("exception_message")
                break
    if message is not None:
        return Outcome(spec, False, error=_short_error(str(message)))
    result = res.result or {}
    values = result.get("partial_unexpected_list") or []
    rows = result.get("partial_unexpected_index_list") or [None] * len(values)
    return Outcome(
        spec,
        bool(res.success),
        element_count=result.get("element_count"),
        unexpected_count=result.get("unexpected_count"),
        unexpected_percent=_plain(result.get("unexpected_percent")),
        missing_count=result.get("missing_count"),
        examples=[(_plain(r), _plain(v)) for r, v in zip(rows, values, strict=False)],
        observed=_plain(result.get("observed_value")),
    )


def format_outcome(outcome: Outcome, *, max_examples: int = 10, indent: str = "  ") -> list[str]:
    """Describe a failed outcome as lines: counts, then a row/value table.

    Example:
        >>> format_outcome(Outcome(ExpectationSpec("expect_x"), False, error="boom"))
        ['expect_x()', '  error: boom']
    """
    lines = [outcome.spec.describe()]
    if outcome.error is not None:
        lines.append(f"{indent}error: {outcome.error}")
        return lines
    if outcome.unexpected_count is not None:
        pct = outcome.unexpected_percent or 0.0
        total = outcome.element_count or 0
        what, extra = "rows", ""
        if outcome.missing_count:
            total -= outcome.missing_count
            what, extra = "non-missing rows", f"; {outcome.missing_count} missing"
        lines.append(
            f"{indent}unexpected: {outcome.unexpected_count} of {total} {what} ({pct:.2f}%{extra})"
        )
        shown = outcome.examples[:max_examples]
        if shown:
            width = max(3, *(len(str(r)) for r, _ in shown))
            lines.append(f"{indent}{'row':>{width}}  value")
            lines.extend(f"{indent}{r!s:>{width}}  {v!r}" for r, v in shown)
            more = (outcome.unexpected_count or 0) - len(shown)
            if more > 0:
                lines.append(f"{indent}... and {more} more")
    if outcome.observed is not None:
        observed = outcome.observed
        text = f"{observed:.6g}" if isinstance(observed, float) else repr(observed)
        lines.append(f"{indent}observed: {text}")
    return lines
