"""The prepare stage's splits: no leakage, stratified, every label everywhere."""

from __future__ import annotations

from typing import Any

import pytest

from mltest.data import check_splits

pytestmark = pytest.mark.data


def test_bbc_splits_do_not_leak_and_are_stratified(bbc_splits: dict[str, Any]) -> None:
    check_splits(bbc_splits, label="tag", leakage_columns=["text"], tolerance=0.02)


def test_bbc_splits_do_not_share_titles(bbc_splits: dict[str, Any]) -> None:
    # BBC News holds 29 re-published stories (same title, lightly edited text) that
    # exact de-duplication keeps; data.dedupe_titles (on by default) drops them
    # before splitting, so no title straddles train/val/test.
    check_splits(bbc_splits, leakage_columns=["title"])
