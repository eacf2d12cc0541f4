"""Checks on train/validation/test splits: leakage, stratification, coverage.

Each check takes the splits as a mapping ``{name: DataFrame}`` in pipeline
order (train first), records its result in the mltest report, and raises
:class:`~mltest.errors.MLCheckFailure` with the offending rows.

Example:
    >>> from mltest.data import check_splits
    >>> check_splits({"train": tr, "val": va, "test": te},  # doctest: +SKIP
    ...              label="tag", leakage_columns=["title"], category_columns=["source"])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any

from mltest.errors import MLCheckFailure, MLUsageError
from mltest.report import record_check

__all__ = [
    "check_label_coverage",
    "check_no_leakage",
    "check_splits",
    "check_stratification",
    "check_unseen_categories",
    "normalize_text",
]

_SEP = "\x1f"


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _short(value: Any, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _require_columns(splits: Mapping[str, Any], columns: Sequence[str], check: str) -> None:
    if len(splits) < 1:
        raise MLUsageError(f"{check}: give the splits as {{name: DataFrame}}")
    for name, frame in splits.items():
        if not hasattr(frame, "columns"):
            raise MLUsageError(
                f"{check}: split {name!r} is a {type(frame).__name__}, not a DataFrame"
            )
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise MLUsageError(
                f"{check}: column {missing[0]!r} is not in split {name!r} "
                f"(columns: {', '.join(map(str, frame.columns))})"
            )


def normalize_text(series: Any) -> Any:
    """Normalise text for near-duplicate matching: NFKC, case, punctuation, spaces.

    Example:
        >>> import pandas as pd
        >>> normalize_text(pd.Series(["  Stocks  FALL!", "stocks fall"])).tolist()
        ['stocks fall', 'stocks fall']
    """
    text = series.astype("string").str.normalize("NFKC").str.casefold()
    text = text.str.replace(r"[^\w\s]+", " ", regex=True)
    return text.str.replace(r"\s+", " ", regex=True).str.strip()


def _keys(frame: Any, columns: Sequence[str], normalised: bool) -> Any:
    parts = []
    for column in columns:
        values = frame[column]
        parts.append(
            normalize_text(values) if normalised else values.astype("string").fillna("\x00")
        )
    key = parts[0]
    for part in parts[1:]:
        key = key.str.cat(part, sep=_SEP)
    valid = frame[list(columns)].notna().any(axis=1)
    return key[valid]


def _leaks(a: Any, b: Any, columns: Sequence[str], normalised: bool) -> list[tuple[Any, Any]]:
    import pandas as pd

    ka = _keys(a, columns, normalised)
    kb = _keys(b, columns, normalised)
    if normalised:
        ka, kb = ka[ka.str.len() > 0], kb[kb.str.len() > 0]
    left = pd.DataFrame({"key": ka.to_numpy(), "row_a": ka.index})
    right = pd.DataFrame({"key": kb.to_numpy(), "row_b": kb.index})
    right = right[right["key"].isin(set(left["key"]))]
    if right.empty:
        return []
    first = left.drop_duplicates("key")
    merged = right.merge(first, on="key", how="left")
    return list(zip(merged["row_a"], merged["row_b"], strict=True))


def check_no_leakage(
    splits: Mapping[str, Any],
    columns: Sequence[str] | str,
    *,
    normalized: bool = True,
    max_examples: int = 10,
) -> None:
    """Fail when a row of a later split repeats a row of an earlier one.

    Rows match on ``columns``: exactly, and (with ``normalized``) after
    normalising case, Unicode form, punctuation and whitespace, which catches
    the near-duplicates that exact matching misses.

    Args:
        splits: ``{name: DataFrame}``, earlier splits first.
        columns: The column(s) that identify an example (e.g. the text).
        normalized: Also match normalised text.
        max_examples: Leaked rows shown.

    Raises:
        MLCheckFailure: Listing the leaked rows (row in each split and value).
        MLUsageError: When a column is missing from a split.

    Example:
        >>> check_no_leakage({"train": tr, "test": te}, ["title"])  # doctest: +SKIP
    """
    __tracebackhide__ = True
    cols = [columns] if isinstance(columns, str) else list(columns)
    if not cols:
        raise MLUsageError("check_no_leakage: name at least one column")
    _require_columns(splits, cols, "check_no_leakage")
    rows: list[dict[str, Any]] = []
    counts: list[tuple[str, str, int]] = []
    for (name_a, a), (name_b, b) in combinations(splits.items(), 2):
        exact = _leaks(a, b, cols, normalised=False)
        seen = {row_b for _, row_b in exact}
        found = [(ra, rb, "exact") for ra, rb in exact]
        if normalized:
            near = [(ra, rb) for ra, rb in _leaks(a, b, cols, normalised=True) if rb not in seen]
            found.extend((ra, rb, "normalised") for ra, rb in near)
        for match in ("exact", "normalised"):
            n = len({rb for _, rb, m in found if m == match})
            if n:
                counts.append((f"{name_a}/{name_b}", match, n))
        for ra, rb, match in found:
            rows.append(
                {
                    "pair": f"{name_a}/{name_b}",
                    "row_a": ra,
                    "row_b": rb,
                    "match": match,
                    "value_a": " | ".join(str(a.at[ra, c]) for c in cols),
                    "value_b": " | ".join(str(b.at[rb, c]) for c in cols),
                }
            )
    leaked = sum(n for *_, n in counts)
    headline = (
        f"{_count(leaked, 'row leaks', 'rows leak')} between splits on {cols}"
        if leaked
        else f"no leakage between {', '.join(splits)} on {cols}"
    )
    record_check(
        "data",
        "no_leakage",
        not leaked,
        headline=headline,
        metrics={"cases": sum(len(f) for f in list(splits.values())[1:]), "failed": leaked},
        examples=rows[:max_examples],
        group={"check": "no_leakage"},
    )
    if not leaked:
        return
    lines = [headline, "", f"{'splits':<16}{'match':<12}leaked rows"]
    lines.extend(f"{pair:<16}{match:<12}{n}" for pair, match, n in counts)
    lines.extend(["", f"{'splits':<16}{'rows':<16}{'match':<12}value"])
    for row in rows[:max_examples]:
        where = f"{row['row_a']} / {row['row_b']}"
        value = _short(row["value_b"])
        if row["match"] == "normalised":
            value += f"  ~ {_short(row['value_a'])}"
        lines.append(f"{row['pair']:<16}{where:<16}{row['match']:<12}{value}")
    if len(rows) > max_examples:
        lines.append(f"... and {len(rows) - max_examples} more")
    lines.extend(
        [
            "",
            "Drop the leaked rows from the later split, or deduplicate (on the normalised "
            "text) before splitting.",
        ]
    )
    raise MLCheckFailure("\n".join(lines))


def check_stratification(splits: Mapping[str, Any], label: str, *, tolerance: float = 0.05) -> None:
    """Fail when a split's label proportions differ from the overall ones by > ``tolerance``.

    Args:
        splits: ``{name: DataFrame}``.
        label: The label column.
        tolerance: Largest allowed absolute difference in a class's share (0.05 = 5 points).

    Raises:
        MLCheckFailure: With a table of class shares per split.

    Example:
        >>> check_stratification({"train": tr, "test": te}, "tag", tolerance=0.03)  # doctest: +SKIP
    """
    __tracebackhide__ = True
    import pandas as pd

    _require_columns(splits, [label], "check_stratification")
    if not 0 <= tolerance <= 1:
        raise MLUsageError(f"check_stratification: tolerance {tolerance} is not in [0, 1]")
    overall = pd.concat([f[label] for f in splits.values()]).value_counts(normalize=True)
    shares = {
        name: f[label].value_counts(normalize=True).reindex(overall.index, fill_value=0.0)
        for name, f in splits.items()
    }
    worst: list[tuple[float, Any, str]] = []
    for name, share in shares.items():
        diff = (share - overall).abs()
        for cls, d in diff.items():
            if d > tolerance:
                worst.append((float(d), cls, name))
    worst.sort(key=lambda t: -t[0])
    max_diff = max(float((s - overall).abs().max()) for s in shares.values())
    headline = (
        f"label shares of {_count(len(worst), 'class/split pair', 'class/split pairs')} "
        "differ from overall by more than "
        f"{tolerance:.1%} (worst {worst[0][0]:.1%}: {worst[0][1]!r} in {worst[0][2]})"
        if worst
        else f"label shares within {tolerance:.1%} in every split (max {max_diff:.1%})"
    )
    record_check(
        "data",
        "stratification",
        not worst,
        headline=headline,
        metrics={"cases": len(overall) * len(shares), "failed": len(worst), "max_diff": max_diff},
        examples=[{"class": c, "split": s, "diff": d} for d, c, s in worst],
        group={"check": "stratification"},
    )
    if not worst:
        return
    names = list(shares)
    lines = [headline, "", f"{'class':<20}{'overall':>9}" + "".join(f"{n:>10}" for n in names)]
    for cls in overall.index:
        row = f"{_short(cls, 18):<20}{overall[cls]:>9.1%}"
        for n in names:
            flag = "*" if abs(shares[n][cls] - overall[cls]) > tolerance else " "
            row += f"{shares[n][cls]:>9.1%}{flag}"
        lines.append(row)
    lines.extend(
        ["", "(* = off by more than the tolerance) Split with stratification on the label."]
    )
    raise MLCheckFailure("\n".join(lines))


def check_label_coverage(splits: Mapping[str, Any], label: str) -> None:
    """Fail when a label seen in any split is missing from another split.

    Example:
        >>> check_label_coverage({"train": tr, "val": va, "test": te}, "tag")  # doctest: +SKIP
    """
    __tracebackhide__ = True
    _require_columns(splits, [label], "check_label_coverage")
    present = {name: set(f[label].dropna().unique().tolist()) for name, f in splits.items()}
    every = set().union(*present.values())
    missing = [
        (name, cls) for name, seen in present.items() for cls in sorted(every - seen, key=str)
    ]
    headline = (
        f"{_count(len(missing), 'label', 'labels')} missing from splits: "
        + ", ".join(f"{cls!r} not in {name}" for name, cls in missing[:5])
        if missing
        else f"all {len(every)} labels present in every split"
    )
    record_check(
        "data",
        "label_coverage",
        not missing,
        headline=headline,
        metrics={"cases": len(every) * len(present), "failed": len(missing)},
        examples=[{"split": n, "label": c} for n, c in missing],
        group={"check": "label_coverage"},
    )
    if missing:
        lines = [headline, "", f"{'split':<12}missing label"]
        lines.extend(f"{name:<12}{cls!r}" for name, cls in missing)
        lines.extend(
            ["", "Split with stratification, or merge/drop classes too rare to reach every split."]
        )
        raise MLCheckFailure("\n".join(lines))


def check_unseen_categories(
    train: Any,
    test: Any,
    columns: Sequence[str] | str,
    *,
    train_name: str = "train",
    test_name: str = "test",
    max_examples: int = 10,
) -> None:
    """Fail when ``test`` has category values that ``train`` never shows.

    Example:
        >>> check_unseen_categories(tr, te, ["source", "tag"])  # doctest: +SKIP
    """
    __tracebackhide__ = True
    cols = [columns] if isinstance(columns, str) else list(columns)
    _require_columns({train_name: train, test_name: test}, cols, "check_unseen_categories")
    found: list[dict[str, Any]] = []
    for column in cols:
        known = set(train[column].dropna().unique().tolist())
        values = test[column].dropna()
        unseen = values[~values.isin(known)]
        for value, count in unseen.value_counts().items():
            rows = unseen.index[unseen == value][:3].tolist()
            found.append({"column": column, "value": value, "count": int(count), "rows": rows})
    total = sum(f["count"] for f in found)
    headline = (
        f"{_count(len(found), 'category', 'categories')} in {test_name} never seen in "
        f"{train_name} ({_count(total, 'row', 'rows')})"
        if found
        else f"every category of {cols} in {test_name} is seen in {train_name}"
    )
    record_check(
        "data",
        "unseen_categories",
        not found,
        headline=headline,
        metrics={"cases": len(test) * len(cols), "failed": total},
        examples=found[:max_examples],
        group={"check": "unseen_categories"},
    )
    if found:
        lines = [headline, "", f"{'column':<16}{'value':<24}{'rows':>6}  e.g. rows"]
        for f in found[:max_examples]:
            lines.append(
                f"{str(f['column'])[:14]:<16}{_short(f['value'], 22):<24}{f['count']:>6}  "
                + ", ".join(map(str, f["rows"]))
            )
        if len(found) > max_examples:
            lines.append(f"... and {len(found) - max_examples} more")
        lines.extend(
            ["", f"Add examples of these categories to {train_name}, or map them to a known one."]
        )
        raise MLCheckFailure("\n".join(lines))


def check_splits(
    splits: Mapping[str, Any],
    *,
    label: str | None = None,
    leakage_columns: Sequence[str] | str | None = None,
    category_columns: Sequence[str] | str | None = None,
    tolerance: float = 0.05,
    max_examples: int = 10,
) -> None:
    """Run every split check that applies and raise one failure listing all problems.

    Leakage on ``leakage_columns``; stratification and label coverage on
    ``label``; unseen categories (of ``category_columns``) in each later split
    against the first.

    Raises:
        MLCheckFailure: The failing checks' diagnoses, one after another.

    Example:
        >>> check_splits({"train": tr, "val": va, "test": te}, label="tag",  # doctest: +SKIP
        ...              leakage_columns=["title", "description"])
    """
    __tracebackhide__ = True
    failures: list[str] = []
    checks: list[tuple[Any, tuple[Any, ...], dict[str, Any]]] = []
    if leakage_columns:
        checks.append((check_no_leakage, (splits, leakage_columns), {"max_examples": max_examples}))
    if label is not None:
        checks.append((check_stratification, (splits, label), {"tolerance": tolerance}))
        checks.append((check_label_coverage, (splits, label), {}))
    if category_columns:
        (first, train), *rest = list(splits.items())
        for name, frame in rest:
            checks.append(
                (
                    check_unseen_categories,
                    (train, frame, category_columns),
                    {"train_name": first, "test_name": name, "max_examples": max_examples},
                )
            )
    if not checks:
        raise MLUsageError("check_splits: give label, leakage_columns or category_columns")
    for fn, args, kwargs in checks:
        try:
            fn(*args, **kwargs)
        except MLCheckFailure as exc:
            failures.append(str(exc))
    if failures:
        raise MLCheckFailure(
            f"{len(failures)} of {len(checks)} split checks failed\n\n" + "\n\n".join(failures)
        )
