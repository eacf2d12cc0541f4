"""The prepare stage's splits: no leakage, stratified, every label everywhere."""

from __future__ import annotations

from typing import Any

import pytest

from mltest.data import check_splits

pytestmark = pytest.mark.data


def test_bbc_splits_do_not_leak_and_are_stratified(bbc_splits: dict[str, Any]) -> None:
    check_splits(bbc_splits, label="tag", leakage_columns=["text"], tolerance=0.02)


@pytest.mark.xfail(
    reason="BBC News holds 28 re-published stories (same title, text edited slightly); "
    "data.clean drops exact duplicates only, so 12 of them straddle the splits. "
    "Deduplicate on the title (or near-duplicate text) before splitting to fix.",
    strict=True,
    raises=AssertionError,
)
def test_bbc_splits_do_not_share_titles(bbc_splits: dict[str, Any]) -> None:
    check_splits(bbc_splits, leakage_columns=["title"])
