"""Drift between a reference window and a current window, column by column.

Numeric columns get the two-sample Kolmogorov-Smirnov test, categorical
columns a chi-squared test of homogeneity on their value counts, and text
columns two tests: KS on the length distribution and chi-squared on token
(or character n-gram) frequencies. All statistics come from ``scipy.stats``.
The p-values of all tests are corrected for multiple testing (Holm by default,
Benjamini-Hochberg on request) before comparing with ``alpha``.

With large windows every test detects tiny, harmless shifts; ``min_effect``
asks for a shift that also matters (KS statistic, or total variation distance
for counts).

Example:
    >>> from mltest.data import check_drift
    >>> check_drift(train_df, live_df, text_columns=["title"], alpha=0.01)  # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from mltest.errors import MLCheckFailure, MLUsageError
from mltest.report import record_check, record_figure

__all__ = ["ColumnDrift", "DriftReport", "adjust_pvalues", "check_drift", "drift_report"]

Correction = Literal["holm", "bh", "none"]
_OTHER = "<other>"
_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
_HIST_BINS = 20  # bins (numbers) or most common values (categories) in a drift histogram


@dataclass
class ColumnDrift:
    """One test of one column.

    Attributes:
        column: The column (text columns add `` (length)`` or `` (tokens)``).
        kind: ``"numeric"``, ``"categorical"`` or ``"text"``.
        test: ``"ks"`` or ``"chi2"``.
        statistic: The test statistic.
        p_value: The raw p-value.
        p_adjusted: The p-value after the multiple-testing correction.
        effect: KS statistic, or total variation distance between the count shares.
        drifted: Whether ``p_adjusted < alpha`` and ``effect >= min_effect``.
        shifted: The most-shifted values: categories (share before and after) or
            quantiles (value before and after), largest shift first.
        histogram: Both windows as shares of their rows: ``{"labels": [...],
            "reference": [...], "current": [...]}`` over shared bins (numbers)
            or the most common values (categories, tokens); the HTML report
            draws it for drifted columns.

    Example:
        >>> [c.column for c in drift_report(ref, cur).columns]  # doctest: +SKIP
        ['price', 'tag']
    """

    column: str
    kind: str
    test: str
    statistic: float
    p_value: float
    p_adjusted: float = 1.0
    effect: float = 0.0
    drifted: bool = False
    shifted: list[dict[str, Any]] = field(default_factory=list)
    histogram: dict[str, Any] | None = None

    def shifted_text(self, top: int = 3) -> str:
        """Describe the most-shifted values in one short line.

        Example:
            >>> ColumnDrift("tag", "categorical", "chi2", 9.0, 0.01,
            ...             shifted=[{"value": "a", "reference": 0.5, "current": 0.7}]
            ...             ).shifted_text()
            "'a' 50.0% -> 70.0%"
        """
        parts = []
        for s in self.shifted[:top]:
            if "quantile" in s:
                parts.append(
                    f"q{round(s['quantile'] * 100)} {s['reference']:.4g} -> {s['current']:.4g}"
                )
            else:
                value = repr(s["value"])
                value = value if len(value) <= 24 else value[:21] + "..."
                parts.append(f"{value} {s['reference']:.1%} -> {s['current']:.1%}")
        return "; ".join(parts)


@dataclass
class DriftReport:
    """Every column test between two windows.

    Attributes:
        columns: One entry per test, in column order.
        alpha: The significance level.
        correction: The multiple-testing correction used.
        reference_rows: Rows in the reference window.
        current_rows: Rows in the current window.
        min_effect: Smallest effect that counts as drift.

    Example:
        >>> report = drift_report(train_df, live_df)  # doctest: +SKIP
        >>> print(report.headline()); print(report.table())  # doctest: +SKIP
    """

    columns: list[ColumnDrift]
    alpha: float
    correction: str
    reference_rows: int
    current_rows: int
    min_effect: float = 0.0

    @property
    def drifted(self) -> list[ColumnDrift]:
        """The tests that found drift.

        Example:
            >>> [d.column for d in drift_report(ref, cur).drifted]  # doctest: +SKIP
            ['price']
        """
        return [c for c in self.columns if c.drifted]

    def headline(self) -> str:
        """One line: how many tests found drift, at which alpha and correction.

        Example:
            >>> drift_report(ref, cur).headline()  # doctest: +SKIP
            'drift in 1 of 3 column tests (alpha 0.05, holm) ...'
        """
        corr = {"holm": "Holm-corrected", "bh": "Benjamini-Hochberg", "none": "uncorrected"}
        where = f"reference ({self.reference_rows:,} rows) vs current ({self.current_rows:,} rows)"
        n = len(self.drifted)
        verdict = f"drift in {n} of {len(self.columns)}" if n else "no drift in"
        effect = f", min effect {self.min_effect:g}" if self.min_effect else ""
        return (
            f"{verdict} column tests (alpha {self.alpha:g}, {corr[self.correction]}{effect}): "
            f"{where}"
        )

    def table(self) -> str:
        """Every test as a table row, drifted ones marked with ``*``.

        Example:
            >>> print(drift_report(ref, cur).table())  # doctest: +SKIP
        """
        width = max(12, *(len(c.column) + 2 for c in self.columns)) if self.columns else 12
        lines = [
            f"{'column':<{width}}{'test':<6}{'statistic':>11}{'p-value':>10}{'adj. p':>10}"
            f"{'effect':>8}  most shifted"
        ]
        for c in self.columns:
            mark = "*" if c.drifted else " "
            lines.append(
                f"{mark}{c.column:<{width - 1}}{c.test:<6}{c.statistic:>11.4g}{c.p_value:>10.2g}"
                f"{c.p_adjusted:>10.2g}{c.effect:>8.3f}  {c.shifted_text()}"
            )
        return "\n".join(lines)


def adjust_pvalues(p_values: Sequence[float], method: Correction = "holm") -> list[float]:
    """Correct p-values for multiple testing.

    ``"holm"`` controls the family-wise error rate (Holm 1979, step-down
    Bonferroni); ``"bh"`` controls the false discovery rate
    (``scipy.stats.false_discovery_control``); ``"none"`` returns them as given.

    Example:
        >>> [round(p, 3) for p in adjust_pvalues([0.01, 0.04, 0.03])]
        [0.03, 0.06, 0.06]
    """
    ps = [float(p) for p in p_values]
    if method == "none" or not ps:
        return ps
    if method == "bh":
        from scipy import stats

        return [float(p) for p in stats.false_discovery_control(ps, method="bh")]
    if method != "holm":
        raise MLUsageError(f"correction {method!r} is not one of 'holm', 'bh', 'none'")
    m = len(ps)
    order = sorted(range(m), key=lambda i: ps[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * ps[i]))
        adjusted[i] = running
    return adjusted


def _sorted_quantiles(values: Any) -> list[float]:
    """Quantiles of an already sorted array (linear interpolation, numpy's default)."""
    last = values.size - 1
    out = []
    for q in _QUANTILES:
        pos = q * last
        lo = int(pos)
        hi = min(lo + 1, last)
        out.append(float(values[lo] + (values[hi] - values[lo]) * (pos - lo)))
    return out


def _numeric(ref: Any, cur: Any, column: str) -> ColumnDrift:
    import numpy as np
    from scipy import stats

    a = ref.to_numpy(dtype=float, na_value=np.nan)
    b = cur.to_numpy(dtype=float, na_value=np.nan)
    # Sorted once: ks_2samp re-sorts cheaply, and quantiles become lookups.
    a, b = np.sort(a[~np.isnan(a)]), np.sort(b[~np.isnan(b)])
    if a.size == 0 or b.size == 0:
        raise MLUsageError(f"drift: column {column!r} has no non-missing values in one window")
    with warnings.catch_warnings():
        # With ties the exact method can fail; scipy then falls back to the
        # asymptotic p-value and warns. The fallback is the right answer here.
        warnings.filterwarnings("ignore", "ks_2samp: Exact calculation", RuntimeWarning)
        res = stats.ks_2samp(a, b)
    qa, qb = _sorted_quantiles(a), _sorted_quantiles(b)
    scale = float(qa[3] - qa[1]) or float(a[-1] - a[0]) or 1.0
    shifted = sorted(
        (
            {"quantile": q, "reference": float(x), "current": float(y)}
            for q, x, y in zip(_QUANTILES, qa, qb, strict=True)
        ),
        key=lambda s: -abs(s["current"] - s["reference"]) / scale,
    )
    stat = float(res.statistic)
    return ColumnDrift(
        column,
        "numeric",
        "ks",
        stat,
        float(res.pvalue),
        effect=stat,
        shifted=shifted,
        histogram=_numeric_histogram(a, b),
    )


def _numeric_histogram(a: Any, b: Any, bins: int = _HIST_BINS) -> dict[str, Any]:
    """Shares of each window in shared bins over the central 99% of both (ends clipped)."""
    import numpy as np

    both = np.concatenate([a, b])
    lo, hi = (float(v) for v in np.quantile(both, [0.005, 0.995]))
    if hi <= lo:
        lo, hi = float(both.min()), float(both.max())
    if hi <= lo:
        hi = lo + 1.0
    edges = np.linspace(lo, hi, bins + 1)
    labels = [f"{edges[i]:.3g}" for i in range(bins)]
    ref = np.histogram(np.clip(a, lo, hi), bins=edges)[0] / a.size
    cur = np.histogram(np.clip(b, lo, hi), bins=edges)[0] / b.size
    return {
        "labels": labels,
        "reference": [round(float(v), 6) for v in ref],
        "current": [round(float(v), 6) for v in cur],
    }


def _counts(
    ref_counts: Any, cur_counts: Any, column: str, kind: str, max_categories: int
) -> ColumnDrift:
    import numpy as np
    import pandas as pd
    from scipy import stats

    table = pd.concat([ref_counts, cur_counts], axis=1, keys=["reference", "current"]).fillna(0)
    if table.empty or table["reference"].sum() == 0 or table["current"].sum() == 0:
        raise MLUsageError(f"drift: column {column!r} has no non-missing values in one window")
    if len(table) > max_categories:
        order = table.sum(axis=1).sort_values(ascending=False).index
        head = table.loc[order[: max_categories - 1]]
        rest = table.loc[order[max_categories - 1 :]].sum().to_frame(_OTHER).T
        table = pd.concat([head, rest])
    shares = table / table.sum()
    diff = (shares["current"] - shares["reference"]).abs()
    tvd = float(diff.sum() / 2)
    if len(table) < 2:
        stat, p = 0.0, 1.0
    else:
        res = stats.chi2_contingency(np.asarray(table.to_numpy().T, dtype=float), correction=False)
        stat, p = float(res.statistic), float(res.pvalue)
    shifted = [
        {
            "value": v,
            "reference": float(shares.at[v, "reference"]),
            "current": float(shares.at[v, "current"]),
        }
        for v in diff.sort_values(ascending=False).index[:10]
    ]
    common = table.sum(axis=1).sort_values(ascending=False).index[:_HIST_BINS]
    histogram = {
        "labels": [str(v) for v in common],
        "reference": [round(float(shares.at[v, "reference"]), 6) for v in common],
        "current": [round(float(shares.at[v, "current"]), 6) for v in common],
    }
    return ColumnDrift(
        column, kind, "chi2", stat, p, effect=tvd, shifted=shifted, histogram=histogram
    )


def _categorical(ref: Any, cur: Any, column: str, max_categories: int) -> ColumnDrift:
    return _counts(
        ref.value_counts(dropna=True),
        cur.value_counts(dropna=True),
        column,
        "categorical",
        max_categories,
    )


def _ngrams(series: Any, ngram: str) -> Any:
    text = series.dropna().astype("string").str.lower()
    if ngram == "token":
        pieces = text.str.findall(r"\w+")
    else:
        n = int(ngram.removeprefix("char"))
        pieces = text.map(lambda s: [s[i : i + n] for i in range(max(len(s) - n + 1, 0))])
    return pieces.explode().dropna().value_counts()


def _text(ref: Any, cur: Any, column: str, ngram: str, max_categories: int) -> list[ColumnDrift]:
    lengths = _numeric(
        ref.dropna().astype("string").str.len(),
        cur.dropna().astype("string").str.len(),
        f"{column} (length)",
    )
    lengths.kind = "text"
    tokens = _counts(
        _ngrams(ref, ngram), _ngrams(cur, ngram), f"{column} ({ngram}s)", "text", max_categories
    )
    return [lengths, tokens]


def drift_report(
    reference: Any,
    current: Any,
    *,
    columns: Sequence[str] | None = None,
    text_columns: Sequence[str] = (),
    categorical_columns: Sequence[str] = (),
    alpha: float = 0.05,
    correction: Correction = "holm",
    min_effect: float = 0.0,
    ngram: str = "token",
    max_categories: int = 50,
) -> DriftReport:
    """Test every column for a shift between ``reference`` and ``current``.

    Args:
        reference: The reference window (e.g. training data), a DataFrame.
        current: The current window (e.g. last week's inputs), a DataFrame.
        columns: Columns to test (default: every column of ``reference``).
        text_columns: Columns tested as text (length + n-gram frequencies).
        categorical_columns: Numeric columns to treat as categories (codes, ids).
        alpha: Significance level after the correction.
        correction: ``"holm"`` (family-wise), ``"bh"`` (false discovery rate) or ``"none"``.
        min_effect: Smallest KS statistic / total variation distance counted as drift.
        ngram: ``"token"`` (words) or ``"charN"`` (character N-grams, e.g. ``"char3"``).
        max_categories: Most frequent categories/n-grams kept; the rest are pooled.

    Returns:
        The report, with one entry per test.

    Raises:
        MLUsageError: For a column missing from a window or a bad argument.

    Example:
        >>> report = drift_report(train_df, live_df, text_columns=["title"])  # doctest: +SKIP
        >>> print(report.table())  # doctest: +SKIP
    """
    if not 0 < alpha < 1:
        raise MLUsageError(f"drift: alpha {alpha} is not in (0, 1)")
    if ngram != "token" and not (
        ngram.startswith("char") and ngram[4:].isdigit() and int(ngram[4:]) > 0
    ):
        raise MLUsageError(f"drift: ngram {ngram!r} is not 'token' or 'charN' (e.g. 'char3')")
    if max_categories < 2:
        raise MLUsageError("drift: max_categories must be at least 2")
    for name, frame in (("reference", reference), ("current", current)):
        if not hasattr(frame, "columns"):
            raise MLUsageError(f"drift: {name} is a {type(frame).__name__}, not a DataFrame")
    cols = list(columns) if columns is not None else [str(c) for c in reference.columns]
    for column in [*cols, *text_columns, *categorical_columns]:
        for name, frame in (("reference", reference), ("current", current)):
            if column not in frame.columns:
                raise MLUsageError(
                    f"drift: column {column!r} is not in the {name} window "
                    f"(columns: {', '.join(map(str, frame.columns))})"
                )
    import pandas as pd

    tests: list[ColumnDrift] = []
    for column in cols + [c for c in text_columns if c not in cols]:
        ref, cur = reference[column], current[column]
        if column in text_columns:
            tests.extend(_text(ref, cur, column, ngram, max_categories))
        elif (
            column not in categorical_columns
            and pd.api.types.is_numeric_dtype(ref)
            and not pd.api.types.is_bool_dtype(ref)
        ):
            tests.append(_numeric(ref, cur, column))
        else:
            tests.append(_categorical(ref, cur, column, max_categories))
    for test, adjusted in zip(
        tests, adjust_pvalues([t.p_value for t in tests], correction), strict=True
    ):
        test.p_adjusted = adjusted
        test.drifted = adjusted < alpha and test.effect >= min_effect
    return DriftReport(tests, alpha, correction, len(reference), len(current), min_effect)


def check_drift(
    reference: Any,
    current: Any,
    *,
    columns: Sequence[str] | None = None,
    text_columns: Sequence[str] = (),
    categorical_columns: Sequence[str] = (),
    alpha: float = 0.05,
    correction: Correction = "holm",
    min_effect: float = 0.0,
    ngram: str = "token",
    max_categories: int = 50,
) -> DriftReport:
    """Fail when any column drifted between ``reference`` and ``current``.

    Takes the arguments of :func:`drift_report`. Records the per-column
    statistics and p-values in the mltest report, pass or fail.

    Returns:
        The report, when no column drifted.

    Raises:
        MLCheckFailure: With a table of every test (drifted ones starred):
            statistic, raw and adjusted p-value, effect size and the most-shifted
            values.

    Example:
        >>> check_drift(train_df, live_df, min_effect=0.05)  # doctest: +SKIP
    """
    __tracebackhide__ = True
    report = drift_report(
        reference,
        current,
        columns=columns,
        text_columns=text_columns,
        categorical_columns=categorical_columns,
        alpha=alpha,
        correction=correction,
        min_effect=min_effect,
        ngram=ngram,
        max_categories=max_categories,
    )
    drifted = report.drifted
    record_check(
        "data",
        "drift",
        not drifted,
        headline=report.headline(),
        metrics={
            "cases": len(report.columns),
            "failed": len(drifted),
            **{f"p_adjusted[{c.column}]": c.p_adjusted for c in report.columns},
        },
        examples=[
            {
                "column": c.column,
                "test": c.test,
                "statistic": c.statistic,
                "p_value": c.p_value,
                "p_adjusted": c.p_adjusted,
                "effect": c.effect,
                "shifted": c.shifted[:5],
            }
            for c in drifted
        ],
        group={"check": "drift"},
    )
    for c in drifted:
        if c.histogram is not None:
            record_figure(
                f"drift.{c.column}",
                "bars",
                {
                    "labels": c.histogram["labels"],
                    "series": {
                        f"reference ({report.reference_rows:,})": c.histogram["reference"],
                        f"current ({report.current_rows:,})": c.histogram["current"],
                    },
                    "x_label": c.column,
                    "y_label": "share of rows",
                },
                title=f"drift: {c.column}",
                check="drift",
                caption=f"{c.test} statistic {c.statistic:.4g}, adjusted p {c.p_adjusted:.2g}, "
                f"effect {c.effect:.3f}"
                + ("" if c.kind == "numeric" else f" (the {_HIST_BINS} most common values)"),
            )
    if drifted:
        raise MLCheckFailure(
            f"{report.headline()}\n\n{report.table()}\n\n(* = drifted) If the shift is "
            "expected, refresh the reference window (and retrain); if not, look for a new "
            "source or a pipeline change in the current window."
        )
    return report
