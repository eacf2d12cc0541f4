"""Slices: metrics on subsets of the data, with a minimum and a maximum gap to overall.

A model at 95% accuracy overall may be at 70% on short texts. A slice is a
named subset: a predicate over the data (``@slice``), a boolean mask, or one
generated per value of a categorical column (:func:`slices_by_value`) or per
quantile bin of a numeric one (:func:`slices_by_quantile`), so hidden
stratification shows up without hand-written predicates.

:func:`check_slices` computes each slice's ``accuracy`` and ``macro_f1``
(macro-F1 over the classes present in the slice, as true or predicted labels,
so a slice is not punished for lacking a class), and fails when a slice is
below ``min_metric``, more than ``max_gap`` under the overall value, or
smaller than its minimum size: a slice too small to measure is reported as
such, never passed.

Example:
    >>> from mltest.eval import slice, check_slices
    >>> @slice("short", rowwise=True)
    ... def short(text):
    ...     return len(text.split()) < 3
    >>> report = check_slices([0, 1, 1], [0, 1, 0], data=["a b", "c d e f", "g"],
    ...                       slices=[short], min_size=1, max_gap=0.5)
    >>> report["short"].size, report["short"].value
    (2, 0.5)
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, overload

import numpy as np

from mltest.errors import MLCheckFailure, MLUsageError
from mltest.eval._metrics import as_proba, encode_labels, macro_f1_present, predictions_from_proba

__all__ = [
    "Slice",
    "SliceReport",
    "SliceResult",
    "check_slices",
    "slice",
    "slices_by_quantile",
    "slices_by_value",
]

METRICS = ("accuracy", "macro_f1")
DEFAULT_MIN_SIZE = 30


@dataclass
class Slice:
    """A named subset of the evaluated rows.

    Attributes:
        name: Shown in failures and the report.
        predicate: ``data -> boolean mask`` (or ``row -> bool`` when ``rowwise``).
        mask: A fixed boolean mask instead of a predicate.
        rowwise: Call ``predicate`` once per row (a text, or a dict per frame row).
        min_size: Rows the slice needs to be measured (default: the check's).
    """

    name: str
    predicate: Callable[[Any], Any] | None = None
    mask: np.ndarray | None = None
    rowwise: bool = False
    min_size: int | None = None

    def __call__(self, data: Any) -> Any:
        """Call the predicate, so a decorated function still works as a function."""
        if self.predicate is None:
            raise MLUsageError(f"slice {self.name!r} is a fixed mask, not a predicate")
        return self.predicate(data)

    def select(self, data: Any, n: int) -> np.ndarray:
        """The slice's boolean mask over ``n`` rows of ``data``.

        Example:
            >>> Slice("all", mask=np.ones(2, dtype=bool)).select(None, 2).tolist()
            [True, True]
        """
        if self.mask is not None:
            mask = np.asarray(self.mask)
        elif self.predicate is None:
            raise MLUsageError(f"slice {self.name!r} has neither a predicate nor a mask")
        elif self.rowwise:
            if data is None:
                raise MLUsageError(f"slice {self.name!r} needs data: pass data= to check_slices")
            mask = np.fromiter(
                (bool(self.predicate(row)) for row in _rows(data)), dtype=bool, count=n
            )
        else:
            if data is None:
                raise MLUsageError(f"slice {self.name!r} needs data: pass data= to check_slices")
            mask = np.asarray(self.predicate(data))
        mask = mask.reshape(-1)
        if mask.dtype != bool:
            raise MLUsageError(
                f"slice {self.name!r}: the predicate must give a boolean mask, got {mask.dtype}"
                + ("" if self.rowwise else " (a per-row predicate needs rowwise=True)")
            )
        if mask.shape[0] != n:
            raise MLUsageError(f"slice {self.name!r}: mask has {mask.shape[0]} rows, expected {n}")
        return mask


def _rows(data: Any) -> Iterator[Any]:
    to_dict = getattr(data, "to_dict", None)
    if callable(to_dict) and hasattr(data, "columns"):
        return iter(to_dict("records"))
    return iter(data)


@overload
def slice(name: Callable[[Any], Any], /) -> Slice: ...


@overload
def slice(
    name: str | None = None, /, *, rowwise: bool = False, min_size: int | None = None
) -> Callable[[Callable[[Any], Any]], Slice]: ...


def slice(
    name: str | Callable[[Any], Any] | None = None,
    /,
    *,
    rowwise: bool = False,
    min_size: int | None = None,
) -> Slice | Callable[[Callable[[Any], Any]], Slice]:
    """Declare a slice: a function of the data that selects its rows.

    By default the function gets the whole ``data`` (a DataFrame, a mapping of
    arrays) and returns a boolean mask: one call per slice, fast on a million
    rows. With ``rowwise=True`` it gets one row at a time (an element of a
    sequence, or a dict per DataFrame row) and returns a bool.

    Args:
        name: The slice's name (default: the function's name).
        rowwise: Call the function per row.
        min_size: Rows the slice needs to be measured.

    Returns:
        A :class:`Slice` (still callable as the function).

    Example:
        >>> @slice("long_text")
        ... def long_text(df):
        ...     return df["text"].str.split().str.len() > 600
        >>> long_text.name
        'long_text'
    """
    if callable(name):
        return Slice(name=getattr(name, "__name__", "slice"), predicate=name)

    def wrap(fn: Callable[[Any], Any]) -> Slice:
        return Slice(
            name=str(name or getattr(fn, "__name__", "slice")),
            predicate=fn,
            rowwise=rowwise,
            min_size=min_size,
        )

    return wrap


def _values(values: Any, name: str | None) -> tuple[np.ndarray, str]:
    label = name or getattr(values, "name", None) or "value"
    return np.asarray(values).reshape(-1), str(label)


def slices_by_value(
    values: Any, *, name: str | None = None, max_values: int = 50, min_size: int | None = None
) -> dict[str, Slice]:
    """One slice per distinct value of a categorical column (``name=value``).

    Args:
        values: One value per row (a Series, a list, an array).
        name: Prefix of the slice names (default: the Series' name).
        max_values: Refuse more distinct values than this (a numeric column
            wants :func:`slices_by_quantile`).
        min_size: Rows each slice needs to be measured.

    Returns:
        ``{"source=web": Slice, ...}``, in sorted value order.

    Raises:
        MLUsageError: More than ``max_values`` distinct values.

    Example:
        >>> sorted(slices_by_value(["web", "app", "web"], name="source"))
        ['source=app', 'source=web']
    """
    arr, label = _values(values, name)
    if arr.dtype.kind in "iu" and arr.size and int(arr.max()) - int(arr.min()) < 1 << 16:
        # Small integer codes: a bincount instead of a sort.
        low = int(arr.min())
        shifted = arr - low
        present = np.flatnonzero(np.bincount(shifted))
        table = np.zeros(present[-1] + 1, dtype=np.int64)
        table[present] = np.arange(present.size)
        uniq, inverse = present + low, table[shifted]
    else:
        uniq, inverse = np.unique(
            arr.astype(str) if arr.dtype == object else arr, return_inverse=True
        )
    if uniq.size > max_values:
        raise MLUsageError(
            f"slices_by_value: {label!r} has {uniq.size} distinct values (max_values "
            f"{max_values}); use slices_by_quantile for a numeric column"
        )
    inverse = inverse.reshape(-1)
    return {
        f"{label}={v}": Slice(name=f"{label}={v}", mask=inverse == i, min_size=min_size)
        for i, v in enumerate(uniq.tolist())
    }


def slices_by_quantile(
    values: Any, q: int = 4, *, name: str | None = None, min_size: int | None = None
) -> dict[str, Slice]:
    """One slice per quantile bin of a numeric column (text length, price, age).

    Bins are ``[edge_i, edge_i+1)``, the last one closed; tied values share a
    bin, so heavy ties give fewer bins.

    Args:
        values: One number per row.
        q: Number of bins (4 = quartiles).
        name: Prefix of the slice names (default: the Series' name).
        min_size: Rows each slice needs to be measured.

    Returns:
        ``{"words q1/4 [3, 120)": Slice, ...}`` from the lowest bin up.

    Raises:
        MLUsageError: ``q < 1``, no values, or non-finite values.

    Example:
        >>> list(slices_by_quantile([1, 2, 3, 4], q=2, name="len"))
        ['len q1/2 [1, 2.5)', 'len q2/2 [2.5, 4]']
    """
    arr, label = _values(values, name)
    if q < 1:
        raise MLUsageError(f"slices_by_quantile: q must be >= 1, got {q}")
    try:
        num = arr.astype(np.float64)
    except (TypeError, ValueError):
        raise MLUsageError(f"slices_by_quantile: {label!r} is not numeric") from None
    if num.size == 0 or not np.isfinite(num).all():
        raise MLUsageError(f"slices_by_quantile: {label!r} is empty or holds NaN/infinity")
    edges = np.unique(np.quantile(num, np.linspace(0.0, 1.0, q + 1)))
    if edges.size == 1:
        edges = np.array([edges[0], edges[0]])
    index = np.clip(np.searchsorted(edges, num, side="right") - 1, 0, edges.size - 2)
    bins = edges.size - 1
    out: dict[str, Slice] = {}
    for b in range(bins):
        close = "]" if b == bins - 1 else ")"
        key = f"{label} q{b + 1}/{bins} [{edges[b]:g}, {edges[b + 1]:g}{close}"
        out[key] = Slice(name=key, mask=index == b, min_size=min_size)
    return out


@dataclass
class SliceResult:
    """One slice's measurement.

    Attributes:
        name: The slice.
        size: Its rows.
        accuracy: Its accuracy (None when too small).
        macro_f1: Its macro-F1 over the classes present (None when too small).
        value: The checked metric (None when too small).
        gap: Overall metric minus the slice's (positive = the slice is worse).
        status: ``"ok"``, ``"too small"``, ``"below min"`` or ``"gap"``.
        min_size: The size it needed.
    """

    name: str
    size: int
    accuracy: float | None
    macro_f1: float | None
    value: float | None
    gap: float | None
    status: str
    min_size: int


class SliceReport:
    """The result of :func:`check_slices`: every slice, the overall value, the failures.

    Example:
        >>> r = check_slices([0, 1], [0, 1], slices={"all": np.array([True, True])},
        ...                  min_size=1, min_metric=0.5)
        >>> r.overall, r["all"].status
        (1.0, 'ok')
    """

    def __init__(self, metric: str, overall: float, results: list[SliceResult]) -> None:
        self.metric = metric
        self.overall = overall
        self.results = results

    def __getitem__(self, name: str) -> SliceResult:
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(name)

    def __iter__(self) -> Iterator[SliceResult]:
        return iter(self.results)

    @property
    def failed(self) -> list[SliceResult]:
        """Failed slices, weakest first (too small ones last)."""
        bad = [r for r in self.results if r.status != "ok"]
        return sorted(bad, key=_weakness)

    def table(self, rows: Sequence[SliceResult] | None = None, *, limit: int = 15) -> list[str]:
        """The slices as text lines, weakest first."""
        from mltest.report import format_table

        shown = sorted(self.results, key=_weakness) if rows is None else list(rows)
        return format_table(
            ["slice", "rows", "accuracy", "macro_f1", "gap", "status"],
            [
                [
                    r.name,
                    f"{r.size:,}",
                    "-" if r.accuracy is None else f"{r.accuracy:.4f}",
                    "-" if r.macro_f1 is None else f"{r.macro_f1:.4f}",
                    "-" if r.gap is None else f"{r.gap:+.4f}",
                    _status_text(r),
                ]
                for r in shown
            ],
            limit=limit,
            indent="  ",
        )


def _weakness(r: SliceResult) -> tuple[int, float]:
    if r.value is None:
        return (1, -r.size)
    return (0, r.value)


def _status_text(r: SliceResult) -> str:
    if r.status == "too small":
        return f"too small (< {r.min_size} rows)"
    return r.status


def _as_slices(slices: Any) -> list[Slice]:
    if isinstance(slices, Slice):
        return [slices]
    items: list[Slice] = []
    if isinstance(slices, Mapping):
        for key, value in slices.items():
            if isinstance(value, Slice):
                items.append(value if value.name == key else Slice(**{**vars(value), "name": key}))
            elif callable(value):
                items.append(Slice(name=str(key), predicate=value))
            else:
                items.append(Slice(name=str(key), mask=np.asarray(value)))
        return items
    for value in slices:
        if isinstance(value, Slice):
            items.append(value)
        elif isinstance(value, Mapping):
            items.extend(_as_slices(value))
        elif callable(value):
            items.append(Slice(name=getattr(value, "__name__", "slice"), predicate=value))
        else:
            raise MLUsageError(f"check_slices: {value!r} is not a slice")
    return items


def check_slices(
    y_true: Any,
    y_pred: Any = None,
    *,
    proba: Any = None,
    slices: Any,
    data: Any = None,
    labels: Sequence[Any] | None = None,
    metric: str = "accuracy",
    min_metric: float | None = None,
    max_gap: float | None = None,
    min_size: int = DEFAULT_MIN_SIZE,
    on_too_small: str = "fail",
    inputs: Sequence[Any] | None = None,
    max_bad_cases: int = 5,
    name: str = "slices",
) -> SliceReport:
    """Fail when a slice is below ``min_metric`` or more than ``max_gap`` under overall.

    Args:
        y_true: True labels (names, or indices into ``labels``).
        y_pred: Predicted labels; default: the argmax of ``proba``.
        proba: Class probabilities; ranks the bad cases shown on failure.
        slices: :class:`Slice` objects, ``@slice`` functions, or a mapping
            ``{name: predicate or boolean mask or Slice}`` (or a list of those).
        data: What predicates look at (a DataFrame, a mapping, a list of texts).
        labels: Class names in index order.
        metric: ``"accuracy"`` or ``"macro_f1"``: the one the limits apply to.
        min_metric: Lowest allowed value in any slice.
        max_gap: Largest allowed ``overall - slice`` of the metric.
        min_size: Rows a slice needs to be measured (a slice's own wins).
        on_too_small: ``"fail"`` (default) or ``"warn"``: a slice under its
            minimum size fails the check, or is reported with a pytest warning.
        inputs: The inputs (default: ``data`` when it is a list of strings),
            shown with the bad cases of the weakest slice.
        max_bad_cases: Bad cases shown for the weakest slice.
        name: The check's name in the report.

    Returns:
        A :class:`SliceReport` when every slice passes.

    Raises:
        MLCheckFailure: A slice failed; the weakest come first, with their sizes.
        MLUsageError: No limit, unknown metric, bad masks or shapes.

    Example:
        >>> check_slices(y_true, y_pred, data=df, max_gap=0.05,
        ...              slices=slices_by_quantile(df["text"].str.len(), q=4))  # doctest: +SKIP
    """
    __tracebackhide__ = True
    from mltest.eval.badcases import _collect
    from mltest.report import record_check, record_figure

    if metric not in METRICS:
        raise MLUsageError(f"check_slices: metric {metric!r} is not one of {', '.join(METRICS)}")
    if min_metric is None and max_gap is None:
        raise MLUsageError("check_slices: give min_metric and/or max_gap")
    if on_too_small not in ("fail", "warn"):
        raise MLUsageError(
            f"check_slices: on_too_small must be 'fail' or 'warn', not {on_too_small!r}"
        )
    if y_pred is None and proba is None:
        raise MLUsageError("check_slices: give y_pred or proba")
    n = np.asarray(y_true).reshape(-1).shape[0]
    prob = None if proba is None else as_proba(proba, n, what="check_slices")
    if y_pred is None:
        assert prob is not None
        y_pred, labels = predictions_from_proba(prob, y_true, labels, what="check_slices")
    true, pred, names = encode_labels(y_true, y_pred, labels, what="check_slices")
    if data is not None and not isinstance(data, Mapping) and len(data) != n:
        raise MLUsageError(f"check_slices: data has {len(data)} rows but y_true has {n}")
    items = _as_slices(slices)
    if not items:
        raise MLUsageError("check_slices: no slices given")
    seen: set[str] = set()
    for s in items:
        if s.name in seen:
            raise MLUsageError(f"check_slices: two slices are named {s.name!r}")
        seen.add(s.name)

    k = len(names)
    code = true * k + pred
    full = np.bincount(code, minlength=k * k).reshape(k, k)
    overall_values = {
        "accuracy": float(np.trace(full)) / n if n else 0.0,
        "macro_f1": macro_f1_present(full),
    }
    overall = overall_values[metric]
    results: list[SliceResult] = []
    masks: dict[str, np.ndarray] = {}
    for s in items:
        mask = s.select(data, n)
        masks[s.name] = mask
        size = int(np.count_nonzero(mask))
        needed = s.min_size if s.min_size is not None else min_size
        if size < builtins.max(needed, 1):
            results.append(SliceResult(s.name, size, None, None, None, None, "too small", needed))
            continue
        cm = np.bincount(code[mask], minlength=k * k).reshape(k, k)
        acc = float(np.trace(cm)) / size
        f1 = macro_f1_present(cm)
        value = acc if metric == "accuracy" else f1
        gap = overall - value
        status = "ok"
        if min_metric is not None and value < min_metric:
            status = "below min"
        elif max_gap is not None and gap > max_gap:
            status = "gap"
        results.append(SliceResult(s.name, size, acc, f1, value, gap, status, needed))

    report = SliceReport(metric, overall, results)
    too_small = [r for r in results if r.status == "too small"]
    failing = [r for r in report.failed if r.status != "too small" or on_too_small == "fail"]
    passed = not failing
    limits = ", ".join(
        part
        for part in (
            None if min_metric is None else f"min {min_metric:g}",
            None if max_gap is None else f"max gap {max_gap:g}",
        )
        if part
    )
    counted = [r for r in failing if r.status != "too small"]
    if passed:
        headline = f"{len(results)} slices within {metric} limits ({limits}; overall {overall:.4f})"
        if too_small:
            headline += f"; {len(too_small)} too small to measure"
    else:
        parts = []
        if counted:
            worst = counted[0]
            parts.append(
                f"{len(counted)} of {len(results)} slices fail on {metric} ({limits}); weakest "
                f"{worst.name!r} {worst.value:.4f} on {worst.size:,} rows vs overall {overall:.4f}"
            )
        small = [r for r in failing if r.status == "too small"]
        if small:
            parts.append(f"{len(small)} too small to measure (< {small[0].min_size} rows)")
        headline = "; ".join(parts)

    weakest = next((r for r in sorted(results, key=_weakness) if r.value is not None), None)
    cases = None
    if not passed and counted and weakest is not None:
        idx = np.flatnonzero(masks[counted[0].name])
        shown_inputs = inputs
        if (
            shown_inputs is None
            and isinstance(data, list | tuple)
            and data
            and isinstance(data[0], str)
        ):
            shown_inputs = data
        sub_inputs = None if shown_inputs is None else [shown_inputs[int(i)] for i in idx]
        sub = _collect(
            true[idx],
            pred[idx],
            names,
            None if prob is None else prob[idx],
            sub_inputs,
            max_bad_cases,
            None,
        )
        # Rows are positions in the slice: map them back to the full arrays.
        for by_kind in sub.by_class.values():
            for kind, rows in by_kind.items():
                by_kind[kind] = [type(c)(**{**c.to_dict(), "row": int(idx[c.row])}) for c in rows]
        cases = sub
    record_check(
        "eval",
        name,
        passed,
        headline=headline,
        metrics={
            "metric": metric,
            "overall": overall,
            "min_metric": min_metric,
            "max_gap": max_gap,
            "slices": len(results),
            "failed": len(failing),
            "too_small": len(too_small),
        },
        examples=[
            {
                "slice": r.name,
                "rows": r.size,
                metric: None if r.value is None else round(r.value, 6),
                "gap": None if r.gap is None else round(r.gap, 6),
                "status": _status_text(r),
            }
            for r in (failing or too_small)
        ]
        + ([] if cases is None else cases.examples()),
    )
    from mltest.report import current_record

    if current_record() is not None:
        record_figure(
            f"{name}.{metric}",
            "bars",
            {
                "labels": [r.name for r in results],
                "series": {metric: [r.value if r.value is not None else 0.0 for r in results]},
                "x_label": "slice",
                "y_label": metric,
            },
            title=f"{metric} per slice (overall {overall:.4f})",
            check=name,
        )
    if too_small and on_too_small == "warn":
        import warnings

        warnings.warn(
            f"{name}: {len(too_small)} slice(s) too small to measure: "
            + ", ".join(f"{r.name!r} ({r.size} rows)" for r in too_small),
            stacklevel=2,
        )
    if passed:
        return report
    lines = [f"{name}: {headline}", "", "slices, weakest first:", *report.table()]
    if cases is not None:
        table = cases.table(limit=max_bad_cases)
        if table:
            lines.extend(["", f"bad cases in {counted[0].name!r}:", *table])
    advice = []
    if counted:
        advice.append(
            "A weak slice is hidden stratification: add training data like it, or a feature "
            "that separates it."
        )
    if any(r.status == "too small" for r in failing):
        advice.append(
            "A too-small slice cannot be measured: evaluate on more data, merge it, or lower "
            "min_size knowingly (on_too_small='warn' reports without failing)."
        )
    lines.extend(["", *advice])
    raise MLCheckFailure("\n".join(lines))
