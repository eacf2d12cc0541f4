"""Expectation specs: what a suite file or the inline API asks for, without GX.

Parsing and naming expectations needs no Great Expectations import, so a suite
file is collected (and its items named) before GX loads.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mltest.errors import MLUsageError

__all__ = ["ExpectationSpec", "parse_expectations", "spec_label"]

#: kwargs that name the column(s) an expectation looks at, in label order.
COLUMN_KWARGS = ("column", "column_A", "column_B", "column_list")


@dataclass
class ExpectationSpec:
    """One expectation as written: its GX type name, arguments and label.

    Attributes:
        type: The snake-case GX name, e.g. ``"expect_column_values_to_be_in_set"``.
        kwargs: The expectation's arguments.
        meta: GX ``meta`` (free-form notes), kept as given.
        label: The test id part in brackets (``tag`` in ``...in_set[tag]``).
        position: 1-based position in its suite, for messages.

    Example:
        >>> spec = ExpectationSpec("expect_column_values_to_not_be_null", {"column": "tag"})
        >>> spec.describe()
        "expect_column_values_to_not_be_null(column='tag')"
    """

    type: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    position: int = 1

    def columns(self) -> list[str]:
        """Return the columns this expectation names, in kwargs order.

        Example:
            >>> ExpectationSpec("expect_column_pair_values_to_be_equal",
            ...                 {"column_A": "a", "column_B": "b"}).columns()
            ['a', 'b']
        """
        out: list[str] = []
        for key in COLUMN_KWARGS:
            value = self.kwargs.get(key)
            if isinstance(value, str):
                out.append(value)
            elif isinstance(value, list | tuple):
                out.extend(str(v) for v in value)
        return out

    def describe(self, width: int = 120) -> str:
        """Return ``type(arg=value, ...)`` cut to ``width`` characters.

        Example:
            >>> ExpectationSpec("expect_table_row_count_to_equal", {"value": 3}).describe()
            'expect_table_row_count_to_equal(value=3)'
        """
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        text = f"{self.type}({args})"
        return text if len(text) <= width else text[: width - 4] + "...)"


_LABEL_BAD = re.compile(r"[^\w.,:+-]+")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def spec_label(kwargs: Mapping[str, Any], position: int) -> str:
    """Name an expectation for its test id: its column(s), else its position.

    Example:
        >>> spec_label({"column": "tag", "value_set": ["a"]}, 3)
        'tag'
        >>> spec_label({"value": 10}, 3)
        '3'
    """
    parts: list[str] = []
    for key in COLUMN_KWARGS:
        value = kwargs.get(key)
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, list | tuple):
            parts.extend(str(v) for v in value)
    text = _LABEL_BAD.sub("_", ",".join(parts)).strip("_")
    return text or str(position)


def _one(raw: Any, position: int, where: str) -> ExpectationSpec:
    if not isinstance(raw, Mapping):
        raise MLUsageError(
            f"{where}: expectation #{position} is {type(raw).__name__}, not a mapping: "
            "write `- expect_x: {column: c}` or `- {type: expect_x, kwargs: {...}}`"
        )
    raw = dict(raw)
    label = raw.pop("id", None)
    if isinstance(label, str) and _UUID.fullmatch(label):
        label = None  # GX's own expectation id (saved suites): not a readable test id
    if "type" in raw or "expectation_type" in raw:
        name = raw.pop("type", None) or raw.pop("expectation_type", None)
        kwargs = raw.pop("kwargs", None) or {}
        meta = raw.pop("meta", None) or {}
        for ignored in ("severity", "rendered_content", "notes", "description"):
            raw.pop(ignored, None)
        if raw:
            raise MLUsageError(
                f"{where}: expectation #{position} ({name}) has unknown keys "
                f"{sorted(raw)}: use type, kwargs, meta and id"
            )
    else:
        meta = raw.pop("meta", None) or {}
        if len(raw) != 1:
            raise MLUsageError(
                f"{where}: expectation #{position} has keys {sorted(raw)}: write one "
                "`expect_...: {arguments}` per list item (plus optional id and meta)"
            )
        ((name, kwargs),) = raw.items()
        kwargs = kwargs or {}
    if not isinstance(name, str) or not name.startswith("expect_"):
        raise MLUsageError(
            f"{where}: expectation #{position}: {name!r} is not an expectation name "
            "(they start with 'expect_', e.g. expect_column_values_to_not_be_null)"
        )
    if not isinstance(kwargs, Mapping):
        raise MLUsageError(
            f"{where}: expectation #{position} ({name}): arguments must be a mapping, "
            f"got {type(kwargs).__name__}"
        )
    if not isinstance(meta, Mapping):
        raise MLUsageError(f"{where}: expectation #{position} ({name}): meta must be a mapping")
    kwargs = dict(kwargs)
    text_label = str(label) if label is not None else spec_label(kwargs, position)
    return ExpectationSpec(name, kwargs, dict(meta), _LABEL_BAD.sub("_", text_label), position)


def parse_expectations(raw: Any, where: str) -> list[ExpectationSpec]:
    """Parse a suite's ``expectations`` list into specs with unique labels.

    Two labels that would collide get ``-2``, ``-3``... appended.

    Args:
        raw: The list from the suite file.
        where: The suite's path, for messages.

    Returns:
        The specs, in file order.

    Raises:
        MLUsageError: When an entry is malformed.

    Example:
        >>> [s.label for s in parse_expectations(
        ...     [{"expect_column_values_to_not_be_null": {"column": "a"}},
        ...      {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "a"}},
        ...      {"expect_column_values_to_not_be_null": {"column": "a"}}], "s.yaml")]
        ['a', 'a', 'a-2']
    """
    if not isinstance(raw, list):
        raise MLUsageError(f"{where}: 'expectations' must be a list, got {type(raw).__name__}")
    specs = [_one(item, i, where) for i, item in enumerate(raw, start=1)]
    seen: dict[tuple[str, str], int] = {}
    for spec in specs:
        key = (spec.type, spec.label)
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > 1:
            spec.label = f"{spec.label}-{seen[key]}"
    return specs
