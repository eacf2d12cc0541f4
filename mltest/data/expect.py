"""Inline expectations in a test: a fluent builder and a list form.

Both run every expectation in one Great Expectations validation and raise one
:class:`~mltest.errors.MLCheckFailure` listing every failed expectation with
its unexpected count and percentage and up to N unexpected values with their
row indices.

Example:
    >>> from mltest.data import expect
    >>> expect(df, name="train").column("tag").in_set(TAGS).not_null().check()  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mltest.data._gx import Outcome, format_outcome, run_expectations
from mltest.data._spec import ExpectationSpec, parse_expectations, spec_label
from mltest.errors import MLCheckFailure, MLUsageError
from mltest.report import record_check

__all__ = ["ColumnExpectations", "FrameExpectations", "expect", "validate"]

FIX_HINT = (
    "Fix the rows shown, or relax the expectation (mostly=0.99 tolerates 1% unexpected rows)."
)
FIX_HINT_AGGREGATE = "Fix the data, or update the expectation if the change is intended."


def fix_hint(outcomes: Sequence[Outcome]) -> str:
    """Return what to do next for these failed outcomes.

    Example:
        >>> fix_hint([])
        'Fix the data, or update the expectation if the change is intended.'
    """
    return FIX_HINT if any(o.unexpected_count for o in outcomes) else FIX_HINT_AGGREGATE


def _to_spec(item: Any, position: int, where: str) -> ExpectationSpec:
    if isinstance(item, ExpectationSpec):
        return item
    if isinstance(item, Mapping):
        spec = parse_expectations([item], where)[0]
        spec.position = position
        return spec
    config = getattr(item, "configuration", None)
    type_name = getattr(config, "type", None)
    if isinstance(type_name, str):
        kwargs = {k: v for k, v in dict(config.kwargs).items() if k != "batch_id"}  # type: ignore[union-attr]
        meta = dict(getattr(config, "meta", None) or {})
        return ExpectationSpec(type_name, kwargs, meta, spec_label(kwargs, position), position)
    raise MLUsageError(
        f"{where}: expectation #{position} is a {type(item).__name__}: give GX expectation "
        "objects (gxe.ExpectColumnValuesToBeInSet(...)) or {'expect_...': {arguments}} dicts"
    )


def _frame_rows(frame: Any) -> int:
    try:
        return len(frame)
    except TypeError:
        return 0


def raise_for_outcomes(
    outcomes: Sequence[Outcome], *, source: str, rows: int, max_examples: int, check: str
) -> None:
    """Record the outcomes in the report and raise when any failed.

    Raises:
        MLUsageError: When an expectation could not run (unknown name, bad
            arguments, a missing column): one line naming it and the problem.
        MLCheckFailure: When expectations failed: every failure with its counts
            and unexpected values.

    Example:
        >>> raise_for_outcomes([], source="train", rows=0, max_examples=5, check="x")
    """
    __tracebackhide__ = True
    failed = [o for o in outcomes if not o.success]
    errors = [o for o in failed if o.error is not None]
    headline = (
        f"{len(failed)} of {len(outcomes)} expectations failed on {source} ({rows:,} rows)"
        if failed
        else f"{len(outcomes)} expectations held on {source} ({rows:,} rows)"
    )
    record_check(
        "data",
        check,
        not failed,
        headline=headline,
        metrics={"cases": len(outcomes), "failed": len(failed), "rows": rows},
        examples=[
            {
                "expectation": o.spec.describe(),
                "unexpected_count": o.unexpected_count,
                "unexpected": [{"row": r, "value": v} for r, v in o.examples[:max_examples]],
                "observed": o.observed,
                "error": o.error,
            }
            for o in failed
        ],
        group={"check": "expectations"},
    )
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise MLUsageError(
            f"{source}: expectation #{first.spec.position} {first.spec.describe(80)}: "
            f"{first.error}{more}"
        )
    if failed:
        lines = [headline, ""]
        for outcome in failed:
            lines.extend(format_outcome(outcome, max_examples=max_examples))
            lines.append("")
        lines.append(fix_hint(failed))
        raise MLCheckFailure("\n".join(lines))


def validate(
    frame: Any,
    expectations: Iterable[Any],
    *,
    name: str = "data",
    max_examples: int = 10,
) -> list[Outcome]:
    """Check a DataFrame against expectations; raise one failure listing all that broke.

    Args:
        frame: A pandas DataFrame.
        expectations: GX expectation objects (``gxe.ExpectColumnValuesToBeInSet(...)``),
            or dicts in suite form (``{"expect_column_values_to_not_be_null":
            {"column": "tag"}}``).
        name: What the data is called in messages and the report.
        max_examples: Unexpected values shown per expectation.

    Returns:
        The outcomes, when every expectation held.

    Raises:
        MLCheckFailure: Listing each failed expectation, its unexpected count
            and percentage, and up to ``max_examples`` values with row indices.
        MLUsageError: For an unknown expectation, bad arguments or a missing column.

    Example:
        >>> import great_expectations.expectations as gxe  # doctest: +SKIP
        >>> validate(df, [gxe.ExpectColumnValuesToNotBeNull(column="tag")])  # doctest: +SKIP
    """
    __tracebackhide__ = True
    specs = [_to_spec(item, i, name) for i, item in enumerate(expectations, start=1)]
    if not specs:
        raise MLUsageError(f"{name}: no expectations given")
    outcomes = run_expectations(frame, specs, max_examples=max_examples, name=name)
    raise_for_outcomes(
        outcomes, source=name, rows=_frame_rows(frame), max_examples=max_examples, check=name
    )
    return outcomes


def _kw(mostly: float | None, **kwargs: Any) -> dict[str, Any]:
    out = {k: v for k, v in kwargs.items() if v is not None}
    if mostly is not None:
        out["mostly"] = mostly
    return out


class FrameExpectations:
    """Expectations on one DataFrame, built fluently and checked together.

    Example:
        >>> (expect(df, name="train")  # doctest: +SKIP
        ...     .row_count_between(100, None)
        ...     .column("tag").in_set(["sport", "tech"]).not_null()
        ...     .column("title").unique()
        ...     .check())
    """

    def __init__(self, frame: Any, *, name: str = "data", max_examples: int = 10) -> None:
        self.frame = frame
        self.name = name
        self.max_examples = max_examples
        self.specs: list[ExpectationSpec] = []

    def expectation(self, type_name: str, **kwargs: Any) -> FrameExpectations:
        """Add any GX expectation by its snake-case name.

        Example:
            >>> expect(df).expectation(  # doctest: +SKIP
            ...     "expect_column_pair_values_a_to_be_greater_than_b",
            ...     column_A="end", column_B="start")
        """
        position = len(self.specs) + 1
        self.specs.append(
            ExpectationSpec(type_name, kwargs, {}, spec_label(kwargs, position), position)
        )
        return self

    def column(self, name: str) -> ColumnExpectations:
        """Start expectations on column ``name``.

        Example:
            >>> expect(df).column("tag").not_null().check()  # doctest: +SKIP
        """
        return ColumnExpectations(self, name)

    def row_count_between(self, min_value: int | None, max_value: int | None) -> FrameExpectations:
        """Expect the row count within bounds (None leaves a side open).

        Example:
            >>> expect(df).row_count_between(1, None).check()  # doctest: +SKIP
        """
        return self.expectation(
            "expect_table_row_count_to_be_between",
            **_kw(None, min_value=min_value, max_value=max_value),
        )

    def columns_include(self, columns: Sequence[str]) -> FrameExpectations:
        """Expect at least these columns (others allowed).

        Example:
            >>> expect(df).columns_include(["title", "tag"]).check()  # doctest: +SKIP
        """
        return self.expectation(
            "expect_table_columns_to_match_set", column_set=list(columns), exact_match=False
        )

    def check(self) -> list[Outcome]:
        """Run every expectation added so far; raise one failure listing all that broke.

        Returns:
            The outcomes, when all held.

        Raises:
            MLCheckFailure: When any expectation failed.
            MLUsageError: When one could not run.

        Example:
            >>> expect(df).column("tag").not_null().check()  # doctest: +SKIP
        """
        __tracebackhide__ = True
        return validate(self.frame, self.specs, name=self.name, max_examples=self.max_examples)


class ColumnExpectations:
    """Expectations on one column; every method returns ``self`` for chaining.

    ``column()``, ``expectation()`` and ``check()`` hand back to the frame.

    Example:
        >>> expect(df).column("tag").in_set(["a", "b"]).not_null().check()  # doctest: +SKIP
    """

    def __init__(self, parent: FrameExpectations, name: str) -> None:
        self.parent = parent
        self.name = name

    def _add(self, type_name: str, **kwargs: Any) -> ColumnExpectations:
        self.parent.expectation(type_name, column=self.name, **kwargs)
        return self

    def not_null(self, *, mostly: float | None = None) -> ColumnExpectations:
        """Expect no missing values.

        Example:
            >>> expect(df).column("tag").not_null().check()  # doctest: +SKIP
        """
        return self._add("expect_column_values_to_not_be_null", **_kw(mostly))

    def in_set(self, values: Iterable[Any], *, mostly: float | None = None) -> ColumnExpectations:
        """Expect every value in ``values``.

        Example:
            >>> expect(df).column("tag").in_set(["a", "b"]).check()  # doctest: +SKIP
        """
        return self._add("expect_column_values_to_be_in_set", value_set=list(values), **_kw(mostly))

    def unique(self, *, mostly: float | None = None) -> ColumnExpectations:
        """Expect no duplicated values.

        Example:
            >>> expect(df).column("id").unique().check()  # doctest: +SKIP
        """
        return self._add("expect_column_values_to_be_unique", **_kw(mostly))

    def between(
        self, min_value: Any = None, max_value: Any = None, *, mostly: float | None = None
    ) -> ColumnExpectations:
        """Expect values within bounds (inclusive; None leaves a side open).

        Example:
            >>> expect(df).column("p").between(0, 1).check()  # doctest: +SKIP
        """
        return self._add(
            "expect_column_values_to_be_between",
            **_kw(mostly, min_value=min_value, max_value=max_value),
        )

    def matches_regex(self, regex: str, *, mostly: float | None = None) -> ColumnExpectations:
        """Expect every value to match ``regex`` (``re.search`` semantics).

        Example:
            >>> expect(df).column("id").matches_regex(r"^[a-z]+$").check()  # doctest: +SKIP
        """
        return self._add("expect_column_values_to_match_regex", regex=regex, **_kw(mostly))

    def length_between(
        self,
        min_value: int | None = None,
        max_value: int | None = None,
        *,
        mostly: float | None = None,
    ) -> ColumnExpectations:
        """Expect string lengths within bounds.

        Example:
            >>> expect(df).column("title").length_between(1, 200).check()  # doctest: +SKIP
        """
        return self._add(
            "expect_column_value_lengths_to_be_between",
            **_kw(mostly, min_value=min_value, max_value=max_value),
        )

    def mean_between(self, min_value: float | None, max_value: float | None) -> ColumnExpectations:
        """Expect the column mean within bounds.

        Example:
            >>> expect(df).column("p").mean_between(0.2, 0.8).check()  # doctest: +SKIP
        """
        return self._add(
            "expect_column_mean_to_be_between",
            **_kw(None, min_value=min_value, max_value=max_value),
        )

    def expectation(self, type_name: str, **kwargs: Any) -> ColumnExpectations:
        """Add any column expectation by name (``column=`` is filled in).

        Example:
            >>> expect(df).column("p").expectation(  # doctest: +SKIP
            ...     "expect_column_median_to_be_between", min_value=0, max_value=1)
        """
        return self._add(type_name, **kwargs)

    def column(self, name: str) -> ColumnExpectations:
        """Move on to another column.

        Example:
            >>> expect(df).column("a").not_null().column("b").not_null()  # doctest: +SKIP
        """
        return self.parent.column(name)

    def check(self) -> list[Outcome]:
        """Run all expectations on the frame (see :meth:`FrameExpectations.check`).

        Example:
            >>> expect(df).column("tag").not_null().check()  # doctest: +SKIP
        """
        __tracebackhide__ = True
        return self.parent.check()


def expect(frame: Any, *, name: str = "data", max_examples: int = 10) -> FrameExpectations:
    """Start inline expectations on a DataFrame.

    Args:
        frame: A pandas DataFrame.
        name: What the data is called in messages and the report.
        max_examples: Unexpected values shown per failed expectation.

    Returns:
        A builder; finish with ``.check()``.

    Example:
        >>> expect(df, name="train").column("tag").in_set(TAGS).not_null().check()  # doctest: +SKIP
    """
    return FrameExpectations(frame, name=name, max_examples=max_examples)
