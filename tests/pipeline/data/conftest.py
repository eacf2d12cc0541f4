"""Fixtures of the dataset tests: BBC News as loaded, as cleaned, and as split by params.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def bbc_raw_frame() -> Any:
    """BBC News as ``data.load_dataset()`` returns it (2,225 rows).

    Example:
        >>> def test_rows(bbc_raw_frame):  # doctest: +SKIP
        ...     assert len(bbc_raw_frame) == 2225
    """
    from reference_pipeline.data import load_dataset

    return load_dataset()


@pytest.fixture(scope="session")
def bbc_clean_frame(bbc_raw_frame: Any) -> Any:
    """BBC News after ``data.clean`` with the repository's lowercase and dedupe_titles.

    Example:
        >>> def test_text(bbc_clean_frame):  # doctest: +SKIP
        ...     assert "text" in bbc_clean_frame
    """
    from reference_pipeline.config import load_params
    from reference_pipeline.data import clean

    params = load_params(REPO / "params.yaml")
    return clean(
        bbc_raw_frame,
        lowercase=params.data.lowercase,
        dedupe_titles=params.data.dedupe_titles,
    )


@pytest.fixture(scope="session")
def bbc_splits(bbc_clean_frame: Any) -> dict[str, Any]:
    """``{"train", "val", "test"}`` as the prepare stage splits them with params.yaml.

    Example:
        >>> def test_split(bbc_splits):  # doctest: +SKIP
        ...     assert list(bbc_splits) == ["train", "val", "test"]
    """
    from reference_pipeline.config import load_params
    from reference_pipeline.data import split, subsample

    cfg = load_params(REPO / "params.yaml").data
    df = subsample(bbc_clean_frame, cfg.max_rows_per_label, seed=cfg.seed)
    parts = split(
        df,
        val_size=cfg.val_size,
        test_size=cfg.test_size,
        seed=cfg.seed,
        min_rows_per_label=cfg.min_rows_per_label,
    )
    return {"train": parts.train, "val": parts.val, "test": parts.test}
